// SPDX-License-Identifier: MIT
// vdhost-virtiofsd's command line: the options that libvirt, KubeVirt and Kata pass to
// virtiofsd (the Rust virtiofsd 1.13 spellings and the C virtiofsd's `-o` ones), parsed into
// the settings of one vdhost virtio-fs device, and that device written as a vdhost config.
// Every option is mapped to a vdhost key, accepted and ignored with a reason, or rejected
// with a message (docs/virtiofsd-compat.md lists them all).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace vdh::compat {

/// What the command line asks for.
enum class CompatAction { Run, Help, Version, PrintCapabilities };

/// One accepted-and-ignored option: the option as written and why it has no effect.
struct IgnoredOption {
    std::string option;
    std::string reason;
    bool warn = false; ///< the user might expect an effect: shown at log level info, else debug
};

/// The parsed command line: one virtio-fs share.
struct CompatOptions {
    CompatAction action = CompatAction::Run;
    std::string shared_dir;            ///< --shared-dir / -o source=
    std::string socket_path;           ///< --socket-path / --socket (vdhost creates it)
    int fd = -1;                       ///< --fd: an inherited listening socket (socket_fd)
    std::string socket_group;          ///< --socket-group (only with --socket-path)
    std::string tag;                   ///< --tag
    std::string cache = "auto";        ///< never | auto | always | metadata
    std::string sandbox = "namespace"; ///< host.sandbox
    std::string seccomp = "kill";      ///< host.seccomp
    std::string log_level = "info";    ///< vdhost's level name
    std::string inode_file_handles = "never";
    std::optional<bool> xattr;
    std::optional<std::string> xattrmap; ///< --xattrmap / -o xattrmap= (the profile checks it)
    std::optional<bool> writeback;
    std::optional<bool> readonly;
    std::optional<bool> announce_submounts;
    std::optional<bool> flock;
    std::optional<bool> posix_locks;
    std::optional<bool> allow_mmap;       ///< --allow-mmap
    std::optional<bool> readdirplus;      ///< --no-readdirplus, -o [no_]readdirplus
    std::optional<bool> preserve_noatime; ///< --preserve-noatime
    std::optional<bool> allow_direct_io; ///< --allow-direct-io / -o [no_]allow_direct_io
    std::optional<bool> posix_acl;      ///< --posix-acl / -o posix_acl|no_posix_acl
    std::optional<bool> security_label; ///< --security-label / -o security_label|no_...
    std::optional<unsigned long long> timeout_ms; ///< -o timeout=SECONDS: entry and attr timeouts
    std::vector<IgnoredOption> ignored;
};

/// Parses \p args (without argv[0]). On error returns nullopt and a one-line message in
/// \p err (without the program name), e.g. "--posix-acl is not supported yet".
std::optional<CompatOptions> parse_compat_args(const std::vector<std::string>& args,
                                               std::string* err);

/// The vdhost YAML config for \p o (action Run): one `virtiofs` device. Strings are
/// double-quoted with escapes, so any path is safe.
std::string build_vdhost_config(const CompatOptions& o);

/// What --print-capabilities prints (QEMU docs/interop/vhost-user.json, type "fs").
std::string capabilities_json();

/// The --help text.
std::string usage_text();

} // namespace vdh::compat

// SPDX-License-Identifier: MIT
// The process sandbox: after start-up work that needs the host's view (config, plugins,
// socket directories), vdhost moves into a root that holds only the shares and the socket
// directories (bind mounts at their own absolute paths, nodev and nosuid, so the kernel
// refuses device nodes even where a check is missed), then cuts its capabilities to what
// the passthrough needs and sets no_new_privs. The seccomp allow-list is separate
// (seccomp_filter.h) because it is installed later, when every thread exists.
#pragma once

#include <string>
#include <vector>

namespace vdh {

/// host.sandbox.
enum class SandboxMode {
    Namespace, ///< private mount namespace, pivot_root into the prepared root (default)
    Chroot,    ///< the same prepared root in the host's mount namespace, entered with chroot
    None,      ///< no sandbox: full host view and capabilities
};

/// One directory of the sandbox, bound at its own absolute path.
struct SandboxDir {
    std::string path; ///< absolute, lexically normal (no ".", "..", "//" or trailing "/")
    bool writable = false;
    bool socket_dir = false; ///< a vhost-user/control socket directory (also noexec)
};

/// What goes into the sandbox's root. Built before the sandbox is entered.
class SandboxPlan {
public:
    /// A share (a plugin's host directory). A directory added both read-only and writable is
    /// bound writable. Returns false and sets \p err for a path that is not absolute or is "/".
    bool add_share(const std::string& path, bool writable, std::string* err);
    /// The directory holding a socket (vhost-user or control): always writable.
    bool add_socket_dir(const std::string& path, std::string* err);
    /// An empty directory created in the (read-only) root itself, for a component that
    /// insists on creating it (e.g. DPDK's runtime directory); nothing can be written in it.
    bool add_empty_dir(const std::string& path, std::string* err);
    /// Everything added, merged, parents before children (the order of the bind mounts).
    const std::vector<SandboxDir>& dirs() const { return dirs_; }
    const std::vector<std::string>& empty_dirs() const { return empty_dirs_; }

private:
    bool add(const std::string& path, bool writable, bool socket_dir, std::string* err);
    std::vector<SandboxDir> dirs_;
    std::vector<std::string> empty_dirs_;
};

/// "/a//b/./c/../d/" -> "/a/b/d". Returns "" for a relative or empty path.
std::string normalize_abs_path(const std::string& path);

/// The capabilities vdhost keeps (bounding, permitted and effective sets): what the
/// passthrough needs to act as any guest uid/gid on the share (DAC, ownership, fsuid/fsgid,
/// mknod, file capabilities, leases, file-handle opens). Nothing else: not CAP_SYS_ADMIN,
/// not CAP_SETPCAP, not CAP_NET_*.
const std::vector<int>& sandbox_kept_caps();

/// Enters the sandbox for \p mode: must be called while the process has one thread (the
/// mount namespace and the root are per thread until threads exist; checked). Loads what
/// would otherwise be loaded lazily from the host file system later (libgcc_s, NSS).
/// Returns false and sets \p err (naming the step and the path) on failure.
bool enter_sandbox(SandboxMode mode, const SandboxPlan& plan, std::string* err);

/// Cuts the capability bounding, permitted, effective, inheritable and ambient sets to
/// sandbox_kept_caps() and sets no_new_privs. Per thread, like enter_sandbox: call it while
/// single-threaded so every later thread inherits it. A process without CAP_SETPCAP (not
/// root) only gets no_new_privs and loses what it has beyond the kept set.
bool drop_privileges(std::string* err);

/// Number of threads of this process (from /proc/self/task), or -1.
int thread_count();

const char* to_string(SandboxMode m);

} // namespace vdh

// SPDX-License-Identifier: MIT
// The vdhost YAML configuration: the validated, typed form of the file given with
// --config. yaml-cpp is used only in config.cc. Validation is complete before anything
// starts; every error names file:line:column, the key and what was expected.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "qos_config.h"
#include "sandbox.h"
#include "seccomp_filter.h"
#include "vdh/result.h"

namespace vdh {

/// One entry of `devices:`.
struct DeviceConfig {
    std::string name;            ///< unique device name
    std::string type;            ///< plugin name
    std::string socket;          ///< vhost-user socket path (unique)
    /// `socket_fd:`: an inherited listening socket to serve on (inherited_listen_fd.h), or
    /// -1. When set, `socket` is the path it is bound to, and vdhost neither creates, secures
    /// nor removes that path or its directory.
    int socket_fd = -1;
    /// CPUs of the poll lcores that serve this device's queues; queue q is served by
    /// lcores[q % lcores.size()]. From `lcore:` (an int or a list of ints, each in
    /// host.poll_lcores); when absent, one CPU chosen by spreading devices round-robin.
    std::vector<unsigned> lcores;
    uint16_t queue_size_max = 1024; ///< largest ring size accepted (power of two, 1..32768)
    QosConfig qos;                  ///< `qos:` rate limits (default: unlimited)
    // --- socket access (see socket_dir.h) ---
    uint32_t socket_mode = 0600;  ///< mode of the socket file: a subset of 0660
    bool has_socket_group = false; ///< `socket_group:` given
    uint32_t socket_gid = 0;      ///< group of the socket file when has_socket_group
    std::string socket_group;     ///< as written (name or number), for messages
    /// The `config:` block, positions preserved (see plugin_abi.h): the file's text with
    /// everything before the value node blanked to spaces and everything after it dropped
    /// except line breaks, so a YAML parser's marks in it are positions in the file.
    /// "" when the device has no `config:` or an empty one.
    std::string config_text;
    std::string origin;          ///< the file (or snippet origin) it was read from
    bool snippet = false;        ///< read alone (parse_device_snippet), not from `devices:`
    int line = 0;                ///< 1-based line of this device entry, for messages
    int column = 0;
    size_t index = 0;            ///< position in Config::devices (for "devices[i]" in messages)
    int type_line = 0;           ///< 1-based position of the `type:` value (device_error("type"))
    int type_column = 0;
};

/// The `host:` section.
struct HostConfig {
    std::vector<unsigned> poll_lcores; ///< CPUs for poll lcores (default: [last CPU])
    std::string log_level = "info";    ///< err | warning | notice | info | debug
    std::vector<std::string> eal_args; ///< extra/overriding EAL arguments
    std::string plugin_dir;            ///< where plugins are found ("" = built-in default)
    std::string control_socket;        ///< stats/control UNIX socket ("" = none)
    uint32_t idle_poll_us = 200;       ///< busy-poll this long without work before sleeping
    uint32_t max_sleep_ms = 100;       ///< upper bound of one sleep on kick eventfds
    /// How long one queue may keep taking requests in one pass of its lcore before the
    /// next queue gets its turn (0 = only the 64-request batch bounds it).
    uint32_t queue_slice_us = 25;
    /// How long ending a session waits for in-flight requests before it abandons them and
    /// marks the device broken (the vhost-user event thread, shared by every device, waits
    /// that long at most).
    uint32_t teardown_timeout_ms = 2000;
    // The process sandbox (sandbox.h, seccomp_filter.h).
    SandboxMode sandbox = SandboxMode::Namespace; ///< host.sandbox
    SeccompMode seccomp = SeccompMode::Kill;      ///< host.seccomp
    /// Directories bound (writable) into the sandbox at start although no device uses
    /// them yet, so that a device added while running can share a directory below one.
    std::vector<std::string> share_roots;
    /// host.telemetry: DPDK telemetry (its socket in the EAL runtime directory) with the
    /// /vdhost/... commands (dpdk_telemetry.h).
    bool telemetry = true;
    /// host.metrics.listen: the Prometheus endpoint's address ("unix:/path", "IP:PORT",
    /// "[IPV6]:PORT"; "" = none), see metrics_server.h.
    std::string metrics_listen;
};

struct Config {
    std::string path; ///< file it was loaded from
    HostConfig host;
    std::vector<DeviceConfig> devices;
};

/// A config error: "file:line:column: key: message".
struct ConfigError {
    std::string message;
};

/// Parses and validates \p path. Does not check that plugins exist (the caller does that
/// with the plugin loader, and reports with the device's position). \p online_cpus is the
/// number of CPUs the machine has (for range checks and defaults).
std::optional<Config> load_config(const std::string& path, unsigned online_cpus,
                                  ConfigError* err);

/// Same as load_config, reading \p name relative to the directory \p dirfd (a reload from
/// inside the sandbox: the directory was opened before). \p path is used in messages.
std::optional<Config> load_config_at(int dirfd, const std::string& name, const std::string& path,
                                     unsigned online_cpus, ConfigError* err);

/// Reads the host's group database into a cache that socket_group names resolve from
/// later, when the sandbox hides /etc/group (devices added while running). Before the
/// sandbox.
void remember_groups();

/// Same as load_config, from text (tests). \p origin is used in messages.
std::optional<Config> parse_config(const std::string& text, const std::string& origin,
                                   unsigned online_cpus, ConfigError* err);

/// Parses one device entry given alone (`vdhostctl add`): the keys of a `devices:` entry,
/// checked against \p host (its poll lcores). \p origin is used in messages and becomes
/// the device's origin. Name and socket uniqueness are the caller's to check.
std::optional<DeviceConfig> parse_device_snippet(const std::string& text,
                                                 const std::string& origin,
                                                 const HostConfig& host, unsigned online_cpus,
                                                 ConfigError* err);

/// Formats an error at \p dev's position in its origin (see device_error below).
std::string device_error(const DeviceConfig& dev, const std::string& key,
                         const std::string& message);

/// Formats an error at \p device's position, e.g. for a missing plugin:
/// "file:line:column: devices[i].key: message" (just "devices[i]" when \p key is empty).
/// For \p key "type" the position is that of the `type:` value, else the device entry's.
std::string device_error(const Config& cfg, const DeviceConfig& dev, const std::string& key,
                         const std::string& message);

} // namespace vdh

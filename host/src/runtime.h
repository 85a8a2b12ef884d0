// SPDX-License-Identifier: MIT
// Runtime: the running host after start-up — the loaded plugins, the poll lcores, the
// process fd budget and the devices with their vhost-user sockets. Devices are added,
// removed and replaced while the others keep serving (vdhostctl, SIGHUP reload). Every
// change runs on the control thread; stats readers may come from any thread.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config.h"
#include "fd_budget.h"
#include "plugin_loader.h"
#include "sandbox.h"
#include "vdh/unique_fd.h"

namespace vdh {

class Device;
class MetricsRegistry;
class PollLcore;

/// Where a running device came from: the YAML file (reload keeps it in line with the file)
/// or the control socket (reload leaves it alone).
enum class DeviceOrigin { Config, Control };

/// A directory the plugin of a device needs on the host (vdh_plugin_info::host_paths).
struct HostPath {
    std::string path;
    bool writable = false;
};

/// Runs the plugin's check_config() on \p dev's block. False + \p err (the plugin's message,
/// which names file:line:column) when the block is invalid.
bool plugin_check_config(const Plugin& plugin, const DeviceConfig& dev, std::string* err);

/// The host directories \p dev's plugin needs. False + \p err on a plugin error.
bool plugin_host_paths(const Plugin& plugin, const DeviceConfig& dev,
                       std::vector<HostPath>* paths, std::string* err);

/// What a reload did. Every list holds device names, `refused` holds reasons.
struct ReloadReport {
    std::vector<std::string> added;
    std::vector<std::string> removed;
    std::vector<std::string> replaced;
    std::vector<std::string> qos_changed; ///< only `qos:` changed: applied live
    size_t unchanged = 0;
    std::vector<std::string> refused; ///< "what: why" for each change not applied
    std::string error;                ///< the file could not be read or is invalid
    std::string json() const;
};

class Runtime {
public:
    struct Setup {
        Config config;                                          ///< as loaded at start
        std::map<std::string, std::unique_ptr<Plugin>>* plugins; ///< by type, loaded
        std::map<unsigned, PollLcore*> lcores;                  ///< by CPU, running
        FdBudget* fd_budget;
        /// What the sandbox holds (empty with sandbox: none); a device added later must
        /// find its directories and socket directory in it.
        std::vector<SandboxDir> sandbox_dirs;
        unsigned online_cpus = 1;
        /// The config file's directory, opened before the sandbox (reload reads the file
        /// through it: the sandbox does not hold it). Invalid: read by path.
        UniqueFd config_dir;
    };

    explicit Runtime(Setup setup);
    ~Runtime();
    Runtime(const Runtime&) = delete;
    Runtime& operator=(const Runtime&) = delete;

    /// Creates \p dev's plugin instance, reserves its fds and starts listening on its
    /// socket. False + \p err (naming the config position) on failure; nothing is left.
    bool add(const DeviceConfig& dev, DeviceOrigin origin, std::string* err);

    /// add() for the devices of a config at start: all of them are created and their fds
    /// reserved before any socket listens, so a config that does not fit is refused before
    /// a guest can connect to part of it. On failure, devices already serving stay (the
    /// caller removes them with remove_all()).
    bool add_all(const std::vector<DeviceConfig>& devs, DeviceOrigin origin, std::string* err);

    /// Stops serving \p name: its socket goes away and the plugin instance is destroyed and
    /// its fds are given back. A connected guest's session is revoked when the plugin can
    /// (its requests fail from then on; the device is freed when the frontend disconnects),
    /// else drained and disconnected. False + \p err when there is no such device.
    bool remove(const std::string& name, std::string* err);

    /// Frees removed devices whose guest has disconnected, or whose stuck requests have
    /// completed since. Called periodically by the control thread.
    void housekeeping();

    /// Re-reads \p path and applies the difference to the devices that came from it.
    ReloadReport reload(const std::string& path);

    /// Removes every device (shutdown). Returns true when one of them still had stuck
    /// requests, so its plugin's code may still run (see ~Device).
    bool remove_all();

    /// Reports every device added from now on to \p reg (telemetry), until removed.
    void set_metrics(MetricsRegistry* reg) noexcept { metrics_ = reg; }

    /// Runs the control socket's `qos NAME ...` command (qos_command.h).
    std::string qos(const std::string& command);

    /// JSON: {"devices":[{name,type,socket,state,lcores,origin}...]}.
    std::string list_json() const;
    /// JSON: version, pid, lcores and every device's stats (the `stats` command).
    std::string stats_json() const;

    size_t device_count() const;
    const Config& config() const noexcept { return config_; }

private:
    struct Entry {
        std::unique_ptr<Device> dev;
        DeviceOrigin origin;
    };

    /// Refuses \p dev when its name or socket is taken, its type has no plugin, or (in a
    /// sandbox) its directories or socket directory are not inside the sandbox.
    bool check_new(const DeviceConfig& dev, std::string* err) const;
    /// add()'s halves: create the device and reserve its fds; then list it and listen.
    std::unique_ptr<Device> prepare(const DeviceConfig& dev, std::string* err);
    bool serve(std::unique_ptr<Device> d, DeviceOrigin origin, std::string* err);
    /// Is \p path inside a sandbox directory (writable when \p writable)?
    bool in_sandbox(const std::string& path, bool writable, bool socket_dir) const;
    /// Frees devices removed earlier whose stuck requests have completed since.
    void reap_retired();
    /// Unregisters and destroys (or retires) \p dev. Caller holds ops_mu_.
    void finish_removal(std::unique_ptr<Device> dev);

    Config config_;
    std::map<std::string, std::unique_ptr<Plugin>>* plugins_;
    std::map<unsigned, PollLcore*> lcores_;
    FdBudget* fd_budget_;
    std::vector<SandboxDir> sandbox_dirs_;
    unsigned online_cpus_;
    UniqueFd config_dir_;
    MetricsRegistry* metrics_ = nullptr;

    std::mutex ops_mu_;             ///< serializes add/remove/reload. Lock order: before mu_.
    mutable std::mutex mu_;         ///< guards entries_ for readers. Leaf.
    std::vector<Entry> entries_;
    /// Removed devices whose abandoned requests had not completed (guarded by ops_mu_).
    std::vector<std::unique_ptr<Device>> retired_;
    /// Removed devices whose guest was still attached: revoked (their requests fail), still
    /// registered with their transport until the frontend goes (guarded by mu_ and ops_mu_).
    std::vector<std::unique_ptr<Device>> revoked_;
};

} // namespace vdh

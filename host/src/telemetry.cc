// SPDX-License-Identifier: MIT
// Telemetry start-up and shutdown (see telemetry.h).
#include "telemetry.h"

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "dpdk_telemetry.h"
#include "eal.h"
#include "sandbox.h"
#include "socket_dir.h"

namespace vdh {

std::string metrics_socket_path(const HostConfig& h) {
    MetricsAddress a;
    std::string err;
    if (h.metrics_listen.empty() || !parse_metrics_address(h.metrics_listen, &a, &err) ||
        !a.unix_socket) {
        return "";
    }
    return a.path;
}

namespace {

/// Removes the empty runtime directories ("vdhost-PID", see eal.cc) that earlier vdhost
/// processes left in \p parent: inside their sandbox the directory was a mount point, so
/// they could not remove it themselves. Only empty ones of processes that no longer exist.
void remove_stale_runtime_dirs(const std::string& parent) {
    DIR* d = ::opendir(parent.c_str());
    if (d == nullptr) {
        return;
    }
    while (dirent* e = ::readdir(d)) {
        const std::string name = e->d_name;
        if (name.rfind("vdhost-", 0) != 0 || name.size() == 7) {
            continue;
        }
        char* end = nullptr;
        const long pid = std::strtol(name.c_str() + 7, &end, 10);
        if (*end != '\0' || pid <= 0 || pid == static_cast<long>(getpid()) ||
            ::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) {
            continue;
        }
        ::rmdir((parent + "/" + name).c_str()); // fails (and stays) unless empty
    }
    ::closedir(d);
}

} // namespace

bool add_telemetry_sandbox_dirs(const HostConfig& h, SandboxPlan* plan, std::string* err) {
    const std::string dir = eal_runtime_dir();
    if (!h.telemetry) {
        return plan->add_empty_dir(dir, err);
    }
    // DPDK creates its telemetry socket here; clients (dpdk-telemetry.py) look for it at the
    // same path on the host, so the sandbox binds the host's directory.
    remove_stale_runtime_dirs(parent_dir(dir));
    std::string e;
    if (!secure_socket_dir(dir, false, 0, &e)) {
        *err = "host.telemetry: EAL runtime directory: " + e;
        return false;
    }
    return plan->add_socket_dir(dir, err);
}

bool Telemetry::start(const HostConfig& h, const std::vector<const PollLcore*>& lcores,
                      const std::vector<const Device*>& devices, std::string* err) {
    for (const PollLcore* l : lcores) {
        reg_.add_lcore(l);
    }
    for (const Device* d : devices) {
        reg_.add_device(d);
    }
    if (h.telemetry) {
        if (!register_telemetry_commands(&reg_, err)) {
            return false;
        }
        commands_ = true;
    }
    if (!h.metrics_listen.empty()) {
        MetricsAddress a;
        if (!parse_metrics_address(h.metrics_listen, &a, err) || !server_.start(a, &reg_, err)) {
            *err = "host.metrics.listen: " + *err;
            return false;
        }
    }
    return true;
}

void Telemetry::stop() {
    server_.stop();
    if (commands_) {
        std::string ignored;
        register_telemetry_commands(nullptr, &ignored); // commands now answer empty
        commands_ = false;
    }
    reg_.clear(); // waits for a reader that got the registry before the commands detached
}

} // namespace vdh

// SPDX-License-Identifier: MIT
// Telemetry start-up and shutdown (see telemetry.h).
#include "telemetry.h"

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

bool add_telemetry_sandbox_dirs(const HostConfig& h, SandboxPlan* plan, std::string* err) {
    const std::string dir = eal_runtime_dir();
    if (!h.telemetry) {
        return plan->add_empty_dir(dir, err);
    }
    // DPDK creates its telemetry socket here; clients (dpdk-telemetry.py) look for it at the
    // same path on the host, so the sandbox binds the host's directory.
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

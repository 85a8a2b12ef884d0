// SPDX-License-Identifier: MIT
// Telemetry: the start-up glue of vdhost's run-time metrics. It owns the MetricsRegistry
// (what is reported), registers the DPDK telemetry commands (host.telemetry) and runs the
// Prometheus endpoint (host.metrics.listen), and says what the sandbox must hold for them:
// the EAL runtime directory, where DPDK's telemetry socket lives, bound writable from the
// host so that dpdk-telemetry.py outside the sandbox finds the socket, and the directory of
// a UNIX metrics socket. Control thread only.
#pragma once

#include <string>
#include <vector>

#include "config.h"
#include "metrics.h"
#include "metrics_server.h"

namespace vdh {

class Device;
class PollLcore;
class SandboxPlan;

/// The UNIX socket path of host.metrics.listen, or "" (none, or a TCP address).
std::string metrics_socket_path(const HostConfig& h);

/// Adds the EAL runtime directory to \p plan: with telemetry on, created (0700) on the host
/// and bound writable (empty ones that exited vdhost processes left are removed first);
/// otherwise an empty read-only directory. Before the sandbox.
bool add_telemetry_sandbox_dirs(const HostConfig& h, SandboxPlan* plan, std::string* err);

class Telemetry {
public:
    Telemetry() = default;
    ~Telemetry() { stop(); }
    Telemetry(const Telemetry&) = delete;
    Telemetry& operator=(const Telemetry&) = delete;

    /// Reports \p lcores and \p devices, registers the telemetry commands (when enabled)
    /// and starts the metrics endpoint (when configured). After EAL init, before seccomp.
    bool start(const HostConfig& h, const std::vector<const PollLcore*>& lcores,
               const std::vector<const Device*>& devices, std::string* err);
    /// Stops the endpoint and detaches the telemetry commands; call before the devices go.
    void stop();

    MetricsRegistry& registry() noexcept { return reg_; }

private:
    MetricsRegistry reg_;
    MetricsServer server_;
    bool commands_ = false;
};

} // namespace vdh

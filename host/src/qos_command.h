// SPDX-License-Identifier: MIT
// The control socket's `qos` command: shows or changes one device's QoS limits at run
// time (Device::set_qos). Parsing and validation only; the control socket thread calls it.
#pragma once

#include <string>
#include <vector>

namespace vdh {

class Device;

/// Runs "qos NAME [iops=N] [bandwidth=RATE] [burst_ms=N]" on \p devices. Keys not given
/// keep their current value; iops=0 / bandwidth=0 lift that limit. Returns
/// {"device":NAME,"qos":{...}} with the setting now in force, or {"error":"..."}.
std::string qos_command(const std::string& command, const std::vector<Device*>& devices);

} // namespace vdh

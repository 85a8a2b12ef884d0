// SPDX-License-Identifier: MIT
// vdhost's commands for DPDK telemetry (the EAL's telemetry socket,
// <runtime dir>/dpdk_telemetry.v2, read with DPDK's dpdk-telemetry.py):
//   /vdhost/lcores          per poll lcore: cpu, busy and idle TSC cycles, loops, sleeps
//   /vdhost/devices         the device names
//   /vdhost/device,<name>   one device's metrics, by family and label values
// The callbacks run on DPDK's telemetry threads and only read counters (metrics.h).
#pragma once

#include <string>
#include <vector>

#include "metrics.h"

struct rte_tel_data;

namespace vdh {

/// Registers the commands, answering from \p reg (which must outlive the process's EAL;
/// nullptr detaches them: they then answer with empty data). Returns false and sets \p err
/// when DPDK refuses a command.
bool register_telemetry_commands(const MetricsRegistry* reg, std::string* err);

/// Fills \p d (a fresh rte_tel_data) with \p samples of one device as /vdhost/device does:
/// a dict keyed by family name without "vdhost_" (and without the device label); a family
/// without further labels maps to its value, one with labels to a dict keyed by the label
/// values joined with '/'. Histograms become <family>_count and <family>_sum_ns.
void fill_telemetry_device(const std::vector<MetricSample>& samples, rte_tel_data* d);

/// \p s with every character outside [A-Za-z0-9_/] replaced by '_' (telemetry key rules),
/// cut to the telemetry's key length.
std::string telemetry_key(const std::string& s);

} // namespace vdh

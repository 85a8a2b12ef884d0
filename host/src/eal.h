// SPDX-License-Identifier: MIT
// Builds the DPDK EAL argument list (no hugepages, no PCI, no shared config, one lcore per
// poll CPU plus a floating main lcore) and initialises/cleans up the EAL.
#pragma once

#include <string>
#include <vector>

#include "config.h"

namespace vdh {

/// EAL arguments for \p cfg: defaults, then host.eal_args, then \p cli_overrides (later
/// arguments win where EAL allows repeats). argv[0] included. Poll CPU i becomes lcore i+1.
std::vector<std::string> build_eal_args(const HostConfig& cfg, unsigned online_cpus,
                                        const std::vector<std::string>& cli_overrides);

/// The directory EAL creates for its runtime files with build_eal_args()' file prefix
/// (running as root), e.g. /var/run/dpdk/vdhost-PID. With --no-shconf nothing is written
/// in it, but EAL still creates it (the sandbox provides it empty).
std::string eal_runtime_dir();

/// rte_eal_init with \p args. Returns false and sets \p err on failure.
bool eal_init(const std::vector<std::string>& args, std::string* err);
void eal_cleanup();

} // namespace vdh

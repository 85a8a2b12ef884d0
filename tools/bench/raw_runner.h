// SPDX-License-Identifier: MIT
// The raw baseline: each workload's system calls in a tight single-threaded loop on the
// same host files, with no virtqueue (fstatat for GETATTR and LOOKUP, openat+close for
// OPEN/RELEASE, pread/pwrite, O_CREAT+unlinkat, getdents64+fstatat for READDIRPLUS), so
// a backend's per-op overhead is its latency minus this one's.
#pragma once

#include <string>

#include "bench/fuse_runner.h"
#include "bench/report.h"
#include "vdh/result.h"

namespace vdh::bench {

/// Runs \p config's workload at depth 1 on the prepared share \p share_dir. Uses
/// config.cpus[0] for pinning when given.
Result<RunResult> run_raw(const std::string& share_dir, const RunConfig& config,
                          std::string* why);

} // namespace vdh::bench

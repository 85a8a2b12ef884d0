// SPDX-License-Identifier: MIT
// The virtio-blk load loop: worker threads that each own a subset of the request queues,
// keep queue-depth IN or OUT requests in flight per queue (resubmitting as each completes),
// check every status, optionally the data, and record per-op latency. Also the blocking
// preparation that writes the data pattern over the read area through the device.
#pragma once

#include <cstdint>
#include <string>

#include "bench/blk_channel.h"
#include "bench/report.h"
#include "bench/run_window.h"
#include "vdh/result.h"

namespace vdh::bench {

/// Where the workloads go on the disk: reads in [0, area_bytes), holding the pattern of
/// stamp 0 (prepare_blk); writes in [area_bytes, 2 * area_bytes), so a write run never
/// spoils the data a later --verify read run checks.
struct BlkArea {
    uint64_t area_bytes = 0;
    uint64_t read_base() const noexcept { return 0; }
    uint64_t write_base() const noexcept { return area_bytes; }
};

/// True for the workloads blk mode runs (the READ and WRITE ones).
bool blk_workload(Workload w) noexcept;

/// Writes the pattern (stamp 0) over the read area through \p ch, in requests of up to
/// 128 KiB, and reads the first and last of them back.
Status prepare_blk(BlkChannel& ch, const BlkArea& area, std::string* why);

/// Runs one workload at one queue depth. The result's parameters (label, ...) are left for
/// the caller. Returns errors of the run itself; request failures are counted in the
/// result.
Result<RunResult> run_blk(BlkChannel& ch, const BlkArea& area, const RunConfig& config);

} // namespace vdh::bench

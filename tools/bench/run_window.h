// SPDX-License-Identifier: MIT
// The parameters of one run and its measured window, shared by the FUSE and virtio-blk
// load loops: the start signal the workers wait for, the window (a duration after a
// warm-up, or a number of ops), and the CPU and CPU-wait samples of the backend and of
// this process at its edges.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "bench/report.h"
#include "bench/workload.h"

namespace vdh::bench {

struct RunConfig {
    Workload workload = Workload::Getattr;
    uint32_t queue_depth = 1; ///< per request queue
    uint32_t threads = 1;
    double duration_s = 5;    ///< used when ops == 0
    double warmup_s = 0;
    uint64_t ops = 0;         ///< total ops over all threads; 0: run for duration_s
    bool verify = false;
    uint32_t readdir_bytes = 4096;
    uint64_t file_bytes = 0; ///< offsets stay below min(file_bytes, file size)
    std::vector<int> cpus;   ///< pin worker i to cpus[i % size] (empty: no pinning)
    uint64_t seed = 1;
    pid_t backend_pid = 0;   ///< sample its CPU time over the window (0: none)
};

/// What the workers read: when to start, the window, and when they may exit.
struct Timing {
    std::atomic<bool> go{false};
    int64_t window_start = 0;
    int64_t window_end = INT64_MAX;
    bool by_ops = false;
    /// Workers that have run their last op; they stay alive (their CPU wait readable in
    /// /proc) until the closing sample has been taken and `release` is set.
    mutable std::atomic<uint32_t> finished{0};
    std::atomic<bool> release{false};
};

/// Steady-clock nanoseconds.
int64_t now_ns() noexcept;

/// Runs the window for \p threads, already started, each of which waits for timing.go,
/// runs its ops, bumps timing.finished and waits for timing.release. Sets the window in
/// \p timing, samples the CPU figures at its edges, releases and joins the threads, and
/// fills \p r's elapsed_s, backend/client CPU and wait. Called by the thread that
/// started the workers.
void run_window(const RunConfig& config, Timing& timing, std::vector<std::thread>& threads,
                RunResult& r);

} // namespace vdh::bench

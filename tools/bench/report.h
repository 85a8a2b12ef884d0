// SPDX-License-Identifier: MIT
// Results of one benchmark run (one workload at one queue depth against one target) and
// their output: a human table on stdout, and one appended row per run in CSV and JSON
// lines files. Also the /proc readers for the backend's CPU time.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "bench/histogram.h"

namespace vdh::bench {

struct RunResult {
    // Parameters.
    std::string label;  ///< --label (e.g. "vdhost", "virtiofsd", "raw")
    std::string target; ///< socket path, or the share dir for raw runs
    std::string workload;
    std::string mode; ///< "fuse", "raw" or "blk"
    uint32_t queues = 1;
    uint32_t threads = 1;
    uint32_t queue_depth = 1;
    uint32_t queue_size = 0;
    bool poll = false;
    bool verify = false;
    bool indirect = false;
    uint32_t segment_size = 0;
    uint32_t io_bytes = 0;
    double duration_req_s = 0; ///< requested duration (0 with --ops)
    uint64_t ops_req = 0;      ///< requested ops (0 with --duration)
    int rep = 0;

    // Results.
    double elapsed_s = 0;
    uint64_t ops = 0;
    uint64_t requests = 0; ///< FUSE requests (an op may take several)
    uint64_t bytes = 0;    ///< READ/WRITE/READDIRPLUS payload bytes
    uint64_t entries = 0;  ///< directory entries listed
    LatencyHistogram hist; ///< per-op latency
    uint64_t err_errno = 0;  ///< replies with an unexpected errno
    uint64_t err_proto = 0;  ///< malformed replies (unique, lengths, sizes), unexpected ids
    uint64_t err_verify = 0; ///< data or attribute mismatches (--verify)
    bool timed_out = false;  ///< the device stopped answering
    double backend_cpu_s = -1; ///< CPU time of --backend-pid over the window; -1 if none
    double client_cpu_s = 0;   ///< this process's CPU over the window
    /// Time the threads of --backend-pid / of this process spent runnable but waiting for
    /// a CPU over the window (other tasks on their CPU); -1 if not measured.
    double backend_wait_s = -1;
    double client_wait_s = -1;

    uint64_t errors() const noexcept {
        return err_errno + err_proto + err_verify + (timed_out ? 1 : 0);
    }
    double ops_per_s() const noexcept { return elapsed_s > 0 ? ops / elapsed_s : 0; }
    double req_per_s() const noexcept { return elapsed_s > 0 ? requests / elapsed_s : 0; }
    double mb_per_s() const noexcept { return elapsed_s > 0 ? bytes / elapsed_s / 1e6 : 0; }
};

/// CPU seconds (all threads, from the process CPU-time clock) of process \p pid and its
/// live descendants (the C virtiofsd forks its sandboxed worker after the frontend
/// connects); -1 if \p pid is unreadable.
double process_cpu_seconds(pid_t pid) noexcept;
/// Seconds the live threads of process \p pid and of its live descendants have spent
/// runnable but waiting for a CPU (schedstat run delay); -1 if \p pid is unreadable.
double process_wait_seconds(pid_t pid) noexcept;
/// CPU seconds of this process (getrusage).
double self_cpu_seconds() noexcept;

void print_table_header();
void print_table_row(const RunResult& r);
/// Appends one row (with a header line if the file is new or empty). false on I/O error.
bool append_csv(const std::string& path, const RunResult& r);
/// Appends one JSON object on its own line. false on I/O error.
bool append_json(const std::string& path, const RunResult& r);

} // namespace vdh::bench

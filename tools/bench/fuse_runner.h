// SPDX-License-Identifier: MIT
// The FUSE load loop: worker threads that each own a subset of the request queues, keep
// queue-depth operations in flight per queue (resubmitting as each completes), check every
// reply, and record per-op latency; and the blocking lookups that find the benchmark files
// before a run.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "bench/fuse_channel.h"
#include "bench/report.h"
#include "bench/run_window.h"
#include "bench/workload.h"
#include "vdh/result.h"

namespace vdh::bench {

/// Node ids, handles and attributes of the files the workloads use (from LOOKUP/OPEN).
struct Targets {
    uint64_t read_node = 0;
    uint64_t read_fh = 0;
    uint64_t read_size = 0;
    uint64_t read_ino = 0;
    uint64_t write_node = 0;
    uint64_t write_fh = 0;
    uint64_t write_size = 0;
    uint64_t list_dir = 0;
    uint64_t create_dir = 0;
};

/// Blocking helpers on the channel's setup slot.
class SetupCalls {
public:
    explicit SetupCalls(FuseChannel& ch) : ch_(ch) {}
    /// LOOKUP; the entry (the caller owes a FORGET for its node id).
    Result<fuse_entry_out> lookup(uint64_t parent, const char* name);
    Result<fuse_entry_out> mkdir(uint64_t parent, const char* name, uint32_t mode);
    /// CREATE with O_CREAT|O_EXCL|flags.
    Result<fuse_entry_out> create(uint64_t parent, const char* name, uint32_t flags,
                                  uint64_t* fh);
    Result<uint64_t> open(uint64_t node, uint32_t flags);
    Status release(uint64_t node, uint64_t fh, bool dir = false);
    Status write(uint64_t node, uint64_t fh, uint64_t offset, const uint8_t* src, uint32_t len);
    Status truncate(uint64_t node, uint64_t fh, uint64_t size);

private:
    Status run(uint32_t expect_payload);
    FuseChannel& ch_;
};

/// Runs one workload at one queue depth. The result's parameters (label, ...) are left
/// for the caller. Returns errors of the run itself (thread start); request failures are
/// counted in the result.
Result<RunResult> run_fuse(FuseChannel& ch, const Targets& targets, const RunConfig& config);

} // namespace vdh::bench

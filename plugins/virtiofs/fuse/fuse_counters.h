// SPDX-License-Identifier: MIT
// FuseCounters: the FUSE dispatcher's request counters, kept so that counting costs no
// locked instruction and no cache line that another lcore writes. Each queue has its own
// cache-line-aligned block, written only by the lcore that serves the queue (a relaxed
// load and store: single writer, so nothing is lost); counts made elsewhere (completions
// on worker threads or other engines' threads, queues the dispatcher has no block for) go
// to one shared block with atomic increments, a rare path. Readers (statistics, tests) sum
// all blocks into a FuseStats snapshot; a sum may lag an lcore by a request, never tear.
// Not for the host's per-queue transport counters (host/src/queue_runtime.h).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "vdh/compiler.h"

namespace vdh::virtiofs {

/// Opcode slots counted per opcode; slot 0 counts opcodes >= kFuseOpcodeSlots.
inline constexpr size_t kFuseOpcodeSlots = 64;
/// errno slots of error replies; slot 0 counts errnos >= kFuseErrnoSlots.
inline constexpr size_t kFuseErrnoSlots = 136;
/// Latency buckets per opcode: bucket i (< kFuseLatencyBuckets - 1) holds requests that took
/// fewer than 2^(i + kFuseLatencyMinLog2) TSC cycles (and did not fit bucket i - 1); the
/// last one holds the rest. With 2^8 = 256 cycles (~0.1 µs at 2.5 GHz) as the first bound,
/// the last finite bound is 2^30 cycles (~0.4 s).
inline constexpr size_t kFuseLatencyBuckets = 24;
inline constexpr unsigned kFuseLatencyMinLog2 = 8;

/// The latency bucket of a request that took \p cycles.
inline constexpr size_t fuse_latency_bucket(uint64_t cycles) noexcept {
    const unsigned width = cycles == 0 ? 0 : 64u - static_cast<unsigned>(__builtin_clzll(cycles));
    const size_t i = width <= kFuseLatencyMinLog2 ? 0 : width - kFuseLatencyMinLog2;
    return i < kFuseLatencyBuckets ? i : kFuseLatencyBuckets - 1;
}

/// One block of counters. Every field is an atomic only so that readers on other threads
/// may load it; how it is written depends on the block (see FuseCounterSink).
struct alignas(kCacheLine) FuseCounters {
    std::array<std::atomic<uint64_t>, kFuseOpcodeSlots> requests{}; ///< per opcode
    std::atomic<uint64_t> errors{0};                                ///< replies with error != 0
    std::atomic<uint64_t> malformed{0};        ///< framing/argument errors (EINVAL, dropped)
    std::atomic<uint64_t> unsupported{0};      ///< ENOSYS replies
    std::atomic<uint64_t> async_submitted{0};  ///< requests handed to the IoEngine
    std::atomic<uint64_t> async_fallbacks{0};  ///< engine refused; done synchronously
    std::atomic<uint64_t> inline_writes{0};    ///< WRITEs the engine did at once (write_now)
    std::atomic<uint64_t> hiprio_rejected{0};  ///< not FORGET/BATCH_FORGET/INTERRUPT on queue 0
    std::atomic<uint64_t> oversize{0};         ///< READ/WRITE beyond the negotiated maximum
    std::atomic<uint64_t> blocking_refused{0}; ///< engine took no blocking call: EAGAIN/EINTR
    std::atomic<uint64_t> session_resets{0};   ///< INIT on a live session (guest reset)
    std::atomic<uint64_t> session_busy{0};     ///< INIT/DESTROY while another one ran: EBUSY
    std::atomic<uint64_t> bytes_read{0};       ///< data bytes READ replies carried
    std::atomic<uint64_t> bytes_written{0};    ///< data bytes WRITEs wrote
    std::array<std::atomic<uint64_t>, kFuseErrnoSlots> errnos{}; ///< error replies per errno
    /// Requests per opcode and latency bucket (fuse_latency_bucket), from the request's
    /// arrival in the dispatcher to its reply being encoded.
    std::array<std::array<std::atomic<uint64_t>, kFuseLatencyBuckets>, kFuseOpcodeSlots>
        latency{};
    std::array<std::atomic<uint64_t>, kFuseOpcodeSlots> latency_cycles{}; ///< their sum
};

/// A snapshot: the sum of all blocks at one moment (each counter read once, relaxed).
struct FuseStats {
    std::array<uint64_t, kFuseOpcodeSlots> requests{};
    uint64_t errors = 0;
    uint64_t malformed = 0;
    uint64_t unsupported = 0;
    uint64_t async_submitted = 0;
    uint64_t async_fallbacks = 0;
    uint64_t inline_writes = 0;
    uint64_t hiprio_rejected = 0;
    uint64_t oversize = 0;
    uint64_t blocking_refused = 0;
    uint64_t session_resets = 0;
    uint64_t session_busy = 0;
    uint64_t bytes_read = 0;
    uint64_t bytes_written = 0;
    std::array<uint64_t, kFuseErrnoSlots> errnos{};
    std::array<std::array<uint64_t, kFuseLatencyBuckets>, kFuseOpcodeSlots> latency{};
    std::array<uint64_t, kFuseOpcodeSlots> latency_cycles{};

    /// Requests of every opcode.
    uint64_t total_requests() const noexcept {
        uint64_t n = 0;
        for (uint64_t r : requests) {
            n += r;
        }
        return n;
    }
    /// Adds \p b's current values.
    void add(const FuseCounters& b) noexcept {
        for (size_t i = 0; i < kFuseOpcodeSlots; ++i) {
            requests[i] += b.requests[i].load(std::memory_order_relaxed);
        }
        errors += b.errors.load(std::memory_order_relaxed);
        malformed += b.malformed.load(std::memory_order_relaxed);
        unsupported += b.unsupported.load(std::memory_order_relaxed);
        async_submitted += b.async_submitted.load(std::memory_order_relaxed);
        async_fallbacks += b.async_fallbacks.load(std::memory_order_relaxed);
        inline_writes += b.inline_writes.load(std::memory_order_relaxed);
        hiprio_rejected += b.hiprio_rejected.load(std::memory_order_relaxed);
        oversize += b.oversize.load(std::memory_order_relaxed);
        blocking_refused += b.blocking_refused.load(std::memory_order_relaxed);
        session_resets += b.session_resets.load(std::memory_order_relaxed);
        session_busy += b.session_busy.load(std::memory_order_relaxed);
        bytes_read += b.bytes_read.load(std::memory_order_relaxed);
        bytes_written += b.bytes_written.load(std::memory_order_relaxed);
        for (size_t i = 0; i < kFuseErrnoSlots; ++i) {
            errnos[i] += b.errnos[i].load(std::memory_order_relaxed);
        }
        for (size_t op = 0; op < kFuseOpcodeSlots; ++op) {
            for (size_t i = 0; i < kFuseLatencyBuckets; ++i) {
                latency[op][i] += b.latency[op][i].load(std::memory_order_relaxed);
            }
            latency_cycles[op] += b.latency_cycles[op].load(std::memory_order_relaxed);
        }
    }
};

/// Where one thread counts: a queue's block, of which it is the only writer (plain
/// load + store, no lock prefix), or the shared block (atomic read-modify-write).
/// Hot path: no alloc, no block, no throw.
class FuseCounterSink {
  public:
    FuseCounterSink(FuseCounters* block, bool single_writer) noexcept
        : block_(block), single_writer_(single_writer) {}

    /// Adds \p v to \p field of the block.
    void add(std::atomic<uint64_t> FuseCounters::*field, uint64_t v = 1) const noexcept {
        bump(block_->*field, v);
    }
    /// Counts one request of opcode \p op.
    void request(uint32_t op) const noexcept {
        bump(block_->requests[op < kFuseOpcodeSlots ? op : 0], 1);
    }
    /// Counts one error reply with \p err (a positive errno).
    void error(int64_t err) const noexcept {
        bump(block_->errors, 1);
        bump(block_->errnos[err > 0 && static_cast<uint64_t>(err) < kFuseErrnoSlots
                                ? static_cast<size_t>(err)
                                : 0],
             1);
    }
    /// Counts the latency of one request of opcode \p op that took \p cycles TSC cycles.
    void latency(uint32_t op, uint64_t cycles) const noexcept {
        const size_t slot = op < kFuseOpcodeSlots ? op : 0;
        bump(block_->latency[slot][fuse_latency_bucket(cycles)], 1);
        bump(block_->latency_cycles[slot], cycles);
    }
    /// Takes back one add() of \p field (a submission the engine refused).
    void undo(std::atomic<uint64_t> FuseCounters::*field) const noexcept {
        bump(block_->*field, ~uint64_t{0}); // + (2^64 - 1) = - 1
    }
    bool single_writer() const noexcept { return single_writer_; }

  private:
    void bump(std::atomic<uint64_t>& c, uint64_t v) const noexcept {
        if (VDH_LIKELY(single_writer_)) {
            c.store(c.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
        } else {
            c.fetch_add(v, std::memory_order_relaxed);
        }
    }

    FuseCounters* block_;
    bool single_writer_;
};

} // namespace vdh::virtiofs

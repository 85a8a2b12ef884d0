// SPDX-License-Identifier: MIT
// UringEngine: the IoEngine of one request queue. READ/WRITE/FSYNC/FALLOCATE go into an
// io_uring that the queue's poll lcore submits and reaps, so a cold read waits in the
// kernel, not on the poll core. The ring is created lazily on the lcore itself (io_uring's
// worker threads belong to the submitting thread), and its io-wq workers are moved off the
// poll CPU (they inherit the lcore's pinning otherwise). With a batching host, SQEs are
// submitted once per batch (flush()); the ring is IORING_SETUP_SINGLE_ISSUER, as only the
// lcore ever submits. Blocking calls go to a
// BlockingPool. On device stop, what is still in flight after a short grace period is
// cancelled (IORING_OP_ASYNC_CANCEL), so teardown does not wait on a stuck disk.
// Hot path: no alloc, no block, no throw.
#pragma once

#include <liburing.h>

#include <atomic>
#include <chrono>
#include <cstdint>

#include "blocking_pool.h"
#include "fuse/io_engine.h"
#include "vdh/write_path.h"
#include "vdh/unique_fd.h"

namespace vdh::virtiofs {

class UringEngine final : public IoEngine {
public:
    /// \p entries: ring size (the queue size bounds what is in flight). \p poll_cpu: the
    /// lcore's CPU, kept free of io-wq workers when other CPUs exist. \p batched: the host
    /// calls flush() after every batch, so submissions wait for it (one io_uring_enter per
    /// batch); otherwise every request is submitted at once.
    /// \p write_path: the share's (write_path.h); Inline enables write_now().
    UringEngine(uint32_t entries, uint32_t poll_cpu, BlockingPool* pool, bool batched = false,
                WritePath write_path = WritePath::Punt) noexcept;
    ~UringEngine() override;
    UringEngine(const UringEngine&) = delete;
    UringEngine& operator=(const UringEngine&) = delete;

    /// Creates the wake eventfd (control thread). False on failure.
    bool init() noexcept;
    /// The eventfd signalled on completions; the host sleeps on it.
    int wake_fd() const noexcept { return efd_.get(); }

    bool readv(int fd, const struct iovec* iov, int n, uint64_t off, void* ctx) override;
    bool writev(int fd, const struct iovec* iov, int n, uint64_t off, void* ctx) override;
    bool fsync(int fd, bool datasync, void* ctx) override;
    bool fallocate(int fd, int mode, uint64_t off, uint64_t len, void* ctx) override;
    bool run_blocking(void (*fn)(void* ctx), void* ctx) override;
    int64_t write_now(int fd, int open_flags, const struct iovec* iov, int n, uint64_t off,
                      uint64_t len) override;
    const InlineWriteGate& inline_gate() const noexcept { return gate_; }

    /// Submits the SQEs queued since the last flush in one system call (lcore). Returns how
    /// many went out.
    uint32_t flush() noexcept;
    /// Reaps completions and finishes their requests (lcore). Returns how many. After
    /// request_cancel(), also cancels what is still in flight once the grace period ended.
    uint32_t poll() noexcept;
    /// Device stop (control thread): requests still in flight kGraceForCancel from now are
    /// cancelled by the lcore's poll() (they complete with -ECANCELED; ones already running
    /// in the kernel finish normally). Wakes the lcore.
    void request_cancel() noexcept;
    /// Device start (control thread, queue not served): forget an earlier request_cancel().
    void resume() noexcept;
    /// How long in-flight requests get to finish on their own after request_cancel().
    static constexpr std::chrono::milliseconds kGraceForCancel{100};
    /// How often poll() repeats the cancel while requests remain.
    static constexpr std::chrono::milliseconds kCancelRepeat{100};
    /// ASYNC_CANCEL requests sent so far.
    uint64_t cancels_sent() const noexcept { return cancels_sent_.load(std::memory_order_relaxed); }
    /// Requests submitted and not yet reaped.
    uint32_t inflight() const noexcept { return inflight_; }
    uint64_t submitted() const noexcept { return submitted_.load(std::memory_order_relaxed); }
    /// io_uring_enter calls made to submit (one per batch with a batching host).
    uint64_t enters() const noexcept { return enters_.load(std::memory_order_relaxed); }

private:
    bool ensure_ring() noexcept;
    struct io_uring_sqe* next_sqe() noexcept;
    /// \p write_class: a write, fallocate or fsync (counted in writes_inflight_).
    bool submit(struct io_uring_sqe* sqe, void* ctx, bool write_class = false) noexcept;
    /// io_uring_submit, counted.
    int enter() noexcept;
    /// Sends IORING_OP_ASYNC_CANCEL for everything in flight when it is time (lcore).
    void maybe_cancel() noexcept;

    uint32_t entries_;
    uint32_t poll_cpu_;
    bool batched_;
    BlockingPool* pool_;
    UniqueFd efd_;
    struct io_uring ring_ {};
    bool ring_ok_ = false;
    bool ring_failed_ = false;
    uint32_t inflight_ = 0;
    uint32_t writes_inflight_ = 0; ///< write-class SQEs in flight (see InlineWriteGate)
    InlineWriteGate gate_;
    uint32_t cancels_inflight_ = 0; ///< ASYNC_CANCEL SQEs not reaped yet
    std::atomic<uint64_t> submitted_{0};
    std::atomic<uint64_t> enters_{0};
    std::atomic<uint64_t> cancels_sent_{0};
    std::atomic<bool> cancel_{false}; ///< set by request_cancel()
    bool cancel_seen_ = false;        ///< lcore: cancel_ was seen; next_cancel_ is armed
    std::chrono::steady_clock::time_point next_cancel_{};
};

/// The statistics of engines, summed: a device adds the engines it frees at disconnect
/// to a running total, so its numbers accumulate across sessions. Any thread.
struct UringEngineTotals {
    uint64_t submitted = 0;        ///< SQEs submitted
    uint64_t enters = 0;           ///< io_uring_enter calls that submitted
    uint64_t slow_inline = 0;      ///< InlineWriteGate::slow_writes()
    uint64_t preempted_inline = 0; ///< InlineWriteGate::preempted_writes()
    uint64_t inline_backoffs = 0;  ///< InlineWriteGate::backoffs()

    void add(const UringEngine& e) noexcept {
        submitted += e.submitted();
        enters += e.enters();
        slow_inline += e.inline_gate().slow_writes();
        preempted_inline += e.inline_gate().preempted_writes();
        inline_backoffs += e.inline_gate().backoffs();
    }
};

} // namespace vdh::virtiofs

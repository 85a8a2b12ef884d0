// SPDX-License-Identifier: MIT
// BlkUring: the io_uring of one virtio-blk request queue. The queue's poll lcore queues
// SQEs while it handles a batch of requests, submits them once per batch (flush()) and
// reaps completions in poll(). The ring is created lazily on the lcore itself (io_uring's
// workers belong to the submitting thread) and its io-wq workers are moved off the poll CPU,
// which they would otherwise inherit (traps.md #1). Completions signal an eventfd the host
// sleeps on. On device stop, requests still in flight after a short grace period are
// cancelled, so teardown never waits on a stuck disk.
// Hot path: no alloc, no block, no throw.
#pragma once

#include <liburing.h>

#include <atomic>
#include <chrono>
#include <cstdint>

#include "vdh/unique_fd.h"

namespace vdh::virtioblk {

class BlkUring {
  public:
    /// Called for each completion with the SQE's user data and its result (lcore).
    using CompleteFn = void (*)(void* owner, uint64_t user_data, int32_t res);

    /// \p entries: ring size (what the queue can have in flight). \p poll_cpu: the lcore's
    /// CPU, kept free of io-wq workers when other CPUs exist. \p batched: the host calls
    /// flush() after every batch; otherwise each SQE is submitted at once.
    BlkUring(uint32_t entries, uint32_t poll_cpu, bool batched) noexcept;
    ~BlkUring();
    BlkUring(const BlkUring&) = delete;
    BlkUring& operator=(const BlkUring&) = delete;

    /// Creates the wake eventfd (control thread). False on failure.
    bool init() noexcept;
    /// The eventfd signalled on completions.
    int wake_fd() const noexcept { return efd_.get(); }

    // Queue one operation (lcore). \p user_data must not be 0 or ~0. False when no SQE can
    // be had (the ring could not be created, or the SQ stays full after a submit).
    bool readv(int fd, const struct iovec* iov, uint32_t n, uint64_t off,
               uint64_t user_data) noexcept;
    bool writev(int fd, const struct iovec* iov, uint32_t n, uint64_t off,
                uint64_t user_data) noexcept;
    bool fdatasync(int fd, uint64_t user_data) noexcept;
    bool fallocate(int fd, int mode, uint64_t off, uint64_t len, uint64_t user_data) noexcept;

    /// Submits what was queued since the last flush in one system call (lcore). Returns how
    /// many SQEs went out.
    uint32_t flush() noexcept;
    /// Reaps completions, calling \p fn for each (lcore); submits what \p fn queued. Returns
    /// how many. After request_cancel(), also cancels what is still in flight once the grace
    /// period has passed.
    uint32_t poll(CompleteFn fn, void* owner) noexcept;

    /// Device stop (control thread): what is still in flight kGraceForCancel from now is
    /// cancelled by the lcore's poll(). Wakes the lcore.
    void request_cancel() noexcept;
    /// Device start (control thread, queue not served): forget an earlier request_cancel().
    void resume() noexcept;
    static constexpr std::chrono::milliseconds kGraceForCancel{100};
    static constexpr std::chrono::milliseconds kCancelRepeat{100};

    /// Operations queued or in flight, not reaped yet (lcore).
    uint32_t inflight() const noexcept { return inflight_; }
    uint64_t submitted() const noexcept { return submitted_.load(std::memory_order_relaxed); }
    /// io_uring_enter calls that submitted (one per batch with a batching host).
    uint64_t enters() const noexcept { return enters_.load(std::memory_order_relaxed); }

  private:
    bool ensure_ring() noexcept;
    struct io_uring_sqe* get_sqe() noexcept;
    bool queued(struct io_uring_sqe* sqe, uint64_t user_data) noexcept;
    int enter() noexcept;
    void maybe_cancel() noexcept;

    uint32_t entries_;
    uint32_t poll_cpu_;
    bool batched_;
    UniqueFd efd_;
    struct io_uring ring_ {};
    bool ring_ok_ = false;
    bool ring_failed_ = false;
    uint32_t inflight_ = 0;
    uint32_t cancels_inflight_ = 0;
    std::atomic<uint64_t> submitted_{0};
    std::atomic<uint64_t> enters_{0};
    std::atomic<bool> cancel_{false};
    bool cancel_seen_ = false;
    std::chrono::steady_clock::time_point next_cancel_{};
};

} // namespace vdh::virtioblk

// SPDX-License-Identifier: MIT
// UringEngine: the IoEngine of one request queue. READ/WRITE/FSYNC/FALLOCATE go into an
// io_uring that the queue's poll lcore submits and reaps, so a cold read waits in the
// kernel, not on the poll core. The ring is created lazily on the lcore itself (io_uring's
// worker threads belong to the submitting thread), and its io-wq workers are moved off the
// poll CPU (they inherit the lcore's pinning otherwise). Blocking calls go to a
// BlockingPool. Hot path: no alloc, no block, no throw.
#pragma once

#include <liburing.h>

#include <atomic>
#include <cstdint>

#include "blocking_pool.h"
#include "fuse/io_engine.h"
#include "vdh/unique_fd.h"

namespace vdh::virtiofs {

class UringEngine final : public IoEngine {
public:
    /// \p entries: ring size (the queue size bounds what is in flight). \p poll_cpu: the
    /// lcore's CPU, kept free of io-wq workers when other CPUs exist.
    UringEngine(uint32_t entries, uint32_t poll_cpu, BlockingPool* pool) noexcept;
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

    /// Reaps completions and finishes their requests (lcore). Returns how many.
    uint32_t poll() noexcept;
    /// Requests submitted and not yet reaped.
    uint32_t inflight() const noexcept { return inflight_; }
    uint64_t submitted() const noexcept { return submitted_.load(std::memory_order_relaxed); }

private:
    bool ensure_ring() noexcept;
    struct io_uring_sqe* next_sqe() noexcept;
    bool submit(struct io_uring_sqe* sqe, void* ctx) noexcept;

    uint32_t entries_;
    uint32_t poll_cpu_;
    BlockingPool* pool_;
    UniqueFd efd_;
    struct io_uring ring_ {};
    bool ring_ok_ = false;
    bool ring_failed_ = false;
    uint32_t inflight_ = 0;
    std::atomic<uint64_t> submitted_{0};
};

} // namespace vdh::virtiofs

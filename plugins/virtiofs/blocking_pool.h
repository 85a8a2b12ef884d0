// SPDX-License-Identifier: MIT
// BlockingPool: a few worker threads for FUSE calls that may sleep indefinitely or long
// (SETLKW, COPY_FILE_RANGE, SYNCFS, FSYNCDIR), so they never run on a poll lcore. The
// queue is bounded (no allocation per job); a full queue refuses the job.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace vdh::virtiofs {

class BlockingPool {
public:
    using Fn = void (*)(void* ctx);
    /// Called for each job still running when stop() is asked to cancel (e.g. to interrupt
    /// a lock wait).
    using CancelFn = void (*)(void* cancel_arg, void* ctx);

    BlockingPool(unsigned threads, unsigned capacity, CancelFn cancel, void* cancel_arg);
    ~BlockingPool();
    BlockingPool(const BlockingPool&) = delete;
    BlockingPool& operator=(const BlockingPool&) = delete;

    /// Queues fn(ctx). False if the queue is full or the pool is stopping.
    bool submit(Fn fn, void* ctx) noexcept;
    /// Cancels running jobs (cancel callback) and waits until queued and running jobs
    /// finished. The pool stays usable afterwards.
    void drain() noexcept;
    unsigned threads() const noexcept { return static_cast<unsigned>(threads_.size()); }

private:
    struct Job {
        Fn fn = nullptr;
        void* ctx = nullptr;
    };
    void worker(unsigned index);

    CancelFn cancel_;
    void* cancel_arg_;
    std::mutex mu_; ///< guards everything below. Lock order: leaf; never held across fn().
    std::condition_variable cv_;
    std::condition_variable idle_cv_;
    std::vector<Job> ring_;
    size_t head_ = 0;
    size_t count_ = 0;
    std::vector<void*> running_; ///< ctx per worker (nullptr when idle)
    unsigned busy_ = 0;
    bool quit_ = false;
    std::vector<std::thread> threads_;
};

} // namespace vdh::virtiofs

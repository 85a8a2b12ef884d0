// SPDX-License-Identifier: MIT
// BlockingPool: a device's worker threads for FUSE calls that may sleep indefinitely or long
// (SETLKW, COPY_FILE_RANGE, SYNCFS, FSYNCDIR), so they never run on a poll lcore. One pool
// per device, so one guest's waits never hold another guest's calls. The queue is sized
// at start() to what the device can have in flight (the sum of its ring sizes), so the
// device's own submits never find it full, and it never allocates per job. Threads exist
// only between start() and shutdown() (while a frontend is connected): one at start, more
// started on demand by the workers themselves (never by the submitting lcore) up to the
// maximum, so a waiting lock never leaves later calls without a thread while one can start.
#pragma once

#include <sched.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace vdh::virtiofs {

class BlockingPool {
public:
    using Fn = void (*)(void* ctx);
    /// Called for each job still running when drain() waits (e.g. to interrupt a lock
    /// wait). May be called more than once per job, and under the pool's lock: it must not
    /// call back into the pool.
    using CancelFn = void (*)(void* cancel_arg, void* ctx);

    /// No thread and no queue yet: see start().
    BlockingPool(unsigned max_threads, CancelFn cancel, void* cancel_arg);
    ~BlockingPool();
    BlockingPool(const BlockingPool&) = delete;
    BlockingPool& operator=(const BlockingPool&) = delete;

    /// Makes room for \p capacity queued jobs and starts the first worker (if none runs).
    /// Workers run on the CPUs the process may use except \p avoid (the device's poll
    /// CPUs, so a long copy or sync never preempts a busy-polling lcore; all allowed CPUs
    /// when that leaves none). Control thread, with no job queued or running. False when
    /// out of memory or when no thread could be started.
    bool start(unsigned capacity, const cpu_set_t* avoid = nullptr) noexcept;
    /// Drains (cancelling running jobs), then stops and joins every worker and frees the
    /// queue; submit() refuses until the next start(). Control thread.
    void shutdown() noexcept;
    /// Queues fn(ctx). False if the queue is full, the pool is not started or stops.
    /// Hot path: no alloc, no block beyond a short critical section, no throw.
    bool submit(Fn fn, void* ctx) noexcept;
    /// Cancels running jobs (cancel callback, repeated every 20 ms) and waits until queued
    /// and running jobs finished. The pool stays usable afterwards.
    void drain() noexcept { (void)drain_for(std::chrono::milliseconds::max()); }
    /// drain(), giving up after \p limit. True when the pool is idle.
    bool drain_for(std::chrono::milliseconds limit) noexcept;
    /// Workers started so far.
    unsigned threads() const noexcept;
    unsigned capacity() const noexcept;
    unsigned max_threads() const noexcept { return max_threads_; }

private:
    struct Job {
        Fn fn = nullptr;
        void* ctx = nullptr;
    };
    /// What a new worker needs, taken under mu_: its slot in running_ and its CPUs.
    struct Spawn {
        unsigned index;
        cpu_set_t cpus;
    };
    void worker(unsigned index, cpu_set_t cpus);
    /// Claims the one spawn that may be under way, if below the maximum and none is (if
    /// one is, it is asked to start one more when done). mu_ held.
    std::optional<Spawn> reserve_spawn_locked() noexcept;
    /// Starts the worker \p s claimed by reserve_spawn_locked(), and the one more asked
    /// for meanwhile, if any. mu_ not held.
    void spawn(Spawn s) noexcept;

    const unsigned max_threads_;
    CancelFn cancel_;
    void* cancel_arg_;
    /// Guards everything below. Lock order: leaf. submit() takes it on a poll lcore, so it
    /// is never held across fn(), thread creation or a worker's setup syscalls.
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::condition_variable idle_cv_;
    cpu_set_t cpus_{}; ///< where workers run (set by start(); empty: not pinned)
    std::vector<Job> ring_;
    size_t head_ = 0;
    size_t count_ = 0;
    std::vector<void*> running_; ///< ctx per worker (nullptr when idle); max_threads_ slots
    unsigned busy_ = 0;          ///< workers running a job
    unsigned idle_ = 0;          ///< workers waiting for one
    bool quit_ = true;           ///< not started, or shutting down
    bool spawning_ = false;      ///< a worker is being started (outside mu_)
    bool spawn_again_ = false;   ///< a job found no idle worker during that start
    std::vector<std::thread> threads_;
};

} // namespace vdh::virtiofs

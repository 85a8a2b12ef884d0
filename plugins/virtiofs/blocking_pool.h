// SPDX-License-Identifier: MIT
// BlockingPool: a device's share of the process's worker threads for FUSE calls that may
// sleep indefinitely or long (SETLKW, COPY_FILE_RANGE, SYNCFS, FSYNCDIR), so they never run
// on a poll lcore. The workers belong to one pool per process (shared by every device of
// the plugin); each device has a quota of jobs running at once (one guest's waits never
// hold more than that many workers, so they cannot starve another guest) and its own queue
// for jobs beyond it. The queue is sized at start() to what the device can have in flight
// (the sum of its ring sizes), so the device's own submits never find it full, and it never
// allocates per job. Workers exist only while some device is started (a frontend
// connected): one when the first starts, more started on demand by the workers themselves
// (never by a submitting lcore) up to the sum of the started devices' quotas. There is no
// lower cap on purpose: the jobs running at once never exceed that sum, so a device below
// its quota always finds a worker, however many other guests keep theirs waiting (a cap
// would let enough hostile guests hold every worker). Idle shares cost no thread; the
// last device's shutdown() joins them all. Stopping, draining or shutting
// down a device cancels and waits for its own jobs only.
#pragma once

#include <sched.h>

#include <chrono>
#include <cstdint>
#include <vector>

namespace vdh::virtiofs {

class WorkerPool;

class BlockingPool {
public:
    using Fn = void (*)(void* ctx);
    /// Called for each of the device's jobs still running when drain() waits (e.g. to
    /// interrupt a lock wait). May be called more than once per job, and under the pool's
    /// lock: it must not call back into the pool.
    using CancelFn = void (*)(void* cancel_arg, void* ctx);

    /// \p quota: most of this device's jobs running at once (0 means 1). No queue yet and
    /// no claim on the process's workers: see start().
    BlockingPool(unsigned quota, CancelFn cancel, void* cancel_arg);
    ~BlockingPool();
    BlockingPool(const BlockingPool&) = delete;
    BlockingPool& operator=(const BlockingPool&) = delete;

    /// Makes room for \p capacity queued jobs and joins the process's pool (starting its
    /// first worker if none runs). Workers run on the CPUs the process may use except
    /// every started device's \p avoid (their poll CPUs, so a long copy or sync never
    /// preempts a busy-polling lcore; all allowed CPUs when that leaves none). Control
    /// thread, with none of this device's jobs queued or running. False when out of memory
    /// or when no thread could be started.
    bool start(unsigned capacity, const cpu_set_t* avoid = nullptr) noexcept;
    /// Drains this device (cancelling its running jobs), then leaves the process's pool
    /// (the last device to leave stops and joins every worker) and frees the queue;
    /// submit() refuses until the next start(). Control thread.
    void shutdown() noexcept;
    /// Queues fn(ctx). False if the queue is full, the device is not started or stops.
    /// Hot path: no alloc, no block beyond a short critical section, no throw.
    bool submit(Fn fn, void* ctx) noexcept;
    /// Cancels this device's running jobs (cancel callback, repeated every 20 ms) and waits
    /// until its queued and running jobs finished; other devices' jobs are not touched.
    /// The device stays usable afterwards.
    void drain() noexcept { (void)drain_for(std::chrono::milliseconds::max()); }
    /// drain(), giving up after \p limit. True when the device has no job left.
    bool drain_for(std::chrono::milliseconds limit) noexcept;
    /// Workers of the process's pool while this device is started (they serve it), else 0.
    unsigned threads() const noexcept;
    unsigned capacity() const noexcept;
    /// Most of this device's jobs running at once.
    unsigned quota() const noexcept { return quota_; }
    unsigned max_threads() const noexcept { return quota_; }
    /// This device's jobs running now.
    unsigned running() const noexcept;
    /// Workers the process's pool has started (for every device).
    static unsigned process_threads() noexcept;

private:
    friend class WorkerPool;
    struct Job {
        Fn fn = nullptr;
        void* ctx = nullptr;
    };

    const unsigned quota_;
    CancelFn cancel_;
    void* cancel_arg_;
    // Guarded by the process pool's lock (WorkerPool::mu_).
    std::vector<Job> ring_;    ///< queued jobs, head_ first
    size_t head_ = 0;
    size_t count_ = 0;
    std::vector<Job> running_; ///< quota_ slots: the jobs workers run now (fn null: free)
    unsigned busy_ = 0;        ///< running jobs
    bool started_ = false;     ///< joined the process's pool (start() to shutdown())
    bool closing_ = false;     ///< leaving it: submit() refuses
    bool draining_ = false;    ///< in drain_for(): its queued jobs go first
    cpu_set_t avoid_{};        ///< CPUs the workers keep off for this device
};

} // namespace vdh::virtiofs

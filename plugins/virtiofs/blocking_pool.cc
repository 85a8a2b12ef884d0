// SPDX-License-Identifier: MIT
// Worker threads for blocking FUSE calls (see blocking_pool.h): the process's WorkerPool,
// and each device's BlockingPool (its quota, queue and running jobs) on top of it.
#include "blocking_pool.h"

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <new>
#include <optional>
#include <thread>
#include <utility>

namespace vdh::virtiofs {

namespace {
/// Nice value of the workers: below every poll lcore and guest-facing thread.
constexpr int kWorkerNice = 19;
} // namespace

/// The process's workers. Devices join it in start() and leave it in shutdown(); workers
/// take the started devices' queued jobs in turn, each device at most its quota at once.
class WorkerPool {
public:
    static WorkerPool& instance() {
        // Never destroyed: workers exist only while a device is started, and the last
        // device's shutdown() joins them, so nothing runs at exit.
        static WorkerPool* pool = new WorkerPool;
        return *pool;
    }

    /// Adds \p d (its queue \p ring and running slots already made). False when out of
    /// memory or no worker could be started.
    bool join(BlockingPool& d, std::vector<BlockingPool::Job>& ring,
              std::vector<BlockingPool::Job>& running) noexcept {
        std::lock_guard<std::mutex> life(life_mu_);
        const cpu_set_t allowed = allowed_cpus();
        std::optional<Spawn> first;
        {
            std::lock_guard<std::mutex> g(mu_);
            try {
                // Control path (a device joining); no-ops once the capacity is there.
                devices_.reserve(devices_.size() + 1);
                // A worker is only started below the quotas' sum (reserve_spawn_locked()).
                threads_.reserve(quota_sum_ + d.quota_);
            } catch (const std::bad_alloc&) {
                return false;
            }
            d.ring_.swap(ring);
            d.running_.swap(running);
            d.head_ = 0;
            d.count_ = 0;
            d.busy_ = 0;
            d.started_ = true;
            d.closing_ = false;
            devices_.push_back(&d); // reserved above
            quota_sum_ += d.quota_;
            update_cpus_locked(allowed);
            quit_ = false;
            if (threads_.empty()) {
                first = reserve_spawn_locked();
            }
        }
        if (first) {
            spawn(*first);
        }
        std::lock_guard<std::mutex> g(mu_);
        if (!threads_.empty()) {
            return true;
        }
        leave_locked(d, allowed);
        quit_ = devices_.empty();
        return false;
    }

    /// Removes \p d, drained by the caller: it takes no more jobs, and one queued after
    /// the drain still runs first. The last device stops and joins every worker.
    void leave(BlockingPool& d) noexcept {
        std::lock_guard<std::mutex> life(life_mu_);
        const cpu_set_t allowed = allowed_cpus();
        std::vector<std::thread> joining;
        {
            std::unique_lock<std::mutex> lk(mu_);
            if (!d.started_) {
                return;
            }
            d.closing_ = true;
            if (d.count_ > 0) {
                set_draining_locked(d, true); // ahead of other devices' turns
                cv_.notify_one();
            }
            idle_cv_.wait(lk, [&d] { return d.count_ == 0 && d.busy_ == 0; });
            set_draining_locked(d, false);
            leave_locked(d, allowed);
            if (devices_.empty()) {
                quit_ = true;
                // A worker still starting another adds its thread to threads_ first; with
                // quit_ set, no further one starts. (Each worker counts itself out of idle_.)
                idle_cv_.wait(lk, [this] { return !spawning_; });
                joining.swap(threads_);
            }
        }
        cv_.notify_all();
        for (auto& t : joining) {
            t.join();
        }
    }

    /// \p d's job queued: wakes a worker when \p d may run one more. mu_ not held.
    void queued(bool runnable) noexcept {
        if (runnable) {
            cv_.notify_one();
        }
    }

    /// \p d's drain begins (\p on) or ends. mu_ held.
    void set_draining_locked(BlockingPool& d, bool on) noexcept {
        if (d.draining_ != on) {
            d.draining_ = on;
            draining_ = on ? draining_ + 1 : draining_ - 1;
        }
    }

    std::mutex& mu() noexcept { return mu_; }
    std::condition_variable& idle_cv() noexcept { return idle_cv_; }
    unsigned threads_locked() const noexcept { return static_cast<unsigned>(threads_.size()); }

private:
    /// What a new worker needs, taken under mu_: the CPUs it runs on.
    struct Spawn {
        cpu_set_t cpus;
        uint64_t cpus_gen;
    };

    WorkerPool() { CPU_ZERO(&cpus_); }

    void leave_locked(BlockingPool& d, const cpu_set_t& allowed) noexcept {
        devices_.erase(std::find(devices_.begin(), devices_.end(), &d));
        next_ = 0;
        quota_sum_ -= d.quota_;
        d.started_ = false;
        update_cpus_locked(allowed);
    }

    /// The CPUs the calling (control) thread may use; none when unknown.
    static cpu_set_t allowed_cpus() noexcept {
        cpu_set_t allowed;
        CPU_ZERO(&allowed);
        if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) {
            CPU_ZERO(&allowed);
        }
        return allowed;
    }

    /// Workers' CPUs: \p allowed minus every started device's poll CPUs (all of
    /// \p allowed when that leaves none; none: not pinned). Workers pick a change up before
    /// their next job. mu_ held.
    void update_cpus_locked(const cpu_set_t& allowed) noexcept {
        cpu_set_t rest = allowed;
        for (const BlockingPool* d : devices_) {
            cpu_set_t keep;
            CPU_XOR(&keep, &rest, &d->avoid_);
            CPU_AND(&rest, &rest, &keep);
        }
        const cpu_set_t& next = CPU_COUNT(&rest) > 0 ? rest : allowed;
        if (!CPU_EQUAL(&next, &cpus_)) {
            cpus_ = next;
            ++cpus_gen_;
        }
    }

    /// The next started device with a queued job and room in its quota, in turn from the
    /// last one served; nullptr when none. mu_ held.
    BlockingPool* runnable_locked() noexcept {
        const size_t n = devices_.size();
        if (draining_ > 0) {
            // A device being drained goes first: its teardown waits for its queued jobs,
            // and other devices' stuck jobs may hold every other worker.
            for (BlockingPool* d : devices_) {
                if (d->draining_ && d->count_ > 0 && d->busy_ < d->quota_) {
                    return d;
                }
            }
        }
        for (size_t i = 0; i < n; ++i) {
            BlockingPool* d = devices_[(next_ + i) % n];
            if (d->count_ > 0 && d->busy_ < d->quota_) {
                next_ = (next_ + i + 1) % n;
                return d;
            }
        }
        return nullptr;
    }

    /// Claims the one spawn that may be under way, if below the maximum and none is (if
    /// one is, it is asked to start one more when done). mu_ held.
    std::optional<Spawn> reserve_spawn_locked() noexcept {
        if (quit_ || threads_.size() >= quota_sum_) {
            return std::nullopt;
        }
        if (spawning_) {
            // The spawn under way may be the very worker that asks (it took a job before
            // its creator got mu_ back): that spawn starts one more when it is done.
            spawn_again_ = true;
            return std::nullopt;
        }
        spawning_ = true;
        return Spawn{cpus_, cpus_gen_};
    }

    /// Starts the worker \p s claimed by reserve_spawn_locked(), and the one more asked
    /// for meanwhile, if any. mu_ not held.
    void spawn(Spawn s) noexcept {
        // Thread creation (clone, a stack mmap) happens without mu_: submit() on a poll
        // lcore takes mu_ and must never wait for a syscall.
        for (;;) {
            std::thread t;
            try {
                t = std::thread([this, s] { worker(s); });
            } catch (...) {
                // No thread now (EAGAIN, ENOMEM): the workers that exist carry on; the next
                // job that finds none idle tries again.
            }
            std::lock_guard<std::mutex> g(mu_);
            const bool started = t.joinable();
            if (started) {
                threads_.push_back(std::move(t)); // join() reserved the maximum
            }
            spawning_ = false;
            const bool again = spawn_again_;
            spawn_again_ = false;
            idle_cv_.notify_all(); // leave() waits for a spawn under way
            std::optional<Spawn> next = started && again ? reserve_spawn_locked() : std::nullopt;
            if (!next) {
                return;
            }
            s = *next;
        }
    }

    static void pin(const cpu_set_t& cpus) noexcept {
        if (CPU_COUNT(&cpus) > 0) {
            // Off the poll CPUs (traps: threads inherit their creator's pinning, which may
            // be a poll lcore's). Best effort: a refused mask leaves the inherited one.
            (void)pthread_setaffinity_np(pthread_self(), sizeof(cpus), &cpus);
        }
    }

    void worker(Spawn s) {
        // Both syscalls before taking mu_ (submit() on a poll lcore waits for it).
        pin(s.cpus);
        // Bulk work a guest asked for (copies, syncs) yields to the latency-critical
        // threads (poll lcores, other tenants' guests) wherever CPUs are shared. Best effort.
        (void)setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), kWorkerNice);
        uint64_t gen = s.cpus_gen;
        std::unique_lock<std::mutex> lk(mu_);
        for (;;) {
            BlockingPool* d = nullptr;
            ++idle_;
            while (!quit_ && (d = runnable_locked()) == nullptr) {
                cv_.wait(lk);
            }
            --idle_;
            if (d == nullptr) {
                return; // quit_: no device is started, so nothing is queued
            }
            const BlockingPool::Job j = d->ring_[d->head_];
            d->head_ = (d->head_ + 1) % d->ring_.size();
            --d->count_;
            size_t slot = 0;
            while (d->running_[slot].fn != nullptr) {
                ++slot; // busy_ < quota_ = running_.size(): a free slot exists
            }
            d->running_[slot] = j;
            ++d->busy_;
            std::optional<cpu_set_t> repin;
            if (gen != cpus_gen_) {
                gen = cpus_gen_;
                repin = cpus_;
            }
            // This job may wait for long (a lock): keep a worker free for the next one. A
            // spawn already under way is that worker (it takes a job as soon as it runs).
            const std::optional<Spawn> more = idle_ == 0 ? reserve_spawn_locked() : std::nullopt;
            lk.unlock();
            if (repin) {
                pin(*repin);
            }
            if (more) {
                spawn(*more);
            }
            j.fn(j.ctx);
            lk.lock();
            d->running_[slot] = BlockingPool::Job{};
            --d->busy_;
            if (d->count_ > 0) {
                cv_.notify_one(); // its next job may run now (this worker may serve another)
            }
            idle_cv_.notify_all();
        }
    }

    /// Serializes join() and leave() (control threads), so the last device's leave()
    /// joins its workers before another device starts new ones. Taken before mu_.
    std::mutex life_mu_;
    /// Guards everything below and every device's queue and running slots. Lock order:
    /// after life_mu_, else leaf. submit() takes it on a poll lcore, so it is never held
    /// across a job, thread creation or a worker's setup syscalls.
    std::mutex mu_;
    std::condition_variable cv_;      ///< a job may be runnable, or quit_
    std::condition_variable idle_cv_; ///< a job finished, or a spawn ended
    std::vector<BlockingPool*> devices_; ///< started devices
    size_t next_ = 0;                    ///< where runnable_locked() looks first
    unsigned quota_sum_ = 0;             ///< of the started devices
    unsigned draining_ = 0;              ///< devices in drain_for()
    cpu_set_t cpus_;                     ///< where workers run
    uint64_t cpus_gen_ = 0;              ///< changes of cpus_
    unsigned idle_ = 0;                  ///< workers waiting for a job
    bool quit_ = true;                   ///< no device started: workers exit
    bool spawning_ = false;              ///< a worker is being started (outside mu_)
    bool spawn_again_ = false;           ///< a job found no idle worker during that start
    std::vector<std::thread> threads_;
};

BlockingPool::BlockingPool(unsigned quota, CancelFn cancel, void* cancel_arg)
    : quota_(quota == 0 ? 1 : quota), cancel_(cancel), cancel_arg_(cancel_arg) {
    CPU_ZERO(&avoid_);
}

BlockingPool::~BlockingPool() { shutdown(); }

bool BlockingPool::start(unsigned capacity, const cpu_set_t* avoid) noexcept {
    WorkerPool& pool = WorkerPool::instance();
    {
        std::lock_guard<std::mutex> g(pool.mu());
        if (count_ != 0 || busy_ != 0) {
            return false; // only between sessions
        }
        if (started_) {
            if (ring_.size() >= capacity) {
                return true;
            }
        }
    }
    if (started_) {
        shutdown(); // a bigger queue: leave and join again
    }
    // Made outside the pool's lock, which poll lcores of other devices take.
    std::vector<Job> ring;
    std::vector<Job> running;
    try {
        ring.assign(capacity, Job{});
        running.assign(quota_, Job{});
    } catch (const std::bad_alloc&) {
        return false;
    }
    CPU_ZERO(&avoid_);
    if (avoid != nullptr) {
        avoid_ = *avoid;
    }
    return pool.join(*this, ring, running);
}

void BlockingPool::shutdown() noexcept {
    drain();
    WorkerPool::instance().leave(*this);
    std::vector<Job> ring;
    {
        std::lock_guard<std::mutex> g(WorkerPool::instance().mu());
        ring.swap(ring_); // freed below, outside the lock
        head_ = 0;
        count_ = 0;
    }
}

bool BlockingPool::submit(Fn fn, void* ctx) noexcept {
    WorkerPool& pool = WorkerPool::instance();
    bool runnable = false;
    {
        std::lock_guard<std::mutex> g(pool.mu());
        if (!started_ || closing_ || count_ == ring_.size()) {
            return false;
        }
        ring_[(head_ + count_) % ring_.size()] = Job{fn, ctx};
        ++count_;
        runnable = busy_ < quota_;
    }
    pool.queued(runnable);
    return true;
}

bool BlockingPool::drain_for(std::chrono::milliseconds limit) noexcept {
    WorkerPool& pool = WorkerPool::instance();
    const auto start = std::chrono::steady_clock::now();
    std::unique_lock<std::mutex> lk(pool.mu());
    pool.set_draining_locked(*this, true);
    if (count_ > 0) {
        pool.queued(true); // a worker may have skipped them for other devices' turns
    }
    while (count_ > 0 || busy_ > 0) {
        // (milliseconds::max() means no limit; converting it to the clock's unit overflows.)
        if (limit != std::chrono::milliseconds::max() &&
            std::chrono::steady_clock::now() - start >= limit) {
            pool.set_draining_locked(*this, false);
            return false;
        }
        if (cancel_ != nullptr) {
            for (const Job& j : running_) {
                if (j.fn != nullptr) {
                    cancel_(cancel_arg_, j.ctx);
                }
            }
        }
        pool.idle_cv().wait_for(lk, std::chrono::milliseconds(20));
    }
    pool.set_draining_locked(*this, false);
    return true;
}

unsigned BlockingPool::threads() const noexcept {
    WorkerPool& pool = WorkerPool::instance();
    std::lock_guard<std::mutex> g(pool.mu());
    return started_ ? pool.threads_locked() : 0;
}

unsigned BlockingPool::capacity() const noexcept {
    std::lock_guard<std::mutex> g(WorkerPool::instance().mu());
    return static_cast<unsigned>(ring_.size());
}

unsigned BlockingPool::running() const noexcept {
    std::lock_guard<std::mutex> g(WorkerPool::instance().mu());
    return busy_;
}

unsigned BlockingPool::process_threads() noexcept {
    WorkerPool& pool = WorkerPool::instance();
    std::lock_guard<std::mutex> g(pool.mu());
    return pool.threads_locked();
}

} // namespace vdh::virtiofs

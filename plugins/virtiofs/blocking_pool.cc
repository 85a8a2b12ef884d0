// SPDX-License-Identifier: MIT
// Worker threads for blocking FUSE calls (see blocking_pool.h).
#include "blocking_pool.h"

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <new>
#include <optional>

namespace vdh::virtiofs {

namespace {
/// Nice value of the workers: below every poll lcore and guest-facing thread.
constexpr int kWorkerNice = 19;
} // namespace

BlockingPool::BlockingPool(unsigned max_threads, CancelFn cancel, void* cancel_arg)
    : max_threads_(max_threads == 0 ? 1 : max_threads), cancel_(cancel), cancel_arg_(cancel_arg) {}

BlockingPool::~BlockingPool() { shutdown(); }

bool BlockingPool::start(unsigned capacity, const cpu_set_t* avoid) noexcept {
    std::optional<Spawn> first;
    {
        std::lock_guard<std::mutex> g(mu_);
        if (count_ != 0 || busy_ != 0) {
            return false; // only between sessions
        }
        CPU_ZERO(&cpus_);
        if (avoid != nullptr && sched_getaffinity(0, sizeof(cpus_), &cpus_) == 0) {
            cpu_set_t rest;
            CPU_XOR(&rest, &cpus_, avoid);
            CPU_AND(&rest, &rest, &cpus_);
            cpus_ = rest;
        }
        try {
            if (ring_.size() < capacity) {
                ring_.assign(capacity, Job{});
                head_ = 0;
            }
            if (running_.size() != max_threads_) {
                running_.assign(max_threads_, nullptr);
            }
            threads_.reserve(max_threads_);
        } catch (const std::bad_alloc&) {
            return false;
        }
        quit_ = false;
        if (threads_.empty()) {
            first = reserve_spawn_locked();
        }
    }
    if (first) {
        spawn(*first);
    }
    return threads() > 0;
}

std::optional<BlockingPool::Spawn> BlockingPool::reserve_spawn_locked() noexcept {
    if (quit_ || threads_.size() >= max_threads_) {
        return std::nullopt;
    }
    if (spawning_) {
        // The spawn under way may be the very worker that asks (it took a job before its
        // creator got mu_ back): that spawn starts one more when it is done.
        spawn_again_ = true;
        return std::nullopt;
    }
    spawning_ = true;
    return Spawn{static_cast<unsigned>(threads_.size()), cpus_};
}

void BlockingPool::spawn(Spawn s) noexcept {
    // Thread creation (clone, a stack mmap) happens without mu_: submit() on a poll lcore
    // takes mu_ and must never wait for a syscall.
    for (;;) {
        std::thread t;
        try {
            t = std::thread([this, s] { worker(s.index, s.cpus); });
        } catch (...) {
            // No thread now (EAGAIN, ENOMEM): the workers that exist carry on; the next job
            // that finds none idle tries again.
        }
        std::lock_guard<std::mutex> g(mu_);
        const bool started = t.joinable();
        if (started) {
            threads_.push_back(std::move(t)); // start() reserved max_threads_: no allocation
        }
        spawning_ = false;
        const bool again = spawn_again_;
        spawn_again_ = false;
        idle_cv_.notify_all(); // shutdown() waits for a spawn under way
        std::optional<Spawn> next = started && again ? reserve_spawn_locked() : std::nullopt;
        if (!next) {
            return;
        }
        s = *next;
    }
}

void BlockingPool::shutdown() noexcept {
    drain();
    std::vector<std::thread> joining;
    {
        std::unique_lock<std::mutex> lk(mu_);
        quit_ = true;
        // A worker still starting another (a job submitted after the drain) adds its
        // thread to threads_ first; with quit_ set, no further one starts.
        idle_cv_.wait(lk, [this] { return !spawning_; });
        joining.swap(threads_);
    }
    cv_.notify_all();
    for (auto& t : joining) {
        t.join();
    }
    std::lock_guard<std::mutex> g(mu_);
    std::vector<Job>().swap(ring_);
    head_ = 0;
    count_ = 0;
    idle_ = 0;
}

bool BlockingPool::submit(Fn fn, void* ctx) noexcept {
    {
        std::lock_guard<std::mutex> g(mu_);
        if (quit_ || threads_.empty() || count_ == ring_.size()) {
            return false;
        }
        ring_[(head_ + count_) % ring_.size()] = Job{fn, ctx};
        ++count_;
    }
    cv_.notify_one();
    return true;
}

void BlockingPool::worker(unsigned index, cpu_set_t cpus) {
    // Both syscalls before taking mu_ (submit() on a poll lcore waits for it).
    if (CPU_COUNT(&cpus) > 0) {
        // Off the poll CPUs (traps: threads inherit their creator's pinning, which may be
        // a poll lcore's). Best effort: a refused mask leaves the inherited one.
        (void)pthread_setaffinity_np(pthread_self(), sizeof(cpus), &cpus);
    }
    // Bulk work a guest asked for (copies, syncs) yields to the latency-critical threads
    // (poll lcores, other tenants' guests) wherever CPUs are shared. Best effort.
    (void)setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), kWorkerNice);
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
        ++idle_;
        cv_.wait(lk, [this] { return quit_ || count_ > 0; });
        --idle_;
        if (count_ == 0) {
            return; // quit_ and nothing left to run
        }
        Job j = ring_[head_];
        head_ = (head_ + 1) % ring_.size();
        --count_;
        running_[index] = j.ctx;
        ++busy_;
        // This job may wait for long (a lock): keep a worker free for the next one. A
        // spawn already under way is that worker (it takes a job as soon as it runs).
        const std::optional<Spawn> more = idle_ == 0 ? reserve_spawn_locked() : std::nullopt;
        lk.unlock();
        if (more) {
            spawn(*more);
        }
        j.fn(j.ctx);
        lk.lock();
        running_[index] = nullptr;
        --busy_;
        idle_cv_.notify_all();
    }
}

bool BlockingPool::drain_for(std::chrono::milliseconds limit) noexcept {
    const auto start = std::chrono::steady_clock::now();
    std::unique_lock<std::mutex> lk(mu_);
    while (count_ > 0 || busy_ > 0) {
        // (milliseconds::max() means no limit; converting it to the clock's unit overflows.)
        if (limit != std::chrono::milliseconds::max() &&
            std::chrono::steady_clock::now() - start >= limit) {
            return false;
        }
        if (cancel_ != nullptr) {
            for (void* ctx : running_) {
                if (ctx != nullptr) {
                    cancel_(cancel_arg_, ctx);
                }
            }
        }
        idle_cv_.wait_for(lk, std::chrono::milliseconds(20));
    }
    return true;
}

unsigned BlockingPool::threads() const noexcept {
    std::lock_guard<std::mutex> g(mu_);
    return static_cast<unsigned>(threads_.size());
}

unsigned BlockingPool::capacity() const noexcept {
    std::lock_guard<std::mutex> g(mu_);
    return static_cast<unsigned>(ring_.size());
}

} // namespace vdh::virtiofs

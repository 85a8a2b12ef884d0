// SPDX-License-Identifier: MIT
// Tests of BlockingPool: no thread before start(), workers started on demand up to the
// maximum (a waiting job never leaves the next one without a thread while one can start,
// also when jobs arrive together), a queue sized at start() that takes exactly that many
// jobs, drain() interrupting running jobs through the cancel callback, and shutdown()
// joining every worker. With several devices on the process's one pool: each runs at most
// its quota at once, one device's stuck jobs never hold another's, a device's drain and
// shutdown cancel and wait for its own jobs only, and 64 started devices share one worker
// until jobs wait (then at most the process's cap).
#include "blocking_pool.h"

#include <dirent.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace vdh::virtiofs {
namespace {

using namespace std::chrono_literals;

/// Threads of this process (/proc/self/task entries).
int task_count() {
    int n = 0;
    DIR* d = ::opendir("/proc/self/task");
    if (d == nullptr) {
        return -1;
    }
    while (dirent* e = ::readdir(d)) {
        n += e->d_name[0] != '.' ? 1 : 0;
    }
    ::closedir(d);
    return n;
}

/// A job that waits until released or cancelled, like a SETLKW on a held lock.
struct Waiter {
    std::mutex mu;
    std::condition_variable cv;
    bool released = false;
    bool cancelled = false;
    std::atomic<int> started{0};
    std::atomic<int> finished{0};

    static void run(void* p) {
        auto* w = static_cast<Waiter*>(p);
        w->started.fetch_add(1);
        std::unique_lock<std::mutex> lk(w->mu);
        w->cv.wait(lk, [w] { return w->released || w->cancelled; });
        w->finished.fetch_add(1);
    }
    static void cancel(void* /*arg*/, void* p) {
        auto* w = static_cast<Waiter*>(p);
        std::lock_guard<std::mutex> g(w->mu);
        w->cancelled = true;
        w->cv.notify_all();
    }
    void release() {
        std::lock_guard<std::mutex> g(mu);
        released = true;
        cv.notify_all();
    }
};

template <typename Pred>
bool eventually(Pred p, std::chrono::milliseconds limit = 5000ms) {
    auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
        if (p()) {
            return true;
        }
        std::this_thread::sleep_for(1ms);
    }
    return p();
}

TEST(BlockingPool, NoThreadAndNoSubmitBeforeStart) {
    const int before = task_count();
    BlockingPool pool(4, &Waiter::cancel, nullptr);
    EXPECT_EQ(pool.threads(), 0u);
    EXPECT_EQ(task_count(), before);
    Waiter w;
    EXPECT_FALSE(pool.submit(&Waiter::run, &w));
}

TEST(BlockingPool, StartsOneThreadAndGrowsOnDemandUpToTheMaximum) {
    const int before = task_count();
    BlockingPool pool(3, &Waiter::cancel, nullptr);
    ASSERT_TRUE(pool.start(16));
    EXPECT_EQ(pool.threads(), 1u);
    EXPECT_EQ(task_count(), before + 1);

    // Each waiting job makes its worker start another, so the next job never waits for a
    // thread while the maximum is not reached.
    Waiter a, b, c, d;
    ASSERT_TRUE(pool.submit(&Waiter::run, &a));
    ASSERT_TRUE(eventually([&] { return a.started.load() == 1; }));
    ASSERT_TRUE(pool.submit(&Waiter::run, &b));
    ASSERT_TRUE(eventually([&] { return b.started.load() == 1; }));
    ASSERT_TRUE(pool.submit(&Waiter::run, &c));
    ASSERT_TRUE(eventually([&] { return c.started.load() == 1; }));
    EXPECT_EQ(pool.threads(), 3u);
    // At the maximum, the next job queues until a worker is free.
    ASSERT_TRUE(pool.submit(&Waiter::run, &d));
    std::this_thread::sleep_for(50ms);
    EXPECT_EQ(d.started.load(), 0);
    EXPECT_EQ(pool.threads(), 3u);
    a.release();
    ASSERT_TRUE(eventually([&] { return d.started.load() == 1; }));
    b.release();
    c.release();
    d.release();
    pool.drain();
    EXPECT_EQ(a.finished + b.finished + c.finished + d.finished, 4);
}

TEST(BlockingPool, JobsSubmittedTogetherEachGetAWorkerUpToTheMaximum) {
    // No pause between the submits: a worker may take the next job while the thread that
    // picked the previous one is still starting it. None may be left without a thread.
    for (int round = 0; round < 200; ++round) {
        BlockingPool pool(4, &Waiter::cancel, nullptr);
        ASSERT_TRUE(pool.start(16));
        std::vector<Waiter> w(4);
        for (auto& x : w) {
            ASSERT_TRUE(pool.submit(&Waiter::run, &x));
        }
        auto all_started = [&] {
            for (auto& x : w) {
                if (x.started.load() != 1) {
                    return false;
                }
            }
            return true;
        };
        ASSERT_TRUE(eventually(all_started)) << "round " << round << ": a job waited for a thread";
        EXPECT_EQ(pool.threads(), 4u);
        pool.shutdown(); // cancels the waits
    }
}

TEST(BlockingPool, QueueHoldsExactlyTheCapacityGivenAtStart) {
    BlockingPool pool(1, &Waiter::cancel, nullptr);
    ASSERT_TRUE(pool.start(8));
    EXPECT_EQ(pool.capacity(), 8u);
    Waiter hold;
    ASSERT_TRUE(pool.submit(&Waiter::run, &hold));
    ASSERT_TRUE(eventually([&] { return hold.started.load() == 1; }));
    // The one worker waits: 8 more jobs queue, the 9th is refused (the device sizes the
    // queue to its ring entries, so its own requests always fit).
    std::vector<Waiter> queued(8);
    for (auto& w : queued) {
        EXPECT_TRUE(pool.submit(&Waiter::run, &w));
    }
    Waiter extra;
    EXPECT_FALSE(pool.submit(&Waiter::run, &extra));
    hold.release();
    for (auto& w : queued) {
        w.release();
    }
    pool.drain();
    for (auto& w : queued) {
        EXPECT_EQ(w.finished.load(), 1);
    }
    EXPECT_EQ(extra.started.load(), 0);
}

TEST(BlockingPool, DrainCancelsWaitingJobsPromptly) {
    BlockingPool pool(4, &Waiter::cancel, nullptr);
    ASSERT_TRUE(pool.start(16));
    std::vector<Waiter> w(6); // more than the threads: some queue behind waiting ones
    for (auto& x : w) {
        ASSERT_TRUE(pool.submit(&Waiter::run, &x));
    }
    ASSERT_TRUE(eventually([&] { return w[0].started.load() == 1; }));
    auto t0 = std::chrono::steady_clock::now();
    pool.drain(); // nobody releases: only the cancel callback ends the waits
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
    for (auto& x : w) {
        EXPECT_EQ(x.finished.load(), 1);
        EXPECT_TRUE(x.cancelled);
    }
    // Still usable after a drain.
    Waiter after;
    after.release();
    ASSERT_TRUE(pool.submit(&Waiter::run, &after));
    ASSERT_TRUE(eventually([&] { return after.finished.load() == 1; }));
}

TEST(BlockingPool, DrainForGivesUpAfterItsLimit) {
    BlockingPool pool(1, nullptr, nullptr); // no cancel callback: the job only ends when released
    ASSERT_TRUE(pool.start(4));
    Waiter w;
    ASSERT_TRUE(pool.submit(&Waiter::run, &w));
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_FALSE(pool.drain_for(100ms));
    const auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_GE(took, 100ms);
    EXPECT_LT(took, 2s);
    w.release();
    EXPECT_TRUE(pool.drain_for(5s));
    EXPECT_EQ(w.finished.load(), 1);
}

TEST(BlockingPool, ShutdownJoinsEveryWorkerAndStartWorksAgain) {
    const int before = task_count();
    BlockingPool pool(4, &Waiter::cancel, nullptr);
    ASSERT_TRUE(pool.start(16));
    std::vector<Waiter> w(4);
    for (auto& x : w) {
        ASSERT_TRUE(pool.submit(&Waiter::run, &x));
    }
    ASSERT_TRUE(eventually([&] { return pool.threads() == 4u; }));
    pool.shutdown(); // cancels the waits, then joins
    EXPECT_EQ(pool.threads(), 0u);
    EXPECT_EQ(pool.capacity(), 0u);
    EXPECT_EQ(task_count(), before);
    for (auto& x : w) {
        EXPECT_EQ(x.finished.load(), 1);
    }
    Waiter late;
    EXPECT_FALSE(pool.submit(&Waiter::run, &late));
    ASSERT_TRUE(pool.start(4));
    EXPECT_EQ(pool.threads(), 1u);
    late.release();
    EXPECT_TRUE(pool.submit(&Waiter::run, &late));
    ASSERT_TRUE(eventually([&] { return late.finished.load() == 1; }));
}

// ---- one pool per process, a quota per device -----------------------------------------------

TEST(BlockingPool, EachDeviceRunsAtMostItsQuotaAndQueuesTheRest) {
    BlockingPool a(2, &Waiter::cancel, nullptr);
    BlockingPool b(2, &Waiter::cancel, nullptr);
    ASSERT_TRUE(a.start(16));
    ASSERT_TRUE(b.start(16));
    std::vector<Waiter> wa(4);
    for (auto& x : wa) {
        ASSERT_TRUE(a.submit(&Waiter::run, &x));
    }
    ASSERT_TRUE(eventually([&] { return wa[0].started.load() + wa[1].started.load() == 2; }));
    // Workers to spare (b's quota), but a's third and fourth jobs wait in a's queue.
    std::this_thread::sleep_for(50ms);
    EXPECT_EQ(wa[2].started.load() + wa[3].started.load(), 0);
    EXPECT_EQ(a.running(), 2u);
    // b is not held up by a's waiting jobs.
    Waiter wb;
    wb.release();
    ASSERT_TRUE(b.submit(&Waiter::run, &wb));
    ASSERT_TRUE(eventually([&] { return wb.finished.load() == 1; }));
    // One of a's jobs ends: the next queued one runs, still at most two at once.
    wa[0].release();
    ASSERT_TRUE(eventually([&] { return wa[2].started.load() == 1; }));
    EXPECT_EQ(wa[3].started.load(), 0);
    EXPECT_LE(a.running(), 2u);
    for (auto& x : wa) {
        x.release();
    }
    a.drain();
    b.drain();
    for (auto& x : wa) {
        EXPECT_EQ(x.finished.load(), 1);
    }
}

TEST(BlockingPool, OneDevicesStuckJobsDoNotBlockAnothers) {
    // a's jobs never end on their own and cannot be cancelled (no callback): a holds its
    // quota of workers for as long as they run.
    BlockingPool a(3, nullptr, nullptr);
    BlockingPool b(1, &Waiter::cancel, nullptr);
    ASSERT_TRUE(a.start(32));
    ASSERT_TRUE(b.start(8));
    std::vector<Waiter> stuck(10);
    for (auto& x : stuck) {
        ASSERT_TRUE(a.submit(&Waiter::run, &x));
    }
    ASSERT_TRUE(eventually([&] { return a.running() == 3u; }));
    // b's jobs run one after another while a's are stuck.
    std::vector<Waiter> quick(8);
    for (auto& x : quick) {
        x.release();
        ASSERT_TRUE(b.submit(&Waiter::run, &x));
    }
    for (auto& x : quick) {
        ASSERT_TRUE(eventually([&] { return x.finished.load() == 1; }));
    }
    // The process's workers: at most the sum of the quotas.
    EXPECT_LE(BlockingPool::process_threads(), 4u);
    EXPECT_EQ(a.threads(), BlockingPool::process_threads());
    for (auto& x : stuck) {
        x.release();
    }
    a.shutdown();
    b.shutdown();
}

TEST(BlockingPool, TeardownOfOneDeviceCancelsAndWaitsForItsOwnJobsOnly) {
    const int before = task_count();
    BlockingPool a(2, nullptr, nullptr); // not cancellable: keeps running through b's teardown
    BlockingPool b(2, &Waiter::cancel, nullptr);
    ASSERT_TRUE(a.start(8));
    ASSERT_TRUE(b.start(8));
    Waiter wa;
    std::vector<Waiter> wb(3); // one more than b's quota: one is queued
    ASSERT_TRUE(a.submit(&Waiter::run, &wa));
    for (auto& x : wb) {
        ASSERT_TRUE(b.submit(&Waiter::run, &x));
    }
    ASSERT_TRUE(eventually([&] { return wa.started.load() == 1 && b.running() == 2u; }));
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_TRUE(b.drain_for(2s)); // b's jobs are cancelled and end; a's keeps running
    b.shutdown();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
    for (auto& x : wb) {
        EXPECT_EQ(x.finished.load(), 1);
        EXPECT_TRUE(x.cancelled);
    }
    EXPECT_EQ(b.threads(), 0u);
    EXPECT_FALSE(wa.cancelled);
    EXPECT_EQ(wa.finished.load(), 0);
    EXPECT_EQ(a.running(), 1u);
    // a still takes and runs jobs.
    Waiter more;
    more.release();
    ASSERT_TRUE(a.submit(&Waiter::run, &more));
    ASSERT_TRUE(eventually([&] { return more.finished.load() == 1; }));
    // a's teardown waits for its job (held by whatever it uses until it ends).
    std::thread releaser([&] {
        std::this_thread::sleep_for(100ms);
        wa.release();
    });
    a.shutdown();
    EXPECT_EQ(wa.finished.load(), 1);
    releaser.join();
    // The last device gone, the process has no worker left.
    EXPECT_EQ(BlockingPool::process_threads(), 0u);
    EXPECT_EQ(task_count(), before);
}

TEST(BlockingPool, ManyStartedDevicesShareOneWorkerUntilJobsWait) {
    const int before = task_count();
    std::vector<std::unique_ptr<BlockingPool>> devs;
    for (int i = 0; i < 64; ++i) {
        devs.push_back(std::make_unique<BlockingPool>(4, &Waiter::cancel, nullptr));
        ASSERT_TRUE(devs.back()->start(16));
    }
    // 64 started devices: one worker (a pool per device started one each).
    EXPECT_EQ(BlockingPool::process_threads(), 1u);
    EXPECT_EQ(task_count(), before + 1);
    // Waiting jobs on many devices (three each on 32): a worker for each, since a cap
    // would let enough guests with waiting jobs hold every worker.
    std::vector<Waiter> w(32 * 3);
    for (size_t i = 0; i < w.size(); ++i) {
        ASSERT_TRUE(devs[i / 3]->submit(&Waiter::run, &w[i]));
    }
    ASSERT_TRUE(eventually([&] { return BlockingPool::process_threads() >= w.size(); }));
    // Another device's job still finds a worker at once.
    Waiter other;
    ASSERT_TRUE(devs[40]->submit(&Waiter::run, &other));
    ASSERT_TRUE(eventually([&] { return other.started.load() == 1; }));
    other.release();
    ASSERT_TRUE(eventually([&] { return other.finished.load() == 1; }));
    // Every job got a worker, plus at most the one spare a busy pool starts ahead.
    std::this_thread::sleep_for(20ms);
    EXPECT_GE(BlockingPool::process_threads(), w.size() + 1);
    EXPECT_LE(BlockingPool::process_threads(), w.size() + 2);
    // Each teardown cancels its own waits and runs its queued jobs first, though every
    // other worker waits for another device.
    auto t0 = std::chrono::steady_clock::now();
    devs.clear();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
    for (auto& x : w) {
        EXPECT_EQ(x.finished.load(), 1);
    }
    EXPECT_EQ(task_count(), before);
}

} // namespace
} // namespace vdh::virtiofs

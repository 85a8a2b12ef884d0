// SPDX-License-Identifier: MIT
// Tests of QueueRuntime, the per-queue data path, over a fake split ring and a fake plugin:
// the batching rule (one plugin flush and one guest notification per pass, whatever the
// number of requests taken), the per-pass time slice, and plugins built for ABI 1.1
// (no flush), and QoS throttling (requests left in the ring, the deadline reported to the
// lcore, kicks kept off, live changes).
#include "queue_runtime.h"

#include <gtest/gtest.h>

#include <rte_cycles.h>

#include <chrono>
#include <cstddef>
#include <thread>
#include <vector>

#include "fake_ring.h"

namespace vdh {
namespace {

using fake::FakeGuest;
using fake::FakeSplitRing;

/// The fake plugin: every request is async; flush() "submits" what handle_request queued
/// and the next poll() completes it, as io_uring would for page-cache hits.
struct FakePlugin {
    std::vector<void*> queued;    ///< taken by handle_request, not flushed yet
    std::vector<void*> submitted; ///< flushed, completed by the next poll()
    int handled = 0;
    int flushes = 0;
    int flushes_with_work = 0;
    bool sync = false; ///< answer in handle_request instead (no async)

    static FakePlugin* self(void* d) { return static_cast<FakePlugin*>(d); }
    static int64_t handle(void* d, const vdh_request* r) {
        FakePlugin* p = self(d);
        ++p->handled;
        if (p->sync) {
            return 8;
        }
        p->queued.push_back(r->token);
        return VDH_ASYNC;
    }
    static uint32_t flush(void* d, uint16_t) {
        FakePlugin* p = self(d);
        ++p->flushes;
        if (!p->queued.empty()) {
            ++p->flushes_with_work;
        }
        auto n = static_cast<uint32_t>(p->queued.size());
        p->submitted.insert(p->submitted.end(), p->queued.begin(), p->queued.end());
        p->queued.clear();
        return n;
    }
    static uint32_t poll(void* d, uint16_t) {
        FakePlugin* p = self(d);
        auto n = static_cast<uint32_t>(p->submitted.size());
        for (void* t : p->submitted) {
            QueueRuntime::complete(static_cast<RequestSlot*>(t), 8);
        }
        p->submitted.clear();
        return n;
    }
};

vdh_device_ops make_ops(bool with_flush) {
    vdh_device_ops ops{};
    ops.struct_size = with_flush ? sizeof(vdh_device_ops)
                                 : static_cast<uint32_t>(offsetof(vdh_device_ops, flush));
    ops.handle_request = &FakePlugin::handle;
    ops.poll = &FakePlugin::poll;
    ops.flush = with_flush ? &FakePlugin::flush : nullptr;
    return ops;
}

/// The transport's side: counts notifications, records the used index the guest saw at
/// each, and can refuse (busy transport) the next \p refuse calls.
class FakeNotifier final : public QueueNotifier {
public:
    bool notify(QueueRuntime& q) noexcept override {
        ++calls;
        queues.push_back(q.index());
        if (refuse > 0) {
            --refuse;
            return false;
        }
        ++notifies;
        used_idx_at_notify.push_back(used_idx != nullptr ? *used_idx : 0);
        return true;
    }
    int calls = 0;    ///< every call, refused ones included
    int notifies = 0; ///< accepted calls
    int refuse = 0;
    std::vector<uint16_t> queues;
    std::vector<uint16_t> used_idx_at_notify;
    const uint16_t* used_idx = nullptr;
};

class QueueRuntimeTest : public ::testing::Test {
protected:
    static constexpr uint16_t kSize = 256; // two descriptors per request: 128 requests

    void make(bool with_flush) {
        ops_ = make_ops(with_flush);
        ring_ = std::make_unique<FakeSplitRing>(guest_, kSize, 0);
        q_ = std::make_unique<QueueRuntime>(&ops_, &plugin_, &notifier_, 1, stats_);
        ASSERT_TRUE(q_->allocate(kSize, 0));
        ASSERT_TRUE(q_->vq().init(ring_->addrs(), &guest_.memory(), 0, 0, false));
        notifier_.used_idx = &guest_.at<vring_used>(fake::kDeviceAreaGpa)->idx;
    }
    /// Makes \p n requests (16 readable + 16 writable bytes each) available.
    void add_requests(int n) {
        for (int i = 0; i < n; ++i) {
            ring_->add({{guest_.alloc(16), 16, false}, {guest_.alloc(16), 16, true}});
        }
    }
    int take_all_used() {
        int n = 0;
        while (ring_->take_used()) {
            ++n;
        }
        return n;
    }

    FakeGuest guest_;
    FakePlugin plugin_;
    QueueStats stats_;
    vdh_device_ops ops_{};
    FakeNotifier notifier_;
    std::unique_ptr<FakeSplitRing> ring_;
    std::unique_ptr<QueueRuntime> q_;
};

TEST_F(QueueRuntimeTest, BatchOfRequestsIsOneFlushAndOneNotification) {
    make(true);
    add_requests(32);
    q_->poll();
    EXPECT_EQ(plugin_.handled, 32);
    EXPECT_EQ(plugin_.flushes, 1);
    EXPECT_EQ(plugin_.flushes_with_work, 1);
    // All 32 completions are published together: the guest is notified once, and at
    // that point it already sees every entry.
    EXPECT_EQ(notifier_.notifies, 1);
    ASSERT_EQ(notifier_.used_idx_at_notify.size(), 1u);
    EXPECT_EQ(notifier_.used_idx_at_notify[0], 32);
    EXPECT_EQ(take_all_used(), 32);
    EXPECT_EQ(stats_.batches.load(), 1u);
    EXPECT_EQ(stats_.requests.load(), 32u);
    EXPECT_EQ(q_->inflight(), 0u);
}

TEST_F(QueueRuntimeTest, SynchronousRepliesArePublishedTogether) {
    make(true);
    plugin_.sync = true;
    add_requests(20);
    q_->poll();
    EXPECT_EQ(plugin_.handled, 20);
    EXPECT_EQ(plugin_.flushes, 1);
    EXPECT_EQ(notifier_.notifies, 1);
    EXPECT_EQ(notifier_.used_idx_at_notify.at(0), 20);
    EXPECT_EQ(take_all_used(), 20);
}

TEST_F(QueueRuntimeTest, IdlePassNeitherFlushesNorNotifies) {
    make(true);
    EXPECT_EQ(q_->poll(), 0u);
    EXPECT_EQ(plugin_.flushes, 0);
    EXPECT_EQ(notifier_.notifies, 0);
    EXPECT_EQ(stats_.idle_polls.load(), 1u);
}

TEST_F(QueueRuntimeTest, PassTakesAtMostTheBatch) {
    make(true);
    add_requests(100);
    q_->poll();
    EXPECT_EQ(plugin_.handled, 64);
    EXPECT_EQ(plugin_.flushes, 1);
    EXPECT_EQ(notifier_.notifies, 1);
    q_->poll();
    EXPECT_EQ(plugin_.handled, 100);
    EXPECT_EQ(plugin_.flushes, 2);
    EXPECT_EQ(take_all_used(), 100);
}

TEST_F(QueueRuntimeTest, RingFullCountsPassesThatLeaveRequestsWaiting) {
    make(true);
    add_requests(64); // exactly one batch: the pass drains the ring
    q_->poll();
    EXPECT_EQ(stats_.ring_full.load(), 0u);
    EXPECT_EQ(take_all_used(), 64);
    add_requests(100); // more than a batch: the first pass leaves 36 waiting
    q_->poll();
    EXPECT_EQ(stats_.ring_full.load(), 1u);
    q_->poll();
    EXPECT_EQ(stats_.ring_full.load(), 1u);
    EXPECT_EQ(plugin_.handled, 164);
    EXPECT_EQ(take_all_used(), 100);
    add_requests(3); // a one-cycle slice ends two passes early
    q_->poll(1);
    q_->poll(1);
    q_->poll(1);
    EXPECT_EQ(stats_.ring_full.load(), 3u);
    EXPECT_EQ(take_all_used(), 3);
}

TEST_F(QueueRuntimeTest, TimeSliceEndsThePassAfterOneRequest) {
    make(true);
    add_requests(8);
    // A one-cycle slice: every pass takes exactly one request (the first is always taken).
    for (int pass = 1; pass <= 8; ++pass) {
        q_->poll(1);
        EXPECT_EQ(plugin_.handled, pass);
        EXPECT_EQ(plugin_.flushes, pass);
    }
    EXPECT_EQ(notifier_.notifies, 8);
    EXPECT_EQ(take_all_used(), 8);
    q_->poll(1);
    EXPECT_EQ(plugin_.handled, 8);
}

TEST_F(QueueRuntimeTest, PluginWithoutFlushStillCompletes) {
    make(false); // built for ABI 1.1: its table ends before flush
    add_requests(4);
    q_->poll();
    EXPECT_EQ(plugin_.handled, 4);
    EXPECT_EQ(plugin_.flushes, 0);
    // Without flush the plugin's queued work is only "submitted" by itself; here nothing
    // completes until the fake is told to, then the next pass publishes all four at once.
    plugin_.submitted.swap(plugin_.queued);
    q_->poll();
    EXPECT_EQ(notifier_.notifies, 1);
    EXPECT_EQ(notifier_.used_idx_at_notify.at(0), 4);
    EXPECT_EQ(take_all_used(), 4);
}

TEST_F(QueueRuntimeTest, PublishMakesForeignCompletionsVisible) {
    make(true);
    plugin_.sync = true;
    add_requests(3);
    q_->poll();
    EXPECT_EQ(take_all_used(), 3);
    // A completion finished outside the queue's own pass is not visible until published.
    plugin_.sync = false;
    add_requests(1);
    q_->poll(); // queued; flushed into submitted; completed on the next poll
    EXPECT_EQ(take_all_used(), 1);
    q_->publish(); // nothing pending: no effect
    EXPECT_EQ(take_all_used(), 0);
}

TEST_F(QueueRuntimeTest, NotifierIsCalledOncePerPassAfterTheEntriesArePublished) {
    make(true);
    for (int pass = 1; pass <= 3; ++pass) {
        add_requests(5 * pass);
        q_->poll();
        // One call per pass that produced used entries, naming this queue, with every
        // entry of the pass already visible to the guest.
        EXPECT_EQ(notifier_.calls, pass);
        EXPECT_EQ(notifier_.queues.back(), 1);
        EXPECT_EQ(notifier_.used_idx_at_notify.back(), 5 * pass * (pass + 1) / 2);
        EXPECT_EQ(take_all_used(), 5 * pass);
    }
    // Passes without used entries do not call it.
    q_->poll();
    q_->poll();
    EXPECT_EQ(notifier_.calls, 3);
    EXPECT_EQ(stats_.notifies.load(), 3u);
    EXPECT_EQ(stats_.notify_retries.load(), 0u);
}

TEST_F(QueueRuntimeTest, RefusedNotificationIsRetriedOnTheNextPass) {
    make(true);
    notifier_.refuse = 2; // the transport is busy twice (vhost-user: vring lock held)
    add_requests(7);
    q_->poll();
    EXPECT_EQ(notifier_.calls, 1);
    EXPECT_EQ(notifier_.notifies, 0);
    EXPECT_EQ(stats_.notify_retries.load(), 1u);
    // The entries are published all the same; only the interrupt is owed.
    EXPECT_EQ(take_all_used(), 7);
    // The lcore must not sleep while a notification is owed.
    EXPECT_TRUE(q_->prepare_sleep());
    q_->after_sleep();
    // Passes without new work retry it, until it goes through; then it stops.
    EXPECT_EQ(q_->poll(), 0u);
    EXPECT_EQ(notifier_.calls, 2);
    EXPECT_EQ(notifier_.notifies, 0);
    EXPECT_EQ(q_->poll(), 0u);
    EXPECT_EQ(notifier_.calls, 3);
    EXPECT_EQ(notifier_.notifies, 1);
    EXPECT_EQ(notifier_.used_idx_at_notify.at(0), 7);
    EXPECT_EQ(stats_.notify_retries.load(), 2u);
    EXPECT_EQ(stats_.notifies.load(), 1u);
    q_->poll();
    EXPECT_EQ(notifier_.calls, 3);
    EXPECT_FALSE(q_->prepare_sleep());
}

TEST_F(QueueRuntimeTest, RefusedNotificationJoinsTheNextBatch) {
    make(true);
    notifier_.refuse = 1;
    add_requests(3);
    q_->poll();
    add_requests(4);
    q_->poll(); // new entries and the owed interrupt go out as one notification
    EXPECT_EQ(notifier_.calls, 2);
    EXPECT_EQ(notifier_.notifies, 1);
    EXPECT_EQ(notifier_.used_idx_at_notify.at(0), 7);
    EXPECT_EQ(take_all_used(), 7);
}

TEST_F(QueueRuntimeTest, GuestThatSuppressesInterruptsIsNotNotified) {
    make(true);
    ring_->avail()->flags = VRING_AVAIL_F_NO_INTERRUPT;
    add_requests(6);
    q_->poll();
    EXPECT_EQ(notifier_.calls, 0);
    EXPECT_EQ(take_all_used(), 6); // still published
    EXPECT_FALSE(q_->prepare_sleep());
    ring_->avail()->flags = 0;
    q_->after_sleep();
    add_requests(1);
    q_->poll();
    EXPECT_EQ(notifier_.calls, 1);
}

TEST_F(QueueRuntimeTest, EventIdxNotifiesOnlyWhenTheGuestAskedForIt) {
    ops_ = make_ops(true);
    ring_ = std::make_unique<FakeSplitRing>(guest_, kSize, 0);
    q_ = std::make_unique<QueueRuntime>(&ops_, &plugin_, &notifier_, 1, stats_);
    ASSERT_TRUE(q_->allocate(kSize, 0));
    ASSERT_TRUE(q_->vq().init(ring_->addrs(), &guest_.memory(), 0, 0, true));
    ring_->set_used_event(9); // "interrupt me once used->idx passes 9"
    add_requests(4);
    q_->poll(); // the first notification always goes out (nothing signalled yet)
    EXPECT_EQ(notifier_.calls, 1);
    add_requests(4);
    q_->poll(); // used 4 -> 8: event 9 not crossed
    EXPECT_EQ(notifier_.calls, 1);
    add_requests(4);
    q_->poll(); // used 8 -> 12 crosses 9
    EXPECT_EQ(notifier_.calls, 2);
    EXPECT_EQ(take_all_used(), 12);
}

TEST_F(QueueRuntimeTest, AbandonedQueueRetiresLateCompletionsWithoutNotifying) {
    make(false); // no flush: the fake keeps the requests until told to complete them
    add_requests(4);
    q_->poll();
    EXPECT_EQ(q_->inflight(), 4u);
    EXPECT_EQ(notifier_.calls, 0);
    // Teardown gave up on them: the session (and its transport connection) is gone.
    q_->set_stopping();
    q_->abandon();
    plugin_.submitted.swap(plugin_.queued);
    q_->poll();
    EXPECT_EQ(q_->inflight(), 0u);
    EXPECT_EQ(stats_.late_completions.load(), 4u);
    EXPECT_EQ(notifier_.calls, 0);
    EXPECT_EQ(take_all_used(), 0); // nothing written into the old rings
}

/// TSC cycles per second, measured (the EAL, which knows it, is not started in unit tests).
uint64_t measured_tsc_hz() {
    auto t0 = std::chrono::steady_clock::now();
    uint64_t c0 = rte_rdtsc();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    uint64_t c1 = rte_rdtsc();
    auto ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    return static_cast<uint64_t>(static_cast<double>(c1 - c0) * 1e9 / static_cast<double>(ns));
}

void spin_until(uint64_t tsc) {
    while (rte_rdtsc() < tsc) {
    }
}

class QueueRuntimeQosTest : public QueueRuntimeTest {
  protected:
    /// 100 requests/s, burst 200 ms: 21 requests at once after an idle time, then 11 per
    /// wake (the wake deadline is half a burst after the next admission). The next request
    /// is 10 ms away once the budget is spent, so a test thread delayed by this shared
    /// machine rarely sees a token it did not expect.
    void make_limited() {
        make(true);
        plugin_.sync = true;
        bucket_.prepare(measured_tsc_hz(), 1);
        ctl_.set(QosConfig{100, 0, 200});
        q_->set_qos(&ctl_, &bucket_);
        q_->after_sleep(); // kicks off, as while polling
    }
    uint16_t used_flags() { return ring_->used()->flags; }

    QosControl ctl_;
    TokenBucket bucket_;
};

TEST_F(QueueRuntimeQosTest, ThrottledQueueLeavesRequestsInTheRingAndReportsItsDeadline) {
    make_limited();
    add_requests(100);
    uint32_t work = q_->poll();
    // The burst passes (21 requests; a few more or less with the measured clock rate).
    EXPECT_GE(plugin_.handled, 18);
    EXPECT_LE(plugin_.handled, 24);
    EXPECT_EQ(work, static_cast<uint32_t>(plugin_.handled));
    EXPECT_EQ(take_all_used(), plugin_.handled);
    int first = plugin_.handled;
    // Budget spent: the next pass takes nothing, counts as idle, and reports a deadline.
    uint64_t before = rte_rdtsc();
    EXPECT_EQ(q_->poll(), 0u);
    EXPECT_EQ(plugin_.handled, first);
    EXPECT_EQ(stats_.qos_throttled.load(), 1u);
    uint64_t until = q_->throttled_until();
    EXPECT_GT(until, before);
    EXPECT_EQ(until, bucket_.wake_at());
    // Before sleeping: nothing pending, and kicks stay off (the guest need not kick; the
    // lcore will wake at the deadline instead).
    EXPECT_FALSE(q_->prepare_sleep());
    EXPECT_EQ(used_flags(), VRING_USED_F_NO_NOTIFY);
    EXPECT_EQ(q_->throttled_until(), until);
    // Nothing was dropped or failed: the rest still waits in the ring.
    EXPECT_TRUE(q_->vq().has_available());
    EXPECT_EQ(stats_.errors.load(), 0u);
    // At the deadline, prepare_sleep() says "poll again", and a batch of about half a
    // burst (100 ms of requests, 11) is taken; never more than a full burst (21), however
    // late the pass (this machine is shared).
    spin_until(until);
    EXPECT_TRUE(q_->prepare_sleep());
    EXPECT_EQ(q_->throttled_until(), 0u);
    q_->poll();
    int second = plugin_.handled - first;
    EXPECT_GE(second, 9);
    EXPECT_LE(second, 22);
    q_->poll();
    EXPECT_NE(q_->throttled_until(), 0u) << "throttled again at once";
}

TEST_F(QueueRuntimeQosTest, HoldsTheRateOverTime) {
    make_limited();
    add_requests(50);
    auto t0 = std::chrono::steady_clock::now();
    while (plugin_.handled < 50 &&
           std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2)) {
        q_->poll();
        take_all_used();
    }
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // 50 requests at 100/s, of which 21 were the burst: about 0.29 s.
    EXPECT_EQ(plugin_.handled, 50);
    EXPECT_GT(s, 0.27);
    EXPECT_LT(s, 0.45);
}

TEST_F(QueueRuntimeQosTest, AnEmptyRingIsNotThrottledAndArmsKicks) {
    make_limited();
    add_requests(30);
    q_->poll();
    take_all_used();
    q_->poll(); // budget spent, requests left: throttled
    ASSERT_NE(q_->throttled_until(), 0u);
    // Drain the ring under the limit, then the budget runs out with nothing waiting.
    while (q_->vq().has_available()) {
        spin_until(q_->throttled_until() != 0 ? q_->throttled_until() : rte_rdtsc());
        q_->poll();
        take_all_used();
    }
    q_->poll();
    EXPECT_EQ(q_->throttled_until(), 0u);
    EXPECT_FALSE(q_->prepare_sleep()); // sleeps on kicks like any idle queue
    EXPECT_EQ(used_flags(), 0);
}

TEST_F(QueueRuntimeQosTest, ALiveChangeActsAtTheNextPass) {
    make_limited();
    add_requests(120);
    q_->poll();
    int first = plugin_.handled;
    q_->poll();
    ASSERT_NE(q_->throttled_until(), 0u);
    // Lifting the limit (another thread, in the host): the next pass takes a full batch
    // and the throttle is gone at once, no deadline to wait for.
    ctl_.set(QosConfig{});
    EXPECT_TRUE(q_->prepare_sleep());
    EXPECT_EQ(q_->throttled_until(), 0u);
    q_->poll();
    EXPECT_EQ(plugin_.handled, first + 64);
    // Limited again, lower: 100/s with a 10 ms burst admits 2 requests at once.
    ctl_.set(QosConfig{100, 0, 10});
    q_->poll();
    EXPECT_EQ(plugin_.handled, first + 64 + 2);
    // A bandwidth limit counts every byte of the chains (16 + 16 each here): 64 KiB/s
    // with a 10 ms burst is 655 bytes at once, so 21 requests of 32 bytes pass.
    ctl_.set(QosConfig{0, 65536, 10});
    q_->poll();
    EXPECT_GE(plugin_.handled, first + 64 + 2 + 19);
    EXPECT_LE(plugin_.handled, first + 64 + 2 + 23);
}

TEST_F(QueueRuntimeQosTest, ADisabledOrStoppingQueueHasNoDeadline) {
    make_limited();
    add_requests(60);
    q_->poll();
    q_->poll();
    ASSERT_NE(q_->throttled_until(), 0u);
    // A queue that takes no requests at all must not make its lcore wake for a deadline
    // (a stale one would wake it every millisecond).
    q_->set_enabled(false);
    EXPECT_FALSE(q_->prepare_sleep());
    EXPECT_EQ(q_->throttled_until(), 0u);
    q_->set_enabled(true);
    q_->poll();
    ASSERT_NE(q_->throttled_until(), 0u);
    q_->set_stopping();
    EXPECT_FALSE(q_->prepare_sleep());
    EXPECT_EQ(q_->throttled_until(), 0u);
}

} // namespace
} // namespace vdh

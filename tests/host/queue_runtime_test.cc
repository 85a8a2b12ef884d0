// SPDX-License-Identifier: MIT
// Tests of QueueRuntime, the per-queue data path, over a fake split ring and a fake plugin:
// the batching rule (one plugin flush and one guest notification per pass, whatever the
// number of requests taken), the per-pass time slice, and plugins built for ABI 1.1
// (no flush).
#include "queue_runtime.h"

#include <gtest/gtest.h>

#include <cstddef>
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

/// The owner: counts notifications and records the used index the guest saw at each.
class FakeOwner final : public QueueOwner {
public:
    FakeOwner(vdh_device_ops ops, FakePlugin* plugin) : ops_(ops), plugin_(plugin) {}
    const vdh_device_ops* ops() const noexcept override { return &ops_; }
    void* plugin_dev() const noexcept override { return plugin_; }
    bool notify_guest(QueueRuntime& q) noexcept override {
        (void)q;
        ++notifies;
        used_idx_at_notify.push_back(used_idx != nullptr ? *used_idx : 0);
        return true;
    }
    int notifies = 0;
    std::vector<uint16_t> used_idx_at_notify;
    const uint16_t* used_idx = nullptr;

private:
    vdh_device_ops ops_;
    FakePlugin* plugin_;
};

class QueueRuntimeTest : public ::testing::Test {
protected:
    static constexpr uint16_t kSize = 256; // two descriptors per request: 128 requests

    void make(bool with_flush) {
        owner_ = std::make_unique<FakeOwner>(make_ops(with_flush), &plugin_);
        ring_ = std::make_unique<FakeSplitRing>(guest_, kSize, 0);
        q_ = std::make_unique<QueueRuntime>(owner_.get(), 1, stats_);
        ASSERT_TRUE(q_->allocate(kSize, 0));
        ASSERT_TRUE(q_->vq().init(ring_->addrs(), &guest_.memory(), 0, 0, false));
        owner_->used_idx = &guest_.at<vring_used>(fake::kDeviceAreaGpa)->idx;
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
    std::unique_ptr<FakeOwner> owner_;
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
    EXPECT_EQ(owner_->notifies, 1);
    ASSERT_EQ(owner_->used_idx_at_notify.size(), 1u);
    EXPECT_EQ(owner_->used_idx_at_notify[0], 32);
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
    EXPECT_EQ(owner_->notifies, 1);
    EXPECT_EQ(owner_->used_idx_at_notify.at(0), 20);
    EXPECT_EQ(take_all_used(), 20);
}

TEST_F(QueueRuntimeTest, IdlePassNeitherFlushesNorNotifies) {
    make(true);
    EXPECT_EQ(q_->poll(), 0u);
    EXPECT_EQ(plugin_.flushes, 0);
    EXPECT_EQ(owner_->notifies, 0);
    EXPECT_EQ(stats_.idle_polls.load(), 1u);
}

TEST_F(QueueRuntimeTest, PassTakesAtMostTheBatch) {
    make(true);
    add_requests(100);
    q_->poll();
    EXPECT_EQ(plugin_.handled, 64);
    EXPECT_EQ(plugin_.flushes, 1);
    EXPECT_EQ(owner_->notifies, 1);
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
    EXPECT_EQ(owner_->notifies, 8);
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
    EXPECT_EQ(owner_->notifies, 1);
    EXPECT_EQ(owner_->used_idx_at_notify.at(0), 4);
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

} // namespace
} // namespace vdh

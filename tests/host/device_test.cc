// SPDX-License-Identifier: MIT
// Tests of Device, the transport-neutral session, against a fake Transport (one split ring
// in fake guest memory, tests/host/fake_ring.h) and a fake plugin, with a real poll lcore
// on a thread and no rte_vhost: start from the transport's description, requests served
// and notified through the transport, pause/resume around a "memory change", stop handing
// the ring bases back, drain of in-flight requests, a stuck request making the device
// broken until it completes, and a transport that cannot describe the session.
#include "device.h"

#include <gtest/gtest.h>
#include <sys/eventfd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <thread>
#include <tuple>
#include <vector>

#include "fake_ring.h"
#include "plugin_loader.h"
#include "poll_lcore.h"
#include "queue_runtime.h"
#include "vdh/unique_fd.h"

namespace vdh {
namespace {

using fake::FakeGuest;
using fake::FakeSplitRing;

/// The fake plugin's state (one device per test).
struct FakeDev {
    std::atomic<int> starts{0};
    std::atomic<int> stops{0};
    std::atomic<int> disconnects{0};
    std::atomic<int> handled{0};
    uint16_t start_queues = 0;
    bool hold = false;            ///< requests go async and wait in held
    bool complete_on_stop = true; ///< stop() completes what is held
    std::mutex mu;
    std::vector<void*> held;

    void complete_held() {
        std::vector<void*> h;
        {
            std::lock_guard<std::mutex> g(mu);
            h.swap(held);
        }
        for (void* t : h) {
            QueueRuntime::complete(static_cast<RequestSlot*>(t), 0);
        }
    }
};

FakeDev* self(void* d) { return static_cast<FakeDev*>(d); }

int dev_start(void* d, uint64_t, const vdh_queue_info*, uint16_t n) {
    self(d)->start_queues = n;
    ++self(d)->starts;
    return 0;
}
void dev_stop(void* d) {
    ++self(d)->stops;
    if (self(d)->complete_on_stop) {
        self(d)->complete_held();
    }
}
int64_t dev_handle(void* d, const vdh_request* r) {
    FakeDev* f = self(d);
    if (f->hold) {
        std::lock_guard<std::mutex> g(f->mu);
        f->held.push_back(r->token);
        ++f->handled;
        return VDH_ASYNC;
    }
    ++f->handled;
    return 0;
}
void dev_destroy(void*) {}
void dev_disconnect(void* d) { ++self(d)->disconnects; }

const vdh_device_ops g_ops = [] {
    vdh_device_ops o{};
    o.struct_size = sizeof(vdh_device_ops);
    o.start = dev_start;
    o.stop = dev_stop;
    o.handle_request = dev_handle;
    o.destroy = dev_destroy;
    o.disconnect = dev_disconnect;
    return o;
}();

FakeDev* g_dev = nullptr;

int plugin_create(const vdh_host_api*, void*, const char*, const char*, size_t, const char*,
                  void** dev, const vdh_device_ops** ops, char*, size_t) {
    *dev = g_dev;
    *ops = &g_ops;
    return 0;
}

const vdh_plugin_info g_info = [] {
    vdh_plugin_info i{};
    i.struct_size = sizeof(vdh_plugin_info);
    i.abi_major = VDH_ABI_MAJOR;
    i.abi_minor = VDH_ABI_MINOR;
    i.virtio_device_id = 0xFFFF;
    i.name = "fake";
    i.version = "0";
    i.min_queues = 1;
    i.create = plugin_create;
    return i;
}();

/// One split ring in fake guest memory, described as a transport would.
class FakeTransport final : public Transport {
public:
    FakeTransport(FakeGuest& g, FakeSplitRing& ring) : g_(g), ring_(ring) {
        kick_ = UniqueFd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    }
    const char* kind() const noexcept override { return "fake"; }
    bool negotiated_features(uint64_t* f) noexcept override {
        ++describes;
        *f = 1ULL << VIRTIO_F_VERSION_1;
        return true;
    }
    uint16_t vring_count() noexcept override { return 1; }
    bool memory_regions(std::vector<TransportRegion>* out) noexcept override {
        if (fail_memory) {
            return false;
        }
        out->clear();
        for (auto [gpa, size] : {std::pair{fake::kR0Gpa, fake::kR0Size},
                                 std::pair{fake::kR1Gpa, fake::kR1Size},
                                 std::pair{fake::kR2Gpa, fake::kR2Size}}) {
            out->push_back(TransportRegion{gpa, size, g_.host(gpa, size), nullptr, 0});
        }
        return true;
    }
    bool vring(uint16_t q, bool packed, TransportVring* out, std::string* err) override {
        if (q != 0 || packed) {
            *err = "fake: no such vring";
            return false;
        }
        out->addrs = ring_.addrs();
        out->last_avail = base_avail;
        out->last_used = base_used;
        out->kick_fd = kick_.get();
        return true;
    }
    void set_vring_base(uint16_t q, uint16_t last_avail, uint16_t last_used) noexcept override {
        bases.emplace_back(q, last_avail, last_used);
        base_avail = last_avail; // what the frontend would send back on the next start
        base_used = last_used;
    }
    bool notify(QueueRuntime& q) noexcept override {
        (void)q;
        ++notifies;
        return true;
    }

    std::atomic<int> notifies{0};
    int describes = 0;
    bool fail_memory = false;
    uint16_t base_avail = 0;
    uint16_t base_used = 0;
    std::vector<std::tuple<uint16_t, uint16_t, uint16_t>> bases;

private:
    FakeGuest& g_;
    FakeSplitRing& ring_;
    UniqueFd kick_;
};

class DeviceSession : public ::testing::Test {
protected:
    void SetUp() override {
        g_dev = &fdev_;
        plugin_.info = &g_info;
        ASSERT_TRUE(lcore_.init());
        thread_ = std::thread([this] { lcore_.run(); });
        DeviceConfig cfg;
        cfg.name = "d0";
        cfg.type = "fake";
        dev_ = std::make_unique<Device>(cfg, &plugin_, std::vector<PollLcore*>{&lcore_});
        dev_->set_teardown_timeout_ms(200);
        std::string err;
        ASSERT_TRUE(dev_->create(nullptr, "test", &err)) << err;
        auto t = std::make_unique<FakeTransport>(guest_, ring_);
        t_ = t.get();
        dev_->set_transport(std::move(t));
    }
    void TearDown() override {
        if (dev_ && dev_->connection() >= 0) {
            dev_->on_disconnect(dev_->connection());
        }
        fdev_.complete_held();
        lcore_.request_stop();
        thread_.join();
    }

    void add_requests(int n) {
        for (int i = 0; i < n; ++i) {
            ring_.add({{guest_.alloc(16), 16, false}, {guest_.alloc(16), 16, true}});
        }
        lcore_.wake();
    }
    /// Takes used entries until \p n arrived or 5 s passed; returns how many.
    int wait_used(int n) {
        int got = 0;
        auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (got < n && std::chrono::steady_clock::now() < end) {
            if (ring_.take_used()) {
                ++got;
            } else {
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            }
        }
        return got;
    }
    template <typename F>
    bool wait_for(F f) {
        auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (!f()) {
            if (std::chrono::steady_clock::now() > end) {
                return false;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        return true;
    }

    FakeGuest guest_;
    FakeSplitRing ring_{guest_, 64};
    FakeDev fdev_;
    Plugin plugin_;
    PollLcore lcore_{1, 0, 0, 5};
    std::thread thread_;
    std::unique_ptr<Device> dev_;
    FakeTransport* t_ = nullptr;
};

TEST_F(DeviceSession, StartPauseResumeStopOverTheTransport) {
    dev_->on_connect(7);
    EXPECT_EQ(dev_->state(), DeviceState::Connected);
    EXPECT_EQ(dev_->connection(), 7);
    ASSERT_EQ(dev_->start_session(), 0);
    EXPECT_EQ(dev_->state(), DeviceState::Running);
    EXPECT_EQ(fdev_.starts.load(), 1);
    EXPECT_EQ(fdev_.start_queues, 1);
    add_requests(3);
    EXPECT_EQ(wait_used(3), 3);
    EXPECT_GE(t_->notifies.load(), 1); // the guest is interrupted through the transport
    // Pause (a memory or ring change): drained, the plugin stopped, the bases handed back.
    dev_->pause();
    EXPECT_EQ(dev_->state(), DeviceState::Paused);
    EXPECT_EQ(fdev_.stops.load(), 1);
    ASSERT_EQ(t_->bases.size(), 1u);
    EXPECT_EQ(t_->bases.back(), std::make_tuple(uint16_t{0}, uint16_t{3}, uint16_t{3}));
    // Nothing is served while paused.
    add_requests(2);
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    EXPECT_FALSE(ring_.take_used().has_value());
    // Resume: described again, started again from the bases, the waiting requests served.
    dev_->resume();
    EXPECT_EQ(dev_->state(), DeviceState::Running);
    EXPECT_EQ(t_->describes, 2);
    EXPECT_EQ(fdev_.starts.load(), 2);
    EXPECT_EQ(wait_used(2), 2);
    dev_->stop_session();
    EXPECT_EQ(dev_->state(), DeviceState::Connected);
    EXPECT_EQ(t_->bases.back(), std::make_tuple(uint16_t{0}, uint16_t{5}, uint16_t{5}));
    EXPECT_EQ(fdev_.handled.load(), 5);
    EXPECT_NE(dev_->stats_json().find("\"requests\":5"), std::string::npos)
        << dev_->stats_json();
    dev_->on_disconnect(7);
    EXPECT_EQ(dev_->state(), DeviceState::Idle);
    EXPECT_EQ(dev_->connection(), -1);
    EXPECT_EQ(fdev_.disconnects.load(), 1);
}

TEST_F(DeviceSession, StopDrainsInFlightRequests) {
    fdev_.hold = true; // async; the plugin's stop() completes them
    dev_->on_connect(1);
    ASSERT_EQ(dev_->start_session(), 0);
    add_requests(4);
    ASSERT_TRUE(wait_for([&] { return fdev_.handled.load() == 4; }));
    EXPECT_FALSE(ring_.take_used().has_value());
    dev_->stop_session();
    EXPECT_EQ(dev_->state(), DeviceState::Connected);
    // The completions were published before the bases went back.
    EXPECT_EQ(wait_used(4), 4);
    EXPECT_EQ(t_->bases.back(), std::make_tuple(uint16_t{0}, uint16_t{4}, uint16_t{4}));
    EXPECT_EQ(dev_->stuck_requests(), 0u);
}

TEST_F(DeviceSession, StuckRequestBreaksTheDeviceUntilItCompletes) {
    fdev_.hold = true;
    fdev_.complete_on_stop = false; // the plugin cannot cancel it
    dev_->on_connect(1);
    ASSERT_EQ(dev_->start_session(), 0);
    add_requests(1);
    ASSERT_TRUE(wait_for([&] { return fdev_.handled.load() == 1; }));
    dev_->stop_session(); // waits teardown_timeout_ms (200) and gives up
    EXPECT_EQ(dev_->state(), DeviceState::Broken);
    EXPECT_EQ(dev_->stuck_requests(), 1u);
    EXPECT_EQ(dev_->start_session(), -1); // no new session while it is stuck
    dev_->on_disconnect(1);
    EXPECT_FALSE(dev_->admit_frontend());
    // The late completion only retires the slot: no used entry, no notification.
    const int notifies = t_->notifies.load();
    fdev_.complete_held();
    EXPECT_TRUE(wait_for([&] { return dev_->admit_frontend(); }));
    EXPECT_EQ(dev_->state(), DeviceState::Idle);
    EXPECT_FALSE(ring_.take_used().has_value());
    EXPECT_EQ(t_->notifies.load(), notifies);
    EXPECT_EQ(fdev_.disconnects.load(), 1); // deferred until the zombies were gone
}

TEST_F(DeviceSession, TransportThatCannotDescribeTheSessionIsNotStarted) {
    t_->fail_memory = true;
    dev_->on_connect(1);
    EXPECT_EQ(dev_->start_session(), -1);
    EXPECT_EQ(dev_->state(), DeviceState::Connected);
    EXPECT_EQ(fdev_.starts.load(), 0);
    t_->fail_memory = false;
    EXPECT_EQ(dev_->start_session(), 0);
    add_requests(1);
    EXPECT_EQ(wait_used(1), 1);
}

} // namespace
} // namespace vdh

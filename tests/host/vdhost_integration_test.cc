// SPDX-License-Identifier: MIT
// Integration tests of the host through the real path: the vdhost binary with the echo
// plugin on temporary sockets, driven by the project's vhost-user frontend library the way
// QEMU drives it. Covers requests (sync, async from another thread, failing, indirect,
// scattered), many in flight, disconnect/reconnect, memory-table change and call-fd flaps
// while running, vring enable flaps, malformed chains that fail one request or break one
// queue without touching another device, idle CPU, SIGTERM with a connected frontend, a
// stuck request whose teardown is abandoned after host.teardown_timeout_ms while the other
// device keeps serving, socket directory and socket permissions, and the daemon's groups.
#include <gtest/gtest.h>

#include <grp.h>
#include <sys/stat.h>

#include <cstring>
#include <fstream>
#include <memory>
#include <vector>

#include "../../plugins/echo/echo_protocol.h"
#include "frontend/device.h"
#include "frontend/guest_memory.h"
#include "frontend/request_helper.h"
#include "vdhost_process.h"

namespace vdh {
namespace {

using frontend::Device;
using frontend::DeviceOptions;
using frontend::GuestMemory;
using frontend::GuestMemoryOptions;
using frontend::RequestHelper;
using frontend::Segment;
using testing::TempDir;
using testing::VdhostProcess;

std::vector<uint8_t> echo_request(uint32_t op, uint32_t arg, const std::string& payload) {
    std::vector<uint8_t> v(sizeof(echo::EchoHeader) + payload.size());
    echo::EchoHeader h{op, arg};
    std::memcpy(v.data(), &h, sizeof(h));
    std::memcpy(v.data() + sizeof(h), payload.data(), payload.size());
    return v;
}

void expect_echo(RequestHelper& rh, const std::string& payload, uint32_t op = echo::kEchoOpEcho,
                 uint32_t arg = 0) {
    auto req = echo_request(op, arg, payload);
    auto r = rh.submit(req, static_cast<uint32_t>(payload.size() + 16));
    ASSERT_TRUE(r.has_value()) << "submit: " << (r ? 0 : r.error());
    ASSERT_EQ(r->used_len, payload.size());
    EXPECT_EQ(std::string(r->data.begin(), r->data.end()), payload);
}

constexpr int kTeardownMs = 1000;

/// Whether \p mem holds \p n consecutive bytes equal to \p b.
bool contains_run(const GuestMemory& mem, uint8_t b, size_t n) {
    for (const frontend::GuestRegion& r : mem.regions()) {
        size_t run = 0;
        for (uint64_t i = 0; i < r.size; ++i) {
            run = r.host[i] == b ? run + 1 : 0;
            if (run >= n) {
                return true;
            }
        }
    }
    return false;
}

class VdhostIntegration : public ::testing::Test {
protected:
    void SetUp() override {
        sock0_ = dir_.file("e0.sock");
        sock1_ = dir_.file("e1.sock");
        ctl_ = dir_.file("ctl.sock");
        std::string yaml = "host:\n  poll_lcores: [1]\n  control_socket: " + ctl_ +
                           "\n  idle_poll_us: 100\n  max_sleep_ms: 100\n"
                           "  teardown_timeout_ms: " + std::to_string(kTeardownMs) + "\n"
                           "devices:\n"
                           "  - name: e0\n    type: echo\n    socket: " + sock0_ + "\n"
                           "  - name: e1\n    type: echo\n    socket: " + sock1_ + "\n";
        ASSERT_TRUE(vdhost_.start(dir_, yaml, {sock0_, sock1_, ctl_})) << vdhost_.log();
    }

    std::unique_ptr<GuestMemory> make_memory(uint32_t regions = 2) {
        GuestMemoryOptions mo;
        mo.size = 16 << 20;
        mo.num_regions = regions;
        mo.region_gap = 1 << 20;
        auto m = GuestMemory::create(mo);
        EXPECT_TRUE(m.has_value());
        return m ? std::move(*m) : nullptr;
    }

    std::unique_ptr<Device> connect(GuestMemory& mem, const std::string& sock,
                                    uint16_t queues = 2, uint64_t features = 0) {
        DeviceOptions o;
        o.socket_path = sock;
        o.num_queues = queues;
        o.queue_size = 64;
        o.wanted_features = features;
        auto d = Device::connect(mem, o);
        EXPECT_TRUE(d.has_value()) << "connect: " << (d ? 0 : d.error());
        if (!d) {
            return nullptr;
        }
        Status s = (*d)->start();
        EXPECT_TRUE(s.has_value()) << "start: " << (s ? 0 : s.error());
        return std::move(*d);
    }

    /// Waits until the stats show device \p name in \p state.
    bool wait_state(const std::string& name, const std::string& state) {
        for (int i = 0; i < 250; ++i) {
            std::string s = testing::vdhost_stats(ctl_);
            auto p = s.find("\"name\":\"" + name + "\"");
            if (p != std::string::npos &&
                s.find("\"state\":\"" + state + "\"", p) == s.find("\"state\":", p)) {
                return true;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        return false;
    }

    /// A new frontend on \p sock (guest RAM \p mem) is served: one echo on queue 1.
    void expect_served(GuestMemory& mem, const std::string& sock, const std::string& payload) {
        auto dev = connect(mem, sock);
        ASSERT_NE(dev, nullptr);
        RequestHelper rh(dev->queue(1));
        expect_echo(rh, payload);
    }

    /// Adds a chain {request, 64 writable bytes} to queue \p q of \p dev and kicks.
    void submit_nowait(GuestMemory& mem, Device& dev, uint16_t q, uint32_t op, uint32_t arg,
                       const std::string& payload = "stuck") {
        auto req = echo_request(op, arg, payload);
        auto in = mem.allocate(req.size());
        auto out = mem.allocate(64);
        ASSERT_TRUE(in && out);
        ASSERT_TRUE(mem.write(*in, req.data(), req.size()).has_value());
        Segment rd = Segment::guest(*in, static_cast<uint32_t>(req.size()));
        Segment wr = Segment::guest(*out, 64);
        ASSERT_TRUE(dev.queue(q).add_chain({&rd, 1}, {&wr, 1}).has_value());
        ASSERT_TRUE(dev.queue(q).kick().has_value());
    }

    /// The stats object of device \p name (from its "name" on).
    std::string device_stats(const std::string& name) {
        std::string s = testing::vdhost_stats(ctl_);
        auto p = s.find("\"name\":\"" + name + "\"");
        return p == std::string::npos ? "" : s.substr(p);
    }

    /// Waits (up to 2 s) until device \p name has no stuck requests left.
    void wait_no_stuck_requests(const std::string& name) {
        for (int i = 0; i < 100 && testing::json_number(device_stats(name), "stuck_requests") != 0;
             ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }

    TempDir dir_;
    VdhostProcess vdhost_;
    std::string sock0_;
    std::string sock1_;
    std::string ctl_;
};

TEST_F(VdhostIntegration, RequestsCompleteSyncAsyncFailingIndirectAndScattered) {
    auto mem = make_memory();
    auto dev = connect(*mem, sock0_, 2, frontend::kFIndirectDesc | frontend::kFEventIdx);
    ASSERT_NE(dev, nullptr);
    ASSERT_TRUE(wait_state("e0", "running"));
    RequestHelper direct(dev->queue(1));
    expect_echo(direct, "hello vdhost");
    expect_echo(direct, "later, from another thread", echo::kEchoOpAsync, 2000);

    RequestHelper::Options io;
    io.indirect = true;
    RequestHelper indirect(dev->queue(1), io);
    expect_echo(indirect, "through an indirect table");

    RequestHelper::Options so;
    so.max_segment = 64;
    RequestHelper scattered(dev->queue(0), so);
    expect_echo(scattered, std::string(1000, 'x') + "end");

    // A failing request comes back with zero bytes written.
    auto req = echo_request(echo::kEchoOpFail, EIO, "");
    auto r = direct.submit(req, 64);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->used_len, 0u);

    std::string stats = testing::vdhost_stats(ctl_);
    EXPECT_EQ(testing::json_number(stats, "requests", stats.find("\"index\":1")), 4) << stats;
    EXPECT_GE(testing::json_number(stats, "async", stats.find("\"index\":1")), 1) << stats;
    EXPECT_EQ(testing::json_number(stats, "errors", stats.find("\"index\":1")), 1) << stats;
}

TEST_F(VdhostIntegration, ManyAsyncRequestsInFlightAtOnce) {
    auto mem = make_memory();
    auto dev = connect(*mem, sock0_, 1, frontend::kFEventIdx | frontend::kFIndirectDesc);
    ASSERT_NE(dev, nullptr);
    auto& vq = dev->queue(0);
    constexpr int kN = 60;
    std::vector<uint64_t> outs;
    for (int i = 0; i < kN; ++i) {
        auto req = echo_request(echo::kEchoOpAsync, 500 + 37 * (kN - i), "r" + std::to_string(i));
        auto in = mem->allocate(req.size());
        auto out = mem->allocate(64);
        ASSERT_TRUE(in && out);
        ASSERT_TRUE(mem->write(*in, req.data(), req.size()).has_value());
        Segment rd = Segment::guest(*in, static_cast<uint32_t>(req.size()));
        Segment wr = Segment::guest(*out, 64);
        ASSERT_TRUE(vq.add_chain({&rd, 1}, {&wr, 1}, /*indirect=*/true).has_value());
        outs.push_back(*out);
    }
    ASSERT_TRUE(vq.kick().has_value());
    size_t done = 0;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (done < kN && std::chrono::steady_clock::now() < deadline) {
        auto used = vq.wait_used(std::chrono::milliseconds(500));
        if (used) {
            for (const auto& u : *used) {
                EXPECT_FALSE(u.unexpected);
                EXPECT_GT(u.len, 1u);
            }
            done += used->size();
        }
    }
    EXPECT_EQ(done, static_cast<size_t>(kN));
}

TEST_F(VdhostIntegration, FrontendDisconnectsAndReconnects) {
    auto mem = make_memory();
    {
        auto dev = connect(*mem, sock0_);
        ASSERT_NE(dev, nullptr);
        RequestHelper rh(dev->queue(1));
        expect_echo(rh, "first session");
        expect_echo(rh, "still first");
        // Orderly stop: GET_VRING_BASE hands back how far the device got.
        auto bases = dev->stop();
        ASSERT_TRUE(bases.has_value());
        EXPECT_EQ((*bases)[1], 2u);
        dev->disconnect();
    }
    ASSERT_TRUE(wait_state("e0", "idle"));
    auto mem2 = make_memory();
    {
        auto dev = connect(*mem2, sock0_);
        ASSERT_NE(dev, nullptr);
        RequestHelper rh(dev->queue(1));
        expect_echo(rh, "second session");
        // Abrupt: close the socket with nothing stopped.
        dev->disconnect();
    }
    ASSERT_TRUE(wait_state("e0", "idle"));
    ASSERT_NO_FATAL_FAILURE(expect_served(*mem, sock0_, "third session"));
    EXPECT_TRUE(vdhost_.alive());
}

TEST_F(VdhostIntegration, MemoryTableChangeAndCallFlapsWhileRunning) {
    auto mem = make_memory(1);
    auto dev = connect(*mem, sock0_);
    ASSERT_NE(dev, nullptr);
    RequestHelper rh(dev->queue(1));
    expect_echo(rh, "before");
    // Hot-add memory, as memory hot-plug does, and use a buffer from the new region.
    ASSERT_TRUE(mem->add_region(64 << 20, 4 << 20).has_value());
    ASSERT_TRUE(dev->update_mem_table().has_value());
    ASSERT_TRUE(mem->reserve(64 << 20, 4096).has_value());
    auto req = echo_request(echo::kEchoOpEcho, 0, "from the new region");
    ASSERT_TRUE(mem->write(64 << 20, req.data(), req.size()).has_value());
    auto out = mem->allocate(64);
    ASSERT_TRUE(out.has_value());
    Segment rd = Segment::guest(64 << 20, static_cast<uint32_t>(req.size()));
    Segment wr = Segment::guest(*out, 64);
    ASSERT_TRUE(dev->queue(1).add_chain({&rd, 1}, {&wr, 1}).has_value());
    ASSERT_TRUE(dev->queue(1).kick().has_value());
    auto used = dev->queue(1).wait_used(std::chrono::seconds(5));
    ASSERT_TRUE(used.has_value());
    ASSERT_EQ(used->size(), 1u);
    EXPECT_EQ((*used)[0].len, 19u);
    char back[32] = {0};
    ASSERT_TRUE(mem->read(*out, back, 19).has_value());
    EXPECT_EQ(std::string(back), "from the new region");

    // QEMU re-sends SET_VRING_CALL on running queues; interrupts must keep coming.
    ASSERT_TRUE(dev->flap_vring_call(1).has_value());
    expect_echo(rh, "after a call flap");
    // SET_VRING_ENABLE 0/1 on a running queue.
    ASSERT_TRUE(dev->connection().set_vring_enable(1, false).has_value());
    ASSERT_TRUE(dev->connection().set_vring_enable(1, true).has_value());
    expect_echo(rh, "after an enable flap");
    std::string stats = testing::vdhost_stats(ctl_);
    EXPECT_GE(testing::json_number(stats, "pauses"), 1) << stats;
}

TEST_F(VdhostIntegration, MalformedChainsFailOneRequestOrOneQueueOnly) {
    auto mem = make_memory();
    auto dev0 = connect(*mem, sock0_);
    auto mem1 = make_memory();
    auto dev1 = connect(*mem1, sock1_);
    ASSERT_NE(dev0, nullptr);
    ASSERT_NE(dev1, nullptr);
    auto& vq = dev0->queue(1);

    // A descriptor pointing outside guest memory: that request fails (len 0).
    auto ids = vq.reserve_descs(1);
    ASSERT_TRUE(ids.has_value());
    frontend::VringDesc bad{};
    bad.addr = 1ULL << 40;
    bad.len = 64;
    bad.flags = 0;
    vq.write_desc((*ids)[0], bad);
    vq.publish_raw_head((*ids)[0]);
    ASSERT_TRUE(vq.force_kick().has_value());
    auto used = vq.wait_used(std::chrono::seconds(5));
    ASSERT_TRUE(used.has_value());
    ASSERT_EQ(used->size(), 1u);
    EXPECT_EQ((*used)[0].id, (*ids)[0]);
    EXPECT_EQ((*used)[0].len, 0u);

    // A descriptor loop: also just that request.
    auto loop = vq.reserve_descs(2);
    ASSERT_TRUE(loop.has_value());
    auto buf = mem->allocate(64);
    ASSERT_TRUE(buf.has_value());
    frontend::VringDesc a{*buf, 16, 1 /*NEXT*/, (*loop)[1]};
    frontend::VringDesc b{*buf, 16, 1 /*NEXT*/, (*loop)[0]};
    vq.write_desc((*loop)[0], a);
    vq.write_desc((*loop)[1], b);
    vq.publish_raw_head((*loop)[0]);
    ASSERT_TRUE(vq.force_kick().has_value());
    used = vq.wait_used(std::chrono::seconds(5));
    ASSERT_TRUE(used.has_value());
    ASSERT_EQ(used->size(), 1u);
    EXPECT_EQ((*used)[0].len, 0u);

    // The queue still works.
    RequestHelper rh(vq);
    expect_echo(rh, "still alive");

    // A head index beyond the ring: the ring is corrupt, that queue stops...
    vq.publish_raw_head(1000);
    ASSERT_TRUE(vq.force_kick().has_value());
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    std::string stats = testing::vdhost_stats(ctl_);
    auto e0 = stats.find("\"name\":\"e0\"");
    EXPECT_EQ(testing::json_number(stats, "broken", stats.find("\"index\":1", e0)), 1) << stats;
    EXPECT_GE(testing::json_number(stats, "bad_chains", stats.find("\"index\":1", e0)), 2);
    // ...but the other queue of that device and the other device go on.
    RequestHelper other_queue(dev0->queue(0));
    expect_echo(other_queue, "queue 0 unaffected");
    RequestHelper other_dev(dev1->queue(1));
    expect_echo(other_dev, "device e1 unaffected");
    EXPECT_TRUE(vdhost_.alive());
}

TEST_F(VdhostIntegration, IdleHostSleepsInsteadOfSpinning) {
    auto mem = make_memory();
    auto dev = connect(*mem, sock0_);
    ASSERT_NE(dev, nullptr);
    RequestHelper rh(dev->queue(1));
    for (int i = 0; i < 50; ++i) {
        expect_echo(rh, "load " + std::to_string(i));
    }
    // Let the lcore notice the idleness, then measure one second of CPU time.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    long before = vdhost_.cpu_ticks();
    std::this_thread::sleep_for(std::chrono::seconds(2));
    long after = vdhost_.cpu_ticks();
    long hz = sysconf(_SC_CLK_TCK);
    // A spinning lcore would burn ~2 s (2 * hz ticks); asleep it is a few ticks at most.
    EXPECT_LT(after - before, hz / 10) << "vdhost used " << (after - before) << " ticks in 2 s";
    // And it wakes up on a kick.
    expect_echo(rh, "after sleeping");
}

TEST_F(VdhostIntegration, SigtermWithConnectedFrontendExitsZeroAndRemovesSockets) {
    auto mem = make_memory();
    auto dev = connect(*mem, sock0_);
    ASSERT_NE(dev, nullptr);
    RequestHelper rh(dev->queue(1));
    expect_echo(rh, "before the signal");
    // Leave an async request in flight.
    ASSERT_NO_FATAL_FAILURE(
        submit_nowait(*mem, *dev, 1, echo::kEchoOpAsync, 3000000, "never mind"));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_EQ(vdhost_.stop(SIGTERM), 0) << vdhost_.log();
    struct stat st;
    EXPECT_NE(stat(sock0_.c_str(), &st), 0);
    EXPECT_NE(stat(sock1_.c_str(), &st), 0);
    EXPECT_NE(stat(ctl_.c_str(), &st), 0);
    EXPECT_NE(vdhost_.log().find("shutting down"), std::string::npos);
}

TEST_F(VdhostIntegration, StuckRequestIsAbandonedAtTheDeadlineAndOtherDevicesKeepServing) {
    auto mem0 = make_memory();
    auto dev0 = connect(*mem0, sock0_);
    ASSERT_NE(dev0, nullptr);
    RequestHelper rh0(dev0->queue(1));
    expect_echo(rh0, "before");
    // A request that never completes on its own; on release it writes its buffer.
    submit_nowait(*mem0, *dev0, 1, echo::kEchoOpHold, 0x5a);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    std::string before = device_stats("e0");
    EXPECT_EQ(testing::json_number(before, "inflight", before.find("\"index\":1")), 1) << before;

    // The frontend goes away with the request in flight: the event thread waits for it at
    // most teardown_timeout_ms, then e1 (same lcore) connects and serves.
    auto t0 = std::chrono::steady_clock::now();
    dev0->disconnect();
    auto mem1 = make_memory();
    auto dev1 = connect(*mem1, sock1_);
    ASSERT_NE(dev1, nullptr);
    RequestHelper rh1(dev1->queue(1));
    expect_echo(rh1, "e1 serves");
    auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_LT(took, std::chrono::milliseconds(kTeardownMs + 3000))
        << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms";

    ASSERT_TRUE(wait_state("e0", "broken")) << testing::vdhost_stats(ctl_);
    std::string st = device_stats("e0");
    EXPECT_EQ(testing::json_number(st, "stuck_requests"), 1) << st;
    EXPECT_EQ(testing::json_number(st, "abandoned_requests"), 1) << st;
    // A new frontend on the broken device is refused while the request is stuck.
    {
        auto mem = make_memory();
        DeviceOptions o;
        o.socket_path = sock0_;
        o.num_queues = 2;
        o.queue_size = 64;
        o.connect_timeout = std::chrono::milliseconds(2000);
        o.reply_timeout = std::chrono::milliseconds(2000);
        auto d = Device::connect(*mem, o);
        bool started = d.has_value() && (*d)->start().has_value();
        EXPECT_FALSE(started) << "a frontend was accepted by a broken device";
    }
    // e1 still serves; then it releases the stuck request. The late completion writes into
    // guest memory rte_vhost has since unmapped (kept reserved) and touches no ring.
    expect_echo(rh1, "e1 still serves");
    auto rel = echo_request(echo::kEchoOpRelease, 0, "");
    auto r = rh1.submit(rel, 16);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->used_len, 0u);
    wait_no_stuck_requests("e0");
    st = device_stats("e0");
    EXPECT_EQ(testing::json_number(st, "stuck_requests"), 0) << st;
    // The late write (64 bytes of 0x5a) must not land in memory mapped since, such as
    // e1's guest RAM, which may have been given the addresses e0's RAM had.
    EXPECT_FALSE(contains_run(*mem1, 0x5a, 64)) << "a stuck request wrote into e1's memory";
    EXPECT_EQ(testing::json_number(st, "late_completions", st.find("\"index\":1")), 1) << st;
    ASSERT_TRUE(vdhost_.alive()) << vdhost_.log();

    // Recovered: the next frontend is accepted and served.
    auto mem2 = make_memory();
    auto dev2 = connect(*mem2, sock0_);
    ASSERT_NE(dev2, nullptr);
    RequestHelper rh2(dev2->queue(1));
    expect_echo(rh2, "e0 recovered");
    ASSERT_TRUE(wait_state("e0", "running"));
    std::string log = vdhost_.log();
    auto first = log.find("abandoned them");
    EXPECT_NE(first, std::string::npos) << log;
    EXPECT_EQ(log.find("abandoned them", first + 1), std::string::npos) << "logged twice";
    EXPECT_NE(log.find("device recovered"), std::string::npos);
}

TEST_F(VdhostIntegration, RingStopWithAStuckRequestAnswersAtTheDeadline) {
    auto mem0 = make_memory();
    auto dev0 = connect(*mem0, sock0_);
    ASSERT_NE(dev0, nullptr);
    submit_nowait(*mem0, *dev0, 1, echo::kEchoOpHold, 0x33);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    // A guest reset stops the rings (GET_VRING_BASE) without disconnecting: the answer
    // comes at the deadline instead of never.
    auto t0 = std::chrono::steady_clock::now();
    auto bases = dev0->stop();
    ASSERT_TRUE(bases.has_value()) << "GET_VRING_BASE: " << (bases ? 0 : bases.error());
    EXPECT_LT(std::chrono::steady_clock::now() - t0,
              std::chrono::milliseconds(kTeardownMs + 2000));
    ASSERT_TRUE(wait_state("e0", "broken")) << testing::vdhost_stats(ctl_);

    auto mem1 = make_memory();
    auto dev1 = connect(*mem1, sock1_);
    ASSERT_NE(dev1, nullptr);
    RequestHelper rh1(dev1->queue(1));
    auto rel = echo_request(echo::kEchoOpRelease, 0, "");
    ASSERT_TRUE(rh1.submit(rel, 16).has_value());
    wait_no_stuck_requests("e0");
    EXPECT_EQ(testing::json_number(device_stats("e0"), "stuck_requests"), 0);
    // (The frontend library cannot restart rings on a stopped connection; a new one is
    // served.)
    dev0->disconnect();
    ASSERT_TRUE(wait_state("e0", "broken") || wait_state("e0", "idle"));
    auto mem2 = make_memory();
    ASSERT_NO_FATAL_FAILURE(expect_served(*mem2, sock0_, "after the reset"));
    EXPECT_TRUE(vdhost_.alive());
}

TEST_F(VdhostIntegration, SigtermWithAStuckRequestExitsZeroWithinFiveSeconds) {
    auto mem0 = make_memory();
    auto dev0 = connect(*mem0, sock0_);
    auto mem1 = make_memory();
    auto dev1 = connect(*mem1, sock1_);
    ASSERT_NE(dev0, nullptr);
    ASSERT_NE(dev1, nullptr);
    submit_nowait(*mem0, *dev0, 1, echo::kEchoOpHold, 0);
    RequestHelper rh1(dev1->queue(1));
    expect_echo(rh1, "attached");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(vdhost_.stop(SIGTERM, std::chrono::seconds(5)), 0) << vdhost_.log();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
    struct stat st;
    EXPECT_NE(stat(sock0_.c_str(), &st), 0);
    EXPECT_NE(stat(sock1_.c_str(), &st), 0);
    EXPECT_NE(stat(ctl_.c_str(), &st), 0);
    EXPECT_NE(vdhost_.log().find("stuck requests at shutdown"), std::string::npos)
        << vdhost_.log();
}

TEST_F(VdhostIntegration, SocketsAre0600WhateverTheUmask) {
    struct stat st {};
    ASSERT_EQ(lstat(sock0_.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    ASSERT_EQ(lstat(ctl_.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST(VdhostCredentials, SupplementaryGroupsAreDroppedAtStart) {
    if (geteuid() != 0) {
        GTEST_SKIP() << "needs root to start vdhost with supplementary groups";
    }
    TempDir dir;
    std::string sock = dir.file("e0.sock");
    VdhostProcess v;
    // Started with groups and a permissive umask, as from a careless service manager.
    v.set_child_setup([] {
        gid_t groups[] = {4242, 4343};
        setgroups(2, groups);
        umask(0);
    });
    ASSERT_TRUE(v.start(dir, "host:\n  poll_lcores: [1]\ndevices:\n  - name: e0\n    type: echo\n"
                             "    socket: " + sock + "\n",
                        {sock}))
        << v.log();
    std::string status = testing::read_file("/proc/" + std::to_string(v.pid()) + "/status");
    auto g = status.find("\nGroups:");
    ASSERT_NE(g, std::string::npos) << status;
    auto eol = status.find('\n', g + 1);
    std::string line = status.substr(g + 8, eol - g - 8);
    EXPECT_EQ(line.find_first_not_of(" \t"), std::string::npos) << "Groups:" << line;
    struct stat st {};
    ASSERT_EQ(lstat(sock.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u) << "umask 0 leaked into the socket mode";
    EXPECT_EQ(v.stop(SIGTERM), 0) << v.log();
}

// ---- vdhost without the fixture: socket directories, socket access, fd budgets ----------

/// Runs vdhost on \p yaml in \p dir (as VdhostProcess does) until it exits, at most 20 s.
/// Returns the exit status; the output is in \p out.
int run_vdhost_to_exit(const TempDir& dir, const std::string& yaml, std::string* out,
                       const std::vector<std::string>& extra = {}) {
    std::string cfg = dir.file("run.yaml");
    std::ofstream(cfg) << yaml;
    std::string cmd = std::string("timeout 20 ") + VDHOST_PATH + " --config " + cfg +
                      " --plugin-dir " + PLUGIN_BUILD_DIR;
    for (const auto& e : extra) {
        cmd += " " + e;
    }
    return testing::run_command(cmd + " 2>&1", out);
}

std::string echo_device_yaml(const std::string& socket, const std::string& extra = "") {
    return "host:\n  poll_lcores: [1]\ndevices:\n  - name: e0\n    type: echo\n    socket: " +
           socket + "\n" + extra;
}

TEST(VdhostSockets, RefusesAWorldWritableSocketDirectory) {
    TempDir dir;
    std::string sd = dir.file("open");
    ASSERT_EQ(mkdir(sd.c_str(), 0700), 0);
    ASSERT_EQ(chmod(sd.c_str(), 0777), 0);
    std::string out;
    EXPECT_EQ(run_vdhost_to_exit(dir, echo_device_yaml(sd + "/e0.sock"), &out), 1) << out;
    EXPECT_NE(out.find("socket directory " + sd + " has mode 0777: writable by group or others"),
              std::string::npos)
        << out;
    struct stat st;
    EXPECT_NE(stat((sd + "/e0.sock").c_str(), &st), 0) << "a socket was created anyway";
}

TEST(VdhostSockets, RefusesASocketDirectoryOwnedBySomeoneElse) {
    if (geteuid() != 0) {
        GTEST_SKIP() << "needs root to give the directory away";
    }
    TempDir dir;
    std::string sd = dir.file("theirs");
    ASSERT_EQ(mkdir(sd.c_str(), 0755), 0);
    ASSERT_EQ(chown(sd.c_str(), 65534, 65534), 0);
    std::string out;
    EXPECT_EQ(run_vdhost_to_exit(dir, echo_device_yaml(sd + "/e0.sock"), &out), 1) << out;
    EXPECT_NE(out.find("socket directory " + sd + " is owned by uid 65534"), std::string::npos)
        << out;
}

TEST(VdhostSockets, CreatesTheDirectory0700AndAppliesSocketModeAndGroup) {
    TempDir dir;
    std::string sd = dir.file("run/vdhost");
    std::string sock = sd + "/e0.sock";
    VdhostProcess v;
    std::string access = "    socket_mode: 0660\n    socket_group: 4242\n";
    ASSERT_TRUE(v.start(dir, echo_device_yaml(sock, access), {sock}))
        << v.log();
    struct stat st {};
    ASSERT_EQ(lstat(sd.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0710u) << "the socket group may traverse, not list";
    ASSERT_EQ(lstat(sock.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0660u);
    if (geteuid() == 0) {
        EXPECT_EQ(st.st_gid, 4242u);
    }
    EXPECT_EQ(v.stop(SIGTERM), 0) << v.log();
}

TEST(VdhostFds, EchoReservationBeyondTheHardLimitIsRefused) {
    // Lowered limits and no CAP_SYS_RESOURCE (so the hard limit is final), applied in the
    // shell that execs vdhost.
    TempDir dir;
    std::string sock = dir.file("e0.sock");
    std::string yaml = echo_device_yaml(sock, "    config: {fds: 5000}\n");
    std::string cfg = dir.file("fds.yaml");
    std::ofstream(cfg) << yaml;
    std::string out;
    EXPECT_EQ(testing::vdhost_check_config(cfg, &out, "1024:2048"), 1) << out;
    EXPECT_NE(out.find("device e0: cannot reserve 5000 fds: the process fd limit (RLIMIT_NOFILE) "
                       "is 2048, the host reserves"),
              std::string::npos)
        << out;
}

TEST(VdhostCli, CheckConfigReportsPositionAndKey) {
    TempDir dir;
    std::string cfg = dir.file("bad.yaml");
    std::ofstream(cfg) << "host:\n  poll_lcores: [1]\ndevices:\n  - name: e0\n    type: echo\n"
                          "    socket: /tmp/x.sock\n    colour: red\n";
    std::string out;
    EXPECT_EQ(testing::vdhost_check_config(cfg, &out), 1);
    EXPECT_NE(out.find(cfg + ":7:5: devices[0].colour: unknown key"), std::string::npos) << out;
}

TEST(VdhostCli, MissingPluginIsAnErrorAtTheTypeKey) {
    TempDir dir;
    std::string cfg = dir.file("noplugin.yaml");
    std::ofstream(cfg) << "devices:\n  - name: d0\n    type: nosuchdev\n    socket: /tmp/y.sock\n";
    std::string out;
    EXPECT_EQ(testing::vdhost_check_config(cfg, &out), 1);
    EXPECT_NE(out.find(cfg + ":3:11: devices[0].type: no plugin \"nosuchdev\""), std::string::npos)
        << out;
}

} // namespace
} // namespace vdh

// SPDX-License-Identifier: MIT
// Integration tests of the host through the real path: the vdhost binary with the echo
// plugin on temporary sockets, driven by the project's vhost-user frontend library the way
// QEMU drives it. Covers requests (sync, async from another thread, failing, indirect,
// scattered), many in flight, disconnect/reconnect, memory-table change and call-fd flaps
// while running, vring enable flaps, malformed chains that fail one request or break one
// queue without touching another device, idle CPU, and SIGTERM with a connected frontend.
#include <gtest/gtest.h>

#include <cstring>
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

class VdhostIntegration : public ::testing::Test {
protected:
    void SetUp() override {
        sock0_ = dir_.file("e0.sock");
        sock1_ = dir_.file("e1.sock");
        ctl_ = dir_.file("ctl.sock");
        std::string yaml = "host:\n  poll_lcores: [1]\n  control_socket: " + ctl_ +
                           "\n  idle_poll_us: 100\n  max_sleep_ms: 100\n"
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

    TempDir dir_;
    VdhostProcess vdhost_;
    std::string sock0_;
    std::string sock1_;
    std::string ctl_;
};

void expect_echo(RequestHelper& rh, const std::string& payload, uint32_t op = echo::kEchoOpEcho,
                 uint32_t arg = 0) {
    auto req = echo_request(op, arg, payload);
    auto r = rh.submit(req, static_cast<uint32_t>(payload.size() + 16));
    ASSERT_TRUE(r.has_value()) << "submit: " << (r ? 0 : r.error());
    ASSERT_EQ(r->used_len, payload.size());
    EXPECT_EQ(std::string(r->data.begin(), r->data.end()), payload);
}

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
    auto dev = connect(*mem, sock0_);
    ASSERT_NE(dev, nullptr);
    RequestHelper rh(dev->queue(1));
    expect_echo(rh, "third session");
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
    auto req = echo_request(echo::kEchoOpAsync, 3000000, "never mind");
    auto in = mem->allocate(req.size());
    auto out = mem->allocate(64);
    ASSERT_TRUE(in && out);
    ASSERT_TRUE(mem->write(*in, req.data(), req.size()).has_value());
    Segment rd = Segment::guest(*in, static_cast<uint32_t>(req.size()));
    Segment wr = Segment::guest(*out, 64);
    ASSERT_TRUE(dev->queue(1).add_chain({&rd, 1}, {&wr, 1}).has_value());
    ASSERT_TRUE(dev->queue(1).kick().has_value());
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_EQ(vdhost_.stop(SIGTERM), 0) << vdhost_.log();
    struct stat st;
    EXPECT_NE(stat(sock0_.c_str(), &st), 0);
    EXPECT_NE(stat(sock1_.c_str(), &st), 0);
    EXPECT_NE(stat(ctl_.c_str(), &st), 0);
    EXPECT_NE(vdhost_.log().find("shutting down"), std::string::npos);
}

TEST(VdhostCli, CheckConfigReportsPositionAndKey) {
    TempDir dir;
    std::string cfg = dir.file("bad.yaml");
    std::ofstream(cfg) << "host:\n  poll_lcores: [1]\ndevices:\n  - name: e0\n    type: echo\n"
                          "    socket: /tmp/x.sock\n    colour: red\n";
    std::string cmd = std::string(VDHOST_PATH) + " --check-config " + cfg + " --plugin-dir " +
                      PLUGIN_BUILD_DIR + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    char buf[1024] = {0};
    size_t n = fread(buf, 1, sizeof(buf) - 1, p);
    int rc = pclose(p);
    std::string out(buf, n);
    EXPECT_EQ(WEXITSTATUS(rc), 1);
    EXPECT_NE(out.find(cfg + ":7:5: devices[0].colour: unknown key"), std::string::npos) << out;
}

TEST(VdhostCli, MissingPluginIsAnErrorAtTheTypeKey) {
    TempDir dir;
    std::string cfg = dir.file("noplugin.yaml");
    std::ofstream(cfg) << "devices:\n  - name: d0\n    type: nosuchdev\n    socket: /tmp/y.sock\n";
    std::string cmd = std::string(VDHOST_PATH) + " --check-config " + cfg + " --plugin-dir " +
                      PLUGIN_BUILD_DIR + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    char buf[1024] = {0};
    size_t n = fread(buf, 1, sizeof(buf) - 1, p);
    int rc = pclose(p);
    std::string out(buf, n);
    EXPECT_EQ(WEXITSTATUS(rc), 1);
    EXPECT_NE(out.find(cfg + ":3:11: devices[0].type: no plugin \"nosuchdev\""), std::string::npos)
        << out;
}

} // namespace
} // namespace vdh

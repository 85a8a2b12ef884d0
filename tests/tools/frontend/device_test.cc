// SPDX-License-Identifier: MIT
// End-to-end tests of Device and RequestHelper against FakeBackend (an independent backend
// that maps our memfds and translates our ring VAs): QEMU-like message order and flags,
// negotiation, requests on every queue (direct, indirect, segmented, multi-region memory,
// with and without EVENT_IDX), stop, call-fd flapping, mem-table updates, reconnects, and
// backends that lack features, queues, or answers.
#include "frontend/device.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>

#include "fake_backend.h"
#include "frontend/request_helper.h"

namespace vdh::frontend {
namespace {

using namespace std::chrono_literals;
using namespace vdh::frontend::testing;

constexpr uint32_t R(Request r) { return static_cast<uint32_t>(r); }

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; i++) {
        v[i] = static_cast<uint8_t>(seed + i * 7);
    }
    return v;
}

std::vector<uint8_t> inverted(std::vector<uint8_t> v) {
    for (auto& b : v) {
        b = static_cast<uint8_t>(~b);
    }
    return v;
}

class DeviceTest : public ::testing::Test {
protected:
    void SetUp() override {
        fds_at_start_ = count_open_fds();
        auto m = GuestMemory::create({.base_gpa = 0, .size = 4 << 20, .num_regions = 2,
                                      .region_gap = 0x100000});
        ASSERT_TRUE(m);
        mem_ = std::move(*m);
    }

    void TearDown() override {
        mem_.reset();
        EXPECT_EQ(count_open_fds(), fds_at_start_) << "fd leak";
    }

    DeviceOptions options(uint16_t queues) {
        DeviceOptions o;
        o.socket_path = path_;
        o.num_queues = queues;
        o.queue_size = 64;
        o.wanted_features = kFIndirectDesc | kFEventIdx;
        o.connect_timeout = 2000ms;
        o.reply_timeout = 2000ms;
        return o;
    }

    std::unique_ptr<Device> connect_and_start(const DeviceOptions& o) {
        auto dev = Device::connect(*mem_, o);
        EXPECT_TRUE(dev) << (dev ? 0 : dev.error());
        if (!dev) {
            return nullptr;
        }
        auto st = (*dev)->start();
        EXPECT_TRUE(st) << (st ? 0 : st.error());
        return std::move(*dev);
    }

    /// One echo request on `q`; checks the reply bytes.
    void round_trip(Device& dev, uint16_t q, size_t len, RequestHelper::Options ro = {}) {
        RequestHelper helper(dev.queue(q), ro);
        auto req = pattern(len, static_cast<uint8_t>(q * 31 + len));
        auto reply = helper.submit(req, static_cast<uint32_t>(len + 16));
        ASSERT_TRUE(reply) << "queue " << q << ": " << reply.error();
        EXPECT_EQ(reply->used_len, len);
        EXPECT_EQ(reply->data, inverted(req));
    }

    TempDir dir_;
    std::string path_ = dir_.file("device.sock");
    std::unique_ptr<GuestMemory> mem_;
    int fds_at_start_ = 0;
};

TEST_F(DeviceTest, StartFollowsQemuOrderAndNegotiates) {
    FakeBackend backend(path_, {});
    auto dev = connect_and_start(options(2));
    ASSERT_TRUE(dev);
    ASSERT_TRUE(FakeBackend::eventually([&] { return backend.all_rings_ready(); }));
    std::vector<uint32_t> expected = {
        R(Request::GetFeatures),  R(Request::GetProtocolFeatures), R(Request::SetProtocolFeatures),
        R(Request::GetQueueNum),  R(Request::SetOwner),            R(Request::SetVringCall),
        R(Request::SetVringCall), R(Request::SetFeatures),         R(Request::SetMemTable),
    };
    for (int q = 0; q < 2; q++) {
        for (Request r : {Request::SetVringNum, Request::SetVringBase, Request::SetVringAddr,
                          Request::SetVringKick}) {
            expected.push_back(R(r));
        }
    }
    expected.push_back(R(Request::SetVringEnable));
    expected.push_back(R(Request::SetVringEnable));
    EXPECT_EQ(backend.requests(), expected);
    EXPECT_EQ(backend.error(), "");

    // REPLY_ACK negotiated: every request without its own reply asked for an ack, after
    // SET_PROTOCOL_FEATURES; the GET_* requests did not.
    bool after_proto = false;
    for (const LoggedRequest& r : backend.log()) {
        bool is_get = r.request == R(Request::GetFeatures) ||
                      r.request == R(Request::GetProtocolFeatures) ||
                      r.request == R(Request::GetQueueNum);
        uint32_t want = (after_proto && !is_get) ? (kVersion | kFlagNeedReply) : kVersion;
        EXPECT_EQ(r.flags, want) << request_name(r.request);
        after_proto = after_proto || r.request == R(Request::SetProtocolFeatures);
    }
    EXPECT_EQ(dev->features(), kFVersion1 | kFIndirectDesc | kFEventIdx | kFProtocolFeatures);
    EXPECT_EQ(backend.acked_features(), dev->features());
    EXPECT_EQ(dev->protocol_features(), kPfMq | kPfReplyAck); // not BACKEND_REQ
    EXPECT_EQ(backend.acked_protocol_features(), dev->protocol_features());
    EXPECT_EQ(dev->max_queues(), 8u);
    EXPECT_EQ(dev->state(), Device::State::Running);
    EXPECT_TRUE(dev->queue(0).event_idx());
    EXPECT_EQ(backend.mapped_regions(), 2u);
}

TEST_F(DeviceTest, RequestsRoundTripOnEveryQueue) {
    FakeBackend backend(path_, {});
    auto dev = connect_and_start(options(3));
    ASSERT_TRUE(dev);
    for (uint16_t q = 0; q < 3; q++) {
        for (int i = 0; i < 5; i++) {
            round_trip(*dev, q, 1 + 100 * i);
        }
    }
    round_trip(*dev, 1, 3000, {.indirect = true});
    round_trip(*dev, 2, 3000, {.max_segment = 256});
    round_trip(*dev, 2, 3000, {.indirect = true, .max_segment = 100});
    EXPECT_EQ(backend.served(0), 5u);
    EXPECT_EQ(backend.served(1), 6u);
    EXPECT_EQ(backend.served(2), 7u);
    EXPECT_EQ(backend.error(), "");
    // Completions were signalled through the call eventfds (EVENT_IDX path).
    EXPECT_GE(backend.signals(1), 1u);
}

TEST_F(DeviceTest, WorksWithoutEventIdxAndWithZeroLengthReplies) {
    FakeBackend backend(path_, {});
    auto o = options(1);
    o.wanted_features = kFIndirectDesc;
    auto dev = connect_and_start(o);
    ASSERT_TRUE(dev);
    EXPECT_EQ(dev->features() & kFEventIdx, 0u);
    EXPECT_FALSE(dev->queue(0).event_idx());
    for (int i = 0; i < 70; i++) { // more than the queue size
        round_trip(*dev, 0, 64);
    }
    RequestHelper helper(dev->queue(0));
    auto only_in = helper.submit(pattern(10, 1), 0);
    ASSERT_TRUE(only_in);
    EXPECT_EQ(only_in->used_len, 0u);
    EXPECT_TRUE(only_in->data.empty());
    EXPECT_EQ(backend.error(), "");
}

TEST_F(DeviceTest, BuffersInEveryRegionIncludingSingleFdLayout) {
    auto m = GuestMemory::create({.base_gpa = 0x100000, .size = 8 * 65536, .num_regions = 8,
                                  .single_fd = true});
    ASSERT_TRUE(m);
    mem_ = std::move(*m);
    FakeBackend backend(path_, {});
    auto dev = connect_and_start(options(1));
    ASSERT_TRUE(dev);
    SplitVirtqueue& vq = dev->queue(0);
    // One chain per region, and one whose readable buffer straddles a region boundary
    // (two descriptors, since no host pointer spans it).
    for (const GuestRegion& r : mem_->regions()) {
        uint64_t in = r.gpa + r.size - 512;
        uint64_t out = r.gpa + r.size - 256;
        if (!mem_->reserve(in, 512)) {
            continue; // the rings live here
        }
        auto data = pattern(200, static_cast<uint8_t>(r.gpa >> 16));
        ASSERT_TRUE(mem_->write(in, data.data(), data.size()));
        Segment rd[] = {Segment::guest(in, 200)};
        Segment wr[] = {Segment::guest(out, 256)};
        auto head = vq.add_chain(rd, wr);
        ASSERT_TRUE(head);
        ASSERT_TRUE(vq.kick());
        auto used = vq.wait_used(2000ms);
        ASSERT_TRUE(used) << used.error();
        ASSERT_EQ(used->size(), 1u);
        EXPECT_EQ((*used)[0].id, *head);
        EXPECT_EQ((*used)[0].len, 200u);
        std::vector<uint8_t> got(200);
        ASSERT_TRUE(mem_->read(out, got.data(), got.size()));
        EXPECT_EQ(got, inverted(data));
        ASSERT_TRUE(mem_->free(in));
    }
    uint64_t boundary = mem_->regions()[5].gpa;
    ASSERT_TRUE(mem_->reserve(boundary - 64, 128));
    auto data = pattern(128, 9);
    ASSERT_TRUE(mem_->write(boundary - 64, data.data(), data.size()));
    auto out = mem_->allocate(128);
    ASSERT_TRUE(out);
    Segment rd[] = {Segment::guest(boundary - 64, 64), Segment::guest(boundary, 64)};
    Segment wr[] = {Segment::guest(*out, 128)};
    ASSERT_TRUE(vq.add_chain(rd, wr));
    ASSERT_TRUE(vq.kick());
    auto used = vq.wait_used(2000ms);
    ASSERT_TRUE(used);
    EXPECT_EQ((*used)[0].len, 128u);
    std::vector<uint8_t> got(128);
    ASSERT_TRUE(mem_->read(*out, got.data(), got.size()));
    EXPECT_EQ(got, inverted(data));
    EXPECT_EQ(backend.error(), "");
}

TEST_F(DeviceTest, StopReturnsLastAvailIndexes) {
    FakeBackend backend(path_, {});
    auto dev = connect_and_start(options(2));
    ASSERT_TRUE(dev);
    for (int i = 0; i < 7; i++) {
        round_trip(*dev, 1, 32);
    }
    auto bases = dev->stop();
    ASSERT_TRUE(bases) << bases.error();
    EXPECT_EQ(*bases, (std::vector<uint32_t>{0, 7}));
    EXPECT_EQ(dev->state(), Device::State::Stopped);
    auto reqs = backend.requests();
    ASSERT_GE(reqs.size(), 4u);
    EXPECT_EQ(std::vector<uint32_t>(reqs.end() - 4, reqs.end()),
              (std::vector<uint32_t>{R(Request::SetVringEnable), R(Request::SetVringEnable),
                                     R(Request::GetVringBase), R(Request::GetVringBase)}));
    EXPECT_EQ(dev->stop().error(), EINVAL);
    EXPECT_EQ(dev->start().error(), EINVAL);
}

TEST_F(DeviceTest, FlapVringCallKeepsCompletionsFlowing) {
    FakeBackend backend(path_, {});
    auto dev = connect_and_start(options(2));
    ASSERT_TRUE(dev);
    round_trip(*dev, 1, 16);
    int old_call = dev->queue(1).call_fd();
    ASSERT_TRUE(dev->flap_vring_call(1));
    EXPECT_NE(dev->queue(1).call_fd(), old_call);
    auto log = backend.log();
    EXPECT_EQ(log.back().request, R(Request::SetVringCall));
    EXPECT_EQ(log.back().nfds, 1u);
    // The next completion must be signalled on the NEW call fd.
    SplitVirtqueue& vq = dev->queue(1);
    auto buf = mem_->allocate(64);
    ASSERT_TRUE(buf);
    Segment wr[] = {Segment::guest(*buf, 64)};
    ASSERT_TRUE(vq.add_chain(wr, wr));
    ASSERT_TRUE(vq.kick());
    ASSERT_TRUE(FakeBackend::eventually([&] { return backend.served(1) == 2; }));
    EXPECT_EQ(drain_eventfd(vq.call_fd()), 1u);
    EXPECT_EQ(vq.poll_used().size(), 1u);
    ASSERT_TRUE(mem_->free(*buf));
    for (int i = 0; i < 3; i++) {
        round_trip(*dev, 1, 16);
    }
    EXPECT_EQ(dev->flap_vring_call(5).error(), EINVAL);
}

TEST_F(DeviceTest, UpdateMemTableAfterAddingARegion) {
    FakeBackend backend(path_, {});
    auto dev = connect_and_start(options(1));
    ASSERT_TRUE(dev);
    round_trip(*dev, 0, 100);
    ASSERT_TRUE(mem_->add_region(0x40000000, 65536));
    ASSERT_TRUE(dev->update_mem_table());
    EXPECT_EQ(backend.mapped_regions(), 3u);
    // Rings stayed where they were; a buffer in the new region works.
    uint64_t in = 0x40000000;
    uint64_t out = 0x40000000 + 4096;
    ASSERT_TRUE(mem_->reserve(in, 8192));
    auto data = pattern(300, 3);
    ASSERT_TRUE(mem_->write(in, data.data(), data.size()));
    Segment rd[] = {Segment::guest(in, 300)};
    Segment wr[] = {Segment::guest(out, 300)};
    ASSERT_TRUE(dev->queue(0).add_chain(rd, wr));
    ASSERT_TRUE(dev->queue(0).kick());
    auto used = dev->queue(0).wait_used(2000ms);
    ASSERT_TRUE(used) << used.error();
    EXPECT_EQ((*used)[0].len, 300u);
    std::vector<uint8_t> got(300);
    ASSERT_TRUE(mem_->read(out, got.data(), got.size()));
    EXPECT_EQ(got, inverted(data));
    round_trip(*dev, 0, 100);
    EXPECT_EQ(backend.error(), "");
}

TEST_F(DeviceTest, ReconnectWithANewDevice) {
    FakeBackend backend(path_, {});
    uint64_t free_before = mem_->bytes_free();
    {
        auto dev = connect_and_start(options(2));
        ASSERT_TRUE(dev);
        round_trip(*dev, 1, 50);
        dev->disconnect();
        EXPECT_EQ(dev->state(), Device::State::Disconnected);
        EXPECT_EQ(dev->get_config(0, 4).error(), ENOTCONN);
    }
    EXPECT_EQ(mem_->bytes_free(), free_before); // rings returned
    auto dev = connect_and_start(options(2));
    ASSERT_TRUE(dev);
    round_trip(*dev, 1, 50);
    round_trip(*dev, 0, 50);
    EXPECT_EQ(backend.connections(), 2);
    EXPECT_EQ(backend.error(), "");
}

TEST_F(DeviceTest, ConnectRetriesWhileBackendDropsNewConnections) {
    FakeBackendConfig cfg;
    cfg.drop_first_connections = 3;
    FakeBackend backend(path_, cfg);
    auto dev = connect_and_start(options(1));
    ASSERT_TRUE(dev);
    round_trip(*dev, 0, 10);
    EXPECT_EQ(backend.connections(), 4);
}

TEST_F(DeviceTest, ConnectGivesUpOnABackendThatAlwaysDrops) {
    FakeBackendConfig cfg;
    cfg.drop_first_connections = 1 << 30;
    FakeBackend backend(path_, cfg);
    auto o = options(1);
    o.connect_timeout = 100ms;
    auto t0 = std::chrono::steady_clock::now();
    auto dev = Device::connect(*mem_, o);
    ASSERT_FALSE(dev);
    EXPECT_TRUE(dev.error() == ECONNRESET || dev.error() == EPIPE) << dev.error();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 3000ms);
    EXPECT_GE(backend.connections(), 2);
}

TEST_F(DeviceTest, WithoutProtocolFeaturesNoEnableMessages) {
    FakeBackendConfig cfg;
    cfg.features = kFVersion1 | kFIndirectDesc;
    FakeBackend backend(path_, cfg);
    auto dev = connect_and_start(options(2));
    ASSERT_TRUE(dev);
    round_trip(*dev, 1, 40);
    for (uint32_t r : backend.requests()) {
        EXPECT_NE(r, R(Request::GetProtocolFeatures));
        EXPECT_NE(r, R(Request::SetProtocolFeatures));
        EXPECT_NE(r, R(Request::GetQueueNum));
        EXPECT_NE(r, R(Request::SetVringEnable));
    }
    for (const LoggedRequest& r : backend.log()) {
        EXPECT_EQ(r.flags, kVersion); // no REPLY_ACK
    }
    EXPECT_EQ(dev->features(), kFVersion1 | kFIndirectDesc);
    EXPECT_EQ(dev->protocol_features(), 0u);
    EXPECT_EQ(backend.error(), "");
}

TEST_F(DeviceTest, ReplyAckCanBeDeclined) {
    FakeBackend backend(path_, {});
    auto o = options(1);
    o.wanted_protocol_features = kPfMq;
    auto dev = connect_and_start(o);
    ASSERT_TRUE(dev);
    EXPECT_FALSE(dev->connection().reply_ack());
    round_trip(*dev, 0, 40);
    for (const LoggedRequest& r : backend.log()) {
        EXPECT_EQ(r.flags, kVersion) << request_name(r.request);
    }
}

TEST_F(DeviceTest, TooFewBackendQueuesIsEinval) {
    FakeBackendConfig cfg;
    cfg.queue_num = 1;
    FakeBackend backend(path_, cfg);
    auto dev = Device::connect(*mem_, options(2));
    ASSERT_FALSE(dev);
    EXPECT_EQ(dev.error(), EINVAL);
}

TEST_F(DeviceTest, HungBackendFailsWithTimeout) {
    FakeBackendConfig cfg;
    cfg.answer = false;
    FakeBackend backend(path_, cfg);
    auto o = options(1);
    o.reply_timeout = 150ms;
    auto t0 = std::chrono::steady_clock::now();
    auto dev = Device::connect(*mem_, o);
    ASSERT_FALSE(dev);
    EXPECT_EQ(dev.error(), ETIMEDOUT);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 3000ms);
}

TEST_F(DeviceTest, RequestTimesOutWhenBackendStopsServing) {
    FakeBackend backend(path_, {});
    auto dev = connect_and_start(options(1));
    ASSERT_TRUE(dev);
    auto bases = dev->stop(); // the backend stops the ring at GET_VRING_BASE
    ASSERT_TRUE(bases);
    RequestHelper helper(dev->queue(0), {.timeout = 100ms});
    auto reply = helper.submit(pattern(8, 1), 8);
    ASSERT_FALSE(reply);
    EXPECT_EQ(reply.error(), ETIMEDOUT);
}

TEST_F(DeviceTest, GetConfigReturnsBackendBytes) {
    FakeBackend backend(path_, {});
    auto dev = connect_and_start(options(1));
    ASSERT_TRUE(dev);
    auto cfg = dev->get_config(5, 7);
    ASSERT_TRUE(cfg) << cfg.error();
    EXPECT_EQ(std::string(cfg->begin(), cfg->end()), "backend");
}

TEST_F(DeviceTest, ConnectWithoutBackendTimesOut) {
    auto o = options(1);
    o.connect_timeout = 50ms;
    auto dev = Device::connect(*mem_, o);
    ASSERT_FALSE(dev);
    EXPECT_EQ(dev.error(), ETIMEDOUT);
}

} // namespace
} // namespace vdh::frontend

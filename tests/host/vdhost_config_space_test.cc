// SPDX-License-Identifier: MIT
// Integration tests of the host's virtio config space over vhost-user, through the real
// vdhost binary and the project's frontend: GET_CONFIG and SET_CONFIG (request 25) for a
// plugin with a writable space (tests/host/plugins/config_space_plugin.cc: 16 bytes, the
// first 8 read-only). A write reaches the plugin and shows in GET_CONFIG and in the data
// path; hostile writes (out of range, oversized, inconsistent sizes, fds, read-only bytes)
// are refused, with a failed ack when the frontend asked for one and without dropping the
// connection when it did not, and the device keeps serving.
#include <gtest/gtest.h>

#include <sys/eventfd.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "frontend/device.h"
#include "frontend/guest_memory.h"
#include "frontend/request_helper.h"
#include "frontend/vhost_user_messages.h"
#include "vdhost_process.h"

namespace vdh {
namespace {

using frontend::ConfigHeader;
using frontend::Device;
using frontend::DeviceOptions;
using frontend::GuestMemory;
using frontend::GuestMemoryOptions;
using frontend::Request;
using frontend::RequestHelper;
using testing::TempDir;
using testing::VdhostProcess;

constexpr uint32_t kSpace = 16;

std::string bytes(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }

class VdhostConfigSpace : public ::testing::Test {
protected:
    void SetUp() override {
        sock_ = dir_.file("c0.sock");
        ctl_ = dir_.file("ctl.sock");
        std::string yaml = "host:\n  poll_lcores: [1]\n  control_socket: " + ctl_ +
                           "\n  idle_poll_us: 100\n  max_sleep_ms: 100\n"
                           "devices:\n"
                           "  - name: c0\n    type: configspace\n    socket: " + sock_ + "\n";
        ASSERT_TRUE(vdhost_.start(dir_, yaml, {sock_, ctl_})) << vdhost_.log();
        GuestMemoryOptions mo;
        mo.size = 4 << 20;
        auto m = GuestMemory::create(mo);
        ASSERT_TRUE(m.has_value());
        mem_ = std::move(*m);
        DeviceOptions o;
        o.socket_path = sock_;
        o.num_queues = 1;
        o.queue_size = 64;
        auto d = Device::connect(*mem_, o);
        ASSERT_TRUE(d.has_value()) << "connect: " << (d ? 0 : d.error());
        dev_ = std::move(*d);
        ASSERT_TRUE(dev_->protocol_features() & frontend::kPfConfig)
            << "CONFIG not offered for a device with a config space";
        ASSERT_TRUE(dev_->connection().reply_ack());
        Status s = dev_->start();
        ASSERT_TRUE(s.has_value()) << "start: " << (s ? 0 : s.error());
    }

    std::string config() {
        auto c = dev_->get_config(0, kSpace);
        EXPECT_TRUE(c.has_value()) << (c ? 0 : c.error());
        return c ? bytes(*c) : std::string();
    }

    /// One request on queue 0: the plugin answers with the current config space.
    std::string served() {
        RequestHelper rh(dev_->queue(0));
        const uint8_t req[4] = {1, 2, 3, 4};
        auto r = rh.submit(req, kSpace);
        EXPECT_TRUE(r.has_value()) << "submit: " << (r ? 0 : r.error());
        if (!r) {
            return {};
        }
        EXPECT_EQ(r->used_len, kSpace);
        return bytes(r->data).substr(0, kSpace);
    }

    /// A hand-made SET_CONFIG: header {offset, size, 0} and \p region, \p payload_size bytes
    /// of payload in all (0: 12 + region.size()). With \p need_reply, returns the ack (0
    /// success), otherwise 0 once sent.
    uint64_t raw_set_config(uint32_t offset, uint32_t size, const std::vector<uint8_t>& region,
                            bool need_reply, uint32_t payload_size = 0,
                            std::span<const int> fds = {}) {
        std::vector<uint8_t> p(12 + region.size());
        ConfigHeader h{offset, size, 0};
        std::memcpy(p.data(), &h, sizeof(h));
        if (!region.empty()) {
            std::memcpy(p.data() + 12, region.data(), region.size());
        }
        const uint32_t n = payload_size != 0 ? payload_size : static_cast<uint32_t>(p.size());
        p.resize(std::max<size_t>(p.size(), n));
        auto& c = dev_->connection();
        Status s = c.send_message(static_cast<uint32_t>(Request::SetConfig),
                                  need_reply ? frontend::kFlagNeedReply : 0, p.data(), n, fds);
        EXPECT_TRUE(s.has_value()) << "send: " << (s ? 0 : s.error());
        if (!need_reply) {
            return 0;
        }
        auto reply = c.receive(std::chrono::milliseconds(5000));
        EXPECT_TRUE(reply.has_value()) << "no ack: " << (reply ? 0 : reply.error());
        if (!reply) {
            return ~0ULL;
        }
        EXPECT_EQ(reply->header.request, static_cast<uint32_t>(Request::SetConfig));
        EXPECT_TRUE(reply->header.flags & frontend::kFlagReply);
        auto ack = reply->payload_as<uint64_t>();
        EXPECT_TRUE(ack.has_value());
        return ack ? *ack : ~0ULL;
    }

    std::string plugin_set_calls() {
        std::string s = testing::vdhost_stats(ctl_);
        auto p = s.find("\"set_config_calls\":");
        return p == std::string::npos ? "?" : s.substr(p + 19, s.find('}', p) - p - 19);
    }

    TempDir dir_;
    std::string sock_;
    std::string ctl_;
    VdhostProcess vdhost_;
    std::unique_ptr<GuestMemory> mem_;
    std::unique_ptr<Device> dev_;
};

const std::string kInitial = std::string("vdhcfg01") + std::string(8, '\0');

TEST_F(VdhostConfigSpace, SetConfigReachesThePluginAndShowsInGetConfigAndRequests) {
    EXPECT_EQ(config(), kInitial);
    EXPECT_EQ(served(), kInitial);
    const uint8_t w[4] = {'W', 'X', 'Y', 'Z'};
    Status s = dev_->set_config(8, w); // acked (REPLY_ACK negotiated)
    ASSERT_TRUE(s.has_value()) << s.error();
    const uint8_t t[2] = {'t', 'u'};
    ASSERT_TRUE(dev_->set_config(14, t).has_value());
    const std::string want = std::string("vdhcfg01WXYZ") + std::string(2, '\0') + "tu";
    EXPECT_EQ(config(), want);
    EXPECT_EQ(dev_->get_config(12, 4).value(), std::vector<uint8_t>({0, 0, 't', 'u'}));
    EXPECT_EQ(served(), want);
    // Without NEED_REPLY nothing comes back, and the write is applied all the same.
    dev_->connection().set_reply_ack(false);
    const uint8_t q[1] = {'q'};
    ASSERT_TRUE(dev_->set_config(13, q).has_value());
    EXPECT_EQ(config(), std::string("vdhcfg01WXYZ") + '\0' + "qtu");
    EXPECT_EQ(plugin_set_calls(), "3");
}

TEST_F(VdhostConfigSpace, HostileSetConfigIsRefusedAndTheDeviceKeepsServing) {
    const std::vector<uint8_t> four = {'b', 'a', 'd', '!'};
    // Past the end of the 16-byte space (offset + size), or wrapping around 2^32.
    EXPECT_EQ(raw_set_config(14, 4, four, true), 1u);
    EXPECT_EQ(raw_set_config(16, 4, four, true), 1u);
    EXPECT_EQ(raw_set_config(0xFFFFFFFEu, 4, four, true), 1u);
    // Larger than the 256 bytes vhost-user allows, with a payload that matches it.
    EXPECT_EQ(raw_set_config(0, 300, std::vector<uint8_t>(300, 'x'), true), 1u);
    // The header's size disagrees with the payload.
    EXPECT_EQ(raw_set_config(8, 8, four, true), 1u);
    EXPECT_EQ(raw_set_config(8, 2, four, true), 1u);
    EXPECT_EQ(raw_set_config(8, 4, {}, true, 8), 1u); // shorter than the header
    // An fd that has nothing to do there (closed by the host, not leaked).
    int efd = eventfd(0, EFD_CLOEXEC);
    ASSERT_GE(efd, 0);
    const int fds[1] = {efd};
    EXPECT_EQ(raw_set_config(8, 4, four, true, 0, fds), 1u);
    close(efd);
    // In range but refused by the plugin (read-only bytes): a failed ack too.
    EXPECT_EQ(raw_set_config(0, 4, four, true), 1u);
    // Only the last one reached the plugin; nothing changed.
    EXPECT_EQ(plugin_set_calls(), "1");
    EXPECT_EQ(config(), kInitial);
    // Without NEED_REPLY a refused write is dropped and the connection stays.
    raw_set_config(14, 4, four, false);
    raw_set_config(0, 300, std::vector<uint8_t>(300, 'x'), false);
    dev_->connection().set_reply_ack(false);
    EXPECT_EQ(config(), kInitial);
    EXPECT_EQ(served(), kInitial);
    // And a good write still works.
    dev_->connection().set_reply_ack(true);
    ASSERT_TRUE(dev_->set_config(8, four).has_value());
    EXPECT_EQ(served(), std::string("vdhcfg01bad!") + std::string(4, '\0'));
    EXPECT_TRUE(vdhost_.alive());
}

} // namespace
} // namespace vdh

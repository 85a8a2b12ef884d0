// SPDX-License-Identifier: MIT
// Tests of VhostUserConnection against an in-test fake backend thread on a temp UNIX socket,
// using independent raw framing (backend_wire.h): connect retry and timeout, byte-exact
// headers and payloads, fds delivered by SCM_RIGHTS (memfds the backend maps and shares
// with us, eventfds), REPLY_ACK, reply validation, and dead or vanished backends.
#include "frontend/vhost_user_connection.h"

#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <thread>

#include "backend_wire.h"
#include "frontend/guest_memory.h"

namespace vdh::frontend {
namespace {

using namespace std::chrono_literals;
using namespace vdh::frontend::testing;

/// Runs `script` on a backend thread against the one accepted connection.
class ScriptedBackend {
public:
    using Script = std::function<void(int conn_fd)>;

    explicit ScriptedBackend(const std::string& path, Script script, int accept_delay_ms = 0) {
        if (accept_delay_ms == 0) {
            listen_ = listen_unix(path);
        }
        thread_ = std::thread([this, path, script = std::move(script), accept_delay_ms] {
            if (accept_delay_ms > 0) {
                std::this_thread::sleep_for(std::chrono::milliseconds(accept_delay_ms));
                listen_ = listen_unix(path);
            }
            UniqueFd conn = accept_with_timeout(listen_.get(), 5000);
            if (!conn) {
                ADD_FAILURE() << "backend: no connection";
                return;
            }
            script(conn.get());
        });
    }
    ~ScriptedBackend() { thread_.join(); }

private:
    UniqueFd listen_;
    std::thread thread_;
};

/// Receives one message or records a failure.
RawMsg expect_msg(int fd, Request expected) {
    RawMsg m;
    RecvStatus s = raw_recv(fd, m, 5000);
    EXPECT_EQ(s, RecvStatus::Ok);
    EXPECT_EQ(m.hdr.request, static_cast<uint32_t>(expected))
        << "got " << request_name(m.hdr.request);
    return m;
}

class VhostUserConnectionTest : public ::testing::Test {
protected:
    void SetUp() override { fds_at_start_ = count_open_fds(); }
    void TearDown() override { EXPECT_EQ(count_open_fds(), fds_at_start_) << "fd leak"; }

    int fds_at_start_ = 0;
    TempDir dir_;
    std::string path_ = dir_.file("vhost.sock");
};

TEST_F(VhostUserConnectionTest, ConnectRetriesUntilBackendListens) {
    ScriptedBackend backend(path_, [](int) {}, /*accept_delay_ms=*/150);
    auto t0 = std::chrono::steady_clock::now();
    auto conn = VhostUserConnection::connect(path_, 5000ms);
    ASSERT_TRUE(conn) << conn.error();
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 100ms);
    EXPECT_TRUE(conn->connected());
}

TEST_F(VhostUserConnectionTest, ConnectTimesOutWithoutBackend) {
    auto t0 = std::chrono::steady_clock::now();
    auto conn = VhostUserConnection::connect(path_, 100ms);
    ASSERT_FALSE(conn);
    EXPECT_EQ(conn.error(), ETIMEDOUT);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 3000ms);
}

TEST_F(VhostUserConnectionTest, GetAndSetFeaturesAreByteExact) {
    ScriptedBackend backend(path_, [](int fd) {
        RawMsg m = expect_msg(fd, Request::GetFeatures);
        EXPECT_EQ(m.hdr.flags, kVersion);
        EXPECT_EQ(m.hdr.size, 0u);
        uint64_t features = kFVersion1 | kFProtocolFeatures | kFEventIdx;
        raw_reply(fd, m, &features, sizeof(features));

        m = expect_msg(fd, Request::SetFeatures);
        EXPECT_EQ(m.hdr.flags, kVersion);
        ASSERT_EQ(m.hdr.size, 8u);
        EXPECT_EQ(m.as<uint64_t>(), kFVersion1 | kFEventIdx);
        EXPECT_TRUE(m.fds.empty());

        m = expect_msg(fd, Request::SetOwner);
        EXPECT_EQ(m.hdr.size, 0u);
    });
    auto conn = VhostUserConnection::connect(path_);
    ASSERT_TRUE(conn);
    auto f = conn->get_features();
    ASSERT_TRUE(f) << f.error();
    EXPECT_EQ(*f, kFVersion1 | kFProtocolFeatures | kFEventIdx);
    EXPECT_TRUE(conn->set_features(kFVersion1 | kFEventIdx));
    EXPECT_TRUE(conn->set_owner());
}

TEST_F(VhostUserConnectionTest, VringMessagesCarryIndexesAddressesAndFds) {
    ScriptedBackend backend(path_, [](int fd) {
        RawMsg m = expect_msg(fd, Request::SetVringNum);
        EXPECT_EQ(m.hdr.size, 8u);
        EXPECT_EQ(m.as<VringState>().index, 2u);
        EXPECT_EQ(m.as<VringState>().num, 256u);

        m = expect_msg(fd, Request::SetVringAddr);
        ASSERT_EQ(m.hdr.size, 40u);
        uint64_t words[5];
        std::memcpy(words, m.payload.data(), 40);
        EXPECT_EQ(words[0], 2u | (0ull << 32)); // index 2, flags 0
        EXPECT_EQ(words[1], 0x1000u);            // desc
        EXPECT_EQ(words[2], 0x3000u);            // used
        EXPECT_EQ(words[3], 0x2000u);            // avail
        EXPECT_EQ(words[4], 0u);                 // log

        m = expect_msg(fd, Request::SetVringKick);
        EXPECT_EQ(m.as<uint64_t>(), 2u);
        ASSERT_EQ(m.fds.size(), 1u);
        uint64_t one = 1; // kick the frontend's eventfd through our copy
        EXPECT_EQ(::write(m.fds[0].get(), &one, 8), 8);

        m = expect_msg(fd, Request::SetVringCall);
        EXPECT_EQ(m.as<uint64_t>(), 1u | kVringNoFd);
        EXPECT_TRUE(m.fds.empty());

        m = expect_msg(fd, Request::SetVringEnable);
        EXPECT_EQ(m.as<VringState>().index, 3u);
        EXPECT_EQ(m.as<VringState>().num, 1u);

        m = expect_msg(fd, Request::GetVringBase);
        EXPECT_EQ(m.as<VringState>().index, 2u);
        VringState reply{2, 77};
        raw_reply(fd, m, &reply, sizeof(reply));
    });
    auto conn = VhostUserConnection::connect(path_);
    ASSERT_TRUE(conn);
    UniqueFd efd(::eventfd(0, EFD_CLOEXEC));
    ASSERT_TRUE(conn->set_vring_num(2, 256));
    VringAddr addr{};
    addr.index = 2;
    addr.desc_user_addr = 0x1000;
    addr.avail_user_addr = 0x2000;
    addr.used_user_addr = 0x3000;
    ASSERT_TRUE(conn->set_vring_addr(addr));
    ASSERT_TRUE(conn->set_vring_kick(2, efd.get()));
    ASSERT_TRUE(conn->set_vring_call(1, -1));
    ASSERT_TRUE(conn->set_vring_enable(3, true));
    auto base = conn->get_vring_base(2);
    ASSERT_TRUE(base) << base.error();
    EXPECT_EQ(*base, 77u);
    EXPECT_EQ(drain_eventfd(efd.get()), 1u); // the backend's write reached our eventfd
}

/// SET_MEM_TABLE must deliver the memfds so that the backend, mapping them itself at
/// mmap_offset, sees what we wrote and we see what it writes.
void check_mem_table_delivery(const std::string& path, const GuestMemoryOptions& options) {
    auto mem = GuestMemory::create(options);
    ASSERT_TRUE(mem);
    auto regs = (*mem)->regions();
    for (size_t i = 0; i < regs.size(); i++) {
        uint64_t tag = 0xabc000 + i;
        ASSERT_TRUE((*mem)->write(regs[i].gpa + 128, &tag, sizeof(tag)));
    }
    std::vector<MemoryRegionDesc> descs;
    std::vector<int> fds;
    (*mem)->memory_table(descs, fds);

    ScriptedBackend backend(path, [&](int fd) {
        RawMsg m = expect_msg(fd, Request::SetMemTable);
        ASSERT_EQ(m.hdr.size, 8 + 32 * regs.size());
        MemoryTable table{};
        std::memcpy(&table, m.payload.data(), m.payload.size());
        ASSERT_EQ(table.nregions, regs.size());
        ASSERT_EQ(m.fds.size(), regs.size());
        for (size_t i = 0; i < regs.size(); i++) {
            const MemoryRegionDesc& r = table.regions[i];
            EXPECT_EQ(r.guest_phys_addr, regs[i].gpa);
            EXPECT_EQ(r.memory_size, regs[i].size);
            EXPECT_EQ(r.userspace_addr, reinterpret_cast<uintptr_t>(regs[i].host));
            EXPECT_EQ(r.mmap_offset, regs[i].fd_offset);
            // Map like rte_vhost does: from offset 0, then skip mmap_offset.
            size_t len = r.memory_size + r.mmap_offset;
            void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED,
                             m.fds[i].get(), 0);
            ASSERT_NE(p, MAP_FAILED);
            auto* base = static_cast<uint8_t*>(p) + r.mmap_offset;
            uint64_t tag;
            std::memcpy(&tag, base + 128, sizeof(tag));
            EXPECT_EQ(tag, 0xabc000 + i);
            uint64_t answer = 0xdef000 + i;
            std::memcpy(base + 256, &answer, sizeof(answer));
            ::munmap(p, len);
        }
        raw_ack_if_needed(fd, m);
    });
    auto conn = VhostUserConnection::connect(path);
    ASSERT_TRUE(conn);
    ASSERT_TRUE(conn->set_mem_table(descs, fds));
    // The backend's writes are visible to us once it has processed the message; wait for
    // it by closing our side only after the backend thread ends (ScriptedBackend joins in
    // its destructor), so read after a round trip instead: poll for the answer.
    for (size_t i = 0; i < regs.size(); i++) {
        uint64_t answer = 0;
        for (int spin = 0; spin < 500 && answer == 0; spin++) {
            ASSERT_TRUE((*mem)->read(regs[i].gpa + 256, &answer, sizeof(answer)));
            if (answer == 0) {
                std::this_thread::sleep_for(2ms);
            }
        }
        EXPECT_EQ(answer, 0xdef000 + i);
    }
}

TEST_F(VhostUserConnectionTest, SetMemTableDeliversSeparateMemfds) {
    check_mem_table_delivery(path_, {.base_gpa = 0, .size = 4 * 65536, .num_regions = 4,
                                     .region_gap = 0x20000});
}

TEST_F(VhostUserConnectionTest, SetMemTableDeliversOneMemfdWithOffsets) {
    check_mem_table_delivery(path_, {.base_gpa = 0x100000, .size = 3 * 65536,
                                     .num_regions = 3, .single_fd = true});
}

TEST_F(VhostUserConnectionTest, SetMemTableRejectsMismatchedFds) {
    auto conn = VhostUserConnection::adopt(UniqueFd());
    MemoryRegionDesc d{};
    int fds[2] = {0, 1};
    EXPECT_EQ(conn.set_mem_table(std::span(&d, 1), fds).error(), EINVAL);
    EXPECT_EQ(conn.set_owner().error(), ENOTCONN);
}

TEST_F(VhostUserConnectionTest, ReplyAckIsRequestedAndChecked) {
    ScriptedBackend backend(path_, [](int fd) {
        RawMsg m = expect_msg(fd, Request::SetProtocolFeatures);
        EXPECT_EQ(m.hdr.flags, kVersion); // never acked itself
        EXPECT_EQ(m.as<uint64_t>(), kPfReplyAck | kPfMq);

        m = expect_msg(fd, Request::SetVringNum);
        EXPECT_EQ(m.hdr.flags, kVersion | kFlagNeedReply);
        EXPECT_TRUE(raw_ack_if_needed(fd, m, 0));

        m = expect_msg(fd, Request::SetVringBase);
        EXPECT_TRUE(raw_ack_if_needed(fd, m, 1)); // failure

        m = expect_msg(fd, Request::GetQueueNum); // has its own reply: no NEED_REPLY
        EXPECT_EQ(m.hdr.flags, kVersion);
        uint64_t n = 4;
        raw_reply(fd, m, &n, sizeof(n));
    });
    auto conn = VhostUserConnection::connect(path_);
    ASSERT_TRUE(conn);
    EXPECT_FALSE(conn->reply_ack());
    ASSERT_TRUE(conn->set_protocol_features(kPfReplyAck | kPfMq));
    EXPECT_TRUE(conn->reply_ack());
    EXPECT_TRUE(conn->set_vring_num(0, 128));
    auto st = conn->set_vring_base(0, 0);
    ASSERT_FALSE(st);
    EXPECT_EQ(st.error(), EIO);
    auto n = conn->get_queue_num();
    ASSERT_TRUE(n);
    EXPECT_EQ(*n, 4u);
}

TEST_F(VhostUserConnectionTest, ReplyToAnotherRequestIsAProtocolError) {
    ScriptedBackend backend(path_, [](int fd) {
        RawMsg m = expect_msg(fd, Request::GetFeatures);
        uint64_t v = 1;
        raw_send(fd, static_cast<uint32_t>(Request::GetQueueNum), kVersion | kFlagReply, &v, 8);
        m = expect_msg(fd, Request::GetFeatures);
        raw_send(fd, m.hdr.request, kVersion, &v, 8); // reply bit missing
    });
    auto conn = VhostUserConnection::connect(path_);
    ASSERT_TRUE(conn);
    EXPECT_EQ(conn->get_features().error(), EPROTO);
    EXPECT_EQ(conn->get_features().error(), EPROTO);
}

TEST_F(VhostUserConnectionTest, SilentBackendTimesOut) {
    ScriptedBackend backend(path_, [](int fd) {
        RawMsg m = expect_msg(fd, Request::GetFeatures);
        RawMsg next; // wait for the client to give up and hang up
        EXPECT_EQ(raw_recv(fd, next, 5000), RecvStatus::Closed);
    });
    auto conn = VhostUserConnection::connect(path_);
    ASSERT_TRUE(conn);
    conn->set_reply_timeout(100ms);
    auto t0 = std::chrono::steady_clock::now();
    auto f = conn->get_features();
    ASSERT_FALSE(f);
    EXPECT_EQ(f.error(), ETIMEDOUT);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 3000ms);
    conn->close();
}

TEST_F(VhostUserConnectionTest, BackendHangupIsConnReset) {
    ScriptedBackend backend(path_, [](int fd) { expect_msg(fd, Request::GetFeatures); });
    auto conn = VhostUserConnection::connect(path_);
    ASSERT_TRUE(conn);
    EXPECT_EQ(conn->get_features().error(), ECONNRESET);
}

TEST_F(VhostUserConnectionTest, GetConfigSendsHeaderAndReturnsBytes) {
    ScriptedBackend backend(path_, [](int fd) {
        RawMsg m = expect_msg(fd, Request::GetConfig);
        ASSERT_EQ(m.hdr.size, 12u + 40);
        ConfigHeader h = m.as<ConfigHeader>();
        EXPECT_EQ(h.offset, 0u);
        EXPECT_EQ(h.size, 40u);
        std::vector<uint8_t> reply(12 + 40);
        std::memcpy(reply.data(), &h, 12);
        std::memcpy(reply.data() + 12, "myfs", 4);
        raw_reply(fd, m, reply.data(), static_cast<uint32_t>(reply.size()));

        m = expect_msg(fd, Request::GetConfig);
        h = m.as<ConfigHeader>();
        h.size = 0; // a backend that cannot answer
        raw_reply(fd, m, &h, sizeof(h));
    });
    auto conn = VhostUserConnection::connect(path_);
    ASSERT_TRUE(conn);
    auto cfg = conn->get_config(0, 40);
    ASSERT_TRUE(cfg) << cfg.error();
    ASSERT_EQ(cfg->size(), 40u);
    EXPECT_EQ(std::memcmp(cfg->data(), "myfs", 4), 0);
    EXPECT_EQ(conn->get_config(0, 40).error(), EIO);
    EXPECT_EQ(conn->get_config(0, 300).error(), EINVAL);
}

TEST_F(VhostUserConnectionTest, SetConfigSendsHeaderAndBytesAndChecksTheAck) {
    ScriptedBackend backend(path_, [](int fd) {
        RawMsg m = expect_msg(fd, Request::SetConfig);
        EXPECT_EQ(m.hdr.flags, kVersion); // no REPLY_ACK yet: nothing comes back
        ASSERT_EQ(m.hdr.size, 12u + 3);
        ConfigHeader h = m.as<ConfigHeader>();
        EXPECT_EQ(h.offset, 8u);
        EXPECT_EQ(h.size, 3u);
        EXPECT_EQ(h.flags, 0u);
        EXPECT_EQ(std::memcmp(m.payload.data() + 12, "abc", 3), 0);

        m = expect_msg(fd, Request::SetConfig);
        EXPECT_EQ(m.hdr.flags, kVersion | kFlagNeedReply);
        EXPECT_TRUE(raw_ack_if_needed(fd, m, 0));
        m = expect_msg(fd, Request::SetConfig);
        EXPECT_TRUE(raw_ack_if_needed(fd, m, 1)); // refused
    });
    auto conn = VhostUserConnection::connect(path_);
    ASSERT_TRUE(conn);
    const uint8_t abc[3] = {'a', 'b', 'c'};
    EXPECT_TRUE(conn->set_config(8, abc));
    conn->set_reply_ack(true);
    EXPECT_TRUE(conn->set_config(8, abc));
    EXPECT_EQ(conn->set_config(8, abc).error(), EIO);
    std::vector<uint8_t> big(257);
    EXPECT_EQ(conn->set_config(0, big).error(), EINVAL);
}

TEST_F(VhostUserConnectionTest, ReplyWithoutPayloadIsBadMessage) {
    ScriptedBackend backend(path_, [](int fd) {
        RawMsg m = expect_msg(fd, Request::GetFeatures);
        raw_reply(fd, m, nullptr, 0); // a GET_FEATURES reply must carry a u64
    });
    auto conn = VhostUserConnection::connect(path_);
    ASSERT_TRUE(conn);
    EXPECT_EQ(conn->get_features().error(), EBADMSG);
}

TEST(VhostUserConnectionPair, OversizedHeaderIsEmsgsize) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    UniqueFd ours(sv[0]);
    UniqueFd theirs(sv[1]);
    MsgHeader h{1, kVersion | kFlagReply, kMaxPayload + 1};
    ASSERT_EQ(::write(theirs.get(), &h, sizeof(h)), static_cast<ssize_t>(sizeof(h)));
    auto conn = VhostUserConnection::adopt(std::move(ours));
    auto m = conn.receive(1000ms);
    ASSERT_FALSE(m);
    EXPECT_EQ(m.error(), EMSGSIZE);
}

TEST(VhostUserConnectionPair, ReceiveCollectsFdsAndPayload) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    auto a = VhostUserConnection::adopt(UniqueFd(sv[0]));
    auto b = VhostUserConnection::adopt(UniqueFd(sv[1]));
    UniqueFd e1(::eventfd(0, EFD_CLOEXEC));
    UniqueFd e2(::eventfd(0, EFD_CLOEXEC));
    int fds[2] = {e1.get(), e2.get()};
    uint64_t payload = 0x1234;
    ASSERT_TRUE(a.send_message(static_cast<uint32_t>(Request::SetVringCall), 0, &payload, 8, fds));
    auto m = b.receive(1000ms);
    ASSERT_TRUE(m) << m.error();
    EXPECT_EQ(m->header.request, static_cast<uint32_t>(Request::SetVringCall));
    EXPECT_EQ(m->header.flags, kVersion);
    EXPECT_EQ(*m->payload_as<uint64_t>(), 0x1234u);
    ASSERT_EQ(m->fds.size(), 2u);
    uint64_t one = 1;
    ASSERT_EQ(::write(m->fds[1].get(), &one, 8), 8);
    EXPECT_EQ(drain_eventfd(e2.get()), 1u);
    EXPECT_EQ(drain_eventfd(e1.get()), 0u);
    EXPECT_STREQ(request_name(m->header.request), "SET_VRING_CALL");
}

} // namespace
} // namespace vdh::frontend

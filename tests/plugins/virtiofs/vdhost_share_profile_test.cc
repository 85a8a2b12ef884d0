// SPDX-License-Identifier: MIT
// Share profile keys through the real path: the vdhost binary with vdh-virtiofs.so, driven
// by the project's vhost-user frontend and FUSE client. Covers the virtiofsd parity keys:
// allow_mmap and readdirplus (what INIT negotiates), preserve_noatime (whether a guest's
// O_NOATIME reaches the host: the host file's atime says so), and announce_tag (the
// CONFIG protocol feature and GET_CONFIG's virtio_fs_config, byte for byte).
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "frontend/vhost_user_connection.h"
#include "fuse_client/fuse_session.h"
#include "vdh/unique_fd.h"
#include "vdhost_share_fixture.h"

namespace vdh {
namespace {

using frontend::VhostUserConnection;
using fuse_client::FuseSession;
using fuse_client::kRootNodeId;
using fuse_client::SessionOptions;
using testing::TempDir;
using testing::VdhostProcess;

/// FUSE_DIRECT_IO_ALLOW_MMAP (protocol 7.39; Debian's linux/fuse.h is 7.38).
constexpr uint64_t kDirectIoAllowMmap = 1ULL << 36;
constexpr uint64_t kReaddirplus = FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO;

class VdhostShareProfile : public ::testing::Test {
protected:
    /// One vdhost with four shares of the same directory:
    ///   plain  - defaults;
    ///   never  - cache: never, allow_mmap, preserve_noatime;
    ///   rdp    - cache: never, readdirplus: true;
    ///   tagged - announce_tag with tag "parity-tag" and 3 request queues, readdirplus: false.
    void SetUp() override {
        share_ = dir_.file("share");
        ASSERT_EQ(::mkdir(share_.c_str(), 0755), 0);
        ctl_ = dir_.file("ctl.sock");
        // Four shares in one process: each with a small fd budget (the default 16384 each
        // would not fit RLIMIT_NOFILE together).
        const std::string limit = "      fd_limit: 256\n";
        const std::string yaml =
            testing::host_yaml("[0]", ctl_) +
            testing::virtiofs_device_yaml("plain", sock("plain"), "0", share_, limit) +
            testing::virtiofs_device_yaml("never", sock("never"), "0", share_,
                                          limit + "      cache: never\n      allow_mmap: true\n"
                                                  "      preserve_noatime: true\n") +
            testing::virtiofs_device_yaml("rdp", sock("rdp"), "0", share_,
                                          limit + "      cache: never\n      readdirplus: true\n") +
            testing::virtiofs_device_yaml("tagged", sock("tagged"), "0", share_,
                                          limit + "      tag: parity-tag\n"
                                                  "      announce_tag: true\n"
                                                  "      request_queues: 3\n"
                                                  "      readdirplus: false\n");
        ASSERT_TRUE(vdhost_.start(dir_, yaml,
                                  {sock("plain"), sock("never"), sock("rdp"), sock("tagged"),
                                   ctl_}))
            << vdhost_.log();
    }

    void TearDown() override {
        session_.reset();
        if (HasFailure()) {
            ADD_FAILURE() << "vdhost log:\n" << vdhost_.log();
        }
    }

    std::string sock(const std::string& name) const { return dir_.file(name + ".sock"); }

    /// A FUSE session on share \p name whose INIT offers the default flags plus
    /// DIRECT_IO_ALLOW_MMAP, as a Linux 6.12 guest does.
    FuseSession* connect(const std::string& name) {
        session_.reset();
        SessionOptions o;
        o.socket_path = sock(name);
        o.init_minor = 41;
        o.init_flags = fuse_client::kDefaultInitFlags | kDirectIoAllowMmap;
        auto s = FuseSession::connect(o);
        EXPECT_TRUE(s.has_value()) << name << ": " << (s ? 0 : s.error());
        if (!s) {
            return nullptr;
        }
        session_ = std::move(*s);
        return session_.get();
    }

    /// Opens share/\p file with O_NOATIME through share \p name, reads from it and
    /// releases it; returns the host file's atime (seconds).
    time_t read_noatime(const std::string& name, const std::string& file) {
        FuseSession* s = connect(name);
        if (s == nullptr) {
            return -1;
        }
        auto e = s->lookup(kRootNodeId, file);
        EXPECT_TRUE(e.has_value()) << (e ? 0 : e.error());
        auto o = s->open(e->nodeid, O_RDONLY | O_NOATIME);
        EXPECT_TRUE(o.has_value()) << (o ? 0 : o.error());
        std::vector<uint8_t> buf(16);
        auto n = s->read(e->nodeid, o->fh, 0, buf);
        EXPECT_TRUE(n.has_value() && *n == 5) << (n ? *n : n.error());
        EXPECT_TRUE(s->release(e->nodeid, o->fh).has_value());
        struct stat st {};
        EXPECT_EQ(::stat(dir_.file("share/" + file).c_str(), &st), 0);
        return st.st_atim.tv_sec;
    }

    TempDir dir_;
    VdhostProcess vdhost_;
    std::string share_;
    std::string ctl_;
    std::unique_ptr<FuseSession> session_;
};

TEST_F(VdhostShareProfile, AllowMmapAndReaddirplusAsNegotiated) {
    FuseSession* s = connect("plain");
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->negotiated_flags() & kDirectIoAllowMmap, 0u);
    EXPECT_EQ(s->negotiated_flags() & kReaddirplus, kReaddirplus);
    s = connect("never"); // cache: never turns READDIRPLUS off unless asked for
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->negotiated_flags() & kDirectIoAllowMmap, kDirectIoAllowMmap);
    EXPECT_EQ(s->init_reply().flags2, 0x10u); // bit 36 travels as flags2 bit 4
    EXPECT_EQ(s->negotiated_flags() & kReaddirplus, 0u);
    s = connect("rdp");
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->negotiated_flags() & kReaddirplus, kReaddirplus);
    EXPECT_EQ(s->negotiated_flags() & kDirectIoAllowMmap, 0u);
    s = connect("tagged");
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->negotiated_flags() & kReaddirplus, 0u);
}

TEST_F(VdhostShareProfile, NoatimeIsDroppedUnlessPreserved) {
    // An old atime (before mtime) is updated by a read under relatime, unless the host fd
    // has O_NOATIME.
    const std::string path = dir_.file("share/a.txt");
    for (const char* name : {"plain", "never"}) {
        testing::write_host_file(path, {'h', 'e', 'l', 'l', 'o'});
        const struct timespec old[2] = {{1000000000, 0}, {1000000100, 0}}; // atime < mtime
        ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), old, 0), 0);
        const time_t atime = read_noatime(name, "a.txt");
        if (std::string(name) == "plain") {
            EXPECT_GT(atime, 1000000100) << "default: O_NOATIME dropped, atime updated";
        } else {
            EXPECT_EQ(atime, 1000000000) << "preserve_noatime: atime kept";
        }
    }
}

TEST_F(VdhostShareProfile, GetConfigServesTheTagOnlyWhenAnnounced) {
    // announce_tag: CONFIG offered, virtio_fs_config served byte for byte.
    auto conn = VhostUserConnection::connect(sock("tagged"));
    ASSERT_TRUE(conn.has_value()) << conn.error();
    auto proto = conn->get_protocol_features();
    ASSERT_TRUE(proto.has_value()) << proto.error();
    EXPECT_EQ(*proto & frontend::kPfConfig, frontend::kPfConfig);
    ASSERT_TRUE(conn->set_protocol_features(*proto & (frontend::kPfMq | frontend::kPfReplyAck |
                                                      frontend::kPfConfig))
                    .has_value());
    std::vector<uint8_t> want(40, 0);
    std::memcpy(want.data(), "parity-tag", 10);
    want[36] = 3; // le32 num_request_queues
    auto cfg = conn->get_config(0, 40);
    ASSERT_TRUE(cfg.has_value()) << cfg.error();
    EXPECT_EQ(*cfg, want);
    // A window: bytes 7..46, the part past the 40-byte space zero.
    cfg = conn->get_config(7, 40);
    ASSERT_TRUE(cfg.has_value()) << cfg.error();
    std::vector<uint8_t> window(want.begin() + 7, want.end());
    window.resize(40, 0);
    EXPECT_EQ(*cfg, window);
    cfg = conn->get_config(36, 4);
    ASSERT_TRUE(cfg.has_value()) << cfg.error();
    EXPECT_EQ(*cfg, (std::vector<uint8_t>{3, 0, 0, 0}));
    // A malformed GET_CONFIG (config size beyond the payload) is refused: the connection ends.
    const uint32_t bad[3] = {0, 200, 0};
    ASSERT_TRUE(conn->send_message(24, 0, bad, sizeof(bad)).has_value());
    EXPECT_FALSE(conn->receive(std::chrono::milliseconds(2000)).has_value());

    // Without announce_tag: no CONFIG, and rte_vhost refuses GET_CONFIG (disconnects).
    auto plain = VhostUserConnection::connect(sock("plain"));
    ASSERT_TRUE(plain.has_value()) << plain.error();
    proto = plain->get_protocol_features();
    ASSERT_TRUE(proto.has_value()) << proto.error();
    EXPECT_EQ(*proto & frontend::kPfConfig, 0u);
    EXPECT_FALSE(plain->get_config(0, 40).has_value());

    // vdhost still serves the tagged share afterwards.
    FuseSession* s = connect("tagged");
    ASSERT_NE(s, nullptr);
    EXPECT_TRUE(s->getattr(kRootNodeId).has_value());
}

TEST_F(VdhostShareProfile, GetConfigWithAnFdIsRefusedAndTheFdClosed) {
    // rte_vhost closes the fds of messages it handles; vdhost answers GET_CONFIG itself,
    // so a frontend that attaches fds to it must not leave them open in vdhost.
    auto fds_back_to = [&](int want) {
        int n = -1;
        for (int i = 0; i < 100 && n != want; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            n = testing::fd_count(vdhost_.pid());
        }
        return n;
    };
    const int base = fds_back_to(testing::fd_count(vdhost_.pid()));
    ASSERT_GT(base, 0);
    for (int round = 0; round < 3; ++round) {
        auto conn = VhostUserConnection::connect(sock("tagged"));
        ASSERT_TRUE(conn.has_value()) << conn.error();
        UniqueFd ev(::eventfd(0, EFD_CLOEXEC));
        ASSERT_TRUE(ev.valid());
        uint8_t msg[12 + 40] = {};
        msg[4] = 40; // config size 40 at offset 0
        const int fds[2] = {ev.get(), ev.get()};
        ASSERT_TRUE(conn->send_message(24, 0, msg, sizeof(msg), fds).has_value());
        EXPECT_FALSE(conn->receive(std::chrono::milliseconds(2000)).has_value());
    }
    EXPECT_EQ(fds_back_to(base), base);
    // The share still answers GET_CONFIG.
    auto conn = VhostUserConnection::connect(sock("tagged"));
    ASSERT_TRUE(conn.has_value()) << conn.error();
    auto cfg = conn->get_config(0, 10);
    ASSERT_TRUE(cfg.has_value()) << cfg.error();
    EXPECT_EQ(std::string(cfg->begin(), cfg->end()), "parity-tag");
}

} // namespace
} // namespace vdh

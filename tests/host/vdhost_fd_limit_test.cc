// SPDX-License-Identifier: MIT
// Integration tests of the process fd budget through the real path: vdhost started with a
// lowered RLIMIT_NOFILE hard limit (and without CAP_SYS_RESOURCE, so it cannot raise it)
// serving two virtio-fs shares, driven by the FUSE client library. Share A's guest opens
// files until its own budget answers ENFILE; share B then still creates, writes and reads
// files (no EMFILE). A config whose budgets cannot all fit is refused at start and by
// --check-config, with the numbers.
#include <gtest/gtest.h>

#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/capability.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "fuse_client/fuse_session.h"
#include "vdh/unique_fd.h"
#include "vdhost_process.h"

namespace vdh {
namespace {

using fuse_client::FuseSession;
using fuse_client::kRootNodeId;
using fuse_client::SessionOptions;
using testing::TempDir;
using testing::VdhostProcess;

constexpr rlim_t kHardLimit = 1536;

/// In the child: soft 1024, hard kHardLimit, and no way to raise the hard limit again.
void lower_fd_limit() {
    struct rlimit r {
        1024, kHardLimit
    };
    setrlimit(RLIMIT_NOFILE, &r);
    prctl(PR_CAPBSET_DROP, CAP_SYS_RESOURCE, 0, 0, 0);
}

std::string two_shares(const TempDir& dir, const std::string& ctl, unsigned fd_limit) {
    std::string yaml =
        "host:\n  poll_lcores: [1]\n  control_socket: " + ctl + "\n  idle_poll_us: 100\ndevices:\n";
    for (const char* n : {"a", "b"}) {
        yaml += std::string("  - name: fs_") + n +
                "\n    type: virtiofs\n    socket: " + dir.file(std::string(n) + ".sock") +
                "\n    config:\n      shared_dir: " + dir.file(std::string("share_") + n) +
                "\n      fd_limit: " + std::to_string(fd_limit) + "\n";
    }
    return yaml;
}

class VdhostFdLimit : public ::testing::Test {
  protected:
    void SetUp() override {
        ASSERT_EQ(mkdir(dir_.file("share_a").c_str(), 0755), 0);
        ASSERT_EQ(mkdir(dir_.file("share_b").c_str(), 0755), 0);
    }

    std::unique_ptr<FuseSession> session(const std::string& sock) {
        SessionOptions o;
        o.socket_path = sock;
        o.num_request_queues = 1;
        o.queue_size = 128;
        o.memory_bytes = 32ULL << 20;
        auto s = FuseSession::connect(o);
        EXPECT_TRUE(s.has_value()) << "connect: " << (s ? 0 : s.error());
        return s ? std::move(*s) : nullptr;
    }

    TempDir dir_;
};

TEST_F(VdhostFdLimit, OneShareRunsOutOfItsBudgetTheOtherDoesNot) {
    // Host reserve (~540 for two devices on one lcore) + 2 x (300 + 144) fits in 1536.
    std::string ctl = dir_.file("ctl.sock");
    VdhostProcess v;
    v.set_child_setup(lower_fd_limit);
    ASSERT_TRUE(
        v.start(dir_, two_shares(dir_, ctl, 300), {dir_.file("a.sock"), dir_.file("b.sock"), ctl}))
        << v.log();
    std::string limits = testing::read_file("/proc/" + std::to_string(v.pid()) + "/limits");
    EXPECT_NE(limits.find("Max open files            1536                 1536"), std::string::npos)
        << "soft limit raised to the hard one by vdhost:\n"
        << limits;

    auto a = session(dir_.file("a.sock"));
    auto b = session(dir_.file("b.sock"));
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    int err = 0;
    int opened = 0;
    for (int i = 0; i < 2000; ++i) {
        auto r = a->create(kRootNodeId, "f" + std::to_string(i), O_RDWR, 0644);
        if (!r) {
            err = r.error();
            break;
        }
        ++opened;
    }
    EXPECT_EQ(err, ENFILE) << "after " << opened << " files: " << std::strerror(err);
    EXPECT_GT(opened, 50);
    EXPECT_LE(opened, 300);

    // Share B is untouched by A's exhaustion.
    for (int i = 0; i < 20; ++i) {
        auto r = b->create(kRootNodeId, "g" + std::to_string(i), O_RDWR, 0644);
        ASSERT_TRUE(r.has_value()) << "share b create " << i << ": " << std::strerror(r.error());
        std::vector<uint8_t> data(4096, static_cast<uint8_t>(i));
        auto w = b->write(r->entry.nodeid, r->open.fh, 0, data);
        ASSERT_TRUE(w.has_value()) << std::strerror(w.error());
        std::vector<uint8_t> back(4096);
        auto rd = b->read(r->entry.nodeid, r->open.fh, 0, back);
        ASSERT_TRUE(rd.has_value()) << std::strerror(rd.error());
        EXPECT_EQ(back, data);
    }
    auto look = b->lookup(kRootNodeId, "g3");
    ASSERT_TRUE(look.has_value());
    auto o = b->open(look->nodeid, O_RDONLY);
    EXPECT_TRUE(o.has_value()) << (o ? "" : std::strerror(o.error()));
    EXPECT_TRUE(v.alive());
    std::string stats = testing::vdhost_stats(ctl);
    EXPECT_EQ(testing::json_number(stats, "reserved_fds"), 444) << stats;
    EXPECT_EQ(v.stop(SIGTERM), 0) << v.log();
}

TEST_F(VdhostFdLimit, BudgetsThatDoNotFitAreRefusedAtStartAndByCheckConfig) {
    std::string ctl = dir_.file("ctl.sock");
    std::string yaml = two_shares(dir_, ctl, 600); // ~540 + 2 x 744 > 1536
    // Watched from before the start: no device of a config that does not fit ever listens
    // (every device reserves its fds before the first socket is created).
    UniqueFd watch(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    ASSERT_TRUE(watch);
    ASSERT_GE(::inotify_add_watch(watch.get(), dir_.path().c_str(), IN_CREATE), 0);
    VdhostProcess v;
    v.set_child_setup(lower_fd_limit);
    EXPECT_FALSE(v.start(dir_, yaml, {dir_.file("a.sock")}, std::chrono::seconds(5)));
    EXPECT_NE(v.stop(SIGTERM, std::chrono::seconds(10)), 0);
    std::vector<std::string> created;
    alignas(inotify_event) char events[4096];
    for (ssize_t n; (n = ::read(watch.get(), events, sizeof(events))) > 0;) {
        for (ssize_t off = 0; off < n;) {
            const auto* e = reinterpret_cast<const inotify_event*>(events + off);
            if (e->len != 0) {
                created.emplace_back(e->name);
            }
            off += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
        }
    }
    for (const std::string& name : created) {
        EXPECT_EQ(name.find(".sock"), std::string::npos) << name << " was created";
    }
    std::string log = v.log();
    EXPECT_NE(log.find("device fs_b: cannot reserve 744 fds: the process fd limit (RLIMIT_NOFILE) "
                       "is 1536, the host reserves "),
              std::string::npos)
        << log;
    EXPECT_NE(log.find("earlier devices reserved fs_a 744"), std::string::npos) << log;

    // --check-config says the same.
    std::string cfg = dir_.file("check.yaml");
    std::ofstream(cfg) << yaml;
    std::string out;
    EXPECT_EQ(testing::vdhost_check_config(cfg, &out, "1024:1536"), 1) << out;
    EXPECT_NE(out.find("device fs_b: cannot reserve 744 fds"), std::string::npos) << out;
}

} // namespace
} // namespace vdh

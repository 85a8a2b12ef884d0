// SPDX-License-Identifier: MIT
// The process-wide blocking pool through the real path: one vdhost with 64 virtio-fs
// shares (40 under a hard fd limit below 32768), each connected by a FUSE client
// (tools/fuse_client) over vhost-user and each running a blocking call (an uncontended
// SETLKW, which the dispatcher hands to the pool). The workers are shared: vdhost gains a
// handful of threads for all the connected shares (the pool's workers, and what else a
// connection costs), not one or more per share as with a pool per device (64 shares then
// meant 261 threads), and every share's blocking call is answered. After the frontends
// are gone, no worker is left.
#include <gtest/gtest.h>

#include <dirent.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fuse_client/fuse_session.h"
#include "vdhost_share_fixture.h"

namespace vdh {
namespace {

using namespace std::chrono_literals;
using fuse_client::FuseSession;
using fuse_client::kRootNodeId;
using fuse_client::SessionOptions;
using testing::TempDir;
using testing::VdhostProcess;

constexpr int kShares = 64;

/// Threads of process \p pid (/proc/PID/task entries), or -1.
int task_count(pid_t pid) {
    int n = 0;
    DIR* d = ::opendir(("/proc/" + std::to_string(pid) + "/task").c_str());
    if (d == nullptr) {
        return -1;
    }
    while (dirent* e = ::readdir(d)) {
        n += e->d_name[0] != '.' ? 1 : 0;
    }
    ::closedir(d);
    return n;
}

/// The names of process \p pid's threads (/proc/PID/task/TID/comm), for messages.
std::string task_names(pid_t pid) {
    std::string out;
    const std::string dir = "/proc/" + std::to_string(pid) + "/task";
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) {
        return out;
    }
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] != '.') {
            std::string comm = testing::read_file(dir + "/" + e->d_name + "/comm");
            out += (out.empty() ? "" : ", ") + comm.substr(0, comm.find('\n'));
        }
    }
    ::closedir(d);
    return out;
}

TEST(VdhostBlockingPool, SixtyFourConnectedSharesShareAFewWorkers) {
    // Each share reserves about 360 fds of the process's limit (its fd budget, and the
    // host's sockets, memory-region fds and eventfds of its 64 possible queues): 64 shares
    // need a hard limit above 23000, which not every host gives (and raising it needs
    // CAP_SYS_RESOURCE). Below that, 40 shares show the same.
    rlimit lim{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &lim), 0);
    const int shares = lim.rlim_max >= 32768 ? kShares : 40;
    TempDir dir;
    std::string yaml = testing::host_yaml("[0]", dir.file("ctl.sock"));
    std::vector<std::string> socks;
    for (int i = 0; i < shares; ++i) {
        const std::string name = "fs" + std::to_string(i);
        const std::string share = dir.file("share" + std::to_string(i));
        ASSERT_EQ(::mkdir(share.c_str(), 0755), 0);
        std::ofstream(share + "/f") << "x";
        socks.push_back(dir.file(name + ".sock"));
        // The smallest fd and inode budgets: every share must fit the process's fd limit.
        yaml += testing::virtiofs_device_yaml(name, socks.back(), "0", share,
                                              "      fd_limit: 64\n      inode_limit: 64\n");
    }
    VdhostProcess vdhost;
    std::vector<std::string> wait = socks;
    wait.push_back(dir.file("ctl.sock"));
    ASSERT_TRUE(vdhost.start(dir, yaml, wait)) << vdhost.log();
    // vdhost's own threads first (some start once it serves: a stats request settles them).
    (void)testing::vdhost_stats(dir.file("ctl.sock"));
    int before = task_count(vdhost.pid());
    for (auto end = std::chrono::steady_clock::now() + 3s;
         std::chrono::steady_clock::now() < end;) {
        std::this_thread::sleep_for(300ms);
        const int now = task_count(vdhost.pid());
        if (now == before) {
            break;
        }
        before = now;
    }
    const std::string names_before = task_names(vdhost.pid());
    ASSERT_GT(before, 0);

    std::vector<std::unique_ptr<FuseSession>> sessions;
    for (int i = 0; i < shares; ++i) {
        SessionOptions o;
        o.socket_path = socks[i];
        o.num_request_queues = 1;
        o.queue_size = 16;
        o.memory_bytes = 4ULL << 20;
        o.max_pages = 16;
        auto s = FuseSession::connect(o);
        ASSERT_TRUE(s.has_value()) << "connect fs" << i << ": " << s.error() << "\n"
                                   << vdhost.log();
        auto f = (*s)->lookup(kRootNodeId, "f");
        ASSERT_TRUE(f.has_value()) << "fs" << i;
        auto h = (*s)->open(f->nodeid, O_RDWR);
        ASSERT_TRUE(h.has_value()) << "fs" << i;
        fuse_lk_in in{};
        in.fh = h->fh;
        in.owner = 7;
        in.lk.end = UINT64_MAX;
        in.lk.type = F_WRLCK;
        in.lk.pid = 1;
        auto lk = (*s)->call(FUSE_SETLKW, f->nodeid, testing::as_bytes(in), 16);
        ASSERT_TRUE(lk.has_value()) << "fs" << i;
        EXPECT_EQ(lk->header.error, 0) << "fs" << i;
        sessions.push_back(std::move(*s));
    }
    const int connected = task_count(vdhost.pid());
    const std::string stats = testing::vdhost_stats(dir.file("ctl.sock"));
    // Every share's calls went through the one pool of the process.
    const long pool0 = testing::plugin_stat(stats, "pool_threads", "fs0");
    EXPECT_GE(pool0, 1) << stats;
    EXPECT_LE(pool0, 4) << stats;
    EXPECT_EQ(testing::plugin_stat(stats, "pool_threads", "fs" + std::to_string(shares - 1)), pool0)
        << stats;
    // A pool per share started at least one thread per connected share.
    EXPECT_LE(connected - before, 8)
        << "threads: " << before << " before, " << connected << " with " << shares
        << " shares connected: " << task_names(vdhost.pid());

    sessions.clear();
    // The last share's disconnect joins the workers (teardown is asynchronous).
    auto end = std::chrono::steady_clock::now() + 10s;
    while (task_count(vdhost.pid()) > before && std::chrono::steady_clock::now() < end) {
        std::this_thread::sleep_for(20ms);
    }
    EXPECT_LE(task_count(vdhost.pid()), before)
        << "before: " << names_before << "; now: " << task_names(vdhost.pid());
    vdhost.stop();
}

} // namespace
} // namespace vdh

// SPDX-License-Identifier: MIT
// Unit tests of the virtio-blk io_uring: queued operations go out in one submission per
// flush(), completions come back through poll() with their user data and result and signal
// the wake eventfd, a full SQ is drained instead of failing, and io-wq workers are kept off
// the poll CPU (traps.md #1).
#include "blk_uring.h"

#include <gtest/gtest.h>

#include <dirent.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "../../host/temp_dir.h"

namespace vdh::virtioblk {
namespace {

using testing::TempDir;

struct Results {
    std::map<uint64_t, int32_t> by_ud;
};

void collect(void* owner, uint64_t ud, int32_t res) {
    static_cast<Results*>(owner)->by_ud[ud] = res;
}

/// Polls until \p n completions arrived (or 5 s passed).
void reap(BlkUring& r, Results& res, size_t n) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (res.by_ud.size() < n && std::chrono::steady_clock::now() < end) {
        if (r.poll(&collect, &res) == 0) {
            std::this_thread::sleep_for(std::chrono::microseconds(100));
        }
    }
}

class BlkUringTest : public ::testing::Test {
  protected:
    void SetUp() override {
        path_ = dir_.file("disk.img");
        fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        ASSERT_GE(fd_, 0);
        ASSERT_EQ(::ftruncate(fd_, 1 << 20), 0);
    }
    void TearDown() override { ::close(fd_); }

    TempDir dir_;
    std::string path_;
    int fd_ = -1;
};

TEST_F(BlkUringTest, BatchedOperationsGoOutOnFlush) {
    BlkUring r(64, 0, /*batched=*/true);
    ASSERT_TRUE(r.init());
    std::vector<uint8_t> a(4096, 'a');
    std::vector<uint8_t> b(8192, 'b');
    struct iovec wa[1] = {{a.data(), a.size()}};
    struct iovec wb[2] = {{b.data(), 4096}, {b.data() + 4096, 4096}};
    ASSERT_TRUE(r.writev(fd_, wa, 1, 0, 8));
    ASSERT_TRUE(r.writev(fd_, wb, 2, 65536, 16));
    EXPECT_EQ(r.inflight(), 2u);
    EXPECT_EQ(r.enters(), 0u); // nothing submitted before the flush
    EXPECT_EQ(r.flush(), 2u);
    EXPECT_EQ(r.enters(), 1u);
    Results res;
    reap(r, res, 2);
    EXPECT_EQ(res.by_ud[8], 4096);
    EXPECT_EQ(res.by_ud[16], 8192);
    EXPECT_EQ(r.inflight(), 0u);
    uint64_t v = 0;
    EXPECT_EQ(::read(r.wake_fd(), &v, sizeof(v)), static_cast<ssize_t>(sizeof(v)));
    EXPECT_GT(v, 0u);

    std::vector<uint8_t> back(4096);
    struct iovec rd[1] = {{back.data(), back.size()}};
    ASSERT_TRUE(r.readv(fd_, rd, 1, 65536 + 4096, 24));
    ASSERT_TRUE(r.fdatasync(fd_, 32));
    ASSERT_TRUE(r.fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096, 40));
    r.flush();
    reap(r, res, 5);
    EXPECT_EQ(res.by_ud[24], 4096);
    EXPECT_EQ(back, std::vector<uint8_t>(4096, 'b'));
    EXPECT_EQ(res.by_ud[32], 0);
    EXPECT_EQ(res.by_ud[40], 0);
    char c = 'x';
    EXPECT_EQ(::pread(fd_, &c, 1, 0), 1);
    EXPECT_EQ(c, 0);
    EXPECT_EQ(r.submitted(), 5u);
}

TEST_F(BlkUringTest, ErrorsComeBackAsNegativeResults) {
    BlkUring r(8, 0, true);
    ASSERT_TRUE(r.init());
    char buf[512];
    struct iovec v[1] = {{buf, sizeof(buf)}};
    ASSERT_TRUE(r.readv(-1, v, 1, 0, 8));
    ASSERT_TRUE(r.fallocate(fd_, 0x7f00, 0, 512, 16)); // no such mode
    r.flush();
    Results res;
    reap(r, res, 2);
    EXPECT_EQ(res.by_ud[8], -EBADF);
    EXPECT_LT(res.by_ud[16], 0);
}

TEST_F(BlkUringTest, UnbatchedSubmitsAtOnceAndAFullSqIsDrained) {
    BlkUring r(8, 0, /*batched=*/false);
    ASSERT_TRUE(r.init());
    char buf[512] = {};
    struct iovec v[1] = {{buf, sizeof(buf)}};
    ASSERT_TRUE(r.writev(fd_, v, 1, 0, 8));
    EXPECT_EQ(r.enters(), 1u);
    BlkUring batched(8, 0, true);
    ASSERT_TRUE(batched.init());
    // 40 operations on an 8-entry SQ between two flushes: the SQ is handed to the kernel
    // when it fills, nothing is refused.
    for (uint64_t i = 1; i <= 40; ++i) {
        ASSERT_TRUE(batched.writev(fd_, v, 1, i * 512, i * 8)) << i;
    }
    batched.flush();
    Results res;
    reap(batched, res, 40);
    EXPECT_EQ(res.by_ud.size(), 40u);
    for (const auto& [ud, rc] : res.by_ud) {
        EXPECT_EQ(rc, 512) << ud;
    }
    Results one;
    reap(r, one, 1);
}

std::string cpus_allowed(const std::string& status_path) {
    std::ifstream f(status_path);
    std::string line;
    while (std::getline(f, line)) {
        if (line.rfind("Cpus_allowed_list:", 0) == 0) {
            return line.substr(line.find_first_not_of(" \t", 18));
        }
    }
    return "";
}

TEST_F(BlkUringTest, IoWorkersStayOffThePollCpu) {
    if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
        GTEST_SKIP() << "needs 2 CPUs";
    }
    // A "poll lcore" pinned to CPU 0 creates the ring and punts writes to io-wq
    // (IOSQE_ASYNC is not needed: buffered writes on ext4 and tmpfs are punted, traps.md #8;
    // a fsync always is).
    std::vector<std::string> masks;
    std::thread lcore([&] {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(0, &one);
        ASSERT_EQ(pthread_setaffinity_np(pthread_self(), sizeof(one), &one), 0);
        BlkUring r(16, 0, true);
        ASSERT_TRUE(r.init());
        std::vector<uint8_t> data(1 << 20, 1);
        struct iovec v[1] = {{data.data(), data.size()}};
        Results res;
        for (uint64_t i = 1; i <= 8; ++i) {
            ASSERT_TRUE(r.writev(fd_, v, 1, 0, i * 8));
            ASSERT_TRUE(r.fdatasync(fd_, i * 8 + 1024));
        }
        r.flush();
        // Look at the workers while they exist (they linger idle for a while).
        const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (masks.empty() && std::chrono::steady_clock::now() < end) {
            r.poll(&collect, &res);
            if (DIR* d = opendir("/proc/self/task")) {
                while (dirent* e = readdir(d)) {
                    const std::string base = std::string("/proc/self/task/") + e->d_name;
                    std::ifstream comm(base + "/comm");
                    std::string name;
                    std::getline(comm, name);
                    if (name.rfind("iou-wrk", 0) == 0) {
                        masks.push_back(cpus_allowed(base + "/status"));
                    }
                }
                closedir(d);
            }
        }
        reap(r, res, 16);
    });
    lcore.join();
    if (masks.empty()) {
        GTEST_SKIP() << "no io-wq worker was started";
    }
    for (const std::string& m : masks) {
        EXPECT_EQ(m.find('0') == 0 && (m.size() == 1 || m[1] == ',' || m[1] == '-'), false)
            << "worker allowed on the poll CPU: " << m;
    }
}

} // namespace
} // namespace vdh::virtioblk

// SPDX-License-Identifier: MIT
// Tests of the write-path probe and the inline-write gate (host/plugin_support/write_path.*, vdh/write_path.h)
// on real files: which filesystems get which path, and each rule that keeps an inline
// write from waiting on disk (size, open flags, in-flight writes, uncached edge pages,
// write-only fds, the backoff after a slow write).
#include "vdh/write_path.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "temp_dir.h"
#include "vdh/unique_fd.h"

namespace vdh {
namespace {

using vdh::testing::TempDir;
using namespace std::chrono_literals;

/// Independent of the code under test: does \p dir take a 4 KiB RWF_NOWAIT write?
bool kernel_takes_nowait(const std::string& dir) {
    auto fd = UniqueFd::from_syscall(::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
    if (!fd) {
        return false;
    }
    static char buf[4096];
    struct iovec iov = {buf, sizeof(buf)};
    ::pwrite(fd->get(), buf, sizeof(buf), 0);
    return ::pwritev2(fd->get(), &iov, 1, 0, RWF_NOWAIT) == static_cast<ssize_t>(sizeof(buf));
}

UniqueFd open_file(const std::string& path, int flags) {
    auto fd = UniqueFd::from_syscall(::open(path.c_str(), flags | O_CLOEXEC, 0600));
    EXPECT_TRUE(fd.has_value()) << path;
    return fd ? std::move(*fd) : UniqueFd{};
}

TEST(WritePathChoice, AutoFollowsWhatTheFilesystemAccepts) {
    TempDir dir;
    std::string err;
    auto c = choose_write_path(dir.path(), WritePath::Auto, false, &err);
    ASSERT_TRUE(c.has_value()) << err;
    // The test directory is on a local filesystem (ext4 or tmpfs, or xfs).
    EXPECT_EQ(c->path, kernel_takes_nowait(dir.path()) ? WritePath::Nowait : WritePath::Inline)
        << c->reason;
    EXPECT_FALSE(c->reason.empty());
}

TEST(WritePathChoice, ExplicitChoicesAndTheirRefusals) {
    TempDir dir;
    std::string err;
    auto punt = choose_write_path(dir.path(), WritePath::Punt, false, &err);
    ASSERT_TRUE(punt.has_value());
    EXPECT_EQ(punt->path, WritePath::Punt);
    auto inl = choose_write_path(dir.path(), WritePath::Inline, false, &err);
    ASSERT_TRUE(inl.has_value()) << err;
    EXPECT_EQ(inl->path, WritePath::Inline);
    auto nowait = choose_write_path(dir.path(), WritePath::Nowait, false, &err);
    if (kernel_takes_nowait(dir.path())) {
        ASSERT_TRUE(nowait.has_value()) << err;
        EXPECT_EQ(nowait->path, WritePath::Nowait);
    } else {
        ASSERT_FALSE(nowait.has_value());
        EXPECT_NE(err.find("refuses non-blocking buffered writes (RWF_NOWAIT)"), std::string::npos)
            << err;
    }
    // procfs: not a local page-cache filesystem.
    EXPECT_FALSE(choose_write_path("/proc", WritePath::Inline, false, &err).has_value());
    EXPECT_NE(err.find("is not a local page-cache filesystem"), std::string::npos) << err;
    auto proc = choose_write_path("/proc", WritePath::Auto, false, &err);
    ASSERT_TRUE(proc.has_value());
    EXPECT_EQ(proc->path, WritePath::Punt);
    // A read-only share is never probed.
    auto ro = choose_write_path("/nonexistent", WritePath::Auto, true, &err);
    ASSERT_TRUE(ro.has_value());
    EXPECT_EQ(ro->path, WritePath::Punt);
}

class InlineGate : public ::testing::Test {
protected:
    void SetUp() override {
        path_ = dir_.file("f");
        fd_ = open_file(path_, O_CREAT | O_RDWR);
        std::string page(8192, 'a');
        ASSERT_EQ(::pwrite(fd_.get(), page.data(), page.size(), 0), 8192);
    }
    TempDir dir_;
    std::string path_;
    UniqueFd fd_;
};

TEST_F(InlineGate, AlignedSmallWriteRunsInlineAndLands) {
    InlineWriteGate gate(true);
    std::string data(4096, 'z');
    struct iovec iov = {data.data(), data.size()};
    ASSERT_TRUE(gate.allow(fd_.get(), O_RDWR, 4096, 4096, 0));
    EXPECT_EQ(gate.write(fd_.get(), &iov, 1, 4096), 4096);
    char b = 0;
    ASSERT_EQ(::pread(fd_.get(), &b, 1, 4096 + 17), 1);
    EXPECT_EQ(b, 'z');
    EXPECT_EQ(gate.inline_writes(), 1u);
}

TEST_F(InlineGate, RulesThatSendAWriteToIoUring) {
    InlineWriteGate off(false);
    EXPECT_FALSE(off.allow(fd_.get(), O_RDWR, 0, 4096, 0)); // share is not inline
    InlineWriteGate gate(true);
    EXPECT_TRUE(gate.allow(fd_.get(), O_RDWR, 0, InlineWriteGate::kMaxInline, 0));
    EXPECT_FALSE(gate.allow(fd_.get(), O_RDWR, 0, InlineWriteGate::kMaxInline + 1, 0));
    // A plugin may set its own limit (virtio-blk: 128 KiB).
    InlineWriteGate big(true, InlineWriteGate::kSlow, InlineWriteGate::kStallBurst, 128 * 1024);
    EXPECT_EQ(big.max_inline(), 128u * 1024);
    EXPECT_TRUE(big.allow(fd_.get(), O_RDWR, 0, 128 * 1024, 0));
    EXPECT_FALSE(big.allow(fd_.get(), O_RDWR, 0, 128 * 1024 + 1, 0));
    EXPECT_FALSE(gate.allow(fd_.get(), O_RDWR, 0, 0, 0));
    EXPECT_FALSE(gate.allow(fd_.get(), O_RDWR | O_DIRECT, 0, 4096, 0));
    EXPECT_FALSE(gate.allow(fd_.get(), O_RDWR | O_SYNC, 0, 4096, 0));
    EXPECT_FALSE(gate.allow(fd_.get(), O_RDWR | O_DSYNC, 0, 4096, 0));
    EXPECT_FALSE(gate.allow(fd_.get(), O_RDWR, 0, 4096, 1)); // a write is in flight
    EXPECT_FALSE(gate.allow(fd_.get(), O_RDWR, ~0ULL - 10, 100, 0)); // offset overflow
}

TEST_F(InlineGate, PartialPagesMustBeCachedOrBeyondEof) {
    InlineWriteGate gate(true);
    // Cached (just written): a partial write at either edge is fine.
    EXPECT_TRUE(gate.allow(fd_.get(), O_RDWR, 100, 50, 0));
    EXPECT_TRUE(gate.allow(fd_.get(), O_RDWR, 4000, 300, 0));
    // Wholly beyond EOF (8192): the page starts zeroed, nothing to read.
    EXPECT_TRUE(gate.allow(fd_.get(), O_RDWR, 3 * 4096 + 10, 20, 0));
    // A write-only fd cannot tell whether an edge page is cached: not inline. Whole pages
    // need no read: inline.
    UniqueFd wo = open_file(path_, O_WRONLY);
    EXPECT_FALSE(gate.allow(wo.get(), O_WRONLY, 100, 50, 0));
    EXPECT_TRUE(gate.allow(wo.get(), O_WRONLY, 4096, 4096, 0));
    // Evicted from the page cache: a partial write would read from disk. (tmpfs keeps its
    // pages: only checked where the eviction took effect.) Residency is read with
    // mincore(), which starts no I/O.
    auto resident = [this](unsigned char (&vec)[2]) {
        void* m = ::mmap(nullptr, 2 * 4096, PROT_READ, MAP_SHARED, fd_.get(), 0);
        if (m == MAP_FAILED) {
            return false;
        }
        const bool ok = ::mincore(m, 2 * 4096, vec) == 0;
        ::munmap(m, 2 * 4096);
        return ok;
    };
    auto evicted = [this, &resident] {
        unsigned char vec[2] = {1, 1};
        return ::fsync(fd_.get()) == 0 &&
               ::posix_fadvise(fd_.get(), 0, 0, POSIX_FADV_DONTNEED) == 0 && resident(vec) &&
               (vec[0] & 1) == 0 && (vec[1] & 1) == 0;
    };
    // No readahead: a probe's miss reads only its own page.
    ASSERT_EQ(::posix_fadvise(fd_.get(), 0, 0, POSIX_FADV_RANDOM), 0);
    if (!evicted()) {
        GTEST_SKIP() << "the page cache kept the file (tmpfs?)";
    }
    // The gate's probe (a 1-byte RWF_NOWAIT read) starts the read of its page when it
    // misses, and on a fast disk that read can finish before the kernel looks again: the
    // page is then cached and inline is right. So each partial edge write is tried after
    // five evictions: whenever the gate allows it, its edge page must be resident right
    // after; and it must refuse at least once (a gate that ignored the page cache would
    // allow every time).
    struct Edge {
        uint64_t off;
        uint32_t len;
        int page; ///< the partly written page that would need a read
    };
    for (const Edge& e : {Edge{100, 50, 0}, Edge{0, 4196, 1}}) {
        SCOPED_TRACE(e.off);
        int refused = 0;
        for (int i = 0; i < 5; ++i) {
            ASSERT_TRUE(evicted());
            if (!gate.allow(fd_.get(), O_RDWR, e.off, e.len, 0)) {
                ++refused;
                continue;
            }
            unsigned char vec[2] = {0, 0};
            ASSERT_TRUE(resident(vec));
            EXPECT_EQ(vec[e.page] & 1, 1) << "allowed while page " << e.page << " is not cached";
        }
        EXPECT_GT(refused, 0);
    }
    ASSERT_TRUE(evicted());
    EXPECT_TRUE(gate.allow(fd_.get(), O_RDWR, 4096, 4096, 0)); // whole page: no read
}

TEST_F(InlineGate, OccasionalStallsStayWithinTheBudget) {
    // Every write counts as a stall, but each lasts microseconds: 100 of them stay far
    // below the 4 ms bucket, so the fast path stays on.
    InlineWriteGate gate(true, 0ns);
    std::string data(4096, 'q');
    struct iovec iov = {data.data(), data.size()};
    for (int i = 0; i < 100; ++i) {
        ASSERT_TRUE(gate.allow(fd_.get(), O_RDWR, 0, 4096, 0)) << i;
        ASSERT_EQ(gate.write(fd_.get(), &iov, 1, 0), 4096);
    }
    // The first is counted (no earlier reading of the thread's voluntary switches); the
    // rest made no voluntary switch in between: preemption at most, not counted.
    EXPECT_GE(gate.slow_writes(), 1u);
    EXPECT_EQ(gate.slow_writes() + gate.preempted_writes(), 100u);
    EXPECT_EQ(gate.backoffs(), 0u);
}

TEST_F(InlineGate, StallBeyondTheBudgetBacksOffThenDoubles) {
    // Every write is a stall and the bucket holds nothing: the gate closes for 100 ms,
    // then for 200 ms.
    InlineWriteGate gate(true, 0ns, 0ns);
    std::string data(4096, 'q');
    struct iovec iov = {data.data(), data.size()};
    ASSERT_TRUE(gate.allow(fd_.get(), O_RDWR, 0, 4096, 0));
    EXPECT_EQ(gate.write(fd_.get(), &iov, 1, 0), 4096);
    EXPECT_EQ(gate.slow_writes(), 1u);
    EXPECT_EQ(gate.backoffs(), 1u);
    EXPECT_EQ(gate.backoff(), InlineWriteGate::kFirstBackoff);
    EXPECT_FALSE(gate.allow(fd_.get(), O_RDWR, 0, 4096, 0));
    std::this_thread::sleep_for(InlineWriteGate::kFirstBackoff + 20ms);
    // A write that made no voluntary context switch only counts as preempted, not as a
    // stall (write_path.h), and page-cache writes rarely sleep. So these writes copy from
    // a page of another file that was just evicted: the copy takes a major fault and the
    // thread sleeps on the disk read, a real stall. (The first write after the sleep above
    // may still count as preempted: the run delay of its wake-up is taken off.)
    const std::string src_path = dir_.file("src");
    UniqueFd src = open_file(src_path, O_CREAT | O_RDWR);
    ASSERT_EQ(::pwrite(src.get(), data.data(), data.size(), 0), 4096);
    for (off_t off = 0; off < 64 * 4096 && gate.backoffs() < 2; off += 4096) {
        ASSERT_EQ(::fdatasync(src.get()), 0);
        ASSERT_EQ(::posix_fadvise(src.get(), 0, 0, POSIX_FADV_DONTNEED), 0);
        void* page = ::mmap(nullptr, 4096, PROT_READ, MAP_SHARED, src.get(), 0);
        ASSERT_NE(page, MAP_FAILED);
        struct iovec cold = {page, 4096};
        ASSERT_TRUE(gate.allow(fd_.get(), O_RDWR, off, 4096, 0));
        EXPECT_EQ(gate.write(fd_.get(), &cold, 1, off), 4096);
        ::munmap(page, 4096);
    }
    EXPECT_EQ(gate.backoff(), 2 * InlineWriteGate::kFirstBackoff);
    EXPECT_EQ(gate.backoffs(), 2u);
    EXPECT_FALSE(gate.allow(fd_.get(), O_RDWR, 0, 4096, 0));
}

TEST_F(InlineGate, ErrorsComeBackAsNegativeErrno) {
    InlineWriteGate gate(true);
    UniqueFd ro = open_file(path_, O_RDONLY);
    std::string data(16, 'x');
    struct iovec iov = {data.data(), data.size()};
    EXPECT_EQ(gate.write(ro.get(), &iov, 1, 0), -EBADF);
}

} // namespace
} // namespace vdh

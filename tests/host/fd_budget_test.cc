// SPDX-License-Identifier: MIT
// Tests of host/src/fd_budget.cc: reservation accounting against a limit, the host's own
// reserve, the refusal message, and RLIMIT_NOFILE reading and raising.
#include "fd_budget.h"

#include <sys/resource.h>

#include <gtest/gtest.h>

namespace vdh {
namespace {

TEST(FdBudget, ReservationsUpToTheLimitFit) {
    FdBudget b(1000, 200);
    std::string err;
    EXPECT_TRUE(b.reserve("a", 300, &err)) << err;
    EXPECT_TRUE(b.reserve("b", 500, &err)) << err;
    EXPECT_EQ(b.reserved(), 800u);
    EXPECT_EQ(b.needed(), 1000u);
    ASSERT_EQ(b.devices().size(), 2u);
    EXPECT_EQ(b.devices()[1].first, "b");
    EXPECT_EQ(b.devices()[1].second, 500u);
    EXPECT_TRUE(b.reserve("c", 0, &err)) << err; // nothing more left, and nothing asked
}

TEST(FdBudget, OneTooManyIsRefusedWithEveryNumber) {
    FdBudget b(1000, 200);
    std::string err;
    ASSERT_TRUE(b.reserve("fs0", 700, &err));
    EXPECT_FALSE(b.reserve("fs1", 101, &err));
    EXPECT_EQ(err,
              "device fs1: cannot reserve 101 fds: the process fd limit (RLIMIT_NOFILE) is 1000, "
              "the host reserves 200 for its own fds and earlier devices reserved fs0 700, so "
              "100 are left; lower the device's fd budget (virtio-fs: fd_limit) or raise the "
              "hard limit (ulimit -Hn, systemd LimitNOFILE=)");
    // A refused reservation takes nothing.
    EXPECT_EQ(b.reserved(), 700u);
    EXPECT_TRUE(b.reserve("fs1", 100, &err)) << err;
}

TEST(FdBudget, AnOwnerGivesBackOnlyItsOwnEvenUnderASharedName) {
    FdBudget b(1000, 100);
    std::string err;
    int old_dev = 0;
    int new_dev = 0;
    // A removed device not yet freed and a new one of the same name.
    ASSERT_TRUE(b.reserve_host(&old_dev, "fs0", 50, &err)) << err;
    ASSERT_TRUE(b.reserve("fs0", 300, &err, &old_dev)) << err;
    ASSERT_TRUE(b.reserve_host(&new_dev, "fs0", 50, &err)) << err;
    ASSERT_TRUE(b.reserve("fs0", 200, &err, &new_dev)) << err;
    EXPECT_EQ(b.host_reserve(), 200u);
    EXPECT_EQ(b.reserved(), 500u);
    b.release(&old_dev);
    EXPECT_EQ(b.host_reserve(), 150u);
    EXPECT_EQ(b.reserved(), 200u);
    ASSERT_EQ(b.devices().size(), 1u);
    EXPECT_EQ(b.devices()[0].second, 200u);
    b.release(&new_dev);
    EXPECT_EQ(b.needed(), 100u);
    // The host's share for a device is refused like a device's own.
    EXPECT_FALSE(b.reserve_host(&new_dev, "fs1", 901, &err));
    EXPECT_NE(err.find("device fs1: cannot reserve 901 fds"), std::string::npos) << err;
}

TEST(FdBudget, HugeRequestsDoNotWrap) {
    FdBudget b(1000, 200);
    std::string err;
    EXPECT_FALSE(b.reserve("x", UINT64_MAX, &err));
    EXPECT_FALSE(b.reserve("x", UINT64_MAX - 100, &err));
    EXPECT_EQ(b.reserved(), 0u);
    FdBudget tight(100, 200); // the host alone does not fit
    EXPECT_FALSE(tight.reserve("x", 1, &err));
    EXPECT_NE(err.find("so 0 are left"), std::string::npos) << err;
}

TEST(FdBudget, HostReserveGrowsWithDevicesAndLcores) {
    uint64_t base = host_fd_reserve(0, 0);
    EXPECT_GT(base, 0u);
    uint64_t per_device = host_fd_reserve(1, 0) - base;
    // A device may have 64 queues, each with kick, call and error fds.
    EXPECT_GE(per_device, 3u * 64u);
    EXPECT_EQ(host_fd_reserve(3, 0), base + 3 * per_device);
    EXPECT_GT(host_fd_reserve(0, 2), base);
}

TEST(FdBudget, ReadsAndRaisesTheSoftLimit) {
    struct rlimit saved {};
    ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
    NofileLimits l = read_nofile_limits();
    EXPECT_GT(l.hard, 0u);
    EXPECT_LE(l.soft, l.hard);
    EXPECT_LE(l.hard, l.nr_open);
    struct rlimit low = saved;
    low.rlim_cur = 256;
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
    EXPECT_EQ(read_nofile_limits().soft, 256u);
    std::string err;
    ASSERT_TRUE(set_nofile_limit(l.hard, &err)) << err;
    EXPECT_EQ(read_nofile_limits().soft, l.hard);
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
}

} // namespace
} // namespace vdh

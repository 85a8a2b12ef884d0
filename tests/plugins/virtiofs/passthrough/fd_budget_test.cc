// SPDX-License-Identifier: MIT
// GuestFdBudget: limit, ENFILE, release on slot destruction and move, concurrency.

#include "fd_budget.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace vdh::virtiofs::passthrough {
namespace {

TEST(GuestFdBudget, EnfileAtLimitAndReleaseOnDrop) {
    GuestFdBudget b(2);
    auto s1 = b.acquire();
    auto s2 = b.acquire();
    ASSERT_TRUE(s1.has_value() && s2.has_value());
    EXPECT_EQ(b.in_use(), 2u);
    auto s3 = b.acquire();
    ASSERT_FALSE(s3.has_value());
    EXPECT_EQ(s3.error(), ENFILE);
    s1 = make_err(EIO); // destroys the slot
    EXPECT_EQ(b.in_use(), 1u);
    EXPECT_TRUE(b.acquire().has_value()); // acquired and dropped at once
    EXPECT_EQ(b.in_use(), 1u);
}

TEST(GuestFdBudget, MoveTransfersTheUnit) {
    GuestFdBudget b(1);
    FdSlot a = std::move(*b.acquire());
    EXPECT_TRUE(a.held());
    FdSlot c(std::move(a));
    EXPECT_FALSE(a.held());
    EXPECT_TRUE(c.held());
    EXPECT_EQ(b.in_use(), 1u);
    FdSlot d;
    d = std::move(c);
    EXPECT_EQ(b.in_use(), 1u);
    d.reset();
    EXPECT_EQ(b.in_use(), 0u);
    d.reset();
    EXPECT_EQ(b.in_use(), 0u);
}

TEST(GuestFdBudget, ZeroMeansUnlimited) {
    GuestFdBudget b(0);
    std::vector<FdSlot> v;
    for (int i = 0; i < 1000; ++i) {
        auto s = b.acquire();
        ASSERT_TRUE(s.has_value());
        v.push_back(std::move(*s));
    }
    EXPECT_EQ(b.in_use(), 1000u);
}

TEST(GuestFdBudget, NeverExceedsLimitUnderContention) {
    GuestFdBudget b(10);
    std::atomic<int> max_seen{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t) {
        ts.emplace_back([&] {
            for (int i = 0; i < 2000; ++i) {
                auto s = b.acquire();
                int now = static_cast<int>(b.in_use());
                int prev = max_seen.load();
                while (now > prev && !max_seen.compare_exchange_weak(prev, now)) {
                }
            }
        });
    }
    for (auto& t : ts) {
        t.join();
    }
    EXPECT_LE(max_seen.load(), 10);
    EXPECT_EQ(b.in_use(), 0u);
}

} // namespace
} // namespace vdh::virtiofs::passthrough

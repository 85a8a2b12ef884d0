// SPDX-License-Identifier: MIT
// Tests of host/src/guest_memory.cc: region table checks (overlap, empty, full) and the
// guest-physical → host translation (splits at region boundaries, gaps, wrap, iovec budget,
// the single-region fast path).

#include "guest_memory.h"

#include <sys/uio.h>

#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

namespace vdh {
namespace {

constexpr uint64_t kPage = 0x1000;

/// Host backing store: page i of host_ is at host(i).
class GuestMemoryTest : public ::testing::Test {
protected:
    uint8_t* host(int page) { return host_.data() + page * kPage; }

    std::vector<uint8_t> host_ = std::vector<uint8_t>(16 * kPage);
    GuestMemory mem_;
};

TEST_F(GuestMemoryTest, AddRegionStoresRegions) {
    ASSERT_TRUE(mem_.add_region(0x10000, 2 * kPage, host(3)));
    ASSERT_TRUE(mem_.add_region(0x0, kPage, host(0)));
    ASSERT_EQ(mem_.region_count(), 2);
    EXPECT_EQ(mem_.region(0).gpa, 0x10000u);
    EXPECT_EQ(mem_.region(0).size, 2 * kPage);
    EXPECT_EQ(mem_.region(0).hva, host(3));
    EXPECT_EQ(mem_.region(1).gpa, 0u);
    EXPECT_EQ(mem_.region(1).hva, host(0));
}

TEST_F(GuestMemoryTest, AddRegionRejectsEmptyNullAndWrapping) {
    EXPECT_FALSE(mem_.add_region(0x1000, 0, host(0)));
    EXPECT_FALSE(mem_.add_region(0x1000, kPage, nullptr));
    EXPECT_FALSE(mem_.add_region(UINT64_MAX - kPage + 2, kPage, host(0)));
    EXPECT_EQ(mem_.region_count(), 0);
}

TEST_F(GuestMemoryTest, AddRegionRejectsOverlap) {
    ASSERT_TRUE(mem_.add_region(0x10000, 4 * kPage, host(0)));  // [0x10000, 0x14000)
    EXPECT_FALSE(mem_.add_region(0x10000, 4 * kPage, host(4)));  // identical
    EXPECT_FALSE(mem_.add_region(0x11000, kPage, host(4)));      // inside
    EXPECT_FALSE(mem_.add_region(0xf000, 2 * kPage, host(4)));   // over the start
    EXPECT_FALSE(mem_.add_region(0x13fff, 2, host(4)));          // over the end by one byte
    EXPECT_FALSE(mem_.add_region(0x8000, 0x10000, host(4)));     // contains it
    EXPECT_EQ(mem_.region_count(), 1);
    // Touching either end is fine.
    EXPECT_TRUE(mem_.add_region(0x14000, kPage, host(4)));
    EXPECT_TRUE(mem_.add_region(0xf000, kPage, host(5)));
    EXPECT_EQ(mem_.region_count(), 3);
}

TEST_F(GuestMemoryTest, AddRegionRejectsNinthRegionAndClearEmpties) {
    for (int i = 0; i < GuestMemory::kMaxRegions; ++i) {
        ASSERT_TRUE(mem_.add_region(static_cast<uint64_t>(i) * 0x10000, kPage, host(i))) << i;
    }
    EXPECT_FALSE(mem_.add_region(0x100000, kPage, host(9)));
    EXPECT_EQ(mem_.region_count(), GuestMemory::kMaxRegions);

    mem_.clear();
    EXPECT_EQ(mem_.region_count(), 0);
    struct iovec iov[1];
    EXPECT_EQ(mem_.translate(0, 1, iov, 1), -1);
    EXPECT_TRUE(mem_.add_region(0x100000, kPage, host(9)));
}

TEST_F(GuestMemoryTest, TranslateInsideOneRegion) {
    ASSERT_TRUE(mem_.add_region(0x40000, 2 * kPage, host(5)));
    struct iovec iov[4];
    ASSERT_EQ(mem_.translate(0x40123, 0x456, iov, 4), 1);
    EXPECT_EQ(iov[0].iov_base, host(5) + 0x123);
    EXPECT_EQ(iov[0].iov_len, 0x456u);
    // The last byte of the region.
    ASSERT_EQ(mem_.translate(0x41fff, 1, iov, 4), 1);
    EXPECT_EQ(iov[0].iov_base, host(6) + 0xfff);
    // Up to one byte short of the end.
    ASSERT_EQ(mem_.translate(0x40000, 2 * kPage - 1, iov, 4), 1);
    EXPECT_EQ(iov[0].iov_len, 2 * kPage - 1);
    // The whole region.
    ASSERT_EQ(mem_.translate(0x40000, 2 * kPage, iov, 1), 1);
    EXPECT_EQ(iov[0].iov_base, host(5));
    EXPECT_EQ(iov[0].iov_len, 2 * kPage);
}

TEST_F(GuestMemoryTest, TranslateSplitsAcrossAdjacentRegions) {
    // Adjacent guest-physically, scattered on the host.
    ASSERT_TRUE(mem_.add_region(0x20000, kPage, host(7)));
    ASSERT_TRUE(mem_.add_region(0x21000, kPage, host(2)));
    ASSERT_TRUE(mem_.add_region(0x22000, kPage, host(11)));
    struct iovec iov[4];
    ASSERT_EQ(mem_.translate(0x20ff0, 0x20, iov, 4), 2);
    EXPECT_EQ(iov[0].iov_base, host(7) + 0xff0);
    EXPECT_EQ(iov[0].iov_len, 0x10u);
    EXPECT_EQ(iov[1].iov_base, host(2));
    EXPECT_EQ(iov[1].iov_len, 0x10u);

    ASSERT_EQ(mem_.translate(0x20800, 0x1900, iov, 4), 3);
    EXPECT_EQ(iov[0].iov_base, host(7) + 0x800);
    EXPECT_EQ(iov[0].iov_len, 0x800u);
    EXPECT_EQ(iov[1].iov_base, host(2));
    EXPECT_EQ(iov[1].iov_len, kPage);
    EXPECT_EQ(iov[2].iov_base, host(11));
    EXPECT_EQ(iov[2].iov_len, 0x100u);
}

TEST_F(GuestMemoryTest, TranslateFailsOnGap) {
    ASSERT_TRUE(mem_.add_region(0x20000, kPage, host(0)));
    ASSERT_TRUE(mem_.add_region(0x22000, kPage, host(1)));  // hole [0x21000, 0x22000)
    struct iovec iov[4];
    EXPECT_EQ(mem_.translate(0x20ff0, 0x20, iov, 4), -1);    // runs into the hole
    EXPECT_EQ(mem_.translate(0x20ff0, 0x1020, iov, 4), -1);  // jumps over it
    EXPECT_EQ(mem_.translate(0x21800, 0x10, iov, 4), -1);    // starts in it
    EXPECT_EQ(mem_.translate(0x21ff0, 0x20, iov, 4), -1);    // ends after it
}

TEST_F(GuestMemoryTest, TranslateFailsOutOfRange) {
    ASSERT_TRUE(mem_.add_region(0x20000, kPage, host(0)));
    struct iovec iov[4];
    EXPECT_EQ(mem_.translate(0x1ffff, 1, iov, 4), -1);       // one byte before
    EXPECT_EQ(mem_.translate(0x21000, 1, iov, 4), -1);       // one byte after
    EXPECT_EQ(mem_.translate(0x20000, kPage + 1, iov, 4), -1);
    EXPECT_EQ(mem_.translate(0x1fff0, 0x20, iov, 4), -1);    // starts before
    EXPECT_EQ(mem_.translate(0xdead00000000, 8, iov, 4), -1);
}

TEST_F(GuestMemoryTest, TranslateFailsOnWrap) {
    ASSERT_TRUE(mem_.add_region(0x0, kPage, host(0)));
    ASSERT_TRUE(mem_.add_region(UINT64_MAX - 2 * kPage + 1, kPage, host(1)));
    struct iovec iov[4];
    // In range at both "ends" once wrapped, but the range itself wraps.
    EXPECT_EQ(mem_.translate(UINT64_MAX - 2 * kPage + 1, UINT64_MAX, iov, 4), -1);
    EXPECT_EQ(mem_.translate(0x10, UINT64_MAX, iov, 4), -1);
    EXPECT_EQ(mem_.translate(UINT64_MAX, 2, iov, 4), -1);
}

TEST_F(GuestMemoryTest, TranslateFailsWhenMaxTooSmall) {
    ASSERT_TRUE(mem_.add_region(0x20000, kPage, host(0)));
    ASSERT_TRUE(mem_.add_region(0x21000, kPage, host(5)));
    struct iovec iov[2];
    EXPECT_EQ(mem_.translate(0x20ff0, 0x20, iov, 1), -1);
    EXPECT_EQ(mem_.translate(0x20000, 0x10, iov, 0), -1);
    EXPECT_EQ(mem_.translate(0x20ff0, 0x20, iov, 2), 2);
}

TEST_F(GuestMemoryTest, TranslateZeroLengthYieldsNothing) {
    ASSERT_TRUE(mem_.add_region(0x20000, kPage, host(0)));
    struct iovec iov[1] = {{nullptr, 77}};
    EXPECT_EQ(mem_.translate(0x20000, 0, iov, 1), 0);
    EXPECT_EQ(iov[0].iov_len, 77u);  // untouched
}

TEST_F(GuestMemoryTest, TranslateContiguous) {
    ASSERT_TRUE(mem_.add_region(0x20000, kPage, host(4)));
    ASSERT_TRUE(mem_.add_region(0x21000, kPage, host(1)));
    ASSERT_TRUE(mem_.add_region(0x30000, kPage, host(9)));
    EXPECT_EQ(mem_.translate_contiguous(0x20010, 0x20), host(4) + 0x10);
    EXPECT_EQ(mem_.translate_contiguous(0x21000, kPage), host(1));  // exactly one region
    EXPECT_EQ(mem_.translate_contiguous(0x30fff, 1), host(9) + 0xfff);
    EXPECT_EQ(mem_.translate_contiguous(0x20000, 0), host(4));
    EXPECT_EQ(mem_.translate_contiguous(0x20ff0, 0x20), nullptr);      // adjacent, but split
    EXPECT_EQ(mem_.translate_contiguous(0x21000, kPage + 1), nullptr);
    EXPECT_EQ(mem_.translate_contiguous(0x22000, 1), nullptr);         // gap
    EXPECT_EQ(mem_.translate_contiguous(0x20010, UINT64_MAX), nullptr); // wraps
}

} // namespace
} // namespace vdh

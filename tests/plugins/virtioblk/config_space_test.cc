// SPDX-License-Identifier: MIT
// Unit tests of the virtio-blk config space and feature bits: struct virtio_blk_config
// byte for byte (little-endian), windows at any offset, and the features per profile.
#include "config_space.h"

#include <gtest/gtest.h>

#include <vector>

namespace vdh::virtioblk {
namespace {

std::vector<uint8_t> read(const BlkGeometry& g, uint32_t off, uint32_t len) {
    std::vector<uint8_t> v(len, 0xee);
    EXPECT_EQ(read_config_space(g, off, v.data(), len), static_cast<int>(kConfigSpaceSize));
    return v;
}

TEST(ConfigSpace, ByteForByte) {
    BlkGeometry g;
    g.capacity_bytes = 0x123456789000ULL;
    g.block_size = 4096;
    g.num_queues = 3;
    g.discard = true;
    g.write_zeroes = true;
    const std::vector<uint8_t> want = {
        0x48, 0x3c, 0x2b, 0x1a, 0x09, 0x00, 0x00, 0x00, // capacity (sectors)
        0x00, 0x00, 0x00, 0x00,                         // size_max (not offered)
        126,  0x00, 0x00, 0x00,                         // seg_max
        0x00, 0x00, 0x00, 0x00,                         // geometry
        0x00, 0x10, 0x00, 0x00,                         // blk_size 4096
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // topology (not offered)
        0x00, 0x00,                                     // wce, unused
        0x03, 0x00,                                     // num_queues
        0x00, 0x80, 0x00, 0x00,                         // max_discard_sectors 32768
        0x01, 0x00, 0x00, 0x00,                         // max_discard_seg
        0x08, 0x00, 0x00, 0x00,                         // discard_sector_alignment
        0x00, 0x80, 0x00, 0x00,                         // max_write_zeroes_sectors
        0x01, 0x00, 0x00, 0x00,                         // max_write_zeroes_seg
        0x01, 0x00, 0x00, 0x00,                         // write_zeroes_may_unmap, unused1
        0x00, 0x00, 0x00, 0x00,                         // up to 64
    };
    ASSERT_EQ(want.size(), kConfigSpaceSize);
    EXPECT_EQ(read(g, 0, kConfigSpaceSize), want);
    // A window past the end reads zeroes there; len 0 only asks for the size.
    std::vector<uint8_t> tail(want.begin() + 50, want.end());
    tail.resize(30, 0);
    EXPECT_EQ(read(g, 50, 30), tail);
    EXPECT_EQ(read(g, 1000, 4), std::vector<uint8_t>(4, 0));
    EXPECT_EQ(read_config_space(g, 0, nullptr, 0), static_cast<int>(kConfigSpaceSize));
}

TEST(ConfigSpace, LimitsOnlyForWhatIsOffered) {
    BlkGeometry g;
    g.capacity_bytes = 1 << 20;
    const auto c = read(g, 0, kConfigSpaceSize);
    for (size_t i = 36; i < 60; ++i) {
        EXPECT_EQ(c[i], 0) << i;
    }
    g.write_zeroes = true; // without discard: no unmap
    EXPECT_EQ(read(g, 56, 1)[0], 0);
}

TEST(ConfigSpace, FeaturesFollowTheProfile) {
    BlkGeometry g;
    EXPECT_EQ(device_features(g), kFSegMax | kFBlkSize | kFFlush);
    g.readonly = true;
    g.discard = true;
    g.write_zeroes = true;
    g.num_queues = 2;
    EXPECT_EQ(device_features(g),
              kFSegMax | kFBlkSize | kFFlush | kFRo | kFDiscard | kFWriteZeroes | kFMq);
}

TEST(ConfigSpace, DecodeLimitsMatchTheAdvertisedOnes) {
    BlkGeometry g;
    g.capacity_bytes = 1 << 30;
    g.block_size = 4096;
    g.readonly = true;
    g.discard = true;
    const DecodeLimits l = decode_limits(g);
    EXPECT_EQ(l.capacity_bytes, 1u << 30);
    EXPECT_EQ(l.block_size, 4096u);
    EXPECT_TRUE(l.readonly);
    EXPECT_TRUE(l.discard);
    EXPECT_FALSE(l.write_zeroes);
    EXPECT_EQ(l.max_discard_sectors, kMaxDiscardSectors);
    EXPECT_EQ(l.max_discard_seg, kMaxSegments);
    EXPECT_EQ(l.max_write_zeroes_sectors, kMaxWriteZeroesSectors);
}

} // namespace
} // namespace vdh::virtioblk

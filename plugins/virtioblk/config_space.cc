// SPDX-License-Identifier: MIT
// The virtio-blk config space and feature bits (see config_space.h).
#include "config_space.h"

#include <endian.h>
#include <linux/virtio_blk.h>

#include <cstddef>
#include <cstring>

namespace vdh::virtioblk {

static_assert(offsetof(struct virtio_blk_config, capacity) == 0);
static_assert(offsetof(struct virtio_blk_config, seg_max) == 12);
static_assert(offsetof(struct virtio_blk_config, blk_size) == 20);
static_assert(offsetof(struct virtio_blk_config, num_queues) == 34);
static_assert(offsetof(struct virtio_blk_config, max_discard_sectors) == 36);
static_assert(offsetof(struct virtio_blk_config, max_write_zeroes_sectors) == 48);
static_assert(offsetof(struct virtio_blk_config, write_zeroes_may_unmap) == 56);
static_assert(offsetof(struct virtio_blk_config, unused1) + 3 == 60);
static_assert(sizeof(struct virtio_blk_config) >= kConfigSpaceSize);

uint64_t device_features(const BlkGeometry& g) noexcept {
    uint64_t f = kFSegMax | kFBlkSize | kFFlush;
    f |= g.readonly ? kFRo : 0;
    f |= g.discard ? kFDiscard : 0;
    f |= g.write_zeroes ? kFWriteZeroes : 0;
    f |= g.num_queues > 1 ? kFMq : 0;
    return f;
}

DecodeLimits decode_limits(const BlkGeometry& g) noexcept {
    DecodeLimits l;
    l.capacity_bytes = g.capacity_bytes;
    l.block_size = g.block_size;
    l.readonly = g.readonly;
    l.discard = g.discard;
    l.write_zeroes = g.write_zeroes;
    l.max_discard_sectors = kMaxDiscardSectors;
    l.max_discard_seg = kMaxSegments;
    l.max_write_zeroes_sectors = kMaxWriteZeroesSectors;
    l.max_write_zeroes_seg = kMaxSegments;
    return l;
}

int read_config_space(const BlkGeometry& g, uint32_t offset, uint8_t* buf, uint32_t len) noexcept {
    if (len == 0) {
        return static_cast<int>(kConfigSpaceSize);
    }
    struct virtio_blk_config c;
    std::memset(&c, 0, sizeof(c));
    c.capacity = htole64(g.capacity_bytes / kSectorSize);
    c.seg_max = htole32(kSegMax);
    c.blk_size = htole32(g.block_size);
    c.num_queues = htole16(g.num_queues);
    if (g.discard) {
        c.max_discard_sectors = htole32(kMaxDiscardSectors);
        c.max_discard_seg = htole32(kMaxSegments);
        c.discard_sector_alignment = htole32(g.block_size / kSectorSize);
    }
    if (g.write_zeroes) {
        c.max_write_zeroes_sectors = htole32(kMaxWriteZeroesSectors);
        c.max_write_zeroes_seg = htole32(kMaxSegments);
        // A WRITE_ZEROES with the UNMAP flag punches a hole when discard is on.
        c.write_zeroes_may_unmap = g.discard ? 1 : 0;
    }
    const auto* src = reinterpret_cast<const uint8_t*>(&c);
    for (uint32_t i = 0; i < len; ++i) {
        const uint64_t at = static_cast<uint64_t>(offset) + i;
        buf[i] = at < kConfigSpaceSize ? src[at] : 0;
    }
    return static_cast<int>(kConfigSpaceSize);
}

} // namespace vdh::virtioblk

// SPDX-License-Identifier: MIT
// The virtio-blk configuration space (struct virtio_blk_config, linux/virtio_blk.h) the
// device reports over vhost-user GET_CONFIG, and its limits (seg_max, discard and
// write-zeroes limits, as SPDK's vhost-blk target advertises them). It also holds the
// device's feature bits, since both follow from the same profile and geometry. Read-only:
// the device offers no writable field (no VIRTIO_BLK_F_CONFIG_WCE).
#pragma once

#include <cstdint>

#include "request_decoder.h"

namespace vdh::virtioblk {

// Feature bits (linux/virtio_blk.h).
inline constexpr uint64_t kFSegMax = 1ULL << 2;
inline constexpr uint64_t kFRo = 1ULL << 5;
inline constexpr uint64_t kFBlkSize = 1ULL << 6;
inline constexpr uint64_t kFFlush = 1ULL << 9;
inline constexpr uint64_t kFMq = 1ULL << 12;
inline constexpr uint64_t kFDiscard = 1ULL << 13;
inline constexpr uint64_t kFWriteZeroes = 1ULL << 14;

/// Data segments per request the device accepts (seg_max): SPDK's 129 iovecs less the header,
/// the status and one for a buffer split at a guest memory region boundary.
inline constexpr uint32_t kSegMax = 126;
/// Largest DISCARD / WRITE_ZEROES segment, in 512-byte sectors (16 MiB, as SPDK).
inline constexpr uint32_t kMaxDiscardSectors = 32768;
inline constexpr uint32_t kMaxWriteZeroesSectors = 32768;

/// sizeof(struct virtio_blk_config) up to and including write_zeroes_may_unmap and its
/// padding (offset 64): the fields this device fills. Secure erase (offsets 64..75) is not
/// offered; those bytes read as 0.
inline constexpr uint32_t kConfigSpaceSize = 64;

/// The device's geometry and options, everything the config space and features derive from.
struct BlkGeometry {
    uint64_t capacity_bytes = 0; ///< a multiple of block_size
    uint32_t block_size = 512;
    uint16_t num_queues = 1;
    bool readonly = false;
    bool discard = false;
    bool write_zeroes = false;
};

/// Device feature bits: SEG_MAX, BLK_SIZE, FLUSH always; RO, DISCARD,
/// WRITE_ZEROES and MQ (num_queues > 1) as configured.
uint64_t device_features(const BlkGeometry& g) noexcept;

/// What the decoder checks requests against.
DecodeLimits decode_limits(const BlkGeometry& g) noexcept;

/// vdh_device_ops::get_config: copies \p len bytes of the little-endian virtio_blk_config
/// from byte \p offset into \p buf (zero past its end) and returns kConfigSpaceSize; \p len
/// 0 only asks for the size.
int read_config_space(const BlkGeometry& g, uint32_t offset, uint8_t* buf, uint32_t len) noexcept;

} // namespace vdh::virtioblk

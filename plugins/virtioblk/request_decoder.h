// SPDX-License-Identifier: MIT
// The virtio-blk request decoder: takes one descriptor chain (as the host's vdh_request
// iovec lists) apart byte by byte into what the data path does with it, or into the status
// the guest gets for a malformed request. It reads the 16-byte virtio_blk_outhdr from the
// start of the readable part (it may span buffers), finds the status byte at the end of the
// last writable buffer, and copies the data segments (the readable part after the header
// for OUT, the writable part before the status for IN) into a caller-owned iovec array. It
// never touches the backing file and never writes guest memory: the device does both.
// Hot path: no alloc, no block, no throw.
#pragma once

#include <sys/uio.h>

#include <cstdint>

#include "vdh/plugin_abi.h"

namespace vdh::virtioblk {

// Wire values (virtio 1.2 §5.2, linux/virtio_blk.h), little-endian on the wire.
inline constexpr uint32_t kTypeIn = 0;
inline constexpr uint32_t kTypeOut = 1;
inline constexpr uint32_t kTypeFlush = 4;
inline constexpr uint32_t kTypeGetId = 8;
inline constexpr uint32_t kTypeDiscard = 11;
inline constexpr uint32_t kTypeWriteZeroes = 13;
/// Legacy barrier bit of `type`: ignored, as SPDK and QEMU do.
inline constexpr uint32_t kTypeBarrier = 0x80000000u;
inline constexpr uint32_t kFlagUnmap = 1; ///< VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP

inline constexpr uint8_t kStatusOk = 0;
inline constexpr uint8_t kStatusIoErr = 1;
inline constexpr uint8_t kStatusUnsupp = 2;

inline constexpr uint32_t kSectorSize = 512;
inline constexpr uint32_t kHeaderSize = 16;  ///< struct virtio_blk_outhdr
inline constexpr uint32_t kSegmentSize = 16; ///< struct virtio_blk_discard_write_zeroes
inline constexpr uint32_t kIdBytes = 20;     ///< VIRTIO_BLK_ID_BYTES
/// Most DISCARD / WRITE_ZEROES segments a request may carry (the decoder's array). The
/// device advertises at most this many (max_discard_seg, max_write_zeroes_seg).
inline constexpr uint32_t kMaxSegments = 1;
/// Largest data transfer of one request; beyond, IOERR (it also keeps used.len in 32 bits).
inline constexpr uint64_t kMaxDataBytes = 1ULL << 30;

/// What the device does with a request.
enum class BlkOp : uint8_t {
    Read,        ///< IN: read `len` bytes at `offset` into iov
    Write,       ///< OUT: write iov (`len` bytes) at `offset`
    Flush,       ///< FLUSH
    GetId,       ///< GET_ID: write the serial into iov (kIdBytes)
    Discard,     ///< DISCARD: segments
    WriteZeroes, ///< WRITE_ZEROES: segments
    Fail,        ///< answer `status` without doing anything
    NoStatus,    ///< no writable byte for a status: return the chain with nothing written
};

/// Why a request was refused (counted; tests check it). None for accepted requests.
enum class BlkError : uint8_t {
    None = 0,
    NoStatus,     ///< no device-writable byte at all
    ShortHeader,  ///< fewer than 16 readable bytes (UNSUPP, as SPDK)
    UnknownType,  ///< type not known or its feature not offered (UNSUPP)
    ReadableData, ///< IN / FLUSH / GET_ID with readable bytes after the header (IOERR)
    WritableData, ///< OUT / FLUSH / DISCARD / WRITE_ZEROES with writable bytes before the status
                  ///< (IOERR)
    NoData,       ///< IN / OUT with no data (UNSUPP, as SPDK)
    NotSectorMultiple, ///< data length not a multiple of 512 (UNSUPP, as SPDK)
    Misaligned,        ///< offset or length not a multiple of the block size (IOERR)
    OutOfRange,        ///< sector*512 + length overflows or passes the capacity (IOERR)
    TooLarge,          ///< data beyond kMaxDataBytes (IOERR)
    TooManyIovecs,     ///< more data segments than the caller's array holds (IOERR)
    ReadOnly,          ///< a write to a read-only device (IOERR)
    FlushSector,       ///< FLUSH with a sector other than 0 (IOERR, as SPDK)
    ShortIdBuffer,     ///< GET_ID with fewer than 20 data bytes (IOERR; 0 bytes: UNSUPP)
    BadSegments,       ///< DISCARD / WRITE_ZEROES payload not 1..max 16-byte segments (IOERR)
    ReservedFlags,     ///< a segment flag other than UNMAP (UNSUPP)
    DiscardUnmap,      ///< DISCARD with the UNMAP flag (UNSUPP, spec)
    SegmentTooLarge,   ///< num_sectors beyond max_*_sectors, or 0 (IOERR)
    Count,
};

/// Short name of \p e for stats ("out_of_range").
const char* to_string(BlkError e) noexcept;

/// The device's geometry and what it offers, as the decoder checks requests against it.
struct DecodeLimits {
    uint64_t capacity_bytes = 0; ///< a multiple of block_size
    uint32_t block_size = kSectorSize;
    bool readonly = false;
    bool discard = false;      ///< VIRTIO_BLK_F_DISCARD offered
    bool write_zeroes = false; ///< VIRTIO_BLK_F_WRITE_ZEROES offered
    uint32_t max_discard_sectors = 0;
    uint32_t max_discard_seg = 0; ///< <= kMaxSegments
    uint32_t max_write_zeroes_sectors = 0;
    uint32_t max_write_zeroes_seg = 0; ///< <= kMaxSegments
};

/// One DISCARD / WRITE_ZEROES range, in bytes.
struct BlkRange {
    uint64_t offset = 0;
    uint64_t len = 0;
    bool unmap = false; ///< WRITE_ZEROES: the guest allows deallocation
};

/// A decoded request. Pointers point into the request's guest buffers.
struct DecodedRequest {
    BlkOp op = BlkOp::Fail;
    uint8_t status = kStatusIoErr; ///< op Fail: the status to answer
    BlkError error = BlkError::None;
    uint32_t type = 0;              ///< the header's type (barrier bit cleared)
    uint8_t* status_byte = nullptr; ///< last writable byte; null only for NoStatus
    uint64_t offset = 0;            ///< Read/Write: byte offset (sector * 512)
    uint64_t len = 0;               ///< Read/Write: data bytes; GetId: bytes to write
    uint32_t n_iov = 0;             ///< Read/Write/GetId: iovecs written to the caller's array
    uint32_t n_ranges = 0;          ///< Discard/WriteZeroes
    BlkRange ranges[kMaxSegments];  ///< copied out of guest memory (read once)
};

/// Decodes \p req against \p limits. Data segments (Read/Write/GetId) go into
/// \p iov[0..iov_cap). The header and segment arrays are copied once, so a guest changing
/// them afterwards changes nothing. Never fails otherwise: every malformed request becomes
/// op Fail with a status (or NoStatus when there is nowhere to put one).
DecodedRequest decode_request(const vdh_request& req, const DecodeLimits& limits, struct iovec* iov,
                              uint32_t iov_cap) noexcept;

} // namespace vdh::virtioblk

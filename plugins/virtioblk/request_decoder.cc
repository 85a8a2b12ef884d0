// SPDX-License-Identifier: MIT
// The virtio-blk request decoder (see request_decoder.h). The checks follow the virtio
// spec where it speaks and SPDK's vhost-blk target (lib/vhost/vhost_blk.c) where it is
// silent; request_decoder_test.cc pins every case byte for byte.
#include "request_decoder.h"

#include <endian.h>

#include <cstring>

#include "vdh/iovec_cursor.h"

namespace vdh::virtioblk {

namespace {

/// Copies the byte range [skip, skip + len) of the iovec list \p src into \p out as iovecs.
/// Returns how many, or -1 when more than \p cap are needed.
int64_t slice(const struct iovec* src, uint32_t n, uint64_t skip, uint64_t len, struct iovec* out,
              uint32_t cap) noexcept {
    uint32_t k = 0;
    for (uint32_t i = 0; i < n && len > 0; ++i) {
        uint64_t l = src[i].iov_len;
        if (skip >= l) {
            skip -= l;
            continue;
        }
        const uint64_t take = l - skip < len ? l - skip : len;
        if (k == cap) {
            return -1;
        }
        out[k].iov_base = static_cast<uint8_t*>(src[i].iov_base) + skip;
        out[k].iov_len = take;
        ++k;
        len -= take;
        skip = 0;
    }
    return k;
}

/// The last byte of the last non-empty writable buffer.
uint8_t* last_writable_byte(const vdh_request& req) noexcept {
    for (uint32_t i = req.n_out; i > 0; --i) {
        const struct iovec& v = req.out[i - 1];
        if (v.iov_len > 0) {
            return static_cast<uint8_t*>(v.iov_base) + v.iov_len - 1;
        }
    }
    return nullptr;
}

DecodedRequest& fail(DecodedRequest& d, uint8_t status, BlkError e) noexcept {
    d.op = BlkOp::Fail;
    d.status = status;
    d.error = e;
    d.n_iov = 0;
    d.n_ranges = 0;
    return d;
}

/// Checks a byte range against the capacity and the block size. \p sector is the guest's.
BlkError check_range(uint64_t sector, uint64_t len, const DecodeLimits& l,
                     uint64_t* offset) noexcept {
    if (sector > l.capacity_bytes / kSectorSize) {
        return BlkError::OutOfRange; // also catches sector * 512 overflowing
    }
    const uint64_t off = sector * kSectorSize;
    if (len > l.capacity_bytes || off > l.capacity_bytes - len) {
        return BlkError::OutOfRange;
    }
    if (off % l.block_size != 0 || len % l.block_size != 0) {
        return BlkError::Misaligned;
    }
    *offset = off;
    return BlkError::None;
}

void decode_rw(const vdh_request& req, const DecodeLimits& l, uint64_t sector, bool is_write,
               struct iovec* iov, uint32_t cap, DecodedRequest& d) noexcept {
    uint64_t len = 0;
    if (is_write) {
        if (l.readonly) {
            fail(d, kStatusIoErr, BlkError::ReadOnly);
            return;
        }
        if (req.out_bytes != 1) {
            fail(d, kStatusIoErr, BlkError::WritableData);
            return;
        }
        len = req.in_bytes - kHeaderSize;
    } else {
        if (req.in_bytes != kHeaderSize) {
            fail(d, kStatusIoErr, BlkError::ReadableData);
            return;
        }
        len = req.out_bytes - 1;
    }
    if (len == 0) {
        fail(d, kStatusUnsupp, BlkError::NoData);
        return;
    }
    if (len % kSectorSize != 0) {
        fail(d, kStatusUnsupp, BlkError::NotSectorMultiple);
        return;
    }
    if (len > kMaxDataBytes) {
        fail(d, kStatusIoErr, BlkError::TooLarge);
        return;
    }
    BlkError e = check_range(sector, len, l, &d.offset);
    if (e != BlkError::None) {
        fail(d, kStatusIoErr, e);
        return;
    }
    const int64_t n = is_write ? slice(req.in, req.n_in, kHeaderSize, len, iov, cap)
                               : slice(req.out, req.n_out, 0, len, iov, cap);
    if (n < 0) {
        fail(d, kStatusIoErr, BlkError::TooManyIovecs);
        return;
    }
    d.op = is_write ? BlkOp::Write : BlkOp::Read;
    d.len = len;
    d.n_iov = static_cast<uint32_t>(n);
}

void decode_segments(const vdh_request& req, const DecodeLimits& l, bool discard,
                     DecodedRequest& d) noexcept {
    if (l.readonly) {
        fail(d, kStatusIoErr, BlkError::ReadOnly);
        return;
    }
    if (req.out_bytes != 1) {
        fail(d, kStatusIoErr, BlkError::WritableData);
        return;
    }
    const uint64_t payload = req.in_bytes - kHeaderSize;
    const uint32_t max_seg = discard ? l.max_discard_seg : l.max_write_zeroes_seg;
    const uint32_t max_sectors = discard ? l.max_discard_sectors : l.max_write_zeroes_sectors;
    if (payload == 0 || payload % kSegmentSize != 0 || payload / kSegmentSize > max_seg ||
        payload / kSegmentSize > kMaxSegments) {
        fail(d, kStatusIoErr, BlkError::BadSegments);
        return;
    }
    IovecCursor in(req.in, req.n_in);
    in.skip(kHeaderSize);
    const auto n = static_cast<uint32_t>(payload / kSegmentSize);
    for (uint32_t i = 0; i < n; ++i) {
        uint8_t raw[kSegmentSize];
        in.read(raw, sizeof(raw)); // cannot fail: payload bytes are there
        uint64_t sector;
        uint32_t num_sectors;
        uint32_t flags;
        std::memcpy(&sector, raw, 8);
        std::memcpy(&num_sectors, raw + 8, 4);
        std::memcpy(&flags, raw + 12, 4);
        sector = le64toh(sector);
        num_sectors = le32toh(num_sectors);
        flags = le32toh(flags);
        // Spec: unknown flags are UNSUPP for both; UNMAP is UNSUPP for DISCARD.
        if ((flags & ~kFlagUnmap) != 0) {
            fail(d, kStatusUnsupp, BlkError::ReservedFlags);
            return;
        }
        if (discard && (flags & kFlagUnmap) != 0) {
            fail(d, kStatusUnsupp, BlkError::DiscardUnmap);
            return;
        }
        if (num_sectors == 0 || num_sectors > max_sectors) {
            fail(d, kStatusIoErr, BlkError::SegmentTooLarge);
            return;
        }
        BlkRange& r = d.ranges[i];
        BlkError e =
            check_range(sector, static_cast<uint64_t>(num_sectors) * kSectorSize, l, &r.offset);
        if (e != BlkError::None) {
            fail(d, kStatusIoErr, e);
            return;
        }
        r.len = static_cast<uint64_t>(num_sectors) * kSectorSize;
        r.unmap = (flags & kFlagUnmap) != 0;
    }
    d.op = discard ? BlkOp::Discard : BlkOp::WriteZeroes;
    d.n_ranges = n;
}

} // namespace

const char* to_string(BlkError e) noexcept {
    switch (e) {
    case BlkError::None:
        return "none";
    case BlkError::NoStatus:
        return "no_status";
    case BlkError::ShortHeader:
        return "short_header";
    case BlkError::UnknownType:
        return "unknown_type";
    case BlkError::ReadableData:
        return "readable_data";
    case BlkError::WritableData:
        return "writable_data";
    case BlkError::NoData:
        return "no_data";
    case BlkError::NotSectorMultiple:
        return "not_sector_multiple";
    case BlkError::Misaligned:
        return "misaligned";
    case BlkError::OutOfRange:
        return "out_of_range";
    case BlkError::TooLarge:
        return "too_large";
    case BlkError::TooManyIovecs:
        return "too_many_iovecs";
    case BlkError::ReadOnly:
        return "read_only";
    case BlkError::FlushSector:
        return "flush_sector";
    case BlkError::ShortIdBuffer:
        return "short_id_buffer";
    case BlkError::BadSegments:
        return "bad_segments";
    case BlkError::ReservedFlags:
        return "reserved_flags";
    case BlkError::DiscardUnmap:
        return "discard_unmap";
    case BlkError::SegmentTooLarge:
        return "segment_too_large";
    case BlkError::Count:
        break;
    }
    return "?";
}

DecodedRequest decode_request(const vdh_request& req, const DecodeLimits& l, struct iovec* iov,
                              uint32_t iov_cap) noexcept {
    DecodedRequest d;
    d.status_byte = last_writable_byte(req);
    if (d.status_byte == nullptr || req.out_bytes == 0) {
        d.status_byte = nullptr;
        d.op = BlkOp::NoStatus;
        d.error = BlkError::NoStatus;
        return d;
    }
    uint8_t hdr[kHeaderSize];
    IovecCursor in(req.in, req.n_in);
    if (!in.read(hdr, sizeof(hdr))) {
        return fail(d, kStatusUnsupp, BlkError::ShortHeader);
    }
    uint32_t type;
    uint64_t sector;
    std::memcpy(&type, hdr, 4); // hdr + 4: ioprio, ignored (as SPDK)
    std::memcpy(&sector, hdr + 8, 8);
    type = le32toh(type) & ~kTypeBarrier;
    sector = le64toh(sector);
    d.type = type;
    switch (type) {
    case kTypeIn:
    case kTypeOut:
        decode_rw(req, l, sector, type == kTypeOut, iov, iov_cap, d);
        return d;
    case kTypeFlush:
        if (req.in_bytes != kHeaderSize) {
            return fail(d, kStatusIoErr, BlkError::ReadableData);
        }
        if (req.out_bytes != 1) {
            return fail(d, kStatusIoErr, BlkError::WritableData);
        }
        if (sector != 0) {
            return fail(d, kStatusIoErr, BlkError::FlushSector);
        }
        d.op = BlkOp::Flush;
        return d;
    case kTypeGetId: {
        if (req.in_bytes != kHeaderSize) {
            return fail(d, kStatusIoErr, BlkError::ReadableData);
        }
        const uint64_t room = req.out_bytes - 1;
        if (room == 0) {
            return fail(d, kStatusUnsupp, BlkError::ShortIdBuffer);
        }
        if (room < kIdBytes) {
            return fail(d, kStatusIoErr, BlkError::ShortIdBuffer);
        }
        const int64_t n = slice(req.out, req.n_out, 0, kIdBytes, iov, iov_cap);
        if (n < 0) {
            return fail(d, kStatusIoErr, BlkError::TooManyIovecs);
        }
        d.op = BlkOp::GetId;
        d.len = kIdBytes;
        d.n_iov = static_cast<uint32_t>(n);
        return d;
    }
    case kTypeDiscard:
    case kTypeWriteZeroes: {
        const bool discard = type == kTypeDiscard;
        if (!(discard ? l.discard : l.write_zeroes)) {
            return fail(d, kStatusUnsupp, BlkError::UnknownType);
        }
        decode_segments(req, l, discard, d);
        return d;
    }
    default:
        return fail(d, kStatusUnsupp, BlkError::UnknownType);
    }
}

} // namespace vdh::virtioblk

// SPDX-License-Identifier: MIT
// Unit tests of the virtio-blk request decoder: hand-built chains (header, data, segment
// arrays and status byte laid out over iovecs in every way a guest may lay them out) and
// the op, range, data iovecs and status that come out, byte for byte; every malformed case
// gets IOERR or UNSUPP (or no status when there is no writable byte), never a crash.
#include "request_decoder.h"

#include <gtest/gtest.h>

#include <endian.h>

#include <cstring>
#include <vector>

namespace vdh::virtioblk {
namespace {

constexpr uint64_t kCapacity = 1 << 20; // 2048 sectors

/// A chain under construction: readable and writable buffers owned by the test.
class Chain {
  public:
    Chain& in(std::vector<uint8_t> bytes) {
        in_bufs_.push_back(std::move(bytes));
        return *this;
    }
    Chain& out(size_t len) {
        out_bufs_.emplace_back(len, 0xa5);
        return *this;
    }
    const vdh_request& req() {
        in_iov_.clear();
        out_iov_.clear();
        req_ = vdh_request{};
        for (auto& b : in_bufs_) {
            in_iov_.push_back({b.data(), b.size()});
            req_.in_bytes += b.size();
        }
        for (auto& b : out_bufs_) {
            out_iov_.push_back({b.data(), b.size()});
            req_.out_bytes += b.size();
        }
        req_.in = in_iov_.data();
        req_.n_in = static_cast<uint32_t>(in_iov_.size());
        req_.out = out_iov_.data();
        req_.n_out = static_cast<uint32_t>(out_iov_.size());
        return req_;
    }
    std::vector<std::vector<uint8_t>>& in_bufs() { return in_bufs_; }
    std::vector<std::vector<uint8_t>>& out_bufs() { return out_bufs_; }

  private:
    std::vector<std::vector<uint8_t>> in_bufs_;
    std::vector<std::vector<uint8_t>> out_bufs_;
    std::vector<struct iovec> in_iov_;
    std::vector<struct iovec> out_iov_;
    vdh_request req_{};
};

void put(std::vector<uint8_t>& v, uint64_t x, int bytes) {
    for (int i = 0; i < bytes; ++i) {
        v.push_back(static_cast<uint8_t>(x >> (8 * i)));
    }
}

std::vector<uint8_t> header(uint32_t type, uint64_t sector, uint32_t ioprio = 0) {
    std::vector<uint8_t> v;
    put(v, type, 4);
    put(v, ioprio, 4);
    put(v, sector, 8);
    return v;
}

std::vector<uint8_t> segment(uint64_t sector, uint32_t num, uint32_t flags = 0) {
    std::vector<uint8_t> v;
    put(v, sector, 8);
    put(v, num, 4);
    put(v, flags, 4);
    return v;
}

std::vector<uint8_t> cat(std::vector<uint8_t> a, const std::vector<uint8_t>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

DecodeLimits limits(uint32_t block_size = 512) {
    DecodeLimits l;
    l.capacity_bytes = kCapacity;
    l.block_size = block_size;
    l.discard = true;
    l.write_zeroes = true;
    l.max_discard_sectors = 64;
    l.max_discard_seg = 1;
    l.max_write_zeroes_sectors = 64;
    l.max_write_zeroes_seg = 1;
    return l;
}

class RequestDecoderTest : public ::testing::Test {
  protected:
    DecodedRequest decode(Chain& c, const DecodeLimits& l = limits()) {
        std::memset(iov_, 0, sizeof(iov_));
        return decode_request(c.req(), l, iov_, kCap);
    }
    void expect_fail(Chain& c, uint8_t status, BlkError e, const DecodeLimits& l = limits()) {
        const DecodedRequest d = decode(c, l);
        EXPECT_EQ(d.op, BlkOp::Fail);
        EXPECT_EQ(d.status, status);
        EXPECT_EQ(d.error, e) << to_string(d.error) << " instead of " << to_string(e);
        // The status byte is the last writable byte, and the decoder wrote nothing.
        EXPECT_EQ(d.status_byte, &c.out_bufs().back().back());
        EXPECT_EQ(*d.status_byte, 0xa5);
    }

    static constexpr uint32_t kCap = 8;
    struct iovec iov_[kCap];
};

TEST_F(RequestDecoderTest, ReadWithLinuxLayout) {
    Chain c;
    c.in(header(kTypeIn, 8)).out(4096).out(1);
    const DecodedRequest d = decode(c);
    ASSERT_EQ(d.op, BlkOp::Read);
    EXPECT_EQ(d.error, BlkError::None);
    EXPECT_EQ(d.offset, 8u * 512);
    EXPECT_EQ(d.len, 4096u);
    ASSERT_EQ(d.n_iov, 1u);
    EXPECT_EQ(iov_[0].iov_base, c.out_bufs()[0].data());
    EXPECT_EQ(iov_[0].iov_len, 4096u);
    EXPECT_EQ(d.status_byte, c.out_bufs()[1].data());
}

TEST_F(RequestDecoderTest, ReadWithStatusSharingTheLastDataBuffer) {
    Chain c;
    c.in(header(kTypeIn, 0)).out(1024).out(513);
    const DecodedRequest d = decode(c);
    ASSERT_EQ(d.op, BlkOp::Read);
    EXPECT_EQ(d.len, 1536u);
    ASSERT_EQ(d.n_iov, 2u);
    EXPECT_EQ(iov_[1].iov_base, c.out_bufs()[1].data());
    EXPECT_EQ(iov_[1].iov_len, 512u);
    EXPECT_EQ(d.status_byte, c.out_bufs()[1].data() + 512);
}

TEST_F(RequestDecoderTest, HeaderSplitOverBuffersAndLittleEndian) {
    // The header in 3 pieces (5 + 7 + 4 bytes); the barrier bit and ioprio are ignored.
    const auto h = header(kTypeIn | kTypeBarrier, 0x0102030405ULL & 0x7ff, 0xdeadbeef);
    Chain c;
    c.in({h.begin(), h.begin() + 5}).in({h.begin() + 5, h.begin() + 12});
    c.in({h.begin() + 12, h.end()}).out(512).out(1);
    const DecodedRequest d = decode(c);
    ASSERT_EQ(d.op, BlkOp::Read);
    EXPECT_EQ(d.type, kTypeIn);
    EXPECT_EQ(d.offset, (0x0102030405ULL & 0x7ff) * 512);
}

TEST_F(RequestDecoderTest, WriteWithHeaderAndDataInOneBuffer) {
    std::vector<uint8_t> data(1024);
    for (size_t i = 0; i < data.size(); ++i) {
        data[i] = static_cast<uint8_t>(i);
    }
    Chain c;
    c.in(cat(header(kTypeOut, 2), {data.begin(), data.begin() + 100}))
        .in({data.begin() + 100, data.end()})
        .out(1);
    const DecodedRequest d = decode(c);
    ASSERT_EQ(d.op, BlkOp::Write);
    EXPECT_EQ(d.offset, 1024u);
    EXPECT_EQ(d.len, 1024u);
    ASSERT_EQ(d.n_iov, 2u);
    EXPECT_EQ(iov_[0].iov_base, c.in_bufs()[0].data() + 16);
    EXPECT_EQ(iov_[0].iov_len, 100u);
    EXPECT_EQ(iov_[1].iov_base, c.in_bufs()[1].data());
    EXPECT_EQ(iov_[1].iov_len, 924u);
    EXPECT_EQ(std::memcmp(iov_[0].iov_base, data.data(), 100), 0);
}

TEST_F(RequestDecoderTest, LastSectorIsInRangeAndTheNextIsNot) {
    Chain ok;
    ok.in(header(kTypeIn, kCapacity / 512 - 1)).out(512).out(1);
    EXPECT_EQ(decode(ok).op, BlkOp::Read);
    Chain at;
    at.in(header(kTypeIn, kCapacity / 512)).out(512).out(1);
    expect_fail(at, kStatusIoErr, BlkError::OutOfRange);
    Chain across;
    across.in(header(kTypeOut, kCapacity / 512 - 1)).in(std::vector<uint8_t>(1024)).out(1);
    expect_fail(across, kStatusIoErr, BlkError::OutOfRange);
}

TEST_F(RequestDecoderTest, SectorOverflowIsOutOfRange) {
    for (uint64_t sector : {~0ULL, ~0ULL / 512 + 1, ~0ULL / 512, 1ULL << 55}) {
        Chain c;
        c.in(header(kTypeIn, sector)).out(512).out(1);
        expect_fail(c, kStatusIoErr, BlkError::OutOfRange);
    }
}

TEST_F(RequestDecoderTest, NoWritableByteMeansNoStatus) {
    Chain c;
    c.in(header(kTypeIn, 0));
    const DecodedRequest d = decode(c);
    EXPECT_EQ(d.op, BlkOp::NoStatus);
    EXPECT_EQ(d.error, BlkError::NoStatus);
    EXPECT_EQ(d.status_byte, nullptr);
    Chain empty;
    EXPECT_EQ(decode(empty).op, BlkOp::NoStatus);
}

TEST_F(RequestDecoderTest, MissingOrShortHeaderIsUnsupp) {
    Chain none;
    none.out(1);
    expect_fail(none, kStatusUnsupp, BlkError::ShortHeader);
    Chain shorter;
    shorter.in(std::vector<uint8_t>(15, 0)).out(1);
    expect_fail(shorter, kStatusUnsupp, BlkError::ShortHeader);
}

TEST_F(RequestDecoderTest, UnknownTypesAreUnsupp) {
    for (uint32_t t : {2u, 3u, 7u, 10u, 14u, 99u, 0x7fffffffu}) {
        Chain c;
        c.in(header(t, 0)).out(1);
        expect_fail(c, kStatusUnsupp, BlkError::UnknownType);
    }
}

TEST_F(RequestDecoderTest, ReadRefusals) {
    Chain readable;
    readable.in(header(kTypeIn, 0)).in(std::vector<uint8_t>(512)).out(512).out(1);
    expect_fail(readable, kStatusIoErr, BlkError::ReadableData);
    Chain nodata;
    nodata.in(header(kTypeIn, 0)).out(1);
    expect_fail(nodata, kStatusUnsupp, BlkError::NoData);
    Chain odd;
    odd.in(header(kTypeIn, 0)).out(511).out(1);
    expect_fail(odd, kStatusUnsupp, BlkError::NotSectorMultiple);
}

TEST_F(RequestDecoderTest, WriteRefusals) {
    Chain writable;
    writable.in(header(kTypeOut, 0)).in(std::vector<uint8_t>(512)).out(2);
    expect_fail(writable, kStatusIoErr, BlkError::WritableData);
    Chain nodata;
    nodata.in(header(kTypeOut, 0)).out(1);
    expect_fail(nodata, kStatusUnsupp, BlkError::NoData);
    Chain odd;
    odd.in(header(kTypeOut, 0)).in(std::vector<uint8_t>(700)).out(1);
    expect_fail(odd, kStatusUnsupp, BlkError::NotSectorMultiple);
    DecodeLimits ro = limits();
    ro.readonly = true;
    Chain w;
    w.in(header(kTypeOut, 0)).in(std::vector<uint8_t>(512)).out(1);
    expect_fail(w, kStatusIoErr, BlkError::ReadOnly, ro);
    // Reads still pass on a read-only disk.
    Chain r;
    r.in(header(kTypeIn, 0)).out(512).out(1);
    EXPECT_EQ(decode(r, ro).op, BlkOp::Read);
}

TEST_F(RequestDecoderTest, BlockSizeAlignment) {
    const DecodeLimits l4k = limits(4096);
    Chain ok;
    ok.in(header(kTypeIn, 8)).out(8192).out(1);
    EXPECT_EQ(decode(ok, l4k).op, BlkOp::Read);
    Chain off;
    off.in(header(kTypeIn, 1)).out(4096).out(1);
    expect_fail(off, kStatusIoErr, BlkError::Misaligned, l4k);
    Chain len;
    len.in(header(kTypeIn, 8)).out(1024).out(1);
    expect_fail(len, kStatusIoErr, BlkError::Misaligned, l4k);
}

TEST_F(RequestDecoderTest, TooManyIovecsIsIoErr) {
    Chain c;
    c.in(header(kTypeIn, 0));
    for (uint32_t i = 0; i < kCap + 1; ++i) {
        c.out(512);
    }
    c.out(1);
    expect_fail(c, kStatusIoErr, BlkError::TooManyIovecs);
    // Exactly kCap data buffers fit.
    Chain fit;
    fit.in(header(kTypeIn, 0));
    for (uint32_t i = 0; i < kCap; ++i) {
        fit.out(512);
    }
    fit.out(1);
    const DecodedRequest d = decode(fit);
    EXPECT_EQ(d.op, BlkOp::Read);
    EXPECT_EQ(d.n_iov, kCap);
}

TEST_F(RequestDecoderTest, TooLargeIsIoErr) {
    // A fake writable list of 1 GiB + 512 (never touched: the decoder only sums lengths).
    static uint8_t byte;
    struct iovec out[2] = {{&byte, kMaxDataBytes + 512}, {&byte, 1}};
    auto h = header(kTypeIn, 0);
    struct iovec in = {h.data(), h.size()};
    vdh_request req{};
    req.in = &in;
    req.n_in = 1;
    req.in_bytes = 16;
    req.out = out;
    req.n_out = 2;
    req.out_bytes = kMaxDataBytes + 513;
    DecodeLimits l = limits();
    l.capacity_bytes = 1ULL << 40;
    const DecodedRequest d = decode_request(req, l, iov_, kCap);
    EXPECT_EQ(d.op, BlkOp::Fail);
    EXPECT_EQ(d.error, BlkError::TooLarge);
}

TEST_F(RequestDecoderTest, Flush) {
    Chain ok;
    ok.in(header(kTypeFlush, 0)).out(1);
    EXPECT_EQ(decode(ok).op, BlkOp::Flush);
    Chain sector;
    sector.in(header(kTypeFlush, 1)).out(1);
    expect_fail(sector, kStatusIoErr, BlkError::FlushSector);
    Chain readable;
    readable.in(header(kTypeFlush, 0)).in(std::vector<uint8_t>(1)).out(1);
    expect_fail(readable, kStatusIoErr, BlkError::ReadableData);
    Chain writable;
    writable.in(header(kTypeFlush, 0)).out(512).out(1);
    expect_fail(writable, kStatusIoErr, BlkError::WritableData);
}

TEST_F(RequestDecoderTest, GetId) {
    Chain ok;
    ok.in(header(kTypeGetId, 0)).out(20).out(1);
    DecodedRequest d = decode(ok);
    ASSERT_EQ(d.op, BlkOp::GetId);
    EXPECT_EQ(d.len, 20u);
    ASSERT_EQ(d.n_iov, 1u);
    EXPECT_EQ(iov_[0].iov_len, 20u);
    // A larger buffer: the id goes in its first 20 bytes; split buffers work too.
    Chain split;
    split.in(header(kTypeGetId, 0)).out(7).out(30);
    d = decode(split);
    ASSERT_EQ(d.op, BlkOp::GetId);
    ASSERT_EQ(d.n_iov, 2u);
    EXPECT_EQ(iov_[0].iov_len, 7u);
    EXPECT_EQ(iov_[1].iov_len, 13u);
    EXPECT_EQ(d.status_byte, split.out_bufs()[1].data() + 29);
    Chain shorter;
    shorter.in(header(kTypeGetId, 0)).out(19).out(1);
    expect_fail(shorter, kStatusIoErr, BlkError::ShortIdBuffer);
    Chain none;
    none.in(header(kTypeGetId, 0)).out(1);
    expect_fail(none, kStatusUnsupp, BlkError::ShortIdBuffer);
    Chain readable;
    readable.in(header(kTypeGetId, 0)).in(std::vector<uint8_t>(4)).out(20).out(1);
    expect_fail(readable, kStatusIoErr, BlkError::ReadableData);
}

TEST_F(RequestDecoderTest, DiscardSegment) {
    Chain c;
    c.in(header(kTypeDiscard, 0)).in(segment(16, 32)).out(1);
    DecodedRequest d = decode(c);
    ASSERT_EQ(d.op, BlkOp::Discard);
    ASSERT_EQ(d.n_ranges, 1u);
    EXPECT_EQ(d.ranges[0].offset, 16u * 512);
    EXPECT_EQ(d.ranges[0].len, 32u * 512);
    EXPECT_FALSE(d.ranges[0].unmap);
    // Header and segment in one buffer, split anywhere.
    const auto all = cat(header(kTypeDiscard, 0), segment(2046, 2));
    Chain one;
    one.in({all.begin(), all.begin() + 20}).in({all.begin() + 20, all.end()}).out(1);
    d = decode(one);
    ASSERT_EQ(d.op, BlkOp::Discard);
    EXPECT_EQ(d.ranges[0].offset, 2046u * 512);
    EXPECT_EQ(d.ranges[0].len, 1024u);
}

TEST_F(RequestDecoderTest, DiscardRefusals) {
    auto discard = [](std::vector<uint8_t> payload) {
        Chain c;
        c.in(header(kTypeDiscard, 0));
        if (!payload.empty()) {
            c.in(std::move(payload));
        }
        c.out(1);
        return c;
    };
    Chain none = discard({});
    expect_fail(none, kStatusIoErr, BlkError::BadSegments);
    Chain partial = discard(std::vector<uint8_t>(15));
    expect_fail(partial, kStatusIoErr, BlkError::BadSegments);
    Chain two = discard(cat(segment(0, 8), segment(8, 8)));
    expect_fail(two, kStatusIoErr, BlkError::BadSegments);
    Chain reserved = discard(segment(0, 8, 2));
    expect_fail(reserved, kStatusUnsupp, BlkError::ReservedFlags);
    Chain unmap = discard(segment(0, 8, kFlagUnmap));
    expect_fail(unmap, kStatusUnsupp, BlkError::DiscardUnmap);
    Chain big = discard(segment(0, 65));
    expect_fail(big, kStatusIoErr, BlkError::SegmentTooLarge);
    Chain zero = discard(segment(0, 0));
    expect_fail(zero, kStatusIoErr, BlkError::SegmentTooLarge);
    Chain range = discard(segment(2047, 2));
    expect_fail(range, kStatusIoErr, BlkError::OutOfRange);
    Chain overflow = discard(segment(~0ULL, 8));
    expect_fail(overflow, kStatusIoErr, BlkError::OutOfRange);
    Chain misaligned = discard(segment(1, 8));
    expect_fail(misaligned, kStatusIoErr, BlkError::Misaligned, limits(4096));
    Chain writable;
    writable.in(header(kTypeDiscard, 0)).in(segment(0, 8)).out(16).out(1);
    expect_fail(writable, kStatusIoErr, BlkError::WritableData);
    DecodeLimits off = limits();
    off.discard = false;
    Chain unoffered = discard(segment(0, 8));
    expect_fail(unoffered, kStatusUnsupp, BlkError::UnknownType, off);
    DecodeLimits ro = limits();
    ro.readonly = true;
    Chain readonly = discard(segment(0, 8));
    expect_fail(readonly, kStatusIoErr, BlkError::ReadOnly, ro);
}

TEST_F(RequestDecoderTest, WriteZeroes) {
    Chain c;
    c.in(header(kTypeWriteZeroes, 0)).in(segment(8, 64, kFlagUnmap)).out(1);
    DecodedRequest d = decode(c);
    ASSERT_EQ(d.op, BlkOp::WriteZeroes);
    EXPECT_EQ(d.ranges[0].offset, 4096u);
    EXPECT_EQ(d.ranges[0].len, 64u * 512);
    EXPECT_TRUE(d.ranges[0].unmap);
    Chain reserved;
    reserved.in(header(kTypeWriteZeroes, 0)).in(segment(8, 8, 0x80000000u)).out(1);
    expect_fail(reserved, kStatusUnsupp, BlkError::ReservedFlags);
    Chain big;
    big.in(header(kTypeWriteZeroes, 0)).in(segment(8, 65)).out(1);
    expect_fail(big, kStatusIoErr, BlkError::SegmentTooLarge);
    DecodeLimits off = limits();
    off.write_zeroes = false;
    Chain unoffered;
    unoffered.in(header(kTypeWriteZeroes, 0)).in(segment(8, 8)).out(1);
    expect_fail(unoffered, kStatusUnsupp, BlkError::UnknownType, off);
}

TEST_F(RequestDecoderTest, SegmentsAreCopiedOnce) {
    Chain c;
    c.in(header(kTypeDiscard, 0)).in(segment(16, 32)).out(1);
    const DecodedRequest d = decode(c);
    // The guest rewrites the segment afterwards: the decoded range stays.
    auto evil = segment(0, 2048);
    std::memcpy(c.in_bufs()[1].data(), evil.data(), evil.size());
    EXPECT_EQ(d.ranges[0].offset, 16u * 512);
    EXPECT_EQ(d.ranges[0].len, 32u * 512);
}

TEST_F(RequestDecoderTest, EveryErrorHasAName) {
    for (uint8_t i = 0; i < static_cast<uint8_t>(BlkError::Count); ++i) {
        EXPECT_STRNE(to_string(static_cast<BlkError>(i)), "?") << int(i);
    }
}

} // namespace
} // namespace vdh::virtioblk

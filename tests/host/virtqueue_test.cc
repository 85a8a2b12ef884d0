// SPDX-License-Identifier: MIT
// Tests of host/src/virtqueue.cc over fake split and packed rings (fake_ring.h acts as the
// driver): chains → iovecs, used entries and index wraparound, refusal of malformed chains
// and corrupt rings, and notifications in both directions with and without EVENT_IDX.

#include "virtqueue.h"

#include <sys/uio.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "fake_ring.h"
#include "vring_defs.h"

namespace vdh {

// Readable gtest messages for the enums (found by argument-dependent lookup).
std::ostream& operator<<(std::ostream& os, ChainError e) {
    return os << "ChainError(" << static_cast<int>(e) << ")";
}
std::ostream& operator<<(std::ostream& os, PopStatus s) {
    return os << "PopStatus(" << static_cast<int>(s) << ")";
}

namespace {

using fake::FakePackedRing;
using fake::FakeRing;
using fake::FakeSplitRing;
using fake::kBoundary;
using fake::kGapGpa;
using fake::kPackedAvail;
using fake::kPackedUsed;
using fake::kR0Gpa;
using fake::kR2Gpa;
using fake::RawDesc;
using fake::Seg;

enum class Kind { Split, Packed };

std::string kind_name(const ::testing::TestParamInfo<Kind>& info) {
    return info.param == Kind::Split ? "Split" : "Packed";
}

constexpr uint16_t kNext = VRING_DESC_F_NEXT;
constexpr uint16_t kWrite = VRING_DESC_F_WRITE;
constexpr uint16_t kIndirect = VRING_DESC_F_INDIRECT;
constexpr uint16_t kFresh = 0x8000; // packed base of a fresh ring: position 0, wrap counter 1

/// Bytes the device sees in iov[0..n).
std::string gather(const struct iovec* iov, uint32_t n) {
    std::string out;
    for (uint32_t i = 0; i < n; ++i) {
        out.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
    }
    return out;
}

/// Writes \p s through iov[0..n) in order, as the device would.
void scatter(const struct iovec* iov, uint32_t n, const std::string& s) {
    size_t off = 0;
    for (uint32_t i = 0; i < n && off < s.size(); ++i) {
        size_t k = std::min(iov[i].iov_len, s.size() - off);
        std::memcpy(iov[i].iov_base, s.data() + off, k);
        off += k;
    }
    ASSERT_EQ(off, s.size()) << "iovecs too short";
}

std::string pattern(size_t n, char seed) {
    std::string s(n, '\0');
    for (size_t i = 0; i < n; ++i) {
        s[i] = static_cast<char>(seed + static_cast<char>(i * 7));
    }
    return s;
}

class VqBase : public ::testing::Test {
protected:
    static constexpr uint32_t kIovCap = 32;

    /// Fresh ring of \p kind and a Virtqueue over it. \p split_base: initial free-running
    /// index of a split ring (packed rings start at position 0, wrap counter 1).
    void make(Kind kind, uint16_t size = 16, bool event_idx = false, uint16_t split_base = 0) {
        kind_ = kind;
        vq_ = Virtqueue{};
        ring_.reset();
        uint16_t base = split_base;
        if (kind == Kind::Split) {
            ring_ = std::make_unique<FakeSplitRing>(guest_, size, split_base);
        } else {
            ring_ = std::make_unique<FakePackedRing>(guest_, size);
            base = kFresh;
        }
        ASSERT_TRUE(vq_.init(ring_->addrs(), &guest_.memory(), base, base, event_idx));
        if (scratch_ == 0) {
            scratch_ = guest_.alloc(64);
        }
    }
    FakeSplitRing& split() { return static_cast<FakeSplitRing&>(*ring_); }
    FakePackedRing& packed() { return static_cast<FakePackedRing&>(*ring_); }

    PopStatus pop(uint32_t cap = kIovCap, Virtqueue* q = nullptr) {
        c_ = Chain{};
        c_.iov = iov_;
        c_.iov_cap = cap;
        err_ = ChainError::Count;
        return (q != nullptr ? *q : vq_).pop(c_, &err_);
    }

    /// Adds, pops, completes and takes back \p n single-descriptor chains.
    void complete(int n) {
        for (int i = 0; i < n; ++i) {
            uint16_t id = ring_->add({{scratch_, 8, true}});
            ASSERT_EQ(pop(), PopStatus::Ok) << err_;
            ASSERT_EQ(c_.id, id);
            vq_.push_used(c_.id, c_.ndesc, 8);
            auto u = ring_->take_used();
            ASSERT_TRUE(u.has_value());
            ASSERT_EQ(u->id, id);
        }
    }

    /// One good request/reply round trip, checking the data both ways.
    void roundtrip_good() {
        std::string req = pattern(40, 'a');
        uint64_t in = guest_.alloc_with(req);
        uint64_t out = guest_.alloc(64);
        uint16_t id = ring_->add({{in, 40, false}, {out, 64, true}});
        ASSERT_EQ(pop(), PopStatus::Ok) << err_;
        EXPECT_EQ(err_, ChainError::None);
        EXPECT_EQ(c_.id, id);
        ASSERT_EQ(c_.n_in, 1u);
        ASSERT_EQ(c_.n_out, 1u);
        EXPECT_EQ(gather(c_.iov, 1), req);
        std::string reply = pattern(64, 'R');
        scatter(c_.iov + 1, 1, reply);
        vq_.push_used(c_.id, c_.ndesc, 64);
        auto u = ring_->take_used();
        ASSERT_TRUE(u.has_value());
        EXPECT_EQ(u->id, id);
        EXPECT_EQ(u->len, 64u);
        EXPECT_EQ(guest_.read(out, 64), reply);
        EXPECT_EQ(pop(), PopStatus::Empty);
    }

    /// The next chain must be refused with \p want; it is returned with len 0, the driver
    /// gets \p id back, and a good chain after it still works.
    void expect_bad_then_recover(uint16_t id, ChainError want, uint32_t cap = kIovCap) {
        ASSERT_EQ(pop(cap), PopStatus::Bad);
        EXPECT_EQ(err_, want);
        EXPECT_EQ(c_.id, id);
        vq_.push_used(c_.id, c_.ndesc, 0);
        auto u = ring_->take_used();
        ASSERT_TRUE(u.has_value());
        EXPECT_EQ(u->id, id);
        EXPECT_EQ(u->len, 0u);
        roundtrip_good();
    }

    fake::FakeGuest guest_;
    Kind kind_ = Kind::Split;
    std::unique_ptr<FakeRing> ring_;
    Virtqueue vq_;
    struct iovec iov_[kIovCap];
    Chain c_;
    ChainError err_ = ChainError::None;
    uint64_t scratch_ = 0;
};

class VqTest : public VqBase, public ::testing::WithParamInterface<Kind> {
protected:
    void SetUp() override { make(GetParam()); }
};

class SplitVq : public VqBase {
protected:
    void SetUp() override { make(Kind::Split); }
};

class PackedVq : public VqBase {
protected:
    void SetUp() override { make(Kind::Packed); }
};

INSTANTIATE_TEST_SUITE_P(Rings, VqTest, ::testing::Values(Kind::Split, Kind::Packed), kind_name);

// ---- normal chains ------------------------------------------------------------------------

TEST_P(VqTest, EmptyRingPopsEmpty) {
    EXPECT_FALSE(vq_.has_available());
    EXPECT_EQ(pop(), PopStatus::Empty);
    ring_->add({{scratch_, 8, false}});
    EXPECT_TRUE(vq_.has_available());
    EXPECT_EQ(pop(), PopStatus::Ok);
    EXPECT_FALSE(vq_.has_available());
    EXPECT_EQ(pop(), PopStatus::Empty);
}

TEST_P(VqTest, SingleReadableDescriptor) {
    std::string req = pattern(100, 'x');
    uint64_t gpa = guest_.alloc_with(req);
    uint16_t id = ring_->add({{gpa, 100, false}});
    ASSERT_EQ(pop(), PopStatus::Ok);
    EXPECT_EQ(err_, ChainError::None);
    EXPECT_EQ(c_.id, id);
    EXPECT_EQ(c_.ndesc, 1);
    EXPECT_EQ(c_.n_in, 1u);
    EXPECT_EQ(c_.n_out, 0u);
    EXPECT_EQ(c_.in_bytes, 100u);
    EXPECT_EQ(c_.out_bytes, 0u);
    EXPECT_EQ(c_.iov[0].iov_base, guest_.host(gpa));
    EXPECT_EQ(c_.iov[0].iov_len, 100u);
    EXPECT_EQ(gather(c_.iov, 1), req);
}

TEST_P(VqTest, ReadableAndWritable) {
    roundtrip_good();
    roundtrip_good();
}

TEST_P(VqTest, ManyDescriptors) {
    const std::vector<uint32_t> in_lens = {1, 100, 7, 300};
    const std::vector<uint32_t> out_lens = {50, 1, 200};
    std::vector<Seg> segs;
    std::string req;
    for (size_t i = 0; i < in_lens.size(); ++i) {
        std::string part = pattern(in_lens[i], static_cast<char>('A' + i));
        segs.push_back({guest_.alloc_with(part), in_lens[i], false});
        req += part;
    }
    for (uint32_t len : out_lens) {
        segs.push_back({guest_.alloc(len), len, true});
    }
    uint16_t id = ring_->add(segs);
    ASSERT_EQ(pop(), PopStatus::Ok) << err_;
    EXPECT_EQ(c_.id, id);
    EXPECT_EQ(c_.ndesc, kind_ == Kind::Packed ? 7 : 1);
    ASSERT_EQ(c_.n_in, 4u);
    ASSERT_EQ(c_.n_out, 3u);
    EXPECT_EQ(c_.in_bytes, 408u);
    EXPECT_EQ(c_.out_bytes, 251u);
    for (size_t i = 0; i < segs.size(); ++i) {
        EXPECT_EQ(c_.iov[i].iov_base, guest_.host(segs[i].gpa)) << i;
        EXPECT_EQ(c_.iov[i].iov_len, segs[i].len) << i;
    }
    EXPECT_EQ(gather(c_.iov, c_.n_in), req);
    std::string reply = pattern(251, 'r');
    scatter(c_.iov + c_.n_in, c_.n_out, reply);
    EXPECT_EQ(guest_.read(segs[4].gpa, 50) + guest_.read(segs[5].gpa, 1) +
                  guest_.read(segs[6].gpa, 200),
              reply);
    vq_.push_used(c_.id, c_.ndesc, 251);
    auto u = ring_->take_used();
    ASSERT_TRUE(u.has_value());
    EXPECT_EQ(u->id, id);
    EXPECT_EQ(u->len, 251u);
    roundtrip_good(); // the used position advanced by the chain length (packed)
}

TEST_P(VqTest, IndirectChain) {
    std::string req = pattern(33, 'i');
    uint64_t in0 = guest_.alloc_with(req.substr(0, 13));
    uint64_t in1 = guest_.alloc_with(req.substr(13));
    uint64_t out = guest_.alloc(77);
    uint16_t id = ring_->add_indirect({{in0, 13, false}, {in1, 20, false}, {out, 77, true}});
    ASSERT_EQ(pop(), PopStatus::Ok) << err_;
    EXPECT_EQ(c_.id, id);
    EXPECT_EQ(c_.ndesc, 1);
    ASSERT_EQ(c_.n_in, 2u);
    ASSERT_EQ(c_.n_out, 1u);
    EXPECT_EQ(c_.in_bytes, 33u);
    EXPECT_EQ(c_.out_bytes, 77u);
    EXPECT_EQ(gather(c_.iov, 2), req);
    EXPECT_EQ(c_.iov[2].iov_base, guest_.host(out));
    std::string reply = pattern(77, 'o');
    scatter(c_.iov + 2, 1, reply);
    EXPECT_EQ(guest_.read(out, 77), reply);
    vq_.push_used(c_.id, c_.ndesc, 77);
    auto u = ring_->take_used();
    ASSERT_TRUE(u.has_value());
    EXPECT_EQ(u->id, id);
    roundtrip_good();
}

TEST_P(VqTest, ChainCrossingRegionBoundaryGivesTwoIovecs) {
    std::string req = pattern(30, 'b');
    guest_.write(kBoundary - 10, req);
    ring_->add({{kBoundary - 10, 30, false}});
    ASSERT_EQ(pop(), PopStatus::Ok) << err_;
    ASSERT_EQ(c_.n_in, 2u);
    EXPECT_EQ(c_.in_bytes, 30u);
    EXPECT_EQ(c_.iov[0].iov_base, guest_.host(kBoundary - 10));
    EXPECT_EQ(c_.iov[0].iov_len, 10u);
    EXPECT_EQ(c_.iov[1].iov_base, guest_.host(kBoundary));
    EXPECT_EQ(c_.iov[1].iov_len, 20u);
    EXPECT_EQ(gather(c_.iov, 2), req);
    vq_.push_used(c_.id, c_.ndesc, 0);

    // Writable, through an indirect table, after a readable descriptor.
    uint64_t hdr = guest_.alloc_with("hdr!");
    ring_->add_indirect({{hdr, 4, false}, {kBoundary - 100, 300, true}});
    ASSERT_EQ(pop(), PopStatus::Ok) << err_;
    ASSERT_EQ(c_.n_in, 1u);
    ASSERT_EQ(c_.n_out, 2u);
    EXPECT_EQ(c_.out_bytes, 300u);
    EXPECT_EQ(c_.iov[1].iov_len, 100u);
    EXPECT_EQ(c_.iov[2].iov_len, 200u);
    std::string reply = pattern(300, 'w');
    scatter(c_.iov + 1, 2, reply);
    EXPECT_EQ(guest_.read(kBoundary - 100, 300), reply);
}

TEST_P(VqTest, PopResetsChainOnReuse) {
    uint64_t out = guest_.alloc(16);
    ring_->add({{scratch_, 8, false}, {scratch_, 4, false}, {out, 16, true}});
    ring_->add({{scratch_, 2, false}});
    Chain c;
    c.iov = iov_;
    c.iov_cap = kIovCap;
    ChainError err;
    ASSERT_EQ(vq_.pop(c, &err), PopStatus::Ok);
    EXPECT_EQ(c.n_in + c.n_out, 3u);
    ASSERT_EQ(vq_.pop(c, &err), PopStatus::Ok); // the same Chain, not reset by the caller
    EXPECT_EQ(err, ChainError::None);
    EXPECT_EQ(c.n_in, 1u);
    EXPECT_EQ(c.n_out, 0u);
    EXPECT_EQ(c.in_bytes, 2u);
    EXPECT_EQ(c.out_bytes, 0u);
    EXPECT_EQ(c.ndesc, 1);
}

// ---- used entries and indexes -------------------------------------------------------------

TEST_P(VqTest, PushUsedOutOfOrder) {
    std::vector<uint16_t> ids;
    std::vector<uint16_t> ndesc;
    for (int n = 1; n <= 3; ++n) {
        std::vector<Seg> segs;
        for (int k = 0; k < n; ++k) {
            segs.push_back({scratch_, 8, true});
        }
        ids.push_back(ring_->add(segs));
    }
    for (int n = 0; n < 3; ++n) {
        ASSERT_EQ(pop(), PopStatus::Ok);
        EXPECT_EQ(c_.id, ids[n]);
        ndesc.push_back(c_.ndesc);
    }
    const int order[] = {2, 0, 1};
    const uint32_t lens[] = {0, 5, 1234};
    for (int k = 0; k < 3; ++k) {
        vq_.push_used(ids[order[k]], ndesc[order[k]], lens[k]);
    }
    for (int k = 0; k < 3; ++k) {
        auto u = ring_->take_used();
        ASSERT_TRUE(u.has_value()) << k;
        EXPECT_EQ(u->id, ids[order[k]]);
        EXPECT_EQ(u->len, lens[k]);
        if (kind_ == Kind::Packed) {
            EXPECT_EQ((u->flags & kWrite) != 0, lens[k] > 0) << k;
        }
    }
    EXPECT_FALSE(ring_->take_used().has_value());
    roundtrip_good();
}

TEST_P(VqTest, WrapsAroundManyTimes) {
    constexpr uint16_t kSize = 8;
    constexpr uint16_t kBase = 65530;
    make(GetParam(), kSize, false, kBase);
    uint64_t in[3];
    uint64_t out[3];
    for (int j = 0; j < 3; ++j) {
        in[j] = guest_.alloc(16);
        out[j] = guest_.alloc(16);
    }
    uint32_t chains = 0;
    uint32_t descs = 0;
    for (int round = 0; round < 30; ++round) {
        const int k = round % 3 + 1;
        std::vector<uint16_t> ids;
        std::vector<uint16_t> nd;
        std::vector<std::string> tags;
        for (int j = 0; j < k; ++j) {
            std::string tag = pattern(16, static_cast<char>(round * 3 + j));
            guest_.write(in[j], tag);
            tags.push_back(tag);
            std::vector<Seg> segs = {{in[j], 16, false}};
            if ((round + j) % 2 == 1) {
                segs.push_back({out[j], 16, true});
            }
            ids.push_back(ring_->add(segs));
            descs += static_cast<uint32_t>(segs.size());
            ++chains;
        }
        for (int j = 0; j < k; ++j) {
            ASSERT_EQ(pop(), PopStatus::Ok) << "round " << round << ": " << err_;
            ASSERT_EQ(c_.id, ids[j]) << "round " << round;
            ASSERT_EQ(gather(c_.iov, c_.n_in), tags[j]) << "round " << round;
            nd.push_back(c_.ndesc);
        }
        ASSERT_EQ(pop(), PopStatus::Empty);
        for (int j = k - 1; j >= 0; --j) {
            vq_.push_used(ids[j], nd[j], static_cast<uint32_t>(100 * round + j));
        }
        for (int j = k - 1; j >= 0; --j) {
            auto u = ring_->take_used();
            ASSERT_TRUE(u.has_value()) << "round " << round;
            ASSERT_EQ(u->id, ids[j]) << "round " << round;
            ASSERT_EQ(u->len, static_cast<uint32_t>(100 * round + j));
        }
        ASSERT_FALSE(ring_->take_used().has_value());
    }
    ASSERT_GT(descs, 5u * kSize);
    if (GetParam() == Kind::Split) {
        EXPECT_EQ(vq_.last_avail_base(), static_cast<uint16_t>(kBase + chains));
        EXPECT_EQ(vq_.last_used_base(), static_cast<uint16_t>(kBase + chains));
        EXPECT_EQ(split().used()->idx, static_cast<uint16_t>(kBase + chains));
    } else {
        uint16_t want = static_cast<uint16_t>(descs % kSize) |
                        ((descs / kSize) % 2 == 0 ? 0x8000 : 0);
        EXPECT_EQ(vq_.last_avail_base(), want);
        EXPECT_EQ(vq_.last_used_base(), want);
    }
}

TEST_P(VqTest, BasesRoundTripThroughInit) {
    make(GetParam(), 8, false, 65533);
    complete(7);
    uint64_t in1 = guest_.alloc_with("first");
    uint64_t in2 = guest_.alloc_with("second");
    uint64_t out2 = guest_.alloc(8);
    uint16_t id1 = ring_->add({{in1, 5, false}});
    uint16_t id2 = ring_->add({{in2, 6, false}, {out2, 8, true}});
    ASSERT_EQ(pop(), PopStatus::Ok);
    ASSERT_EQ(c_.id, id1);
    uint16_t nd1 = c_.ndesc;
    uint16_t ab = vq_.last_avail_base();
    uint16_t ub = vq_.last_used_base();
    if (GetParam() == Kind::Split) {
        EXPECT_EQ(ab, static_cast<uint16_t>(65533 + 8));
        EXPECT_EQ(ub, static_cast<uint16_t>(65533 + 7));
    } else {
        EXPECT_EQ(ab, 0x0000); // position 8 == 0 of the next lap: wrap counter 0
        EXPECT_EQ(ub, 0x8007);
    }

    // A restarted device continues where the old one stopped.
    Virtqueue vq2;
    ASSERT_TRUE(vq2.init(ring_->addrs(), &guest_.memory(), ab, ub, false));
    EXPECT_EQ(vq2.last_avail_base(), ab);
    EXPECT_EQ(vq2.last_used_base(), ub);
    vq2.push_used(id1, nd1, 5);
    ASSERT_EQ(pop(kIovCap, &vq2), PopStatus::Ok) << err_;
    EXPECT_EQ(c_.id, id2);
    EXPECT_EQ(gather(c_.iov, c_.n_in), "second");
    vq2.push_used(c_.id, c_.ndesc, 8);
    auto u1 = ring_->take_used();
    auto u2 = ring_->take_used();
    ASSERT_TRUE(u1.has_value());
    ASSERT_TRUE(u2.has_value());
    EXPECT_EQ(u1->id, id1);
    EXPECT_EQ(u1->len, 5u);
    EXPECT_EQ(u2->id, id2);
    EXPECT_EQ(u2->len, 8u);
    uint16_t end = GetParam() == Kind::Split ? static_cast<uint16_t>(65533 + 9) : 0x0002;
    EXPECT_EQ(vq2.last_avail_base(), end);
    EXPECT_EQ(vq2.last_used_base(), end);
}

// ---- malformed chains (refused; the queue keeps going) ------------------------------------

TEST_P(VqTest, DescriptorSpanningGapIsBadAddress) {
    // Runs from the end of R1 into the hole.
    uint16_t id = ring_->add({{kGapGpa - 8, 16, false}});
    expect_bad_then_recover(id, ChainError::BadAddress);
    // Both ends mapped, the hole in between; few iovecs must not turn it into TooManyIovecs.
    id = ring_->add({{kGapGpa - 8, static_cast<uint32_t>(kR2Gpa - kGapGpa + 16), true}});
    expect_bad_then_recover(id, ChainError::BadAddress, 1);
}

TEST_P(VqTest, OutOfRangeAddressIsBadAddress) {
    uint16_t id = ring_->add({{0xdead00000000, 8, false}});
    expect_bad_then_recover(id, ChainError::BadAddress);
    id = ring_->add({{kR0Gpa - 1, 2, false}});
    expect_bad_then_recover(id, ChainError::BadAddress);
    // Second descriptor of the chain.
    id = ring_->add({{scratch_, 8, false}, {kGapGpa + 0x100, 8, true}});
    expect_bad_then_recover(id, ChainError::BadAddress);
}

TEST_P(VqTest, AddressPlusLengthOverflowIsBadAddress) {
    uint16_t id = ring_->add({{UINT64_MAX - 0xf, 0x20, false}});
    expect_bad_then_recover(id, ChainError::BadAddress);
    id = ring_->add({{kR2Gpa, 0xffffffffu, true}});
    expect_bad_then_recover(id, ChainError::BadAddress);
}

TEST_P(VqTest, ZeroLengthDescriptor) {
    uint16_t id = ring_->add({{scratch_, 0, false}});
    expect_bad_then_recover(id, ChainError::ZeroLength);
    id = ring_->add({{scratch_, 8, false}, {scratch_, 0, true}});
    expect_bad_then_recover(id, ChainError::ZeroLength);
    id = ring_->add_indirect({{scratch_, 8, false}, {scratch_, 0, true}});
    expect_bad_then_recover(id, ChainError::ZeroLength);
}

TEST_P(VqTest, ReadableAfterWritable) {
    uint16_t id = ring_->add({{scratch_, 8, true}, {scratch_, 8, false}});
    expect_bad_then_recover(id, ChainError::ReadAfterWrite);
    id = ring_->add_indirect({{scratch_, 8, false}, {scratch_, 8, true}, {scratch_, 8, false}});
    expect_bad_then_recover(id, ChainError::ReadAfterWrite);
}

TEST_P(VqTest, IndirectWithNextFlag) {
    uint64_t table = ring_->write_table({{scratch_, 8, 0}});
    uint16_t id = ring_->add_raw({{table, 16, kIndirect | kNext}, {scratch_, 8, 0}});
    expect_bad_then_recover(id, ChainError::BadIndirect);
}

TEST_P(VqTest, NestedIndirect) {
    uint64_t inner = ring_->write_table({{scratch_, 8, 0}});
    uint64_t outer = ring_->write_table({{scratch_, 8, kNext}, {inner, 16, kIndirect}});
    uint16_t id = ring_->add_raw({{outer, 32, kIndirect}});
    expect_bad_then_recover(id, ChainError::BadIndirect);
}

TEST_P(VqTest, IndirectLengthNotMultipleOf16OrZero) {
    uint64_t table = ring_->write_table({{scratch_, 8, kNext}, {scratch_, 8, 0}});
    uint16_t id = ring_->add_raw({{table, 24, kIndirect}});
    expect_bad_then_recover(id, ChainError::BadIndirect);
    id = ring_->add_raw({{table, 0, kIndirect}});
    expect_bad_then_recover(id, ChainError::BadIndirect);
    // The same table with a proper length is fine.
    ring_->add_raw({{table, 32, kIndirect}});
    ASSERT_EQ(pop(), PopStatus::Ok) << err_;
    EXPECT_EQ(c_.n_in, 2u);
}

TEST_P(VqTest, IndirectTableOutsideMemoryOrStraddlingRegions) {
    uint16_t id = ring_->add_raw({{kGapGpa + 0x100, 32, kIndirect}});
    expect_bad_then_recover(id, ChainError::BadIndirect);
    id = ring_->add_raw({{kR2Gpa + fake::kR2Size - 16, 32, kIndirect}}); // runs off the end
    expect_bad_then_recover(id, ChainError::BadIndirect);
    // Valid entries, but the table itself is split between R0 and R1.
    ring_->write_table_at(kBoundary - 16, {{scratch_, 8, kNext}, {scratch_, 8, 0}});
    id = ring_->add_raw({{kBoundary - 16, 32, kIndirect}});
    expect_bad_then_recover(id, ChainError::BadIndirect);
}

// Found by tests/fuzz/virtqueue_fuzz.cc (UBSan): an indirect table at an odd guest address
// was read through a misaligned descriptor pointer. It is walked like any other table.
TEST_P(VqTest, IndirectTableAtMisalignedAddress) {
    std::string req = pattern(24, 'm');
    uint64_t in = guest_.alloc_with(req);
    uint64_t out = guest_.alloc(48);
    uint64_t table = guest_.alloc(64) + 3;
    // Two entries in this ring's layout, written byte-wise (split: addr, len, flags, next;
    // packed: addr, len, id, flags).
    std::string bytes;
    auto put = [&bytes](uint64_t v, size_t n) {
        for (size_t i = 0; i < n; ++i) {
            bytes.push_back(static_cast<char>(v >> (8 * i)));
        }
    };
    const bool is_packed = GetParam() == Kind::Packed;
    put(in, 8);
    put(24, 4);
    if (is_packed) {
        put(0, 2);
        put(0, 2);
    } else {
        put(kNext, 2);
        put(1, 2);
    }
    put(out, 8);
    put(48, 4);
    put(is_packed ? 0 : kWrite, 2);
    put(is_packed ? kWrite : 0, 2);
    guest_.write(table, bytes);
    uint16_t id = ring_->add_raw({{table, 32, kIndirect}});
    ASSERT_EQ(pop(), PopStatus::Ok) << err_;
    EXPECT_EQ(c_.id, id);
    ASSERT_EQ(c_.n_in, 1u);
    ASSERT_EQ(c_.n_out, 1u);
    EXPECT_EQ(gather(c_.iov, 1), req);
    EXPECT_EQ(c_.iov[1].iov_base, guest_.host(out));
    EXPECT_EQ(c_.out_bytes, 48u);
    vq_.push_used(c_.id, c_.ndesc, 0);
    ASSERT_TRUE(ring_->take_used().has_value());
    roundtrip_good();
}

TEST_P(VqTest, TooManyIovecs) {
    uint16_t id = ring_->add({{scratch_, 8, false}, {scratch_, 8, false}, {scratch_, 8, true}});
    expect_bad_then_recover(id, ChainError::TooManyIovecs, 2);
    id = ring_->add({{kBoundary - 4, 8, false}}); // one descriptor, two iovecs
    expect_bad_then_recover(id, ChainError::TooManyIovecs, 1);
    id = ring_->add_indirect({{scratch_, 8, false}, {scratch_, 8, false}, {scratch_, 8, true}});
    expect_bad_then_recover(id, ChainError::TooManyIovecs, 2);
    // Exactly as many as fit.
    ring_->add({{scratch_, 8, false}, {kBoundary - 4, 8, true}});
    ASSERT_EQ(pop(3), PopStatus::Ok) << err_;
    EXPECT_EQ(c_.n_in + c_.n_out, 3u);
}

// ---- split ring only ----------------------------------------------------------------------

TEST_F(SplitVq, NextPointingBackIsLoop) {
    split().write_desc(14, {scratch_, 8, kNext, 15});
    split().write_desc(15, {scratch_, 8, kNext, 14});
    split().publish_head(14);
    expect_bad_then_recover(14, ChainError::Loop);
    split().write_desc(13, {scratch_, 8, kNext, 13}); // itself
    split().publish_head(13);
    expect_bad_then_recover(13, ChainError::Loop);
}

TEST_F(SplitVq, ChainAsLongAsRingIsFineLongerIsLoop) {
    make(Kind::Split, 8);
    std::vector<Seg> segs(8, Seg{scratch_, 8, false});
    uint16_t id = ring_->add(segs);
    ASSERT_EQ(pop(), PopStatus::Ok) << err_;
    EXPECT_EQ(c_.n_in, 8u);
    vq_.push_used(id, c_.ndesc, 0);
    ASSERT_TRUE(ring_->take_used().has_value());
    // All eight descriptors in a cycle: the walk would never end.
    for (int i = 0; i < 8; ++i) {
        split().write_desc(static_cast<uint16_t>(i), {scratch_, 8, kNext, (i + 1) % 8});
    }
    split().publish_head(3);
    // Refused as a loop before a ninth segment is even tried (budget of eight iovecs).
    ASSERT_EQ(pop(8), PopStatus::Bad);
    EXPECT_EQ(err_, ChainError::Loop);
    EXPECT_EQ(c_.id, 3);
}

TEST_F(SplitVq, NextOutOfRangeIsBadNext) {
    split().write_desc(5, {scratch_, 8, kNext, 16});
    split().publish_head(5);
    expect_bad_then_recover(5, ChainError::BadNext);
    split().write_desc(6, {scratch_, 8, kNext, 0xffff});
    split().publish_head(6);
    expect_bad_then_recover(6, ChainError::BadNext);
}

TEST_F(SplitVq, IndirectTableLoopAndBadNext) {
    uint64_t loop = ring_->write_table({{scratch_, 8, kNext, 1}, {scratch_, 8, kNext, 0}});
    uint16_t id = ring_->add_raw({{loop, 32, kIndirect}});
    expect_bad_then_recover(id, ChainError::Loop, 2); // not TooManyIovecs: caught first
    uint64_t bad = ring_->write_table({{scratch_, 8, kNext, 2}, {scratch_, 8, 0}});
    id = ring_->add_raw({{bad, 32, kIndirect}});
    expect_bad_then_recover(id, ChainError::BadNext);
    // A table may be walked out of order.
    uint64_t jumpy = ring_->write_table(
        {{scratch_, 1, kNext, 2}, {scratch_, 3, kWrite, -1}, {scratch_, 2, kNext, 1}});
    ring_->add_raw({{jumpy, 48, kIndirect}});
    ASSERT_EQ(pop(), PopStatus::Ok) << err_;
    EXPECT_EQ(c_.in_bytes, 3u);
    EXPECT_EQ(c_.out_bytes, 3u);
}

TEST_F(SplitVq, IndirectAfterDirectDescriptorIsRefused) {
    uint64_t table = ring_->write_table({{scratch_, 8, 0}});
    uint16_t id = ring_->add_raw({{scratch_, 8, kNext}, {table, 16, kIndirect}});
    expect_bad_then_recover(id, ChainError::BadIndirect);
}

TEST_F(SplitVq, AvailIndexJumpIsBroken) {
    make(Kind::Split, 8, false, 65530);
    // Exactly a full ring pending is fine.
    for (int i = 0; i < 8; ++i) {
        ring_->add({{scratch_, 8, false}});
    }
    for (int i = 0; i < 8; ++i) {
        ASSERT_EQ(pop(), PopStatus::Ok) << i;
        vq_.push_used(c_.id, c_.ndesc, 0);
        ASSERT_TRUE(ring_->take_used().has_value());
    }
    uint16_t before = vq_.last_avail_base();
    EXPECT_EQ(before, static_cast<uint16_t>(65530 + 8));
    split().set_avail_idx(static_cast<uint16_t>(before + 9));
    EXPECT_EQ(pop(), PopStatus::Broken);
    EXPECT_EQ(vq_.last_avail_base(), before);
    split().set_avail_idx(static_cast<uint16_t>(before - 1)); // went backwards
    EXPECT_EQ(pop(), PopStatus::Broken);
}

TEST_F(SplitVq, HeadOutOfRangeIsBroken) {
    split().publish_head(16);
    EXPECT_EQ(pop(), PopStatus::Broken);
    EXPECT_EQ(vq_.last_avail_base(), 0);
    EXPECT_EQ(pop(), PopStatus::Broken); // stays broken, nothing consumed
}

TEST_F(SplitVq, PushUsedWritesSlotAndIndex) {
    make(Kind::Split, 16, false, 65534);
    uint16_t a = ring_->add({{scratch_, 8, true}});
    uint16_t b = ring_->add({{scratch_, 8, true}, {scratch_, 4, true}});
    uint16_t c = ring_->add({{scratch_, 8, true}});
    for (int i = 0; i < 3; ++i) {
        ASSERT_EQ(pop(), PopStatus::Ok);
    }
    vq_.push_used(b, 1, 12);
    vq_.push_used(c, 1, 0);
    vq_.push_used(a, 1, 7);
    struct vring_used* used = split().used();
    EXPECT_EQ(used->idx, 1); // 65534 + 3
    EXPECT_EQ(used->ring[14].id, b);
    EXPECT_EQ(used->ring[14].len, 12u);
    EXPECT_EQ(used->ring[15].id, c);
    EXPECT_EQ(used->ring[15].len, 0u);
    EXPECT_EQ(used->ring[0].id, a);
    EXPECT_EQ(used->ring[0].len, 7u);
}

TEST_F(SplitVq, InitRejectsUnusableRings) {
    VringAddrs good = ring_->addrs();
    const GuestMemory* mem = &guest_.memory();
    Virtqueue q;
    EXPECT_TRUE(q.init(good, mem, 7, 5, false));
    EXPECT_EQ(q.size(), 16);
    EXPECT_FALSE(q.packed());
    EXPECT_EQ(q.last_avail_base(), 7);
    EXPECT_EQ(q.last_used_base(), 5);
    VringAddrs a = good;
    a.size = 0;
    EXPECT_FALSE(q.init(a, mem, 0, 0, false));
    a.size = 12;
    EXPECT_FALSE(q.init(a, mem, 0, 0, false));
    a = good;
    a.desc = nullptr;
    EXPECT_FALSE(q.init(a, mem, 0, 0, false));
    a = good;
    a.avail = nullptr;
    EXPECT_FALSE(q.init(a, mem, 0, 0, false));
    a = good;
    a.used = nullptr;
    EXPECT_FALSE(q.init(a, mem, 0, 0, false));
    EXPECT_FALSE(q.init(good, nullptr, 0, 0, false));
    // Misaligned rings (virtio: desc 16, avail 2, used 4) are refused.
    auto shift = [](auto* p, uintptr_t by) {
        return reinterpret_cast<decltype(p)>(reinterpret_cast<uintptr_t>(p) + by);
    };
    a = good;
    a.desc = shift(good.desc, 8);
    EXPECT_FALSE(q.init(a, mem, 0, 0, false));
    a = good;
    a.avail = shift(good.avail, 1);
    EXPECT_FALSE(q.init(a, mem, 0, 0, false));
    a = good;
    a.used = shift(good.used, 2);
    EXPECT_FALSE(q.init(a, mem, 0, 0, false));
}

TEST_F(SplitVq, NotifyWithoutEventIdxHonoursNoInterrupt) {
    complete(1);
    split().avail()->flags = VRING_AVAIL_F_NO_INTERRUPT;
    EXPECT_FALSE(vq_.should_notify());
    split().avail()->flags = 0;
    EXPECT_TRUE(vq_.should_notify());
    vq_.mark_notified();
    EXPECT_FALSE(vq_.should_notify()); // nothing new since
    complete(1);
    EXPECT_TRUE(vq_.should_notify());
    vq_.mark_notified();
    complete(2);
    split().avail()->flags = VRING_AVAIL_F_NO_INTERRUPT;
    split().set_used_event(2); // ignored without EVENT_IDX
    EXPECT_FALSE(vq_.should_notify());
}

TEST_F(SplitVq, NotifyWithEventIdxHonoursUsedEvent) {
    make(Kind::Split, 16, true);
    split().avail()->flags = VRING_AVAIL_F_NO_INTERRUPT; // ignored with EVENT_IDX
    complete(1);
    split().set_used_event(5);
    EXPECT_TRUE(vq_.should_notify()); // first one after init
    vq_.mark_notified();               // signalled at 1
    // As the runtime does: mark after every decision.
    auto step = [&](int n) {
        complete(n);
        bool r = vq_.should_notify();
        vq_.mark_notified();
        return r;
    };
    EXPECT_FALSE(step(3)); // used 4: entry 5 not written yet
    EXPECT_FALSE(step(1)); // used 5
    EXPECT_TRUE(step(1));  // used 6: entry 5 written
    EXPECT_FALSE(step(1)); // used 7: event already passed
    split().set_used_event(9);
    EXPECT_TRUE(step(4));  // used 11: window [7, 11) holds 9
    split().set_used_event(15);
    EXPECT_FALSE(step(4)); // used 15: window [11, 15) stops just short
    EXPECT_TRUE(step(1));  // used 16
    // Without new used entries there is nothing to signal.
    split().set_used_event(16);
    EXPECT_FALSE(vq_.should_notify());
}

TEST_F(SplitVq, NotifyWithEventIdxAcrossIndexWrap) {
    make(Kind::Split, 16, true, 65530);
    complete(1);
    EXPECT_TRUE(vq_.should_notify());
    vq_.mark_notified(); // at 65531
    split().set_used_event(65535);
    complete(2);
    EXPECT_FALSE(vq_.should_notify()); // used 65533
    vq_.mark_notified();
    complete(4);
    EXPECT_TRUE(vq_.should_notify()); // used 1 (wrapped): window [65533, 1) holds 65535
    vq_.mark_notified();
    split().set_used_event(3);
    complete(1);
    EXPECT_FALSE(vq_.should_notify()); // used 2
    vq_.mark_notified();
    complete(2);
    EXPECT_TRUE(vq_.should_notify()); // used 4
}

TEST_F(SplitVq, NotifyWindowStartsAtLastMark) {
    // More than 2^16 used entries between notifications: the window must start at the last
    // decision (mark_notified), not at the last notification, or 16-bit arithmetic loses it.
    make(Kind::Split, 16, true);
    complete(1);
    EXPECT_TRUE(vq_.should_notify());
    vq_.mark_notified(); // at 1
    split().set_used_event(0); // 65535 entries ahead
    for (int i = 0; i < 40000; ++i) {
        vq_.push_used(0, 1, 0);
    }
    EXPECT_FALSE(vq_.should_notify()); // used 40001
    vq_.mark_notified();
    split().set_used_event(40005);
    for (int i = 0; i < 30000; ++i) {
        vq_.push_used(0, 1, 0);
    }
    EXPECT_TRUE(vq_.should_notify()); // used 70001 mod 2^16: 40005 was passed
}

TEST_F(SplitVq, KicksWithoutEventIdx) {
    *split_avail_event(split().used(), 16) = 0x1234;
    vq_.disable_kicks();
    EXPECT_EQ(split().used()->flags, VRING_USED_F_NO_NOTIFY);
    EXPECT_FALSE(vq_.enable_kicks());
    EXPECT_EQ(split().used()->flags, 0);
    EXPECT_EQ(split().avail_event(), 0x1234); // not used without EVENT_IDX
    vq_.disable_kicks();
    ring_->add({{scratch_, 8, false}});
    EXPECT_TRUE(vq_.enable_kicks()); // arrived while kicks were off: don't sleep
    EXPECT_EQ(split().used()->flags, 0);
}

TEST_F(SplitVq, KicksWithEventIdx) {
    make(Kind::Split, 8, true, 65530);
    complete(3);
    EXPECT_FALSE(vq_.enable_kicks());
    EXPECT_EQ(split().avail_event(), 65533);
    EXPECT_EQ(split().used()->flags, 0);
    vq_.disable_kicks();
    EXPECT_EQ(split().used()->flags, 0); // EVENT_IDX: flags are not the mechanism
    ring_->add({{scratch_, 8, false}});
    EXPECT_TRUE(vq_.enable_kicks());
    EXPECT_EQ(split().avail_event(), 65533);
    ASSERT_EQ(pop(), PopStatus::Ok);
    vq_.push_used(c_.id, c_.ndesc, 0);
    ASSERT_TRUE(ring_->take_used().has_value());
    complete(4);
    EXPECT_FALSE(vq_.enable_kicks());
    EXPECT_EQ(split().avail_event(), 2); // 65538 mod 2^16
}

// ---- packed ring only ---------------------------------------------------------------------

TEST_F(PackedVq, PartiallyAvailableChainIsBroken) {
    make(Kind::Packed, 8);
    complete(6); // the chain will cross the end of the ring
    uint64_t b = guest_.alloc(32);
    packed().add_raw({{b, 8, kNext}, {b + 8, 8, kNext}, {b + 16, 8, 0}});
    uint16_t head = packed().head_pos();
    EXPECT_EQ(head, 6);
    packed().desc(0).flags = kPackedAvail | kPackedUsed; // tail not made available (lap 2)
    EXPECT_EQ(pop(), PopStatus::Broken);
}

TEST_F(PackedVq, UsedDescriptorIsNotAvailable) {
    // AVAIL == USED == wrap counter marks a used descriptor: nothing to pop.
    packed().desc(0) = {scratch_, 8, 0, static_cast<uint16_t>(kPackedAvail | kPackedUsed)};
    EXPECT_FALSE(vq_.has_available());
    EXPECT_EQ(pop(), PopStatus::Empty);
    packed().desc(0).flags = 0; // lap 1 expects AVAIL=1, USED=0
    EXPECT_FALSE(vq_.has_available());
    EXPECT_EQ(pop(), PopStatus::Empty);
    packed().desc(0).flags = kPackedAvail;
    EXPECT_TRUE(vq_.has_available());
    EXPECT_EQ(pop(), PopStatus::Ok);
}

TEST_F(PackedVq, BufferIdOutOfRangeIsBroken) {
    packed().add_raw_with_id({{scratch_, 8, 0}}, 16);
    EXPECT_EQ(pop(), PopStatus::Broken);
    make(Kind::Packed);
    packed().add_raw_with_id({{scratch_, 8, kNext}, {scratch_, 8, 0}}, 0xffff);
    EXPECT_EQ(pop(), PopStatus::Broken);
    make(Kind::Packed);
    packed().add_raw_with_id({{scratch_, 8, 0}}, 15);
    EXPECT_EQ(pop(), PopStatus::Ok);
    EXPECT_EQ(c_.id, 15);
}

TEST_F(PackedVq, ChainAsLongAsRingIsFineLongerIsBroken) {
    make(Kind::Packed, 4);
    packed().add_raw({{scratch_, 8, kNext}, {scratch_, 8, kNext}, {scratch_, 8, kNext},
                      {scratch_, 8, 0}});
    ASSERT_EQ(pop(), PopStatus::Ok) << err_;
    EXPECT_EQ(c_.ndesc, 4);
    make(Kind::Packed, 4);
    packed().add_raw({{scratch_, 8, kNext}, {scratch_, 8, kNext}, {scratch_, 8, kNext},
                      {scratch_, 8, kNext}});
    EXPECT_EQ(pop(), PopStatus::Broken);
}

TEST_F(PackedVq, BadChainIsConsumedWhole) {
    uint64_t b = guest_.alloc(32);
    uint16_t id = packed().add_raw({{b, 8, kNext}, {b + 8, 0, kNext}, {b + 16, 8, kWrite}});
    ASSERT_EQ(pop(), PopStatus::Bad);
    EXPECT_EQ(err_, ChainError::ZeroLength);
    EXPECT_EQ(c_.id, id);
    EXPECT_EQ(c_.ndesc, 3);
    EXPECT_EQ(vq_.last_avail_base(), kFresh | 3);
    vq_.push_used(c_.id, c_.ndesc, 0);
    ASSERT_TRUE(ring_->take_used().has_value());
    EXPECT_EQ(vq_.last_used_base(), kFresh | 3);
    roundtrip_good();
}

TEST_F(PackedVq, WrapCountersFlip) {
    make(Kind::Packed, 4);
    EXPECT_EQ(vq_.last_avail_base(), 0x8000);
    EXPECT_EQ(vq_.last_used_base(), 0x8000);
    for (int lap = 0; lap < 3; ++lap) {
        const bool wrap = lap % 2 == 0;
        for (int i = 0; i < 4; ++i) {
            ring_->add({{scratch_, 8, true}});
            ASSERT_EQ(pop(), PopStatus::Ok);
            uint32_t len = i % 2 == 0 ? 8 : 0;
            vq_.push_used(c_.id, c_.ndesc, len);
            uint16_t f = packed().desc(static_cast<uint16_t>(i)).flags;
            EXPECT_EQ((f & kPackedAvail) != 0, wrap) << lap << "/" << i;
            EXPECT_EQ((f & kPackedUsed) != 0, wrap) << lap << "/" << i;
            EXPECT_EQ((f & kWrite) != 0, len > 0);
            auto u = ring_->take_used();
            ASSERT_TRUE(u.has_value());
            EXPECT_EQ(u->len, len);
        }
        uint16_t want = wrap ? 0x0000 : 0x8000;
        EXPECT_EQ(vq_.last_avail_base(), want) << lap;
        EXPECT_EQ(vq_.last_used_base(), want) << lap;
    }
}

TEST_F(PackedVq, NonPowerOfTwoSizeWraps) {
    make(Kind::Packed, 6);
    for (int round = 0; round < 10; ++round) {
        std::vector<uint16_t> ids;
        for (int j = 0; j < 2; ++j) {
            ids.push_back(ring_->add({{scratch_, 4, false}, {scratch_ + 8, 4, true}}));
        }
        for (int j = 0; j < 2; ++j) {
            ASSERT_EQ(pop(), PopStatus::Ok) << round;
            ASSERT_EQ(c_.id, ids[j]);
            vq_.push_used(c_.id, c_.ndesc, 4);
        }
        for (int j = 0; j < 2; ++j) {
            auto u = ring_->take_used();
            ASSERT_TRUE(u.has_value()) << round;
            EXPECT_EQ(u->id, ids[j]);
        }
    }
    // 40 descriptors: 6 whole laps (an even number of flips) and 4.
    EXPECT_EQ(vq_.last_avail_base(), 0x8004);
    EXPECT_EQ(vq_.last_used_base(), 0x8004);
}

TEST_F(PackedVq, InitTakesWrapCounterFromBit15AndRejectsBadRings) {
    VringAddrs good = ring_->addrs();
    const GuestMemory* mem = &guest_.memory();
    Virtqueue q;
    ASSERT_TRUE(q.init(good, mem, 0x0003, 0x0002, false));
    EXPECT_TRUE(q.packed());
    EXPECT_EQ(q.last_avail_base(), 0x0003);
    EXPECT_EQ(q.last_used_base(), 0x0002);
    // Position 3 in lap "wrap 0" is available when AVAIL=0, USED=1.
    packed().desc(3) = {scratch_, 8, 9, FakePackedRing::avail_bits(false)};
    ASSERT_EQ(pop(kIovCap, &q), PopStatus::Ok) << err_;
    EXPECT_EQ(c_.id, 9);
    // The used descriptor goes to position 2 and carries wrap counter 0: AVAIL=USED=0.
    q.push_used(c_.id, c_.ndesc, 0);
    EXPECT_EQ(packed().desc(2).id, 9);
    EXPECT_EQ(packed().desc(2).flags & (kPackedAvail | kPackedUsed), 0);
    EXPECT_EQ(q.last_used_base(), 0x0003);
    ASSERT_TRUE(q.init(good, mem, 0x8000, 0x8005, false));
    EXPECT_EQ(q.last_used_base(), 0x8005);

    EXPECT_FALSE(q.init(good, mem, 0x8000 | 16, 0x8000, false)); // position >= size
    EXPECT_FALSE(q.init(good, mem, 0x8000, 16, false));
    VringAddrs a = good;
    a.desc_packed = nullptr;
    EXPECT_FALSE(q.init(a, mem, kFresh, kFresh, false));
    a = good;
    a.driver_event = nullptr;
    EXPECT_FALSE(q.init(a, mem, kFresh, kFresh, false));
    a = good;
    a.device_event = nullptr;
    EXPECT_FALSE(q.init(a, mem, kFresh, kFresh, false));
    a = good;
    a.size = 0;
    EXPECT_FALSE(q.init(a, mem, kFresh, kFresh, false));
    EXPECT_FALSE(q.init(good, nullptr, kFresh, kFresh, false));
    // Misaligned rings (virtio: descriptors 16, event structures 4) are refused.
    auto shift = [](auto* p, uintptr_t by) {
        return reinterpret_cast<decltype(p)>(reinterpret_cast<uintptr_t>(p) + by);
    };
    a = good;
    a.desc_packed = shift(good.desc_packed, 8);
    EXPECT_FALSE(q.init(a, mem, kFresh, kFresh, false));
    a = good;
    a.driver_event = shift(good.driver_event, 2);
    EXPECT_FALSE(q.init(a, mem, kFresh, kFresh, false));
    a = good;
    a.device_event = shift(good.device_event, 1);
    EXPECT_FALSE(q.init(a, mem, kFresh, kFresh, false));
}

TEST_F(PackedVq, NotifyHonoursDriverEventFlags) {
    complete(1);
    packed().driver_event().flags = VRING_PACKED_EVENT_FLAG_DISABLE;
    EXPECT_FALSE(vq_.should_notify());
    packed().driver_event().flags = VRING_PACKED_EVENT_FLAG_ENABLE;
    EXPECT_TRUE(vq_.should_notify());
    vq_.mark_notified();
    EXPECT_FALSE(vq_.should_notify()); // nothing new
    complete(1);
    EXPECT_TRUE(vq_.should_notify());
    vq_.mark_notified();
    // DESC without EVENT_IDX negotiated: treated as "enabled".
    packed().driver_event().flags = VRING_PACKED_EVENT_FLAG_DESC;
    packed().driver_event().off_wrap = 0x8000 | 10;
    complete(1);
    EXPECT_TRUE(vq_.should_notify());
}

TEST_F(PackedVq, NotifyAfterExactlyOneLap) {
    // The "nothing new since the mark" test must compare the wrap counter of the mark too.
    make(Kind::Packed, 8);
    complete(1);
    EXPECT_TRUE(vq_.should_notify());
    vq_.mark_notified(); // position 1, wrap 1
    complete(8);
    EXPECT_TRUE(vq_.should_notify()); // position 1, wrap 0: a whole lap is new
    vq_.mark_notified();
    EXPECT_FALSE(vq_.should_notify()); // nothing new since
    complete(8);
    EXPECT_TRUE(vq_.should_notify()); // position 1, wrap 1 again: another whole lap
}

TEST_F(PackedVq, NotifyWithEventIdxHonoursOffWrap) {
    make(Kind::Packed, 8, true);
    auto& ev = packed().driver_event();
    ev.flags = VRING_PACKED_EVENT_FLAG_DESC;
    ev.off_wrap = 0x8000 | 3; // "tell me when the descriptor at 3 (lap wrap=1) is used"
    complete(1);
    EXPECT_TRUE(vq_.should_notify()); // first one after init
    vq_.mark_notified();
    auto step = [&](int n) {
        complete(n);
        bool r = vq_.should_notify();
        vq_.mark_notified();
        return r;
    };
    EXPECT_FALSE(step(1)); // used position 2
    EXPECT_FALSE(step(1)); // 3
    EXPECT_TRUE(step(1));  // 4: descriptor 3 was written
    EXPECT_FALSE(step(1)); // 5
    ev.off_wrap = 1;       // position 1 of the next lap (wrap 0)
    EXPECT_FALSE(step(2)); // 7
    EXPECT_FALSE(step(2)); // 1 (wrapped)
    EXPECT_TRUE(step(1));  // 2
    ev.off_wrap = 0x8000 | 6; // the previous lap: long passed
    EXPECT_FALSE(step(1));    // 3
    ev.off_wrap = 7;          // across the end of the ring in one batch
    EXPECT_TRUE(step(6));     // 3 → 9 = 1 (wrap 1)
    ev.off_wrap = 0x8000 | 4; // exactly one lap in one batch: same position, other lap
    EXPECT_TRUE(step(8));     // 1 (wrap 1) → 1 (wrap 0): descriptor 4 of lap wrap=1 written
    // ENABLE overrides the offset.
    ev.flags = VRING_PACKED_EVENT_FLAG_ENABLE;
    ev.off_wrap = 0x8000 | 7;
    EXPECT_TRUE(step(1));
    ev.flags = VRING_PACKED_EVENT_FLAG_DISABLE;
    EXPECT_FALSE(step(1));
}

TEST_F(PackedVq, NotifyWindowStartsAtLastMark) {
    // Notified at 5; the driver then disables notifications while the device runs more than a
    // lap; the decisions in between are marked, so the window after re-enabling is right.
    make(Kind::Packed, 8, true);
    auto& ev = packed().driver_event();
    complete(5);
    EXPECT_TRUE(vq_.should_notify());
    vq_.mark_notified();
    ev.flags = VRING_PACKED_EVENT_FLAG_DISABLE;
    complete(6); // position 3, wrap 0
    EXPECT_FALSE(vq_.should_notify());
    vq_.mark_notified();
    ev.off_wrap = 3;
    ev.flags = VRING_PACKED_EVENT_FLAG_DESC;
    complete(4); // writes 3, 4, 5, 6
    EXPECT_TRUE(vq_.should_notify());
}

TEST_F(PackedVq, KicksWithoutEventIdx) {
    vq_.disable_kicks();
    EXPECT_EQ(packed().device_event().flags, VRING_PACKED_EVENT_FLAG_DISABLE);
    EXPECT_FALSE(vq_.enable_kicks());
    EXPECT_EQ(packed().device_event().flags, VRING_PACKED_EVENT_FLAG_ENABLE);
    vq_.disable_kicks();
    ring_->add({{scratch_, 8, false}});
    EXPECT_TRUE(vq_.enable_kicks());
    EXPECT_EQ(packed().device_event().flags, VRING_PACKED_EVENT_FLAG_ENABLE);
}

TEST_F(PackedVq, KicksWithEventIdx) {
    make(Kind::Packed, 4, true);
    complete(5); // position 1 of lap 2 (wrap 0)
    EXPECT_FALSE(vq_.enable_kicks());
    EXPECT_EQ(packed().device_event().flags, VRING_PACKED_EVENT_FLAG_DESC);
    EXPECT_EQ(packed().device_event().off_wrap, 1);
    vq_.disable_kicks(); // the stale offset already suppresses kicks
    EXPECT_EQ(packed().device_event().flags, VRING_PACKED_EVENT_FLAG_DESC);
    ring_->add({{scratch_, 8, false}});
    EXPECT_TRUE(vq_.enable_kicks());
    ASSERT_EQ(pop(), PopStatus::Ok);
    vq_.push_used(c_.id, c_.ndesc, 0);
    ASSERT_TRUE(ring_->take_used().has_value());
    complete(2); // position 4 == 0 of lap 3 (wrap 1)
    EXPECT_FALSE(vq_.enable_kicks());
    EXPECT_EQ(packed().device_event().off_wrap, 0x8000);
}

} // namespace
} // namespace vdh

// SPDX-License-Identifier: MIT
// libFuzzer target for the virtqueue walker (host/src/virtqueue.cc) over hostile guest
// memory: the input lays out a split or packed ring of any size, the bytes of the rings
// and of three data regions (two adjacent in guest-physical space, one after a hole), and
// then a script of device operations (pop, push_used, notification checks, kick
// arming, a reconnect through last_*_base()) interleaved with guest writes into its own
// memory. Every region is a separate heap block, so ASan sees any access outside guest
// memory; the target also checks the walker's contract (iovecs inside guest memory and
// summing to in_bytes/out_bytes, ids below the ring size) and traps when it is broken.
// Input layout: tests/fuzz/make_seeds.py (virtqueue seeds).
#include <sys/uio.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <vector>

#include "fuzz_check.h"
#include "fuzz_reader.h"
#include "guest_memory.h"
#include "virtqueue.h"
#include "vring_defs.h"

namespace {

using vdh::Chain;
using vdh::ChainError;
using vdh::GuestMemory;
using vdh::PopStatus;
using vdh::Virtqueue;
using vdh::VringAddrs;
using vdh::fuzz::FuzzReader;

// Guest-physical layout: D0 and D1 adjacent (a buffer across them needs two iovecs), a hole,
// D2, and the ring region far above.
constexpr uint64_t kD0Gpa = 0x1000;
constexpr uint64_t kD0Size = 0x1000;
constexpr uint64_t kD1Gpa = kD0Gpa + kD0Size;
constexpr uint64_t kD1Size = 0x1000;
constexpr uint64_t kD2Gpa = 0x8000;
constexpr uint64_t kD2Size = 0x2000;
constexpr uint64_t kRingGpa = 0x100000;
constexpr uint32_t kMaxIovCap = 300;
constexpr size_t kMaxPending = 1024;

/// One guest region backed by its own heap block of exactly its size.
struct Region {
    uint64_t gpa = 0;
    std::unique_ptr<uint8_t[]> host;
    size_t size = 0;
};

struct Popped {
    uint16_t id;
    uint16_t ndesc;
    uint64_t out_bytes;
};

class Harness {
  public:
    explicit Harness(FuzzReader& in) : in_(in) {}

    void run() {
        if (!setup()) {
            return;
        }
        while (!in_.empty() && !broken_) {
            step(in_.u8());
        }
        // The device gives back everything it took before the queue goes away.
        while (!pending_.empty() && !broken_) {
            push_oldest(0);
        }
    }

  private:
    bool setup() {
        const uint8_t cfg = in_.u8();
        const bool packed = (cfg & 1) != 0;
        event_idx_ = (cfg & 2) != 0;
        const uint16_t size_code = in_.u16();
        // Rings up to 256 entries, or up to the 32768 maximum when bit 15 is set (rarer:
        // the large rings cost the fuzzer a lot of memory traffic per input).
        const bool large = (size_code & 0x8000) != 0;
        const uint16_t size = packed ? static_cast<uint16_t>(size_code % (large ? 32768 : 256) + 1)
                                     : static_cast<uint16_t>(1u << (size_code % (large ? 16 : 9)));
        const uint16_t last_avail = in_.u16();
        const uint16_t last_used = in_.u16();
        iov_cap_ = in_.u16() % kMaxIovCap + 1;

        // Ring region: descriptors, then the driver area, then the device area.
        const size_t desc_bytes = 16u * size;
        const size_t driver_bytes = packed ? 4 : 4 + 2u * size + 2;
        const size_t device_bytes = packed ? 4 : 4 + 8u * size + 2;
        driver_off_ = desc_bytes;
        device_off_ = (driver_off_ + driver_bytes + 3) & ~size_t{3};
        make_region(ring_, kRingGpa, device_off_ + device_bytes);
        make_region(d_[0], kD0Gpa, kD0Size);
        make_region(d_[1], kD1Gpa, kD1Size);
        make_region(d_[2], kD2Gpa, kD2Size);
        fill(ring_, in_.u16());
        uint16_t data_bytes = in_.u16();
        for (Region& r : d_) {
            size_t n = std::min<size_t>(data_bytes, r.size);
            in_.bytes(r.host.get(), n);
            data_bytes = static_cast<uint16_t>(data_bytes - n);
        }
        for (Region* r : {&d_[0], &d_[1], &d_[2], &ring_}) {
            FUZZ_CHECK(mem_.add_region(r->gpa, r->size, r->host.get()));
        }

        addrs_.size = size;
        addrs_.packed = packed;
        uint8_t* base = ring_.host.get();
        if (packed) {
            addrs_.desc_packed = reinterpret_cast<struct vring_packed_desc*>(base);
            addrs_.driver_event =
                reinterpret_cast<struct vring_packed_desc_event*>(base + driver_off_);
            addrs_.device_event =
                reinterpret_cast<struct vring_packed_desc_event*>(base + device_off_);
        } else {
            addrs_.desc = reinterpret_cast<struct vring_desc*>(base);
            addrs_.avail = reinterpret_cast<struct vring_avail*>(base + driver_off_);
            addrs_.used = reinterpret_cast<struct vring_used*>(base + device_off_);
        }
        const bool ok = vq_.init(addrs_, &mem_, last_avail, last_used, event_idx_);
        if (packed) {
            // Positions must be below the ring size; anything else is refused.
            FUZZ_CHECK(ok == ((last_avail & 0x7fff) < size && (last_used & 0x7fff) < size));
        } else {
            FUZZ_CHECK(ok);
        }
        iov_.resize(iov_cap_);
        return ok;
    }

    static void make_region(Region& r, uint64_t gpa, size_t size) {
        r.gpa = gpa;
        r.size = size;
        r.host.reset(new uint8_t[size]);
        std::memset(r.host.get(), 0, size);
    }

    /// Copies the next \p n input bytes into \p r (those past its end are dropped).
    void fill(Region& r, size_t n) {
        size_t got = 0;
        const uint8_t* p = in_.view(n, &got);
        std::memcpy(r.host.get(), p, std::min(got, r.size));
    }

    /// Whether [p, p+len) lies inside one guest region's host block.
    bool inside_guest(const void* p, size_t len) const {
        auto a = reinterpret_cast<uintptr_t>(p);
        for (const Region* r : {&d_[0], &d_[1], &d_[2], &ring_}) {
            auto b = reinterpret_cast<uintptr_t>(r->host.get());
            if (a >= b && a - b <= r->size && len <= r->size - (a - b)) {
                return true;
            }
        }
        return false;
    }

    void step(uint8_t op) {
        switch (op % 10) {
        case 0:
            pop_one();
            break;
        case 1:
            push_oldest(in_.u32());
            break;
        case 2:
            if (vq_.should_notify()) {
                vq_.mark_notified();
            }
            break;
        case 3:
            (void)vq_.enable_kicks();
            break;
        case 4:
            vq_.disable_kicks();
            break;
        case 5:
            (void)vq_.has_available();
            break;
        case 6:
            guest_write(ring_);
            break;
        case 7:
            reconnect();
            break;
        case 8:
            // Drain: a chain per ring slot at most, then the ring must be empty or broken.
            for (uint32_t i = 0; i <= 2u * vq_.size() && !broken_; ++i) {
                if (!pop_one()) {
                    break;
                }
            }
            break;
        default:
            guest_write(d_[in_.u8() % 3]);
            break;
        }
    }

    /// The guest changes its own memory between two device steps.
    void guest_write(Region& r) {
        size_t off = in_.u32() % r.size;
        size_t n = std::min<size_t>(in_.u8(), r.size - off);
        in_.bytes(r.host.get() + off, n);
    }

    /// Pops one chain and checks it; false when the ring had nothing (or broke).
    bool pop_one() {
        Chain c;
        c.iov = iov_.data();
        c.iov_cap = iov_cap_;
        ChainError err = ChainError::Count;
        PopStatus st = vq_.pop(c, &err);
        switch (st) {
        case PopStatus::Empty:
            FUZZ_CHECK(!vq_.has_available());
            return false;
        case PopStatus::Broken:
            broken_ = true;
            return false;
        case PopStatus::Bad:
            FUZZ_CHECK(err != ChainError::None && err < ChainError::Count);
            break;
        case PopStatus::Ok:
            FUZZ_CHECK(err == ChainError::None);
            check_chain(c);
            break;
        }
        FUZZ_CHECK(c.id < vq_.size());
        if (vq_.packed()) {
            FUZZ_CHECK(c.ndesc >= 1 && c.ndesc <= vq_.size());
        }
        if (pending_.size() == kMaxPending) {
            push_oldest(0);
        }
        pending_.push_back(Popped{c.id, c.ndesc, st == PopStatus::Ok ? c.out_bytes : 0});
        return true;
    }

    void check_chain(const Chain& c) {
        FUZZ_CHECK(c.n_in + c.n_out <= c.iov_cap);
        uint64_t in = 0;
        uint64_t out = 0;
        uint8_t sum = 0;
        for (uint32_t i = 0; i < c.n_in + c.n_out; ++i) {
            const struct iovec& v = c.iov[i];
            FUZZ_CHECK(v.iov_len > 0);
            FUZZ_CHECK(inside_guest(v.iov_base, v.iov_len));
            auto* p = static_cast<uint8_t*>(v.iov_base);
            if (i < c.n_in) {
                in += v.iov_len;
                for (size_t k = 0; k < v.iov_len; ++k) {
                    sum = static_cast<uint8_t>(sum + p[k]);
                }
            } else {
                out += v.iov_len;
                // The device writes its reply into every writable byte.
                std::memset(p, 0xA5 ^ sum, v.iov_len);
            }
        }
        FUZZ_CHECK(in == c.in_bytes);
        FUZZ_CHECK(out == c.out_bytes);
    }

    void push_oldest(uint32_t len) {
        if (pending_.empty()) {
            return;
        }
        Popped p = pending_.front();
        pending_.pop_front();
        uint32_t n = p.out_bytes < len ? static_cast<uint32_t>(p.out_bytes) : len;
        vq_.push_used(p.id, p.ndesc, n);
        if (vq_.packed()) {
            FUZZ_CHECK((vq_.last_used_base() & 0x7fff) < vq_.size());
        }
    }

    /// The frontend reconnects (GET_VRING_BASE, then SET_VRING_BASE on a new session):
    /// chains in flight are lost, the bases must round-trip.
    void reconnect() {
        const uint16_t a = vq_.last_avail_base();
        const uint16_t u = vq_.last_used_base();
        pending_.clear();
        Virtqueue fresh;
        FUZZ_CHECK(fresh.init(addrs_, &mem_, a, u, event_idx_));
        FUZZ_CHECK(fresh.last_avail_base() == a && fresh.last_used_base() == u);
        vq_ = fresh;
    }

    FuzzReader& in_;
    Region ring_;
    Region d_[3];
    size_t driver_off_ = 0;
    size_t device_off_ = 0;
    GuestMemory mem_;
    VringAddrs addrs_;
    Virtqueue vq_;
    bool event_idx_ = false;
    bool broken_ = false;
    uint32_t iov_cap_ = 1;
    std::vector<struct iovec> iov_;
    std::deque<Popped> pending_;
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzReader in(data, size);
    Harness h(in);
    h.run();
    return 0;
}

// SPDX-License-Identifier: MIT
// Test helper acting as the virtio driver: a fake guest (three GuestMemory regions, one gap,
// guest-physical addresses unlike the host ones) and split and packed rings placed in it,
// with driver-side operations (add a chain directly or through an indirect table, publish,
// take used entries) so the device-side Virtqueue runs without QEMU or DPDK.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "guest_memory.h"
#include "virtqueue.h"
#include "vring_defs.h"

namespace vdh::fake {

// Guest-physical layout. R0 and R1 are adjacent in guest-physical space but not in host
// space (a range across kBoundary needs two iovecs); a gap [kGapGpa, kR2Gpa) is unmapped;
// R2 holds the rings and the buffers alloc() hands out.
inline constexpr uint64_t kR0Gpa = 0x100000;
inline constexpr uint64_t kR0Size = 0x10000;
inline constexpr uint64_t kR1Gpa = kR0Gpa + kR0Size;
inline constexpr uint64_t kBoundary = kR1Gpa;
inline constexpr uint64_t kR1Size = 0x10000;
inline constexpr uint64_t kGapGpa = kR1Gpa + kR1Size;
inline constexpr uint64_t kR2Gpa = 0x200000;
inline constexpr uint64_t kR2Size = 0x20000;
inline constexpr uint64_t kDescGpa = kR2Gpa;                 // descriptor ring
inline constexpr uint64_t kDriverAreaGpa = kR2Gpa + 0x4000;  // split avail / packed driver event
inline constexpr uint64_t kDeviceAreaGpa = kR2Gpa + 0x5000;  // split used / packed device event
inline constexpr uint64_t kHeapGpa = kR2Gpa + 0x8000;
inline constexpr uint16_t kMaxRingSize = 1024;

inline constexpr uint16_t kPackedAvail = 1u << VRING_PACKED_DESC_F_AVAIL;
inline constexpr uint16_t kPackedUsed = 1u << VRING_PACKED_DESC_F_USED;

/// Fake guest RAM: one host allocation carved into three regions in a shuffled host order.
class FakeGuest {
public:
    FakeGuest() : host_(static_cast<uint8_t*>(std::aligned_alloc(4096, kHostSize))) {
        if (!host_) {
            throw std::bad_alloc();
        }
        std::memset(host_.get(), 0, kHostSize);
        add(kR0Gpa, kR0Size, 0x30000);
        add(kR1Gpa, kR1Size, 0x00000);
        add(kR2Gpa, kR2Size, 0x10000);
    }
    FakeGuest(const FakeGuest&) = delete;
    FakeGuest& operator=(const FakeGuest&) = delete;

    const GuestMemory& memory() const { return mem_; }

    /// Host address of [gpa, gpa+len) computed independently of GuestMemory; throws unless
    /// the range lies inside one region.
    uint8_t* host(uint64_t gpa, uint64_t len = 1) const {
        for (const Region& r : regions_) {
            if (gpa >= r.gpa && gpa - r.gpa < r.size && len <= r.size - (gpa - r.gpa)) {
                return host_.get() + r.host_off + (gpa - r.gpa);
            }
        }
        throw std::out_of_range("FakeGuest: gpa not mapped");
    }
    template <typename T>
    T* at(uint64_t gpa) const {
        return reinterpret_cast<T*>(host(gpa, sizeof(T)));
    }

    /// Byte-wise copies, so they may cross adjacent regions.
    void write(uint64_t gpa, const void* src, size_t len) {
        auto* s = static_cast<const uint8_t*>(src);
        for (size_t i = 0; i < len; ++i) {
            *host(gpa + i) = s[i];
        }
    }
    void write(uint64_t gpa, const std::string& s) { write(gpa, s.data(), s.size()); }
    std::string read(uint64_t gpa, size_t len) const {
        std::string out(len, '\0');
        for (size_t i = 0; i < len; ++i) {
            out[i] = static_cast<char>(*host(gpa + i));
        }
        return out;
    }

    /// Bump allocator inside R2 (never crosses a region boundary).
    uint64_t alloc(uint64_t len, uint64_t align = 16) {
        uint64_t p = (heap_ + align - 1) & ~(align - 1);
        if (p + len > kR2Gpa + kR2Size) {
            throw std::length_error("FakeGuest: heap exhausted");
        }
        heap_ = p + len;
        return p;
    }
    /// alloc() and fill with \p s.
    uint64_t alloc_with(const std::string& s) {
        uint64_t p = alloc(s.empty() ? 1 : s.size());
        write(p, s);
        return p;
    }

private:
    static constexpr uint64_t kHostSize = 0x50000;
    struct Region {
        uint64_t gpa;
        uint64_t size;
        uint64_t host_off;
    };
    struct FreeDeleter {
        void operator()(uint8_t* p) const { std::free(p); }
    };

    void add(uint64_t gpa, uint64_t size, uint64_t host_off) {
        regions_.push_back(Region{gpa, size, host_off});
        if (!mem_.add_region(gpa, size, host_.get() + host_off)) {
            throw std::logic_error("FakeGuest: add_region refused the layout");
        }
    }

    std::unique_ptr<uint8_t, FreeDeleter> host_;
    std::vector<Region> regions_;
    GuestMemory mem_;
    uint64_t heap_ = kHeapGpa;
};

/// One driver buffer segment.
struct Seg {
    uint64_t gpa;
    uint32_t len;
    bool writable;
};

/// A descriptor as the driver writes it. flags are VRING_DESC_F_*; next < 0 links a split
/// descriptor to the following one of the list (ignored for packed rings).
struct RawDesc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    int32_t next = -1;
};

/// One used entry as the driver reads it (flags: packed descriptor flags, 0 for split).
struct UsedElem {
    uint32_t id;
    uint32_t len;
    uint16_t flags;
};

/// Driver side common to both layouts.
class FakeRing {
public:
    FakeRing(FakeGuest& guest, uint16_t size) : g_(guest), size_(size) {
        if (size == 0 || size > kMaxRingSize) {
            throw std::invalid_argument("FakeRing: bad size");
        }
    }
    virtual ~FakeRing() = default;
    FakeRing(const FakeRing&) = delete;
    FakeRing& operator=(const FakeRing&) = delete;

    uint16_t size() const { return size_; }
    virtual bool packed() const = 0;
    virtual VringAddrs addrs() = 0;
    /// Writes a chain into the ring and makes it available; returns the id the device must
    /// report in the used entry (split: head index, packed: buffer id).
    virtual uint16_t add_raw(const std::vector<RawDesc>& descs) = 0;
    /// Writes an indirect table (16-byte entries in this ring's layout) at \p gpa; each
    /// entry must lie inside one region.
    virtual void write_table_at(uint64_t gpa, const std::vector<RawDesc>& entries) = 0;
    /// Next used entry not seen yet, if any.
    virtual std::optional<UsedElem> take_used() = 0;

    /// Allocates and writes an indirect table; returns its guest address.
    uint64_t write_table(const std::vector<RawDesc>& entries) {
        uint64_t gpa = g_.alloc(16 * (entries.empty() ? 1 : entries.size()));
        write_table_at(gpa, entries);
        return gpa;
    }
    uint16_t add(const std::vector<Seg>& segs) { return add_raw(to_raw(segs)); }
    uint16_t add_indirect(const std::vector<Seg>& segs) {
        uint64_t table = write_table(to_raw(segs));
        return add_raw({RawDesc{table, static_cast<uint32_t>(segs.size() * 16),
                                VRING_DESC_F_INDIRECT}});
    }
    static std::vector<RawDesc> to_raw(const std::vector<Seg>& segs) {
        std::vector<RawDesc> out;
        for (size_t i = 0; i < segs.size(); ++i) {
            uint16_t f = segs[i].writable ? VRING_DESC_F_WRITE : 0;
            if (i + 1 < segs.size()) {
                f |= VRING_DESC_F_NEXT;
            }
            out.push_back(RawDesc{segs[i].gpa, segs[i].len, f});
        }
        return out;
    }

protected:
    FakeGuest& g_;
    uint16_t size_;
};

/// Split ring: descriptor table, avail ring (+used_event), used ring (+avail_event).
class FakeSplitRing final : public FakeRing {
public:
    /// \p base: initial avail->idx / used->idx (the indexes are free-running).
    FakeSplitRing(FakeGuest& guest, uint16_t size, uint16_t base = 0)
        : FakeRing(guest, size), avail_idx_(base), last_used_(base) {
        std::memset(g_.host(kDescGpa, 16u * size), 0, 16u * size);
        std::memset(g_.host(kDriverAreaGpa, 6u + 2u * size), 0, 6u + 2u * size);
        std::memset(g_.host(kDeviceAreaGpa, 6u + 8u * size), 0, 6u + 8u * size);
        avail()->idx = base;
        used()->idx = base;
        for (uint16_t i = 0; i < size; ++i) {
            free_.push_back(i);
        }
    }

    bool packed() const override { return false; }
    VringAddrs addrs() override {
        VringAddrs a;
        a.size = size_;
        a.packed = false;
        a.desc = &desc(0);
        a.avail = avail();
        a.used = used();
        return a;
    }

    struct vring_desc& desc(uint16_t i) { return g_.at<struct vring_desc>(kDescGpa)[i]; }
    struct vring_avail* avail() { return g_.at<struct vring_avail>(kDriverAreaGpa); }
    struct vring_used* used() { return g_.at<struct vring_used>(kDeviceAreaGpa); }
    void set_used_event(uint16_t v) { *split_used_event(avail(), size_) = v; }
    uint16_t avail_event() { return *split_avail_event(used(), size_); }

    uint16_t add_raw(const std::vector<RawDesc>& d) override {
        if (d.empty() || d.size() > free_.size()) {
            throw std::logic_error("FakeSplitRing: not enough free descriptors");
        }
        std::vector<uint16_t> slots(d.size());
        for (uint16_t& s : slots) {
            s = free_.front();
            free_.pop_front();
        }
        for (size_t i = 0; i < d.size(); ++i) {
            uint16_t next = d[i].next >= 0 ? static_cast<uint16_t>(d[i].next)
                            : i + 1 < d.size() ? slots[i + 1]
                                               : 0;
            fill(desc(slots[i]), d[i], next);
        }
        chains_[slots[0]] = slots;
        publish_head(slots[0]);
        return slots[0];
    }
    /// Writes descriptor \p slot verbatim and takes it out of the free list.
    void write_desc(uint16_t slot, const RawDesc& d) {
        for (auto it = free_.begin(); it != free_.end(); ++it) {
            if (*it == slot) {
                free_.erase(it);
                break;
            }
        }
        fill(desc(slot), d, static_cast<uint16_t>(d.next < 0 ? 0 : d.next));
    }
    /// Puts any value into the next avail slot and bumps avail->idx (release).
    void publish_head(uint16_t head) {
        avail()->ring[avail_idx_ % size_] = head;
        ++avail_idx_;
        __atomic_store_n(&avail()->idx, avail_idx_, __ATOMIC_RELEASE);
    }
    /// Overwrites avail->idx (for corrupt-ring tests).
    void set_avail_idx(uint16_t v) {
        avail_idx_ = v;
        __atomic_store_n(&avail()->idx, v, __ATOMIC_RELEASE);
    }
    uint16_t avail_idx() const { return avail_idx_; }

    void write_table_at(uint64_t gpa, const std::vector<RawDesc>& e) override {
        for (size_t i = 0; i < e.size(); ++i) {
            uint16_t next = e[i].next >= 0 ? static_cast<uint16_t>(e[i].next)
                                           : static_cast<uint16_t>(i + 1);
            fill(*g_.at<struct vring_desc>(gpa + 16 * i), e[i], next);
        }
    }

    std::optional<UsedElem> take_used() override {
        uint16_t idx = __atomic_load_n(&used()->idx, __ATOMIC_ACQUIRE);
        if (idx == last_used_) {
            return std::nullopt;
        }
        const struct vring_used_elem& e = used()->ring[last_used_ % size_];
        ++last_used_;
        UsedElem u{e.id, e.len, 0};
        auto it = chains_.find(static_cast<uint16_t>(u.id));
        if (u.id < size_ && it != chains_.end()) {
            for (uint16_t s : it->second) {
                free_.push_back(s);
            }
            chains_.erase(it);
        }
        return u;
    }

private:
    static void fill(struct vring_desc& x, const RawDesc& d, uint16_t next) {
        x.addr = d.addr;
        x.len = d.len;
        x.flags = d.flags;
        x.next = next;
    }

    uint16_t avail_idx_;
    uint16_t last_used_;
    std::deque<uint16_t> free_;
    std::map<uint16_t, std::vector<uint16_t>> chains_;
};

/// Packed ring: descriptor ring plus the driver and device event suppression areas.
class FakePackedRing final : public FakeRing {
public:
    FakePackedRing(FakeGuest& guest, uint16_t size) : FakeRing(guest, size) {
        std::memset(g_.host(kDescGpa, 16u * size), 0, 16u * size);
        std::memset(g_.host(kDriverAreaGpa, 4), 0, 4);
        std::memset(g_.host(kDeviceAreaGpa, 4), 0, 4);
        for (uint16_t i = 0; i < size; ++i) {
            free_ids_.push_back(i);
        }
    }

    bool packed() const override { return true; }
    VringAddrs addrs() override {
        VringAddrs a;
        a.size = size_;
        a.packed = true;
        a.desc_packed = &desc(0);
        a.driver_event = &driver_event();
        a.device_event = &device_event();
        return a;
    }

    struct vring_packed_desc& desc(uint16_t pos) {
        return g_.at<struct vring_packed_desc>(kDescGpa)[pos];
    }
    struct vring_packed_desc_event& driver_event() {
        return *g_.at<struct vring_packed_desc_event>(kDriverAreaGpa);
    }
    struct vring_packed_desc_event& device_event() {
        return *g_.at<struct vring_packed_desc_event>(kDeviceAreaGpa);
    }
    /// AVAIL/USED bits of an available descriptor in the lap with wrap counter \p wrap.
    static uint16_t avail_bits(bool wrap) { return wrap ? kPackedAvail : kPackedUsed; }

    uint16_t add_raw(const std::vector<RawDesc>& d) override {
        if (free_ids_.empty()) {
            throw std::logic_error("FakePackedRing: no free buffer id");
        }
        return add_raw_with_id(d, free_ids_.front());
    }
    /// As add_raw() with an explicit buffer id (may be out of range).
    uint16_t add_raw_with_id(const std::vector<RawDesc>& d, uint16_t id) {
        if (d.empty() || d.size() > static_cast<size_t>(size_ - in_flight_)) {
            throw std::logic_error("FakePackedRing: not enough free descriptors");
        }
        for (auto it = free_ids_.begin(); it != free_ids_.end(); ++it) {
            if (*it == id) {
                free_ids_.erase(it);
                break;
            }
        }
        head_pos_ = avail_pos_;
        uint16_t head_flags = 0;
        for (size_t i = 0; i < d.size(); ++i) {
            struct vring_packed_desc& x = desc(avail_pos_);
            x.addr = d[i].addr;
            x.len = d[i].len;
            x.id = id;
            uint16_t f = static_cast<uint16_t>(d[i].flags | avail_bits(avail_wrap_));
            if (i == 0) {
                head_flags = f;
            } else {
                __atomic_store_n(&x.flags, f, __ATOMIC_RELEASE);
            }
            if (++avail_pos_ == size_) {
                avail_pos_ = 0;
                avail_wrap_ = !avail_wrap_;
            }
        }
        // The head goes last: it makes the whole chain available at once.
        __atomic_store_n(&desc(head_pos_).flags, head_flags, __ATOMIC_RELEASE);
        in_flight_ = static_cast<uint16_t>(in_flight_ + d.size());
        ndesc_[id] = static_cast<uint16_t>(d.size());
        return id;
    }
    uint16_t head_pos() const { return head_pos_; }
    uint16_t avail_pos() const { return avail_pos_; }
    bool avail_wrap() const { return avail_wrap_; }
    uint16_t used_pos() const { return used_pos_; }
    bool used_wrap() const { return used_wrap_; }

    void write_table_at(uint64_t gpa, const std::vector<RawDesc>& e) override {
        for (size_t i = 0; i < e.size(); ++i) {
            auto& x = *g_.at<struct vring_packed_desc>(gpa + 16 * i);
            x.addr = e[i].addr;
            x.len = e[i].len;
            x.id = 0;
            x.flags = e[i].flags;
        }
    }

    std::optional<UsedElem> take_used() override {
        struct vring_packed_desc& x = desc(used_pos_);
        uint16_t f = __atomic_load_n(&x.flags, __ATOMIC_ACQUIRE);
        bool a = (f & kPackedAvail) != 0;
        bool u = (f & kPackedUsed) != 0;
        if (a != used_wrap_ || u != used_wrap_) {
            return std::nullopt;
        }
        UsedElem e{x.id, x.len, f};
        auto it = ndesc_.find(static_cast<uint16_t>(e.id));
        if (it == ndesc_.end()) {
            throw std::logic_error("FakePackedRing: used id was never made available");
        }
        uint16_t n = it->second;
        ndesc_.erase(it);
        in_flight_ = static_cast<uint16_t>(in_flight_ - n);
        if (e.id < size_) {
            free_ids_.push_back(static_cast<uint16_t>(e.id));
        }
        used_pos_ = static_cast<uint16_t>(used_pos_ + n);
        if (used_pos_ >= size_) {
            used_pos_ = static_cast<uint16_t>(used_pos_ - size_);
            used_wrap_ = !used_wrap_;
        }
        return e;
    }

private:
    uint16_t avail_pos_ = 0;
    bool avail_wrap_ = true;
    uint16_t used_pos_ = 0;
    bool used_wrap_ = true;
    uint16_t head_pos_ = 0;
    uint16_t in_flight_ = 0;
    std::deque<uint16_t> free_ids_;
    std::map<uint16_t, uint16_t> ndesc_;
};

} // namespace vdh::fake

// SPDX-License-Identifier: MIT
// Split and packed ring processing for the device side. Every index and address that
// comes from the guest is checked before use; a bad chain is refused and counted, a corrupt
// ring stops only this queue. Barriers follow DPDK's virtio_net: acquire on the driver's
// index/flags, release on the used index/flags, a full fence before reading the driver's
// notification wishes after publishing.
#include "virtqueue.h"

#include <atomic>
#include <cstring>

#include "vdh/compiler.h"
#include "vring_defs.h"

namespace vdh {
namespace {

template <typename T>
T load_acquire(const T* p) {
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
template <typename T>
void store_release(T* p, T v) {
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

constexpr uint16_t kPackedAvail = 1u << VRING_PACKED_DESC_F_AVAIL;
constexpr uint16_t kPackedUsed = 1u << VRING_PACKED_DESC_F_USED;

} // namespace

bool Virtqueue::init(const VringAddrs& addrs, const GuestMemory* mem, uint16_t last_avail,
                     uint16_t last_used, bool event_idx) noexcept {
    a_ = addrs;
    mem_ = mem;
    size_ = addrs.size;
    packed_ = addrs.packed;
    event_idx_ = event_idx;
    signalled_valid_ = false;
    if (size_ == 0 || mem == nullptr) {
        return false;
    }
    // The virtio alignment rules (descriptors 16, split avail 2 and used 4, packed event
    // structures 4). A frontend may hand over anything; a misaligned ring would make our
    // atomic accesses split across cache lines, and split locks stall every core.
    auto aligned = [](const void* p, uintptr_t align) {
        return (reinterpret_cast<uintptr_t>(p) & (align - 1)) == 0;
    };
    if (packed_) {
        if (a_.desc_packed == nullptr || a_.driver_event == nullptr || a_.device_event == nullptr) {
            return false;
        }
        if (!aligned(a_.desc_packed, 16) || !aligned(a_.driver_event, 4) ||
            !aligned(a_.device_event, 4)) {
            return false;
        }
        last_avail_ = last_avail & 0x7fff;
        avail_wrap_ = (last_avail & 0x8000) != 0;
        last_used_ = last_used & 0x7fff;
        used_wrap_ = (last_used & 0x8000) != 0;
        if (last_avail_ >= size_ || last_used_ >= size_) {
            return false;
        }
    } else {
        if ((size_ & (size_ - 1)) != 0 || a_.desc == nullptr || a_.avail == nullptr ||
            a_.used == nullptr) {
            return false;
        }
        if (!aligned(a_.desc, 16) || !aligned(a_.avail, 2) || !aligned(a_.used, 4)) {
            return false;
        }
        last_avail_ = last_avail;
        last_used_ = last_used;
    }
    signalled_used_ = last_used_;
    signalled_used_wrap_ = used_wrap_;
    return true;
}

uint16_t Virtqueue::last_avail_base() const noexcept {
    return packed_ ? static_cast<uint16_t>(last_avail_ | (avail_wrap_ ? 0x8000 : 0)) : last_avail_;
}
uint16_t Virtqueue::last_used_base() const noexcept {
    return packed_ ? static_cast<uint16_t>(last_used_ | (used_wrap_ ? 0x8000 : 0)) : last_used_;
}

bool Virtqueue::add_segment(Chain& c, uint64_t addr, uint32_t len, bool writable,
                            ChainError* err) noexcept {
    if (len == 0) {
        *err = ChainError::ZeroLength;
        return false;
    }
    if (!writable && c.n_out > 0) {
        *err = ChainError::ReadAfterWrite;
        return false;
    }
    uint32_t used = c.n_in + c.n_out;
    int n = mem_->translate(addr, len, c.iov + used, static_cast<int>(c.iov_cap - used));
    if (n < 0) {
        // Tell apart "outside memory" from "no room": retry the check without storage.
        *err = mem_->translate_contiguous(addr, 1) == nullptr ||
                       mem_->translate_contiguous(addr + len - 1, 1) == nullptr
                   ? ChainError::BadAddress
                   : ChainError::TooManyIovecs;
        if (*err == ChainError::TooManyIovecs) {
            // A range inside memory may still have a hole between regions.
            struct iovec probe[GuestMemory::kMaxRegions];
            if (mem_->translate(addr, len, probe, GuestMemory::kMaxRegions) < 0) {
                *err = ChainError::BadAddress;
            }
        }
        return false;
    }
    if (writable) {
        c.n_out += static_cast<uint32_t>(n);
        c.out_bytes += len;
    } else {
        c.n_in += static_cast<uint32_t>(n);
        c.in_bytes += len;
    }
    return true;
}

bool Virtqueue::walk_indirect_split(Chain& c, uint64_t addr, uint32_t len,
                                    ChainError* err) noexcept {
    if (len == 0 || len % sizeof(struct vring_desc) != 0) {
        *err = ChainError::BadIndirect;
        return false;
    }
    uint32_t n = len / sizeof(struct vring_desc);
    // Bytes, not vring_desc: the guest may put the table at any address (found by fuzzing:
    // member access through a misaligned pointer).
    auto* table = static_cast<const uint8_t*>(mem_->translate_contiguous(addr, len));
    if (table == nullptr) {
        *err = ChainError::BadIndirect;
        return false;
    }
    uint32_t i = 0;
    for (uint32_t count = 0;; ++count) {
        if (count >= n) {
            *err = ChainError::Loop;
            return false;
        }
        // Copy once: the guest may change the table under us.
        struct vring_desc d;
        std::memcpy(&d, table + static_cast<size_t>(i) * sizeof(d), sizeof(d));
        if (d.flags & VRING_DESC_F_INDIRECT) {
            *err = ChainError::BadIndirect;
            return false;
        }
        if (!add_segment(c, d.addr, d.len, (d.flags & VRING_DESC_F_WRITE) != 0, err)) {
            return false;
        }
        if (!(d.flags & VRING_DESC_F_NEXT)) {
            return true;
        }
        if (d.next >= n) {
            *err = ChainError::BadNext;
            return false;
        }
        i = d.next;
    }
}

PopStatus Virtqueue::pop_split(Chain& c, ChainError* err) noexcept {
    uint16_t avail_idx = load_acquire(&a_.avail->idx);
    uint16_t pending = static_cast<uint16_t>(avail_idx - last_avail_);
    if (pending == 0) {
        return PopStatus::Empty;
    }
    if (VDH_UNLIKELY(pending > size_)) {
        return PopStatus::Broken;
    }
    uint16_t head = a_.avail->ring[last_avail_ & (size_ - 1)];
    if (VDH_UNLIKELY(head >= size_)) {
        return PopStatus::Broken;
    }
    ++last_avail_;
    c.id = head;
    c.ndesc = 1;
    c.n_in = c.n_out = 0;
    c.in_bytes = c.out_bytes = 0;

    uint16_t i = head;
    for (uint32_t count = 0;; ++count) {
        if (count >= size_) {
            *err = ChainError::Loop;
            return PopStatus::Bad;
        }
        struct vring_desc d;
        d.addr = a_.desc[i].addr;
        d.len = a_.desc[i].len;
        d.flags = a_.desc[i].flags;
        d.next = a_.desc[i].next;
        if (d.flags & VRING_DESC_F_INDIRECT) {
            if ((d.flags & VRING_DESC_F_NEXT) || count != 0) {
                // An indirect descriptor must be the only one in its chain here.
                *err = ChainError::BadIndirect;
                return PopStatus::Bad;
            }
            if (!walk_indirect_split(c, d.addr, d.len, err)) {
                return PopStatus::Bad;
            }
            break;
        }
        if (!add_segment(c, d.addr, d.len, (d.flags & VRING_DESC_F_WRITE) != 0, err)) {
            return PopStatus::Bad;
        }
        if (!(d.flags & VRING_DESC_F_NEXT)) {
            break;
        }
        if (d.next >= size_) {
            *err = ChainError::BadNext;
            return PopStatus::Bad;
        }
        i = d.next;
    }
    return PopStatus::Ok;
}

bool Virtqueue::walk_indirect_packed(Chain& c, uint64_t addr, uint32_t len,
                                     ChainError* err) noexcept {
    if (len == 0 || len % sizeof(struct vring_packed_desc) != 0) {
        *err = ChainError::BadIndirect;
        return false;
    }
    uint32_t n = len / sizeof(struct vring_packed_desc);
    // Bytes: the table may sit at any address (see walk_indirect_split).
    auto* table = static_cast<const uint8_t*>(mem_->translate_contiguous(addr, len));
    if (table == nullptr) {
        *err = ChainError::BadIndirect;
        return false;
    }
    for (uint32_t i = 0; i < n; ++i) {
        struct vring_packed_desc d;
        std::memcpy(&d, table + static_cast<size_t>(i) * sizeof(d), sizeof(d));
        uint64_t daddr = d.addr;
        uint32_t dlen = d.len;
        uint16_t flags = d.flags;
        if (flags & VRING_DESC_F_INDIRECT) {
            *err = ChainError::BadIndirect;
            return false;
        }
        if (!add_segment(c, daddr, dlen, (flags & VRING_DESC_F_WRITE) != 0, err)) {
            return false;
        }
    }
    return true;
}

PopStatus Virtqueue::pop_packed(Chain& c, ChainError* err) noexcept {
    struct vring_packed_desc* ring = a_.desc_packed;
    uint16_t flags = load_acquire(&ring[last_avail_].flags);
    bool avail = (flags & kPackedAvail) != 0;
    bool used = (flags & kPackedUsed) != 0;
    if (avail != avail_wrap_ || used == avail_wrap_) {
        return PopStatus::Empty;
    }
    c.n_in = c.n_out = 0;
    c.in_bytes = c.out_bytes = 0;
    c.ndesc = 0;
    bool bad = false;
    // Consume the whole chain even when a descriptor is bad, so the ring stays in step.
    for (uint32_t count = 0;; ++count) {
        if (count >= size_) {
            // A chain as long as the ring can never end: the ring is corrupt.
            return PopStatus::Broken;
        }
        uint16_t pos = last_avail_;
        if (count > 0) {
            flags = load_acquire(&ring[pos].flags);
            avail = (flags & kPackedAvail) != 0;
            used = (flags & kPackedUsed) != 0;
            if (avail != avail_wrap_ || used == avail_wrap_) {
                // The driver made the chain available only partly: it broke the protocol.
                return PopStatus::Broken;
            }
        }
        uint64_t addr = ring[pos].addr;
        uint32_t len = ring[pos].len;
        uint16_t id = ring[pos].id;
        if (++last_avail_ == size_) {
            last_avail_ = 0;
            avail_wrap_ = !avail_wrap_;
        }
        ++c.ndesc;
        if (!bad) {
            if (flags & VRING_DESC_F_INDIRECT) {
                if ((flags & VRING_DESC_F_NEXT) || count != 0) {
                    *err = ChainError::BadIndirect;
                    bad = true;
                } else if (!walk_indirect_packed(c, addr, len, err)) {
                    bad = true;
                }
            } else if (!add_segment(c, addr, len, (flags & VRING_DESC_F_WRITE) != 0, err)) {
                bad = true;
            }
        }
        if (!(flags & VRING_DESC_F_NEXT)) {
            if (id >= size_) {
                return PopStatus::Broken;
            }
            c.id = id;
            break;
        }
    }
    return bad ? PopStatus::Bad : PopStatus::Ok;
}

PopStatus Virtqueue::pop(Chain& c, ChainError* err) noexcept {
    *err = ChainError::None;
    return packed_ ? pop_packed(c, err) : pop_split(c, err);
}

void Virtqueue::add_used(uint16_t id, uint16_t ndesc, uint32_t len) noexcept {
    if (!packed_) {
        struct vring_used_elem& e = a_.used->ring[last_used_ & (size_ - 1)];
        e.id = id;
        e.len = len;
        ++last_used_; // published by publish_used()
        return;
    }
    struct vring_packed_desc& d = a_.desc_packed[last_used_];
    d.id = id;
    d.len = len;
    uint16_t flags = used_wrap_ ? static_cast<uint16_t>(kPackedAvail | kPackedUsed) : 0;
    if (len > 0) {
        flags |= VRING_DESC_F_WRITE;
    }
    store_release(&d.flags, flags);
    uint32_t next = static_cast<uint32_t>(last_used_) + (ndesc == 0 ? 1 : ndesc);
    if (next >= size_) {
        next -= size_;
        used_wrap_ = !used_wrap_;
    }
    last_used_ = static_cast<uint16_t>(next);
}

void Virtqueue::publish_used() noexcept {
    if (!packed_) {
        store_release(&a_.used->idx, last_used_);
    }
}

void Virtqueue::push_used(uint16_t id, uint16_t ndesc, uint32_t len) noexcept {
    add_used(id, ndesc, len);
    publish_used();
}

bool Virtqueue::should_notify() noexcept {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (!packed_) {
        if (signalled_valid_ && last_used_ == signalled_used_) {
            return false;
        }
        if (event_idx_) {
            uint16_t event = *split_used_event(a_.avail, size_);
            return !signalled_valid_ || need_event(event, last_used_, signalled_used_);
        }
        return !(load_acquire(&a_.avail->flags) & VRING_AVAIL_F_NO_INTERRUPT);
    }
    if (signalled_valid_ && last_used_ == signalled_used_ && used_wrap_ == signalled_used_wrap_) {
        return false;
    }
    uint16_t flags = load_acquire(&a_.driver_event->flags);
    if (flags == VRING_PACKED_EVENT_FLAG_DISABLE) {
        return false;
    }
    if (flags != VRING_PACKED_EVENT_FLAG_DESC || !event_idx_ || !signalled_valid_) {
        return true;
    }
    uint16_t off_wrap = a_.driver_event->off_wrap;
    int32_t off = off_wrap & 0x7fff;
    int32_t new_idx = last_used_;
    int32_t old_idx = signalled_used_;
    if (new_idx <= old_idx) {
        old_idx -= size_;
    }
    if (used_wrap_ != ((off_wrap >> 15) != 0)) {
        off -= size_;
    }
    return need_event(static_cast<uint16_t>(off), static_cast<uint16_t>(new_idx),
                      static_cast<uint16_t>(old_idx));
}

bool Virtqueue::has_available() const noexcept {
    if (!packed_) {
        return load_acquire(&a_.avail->idx) != last_avail_;
    }
    uint16_t flags = load_acquire(&a_.desc_packed[last_avail_].flags);
    bool avail = (flags & kPackedAvail) != 0;
    bool used = (flags & kPackedUsed) != 0;
    return avail == avail_wrap_ && used != avail_wrap_;
}

bool Virtqueue::enable_kicks() noexcept {
    if (!packed_) {
        if (event_idx_) {
            *split_avail_event(a_.used, size_) = last_avail_;
        } else {
            __atomic_store_n(&a_.used->flags, static_cast<uint16_t>(0), __ATOMIC_RELAXED);
        }
    } else if (event_idx_) {
        a_.device_event->off_wrap = static_cast<uint16_t>(last_avail_ | (avail_wrap_ ? 0x8000 : 0));
        __atomic_store_n(&a_.device_event->flags,
                         static_cast<uint16_t>(VRING_PACKED_EVENT_FLAG_DESC), __ATOMIC_RELEASE);
    } else {
        __atomic_store_n(&a_.device_event->flags,
                         static_cast<uint16_t>(VRING_PACKED_EVENT_FLAG_ENABLE), __ATOMIC_RELEASE);
    }
    // Store (arm) → load (re-check) ordering needs a full fence.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return has_available();
}

void Virtqueue::disable_kicks() noexcept {
    if (!packed_) {
        if (!event_idx_) {
            __atomic_store_n(&a_.used->flags, static_cast<uint16_t>(VRING_USED_F_NO_NOTIFY),
                             __ATOMIC_RELAXED);
        }
        // With EVENT_IDX a stale avail_event already suppresses kicks.
        return;
    }
    if (!event_idx_) {
        __atomic_store_n(&a_.device_event->flags,
                         static_cast<uint16_t>(VRING_PACKED_EVENT_FLAG_DISABLE), __ATOMIC_RELAXED);
    }
}

} // namespace vdh

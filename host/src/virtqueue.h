// SPDX-License-Identifier: MIT
// Device side of one virtqueue (split or packed ring) over guest memory: takes available
// descriptor chains apart into validated iovecs, publishes used entries with the right
// barriers, and decides notifications (flags or EVENT_IDX) in both directions. No DPDK
// calls and no allocation: the virtqueue tests drive it over fake memory.
// Hot path: no alloc, no block, no throw.
#pragma once

#include <sys/uio.h>

#include <cstdint>

#include "guest_memory.h"

struct vring_desc;
struct vring_avail;
struct vring_used;
struct vring_packed_desc;
struct vring_packed_desc_event;

namespace vdh {

/// Ring addresses (host pointers) as the transport translated them.
struct VringAddrs {
    uint16_t size = 0;
    bool packed = false;
    // split
    struct vring_desc* desc = nullptr;
    struct vring_avail* avail = nullptr;
    struct vring_used* used = nullptr;
    // packed
    struct vring_packed_desc* desc_packed = nullptr;
    struct vring_packed_desc_event* driver_event = nullptr;
    struct vring_packed_desc_event* device_event = nullptr;
};

/// One chain, as popped. iov[0..n_in) are device-readable, iov[n_in..n_in+n_out) writable.
struct Chain {
    uint16_t id = 0;      ///< head index (split) or buffer id (packed): give it back to push_used
    uint16_t ndesc = 0;   ///< descriptors the chain took in the ring (packed: used advance)
    uint32_t n_in = 0;
    uint32_t n_out = 0;
    uint64_t in_bytes = 0;
    uint64_t out_bytes = 0;
    struct iovec* iov = nullptr; ///< caller-provided storage
    uint32_t iov_cap = 0;
};

/// Why a chain was refused. Each is counted; none of them stops the queue, except where
/// noted (the ring itself is corrupt, so no id can be trusted).
enum class ChainError : uint8_t {
    None = 0,
    BadNext,        ///< next index out of range
    Loop,           ///< longer than the ring / table: a loop
    BadAddress,     ///< outside guest memory
    ZeroLength,     ///< zero-length descriptor
    ReadAfterWrite, ///< readable descriptor after a writable one
    BadIndirect,    ///< bad indirect table (size, nested, NEXT|INDIRECT, not contiguous)
    TooManyIovecs,  ///< more segments than the request slot holds
    Count,
};

enum class PopStatus : uint8_t {
    Empty,   ///< nothing available
    Ok,      ///< chain is valid
    Bad,     ///< chain refused (see error); return chain.id with len 0
    Broken,  ///< the ring itself is corrupt (bad head/id, avail index jump): stop the queue
};

class Virtqueue {
public:
    Virtqueue() noexcept = default;

    /// Sets the ring up. \p last_avail / \p last_used as the transport reports them (for
    /// packed rings bit 15 is the wrap counter). Returns false on an unusable ring.
    bool init(const VringAddrs& addrs, const GuestMemory* mem, uint16_t last_avail,
              uint16_t last_used, bool event_idx) noexcept;

    uint16_t size() const noexcept { return size_; }
    bool packed() const noexcept { return packed_; }

    /// Takes the next available chain apart into \p c (iov/iov_cap set by the caller).
    PopStatus pop(Chain& c, ChainError* err) noexcept;

    /// Returns \p id to the driver with \p len bytes written. \p ndesc is Chain::ndesc.
    /// Same as add_used() then publish_used().
    void push_used(uint16_t id, uint16_t ndesc, uint32_t len) noexcept;
    /// Writes a used entry without making it visible yet (split rings: used->idx is not
    /// moved; packed rings: the descriptor's flags are the publication, written here). A
    /// batch of add_used() then one publish_used() costs the driver's cache line one write.
    void add_used(uint16_t id, uint16_t ndesc, uint32_t len) noexcept;
    /// Makes every entry added so far visible to the driver (release store of used->idx).
    void publish_used() noexcept;

    /// True if the driver asked to be notified about used entries published since the last
    /// call that returned true (or since init). Full barrier included.
    bool should_notify() noexcept;
    /// Marks the current used position as signalled (after the transport notified).
    void mark_notified() noexcept {
        signalled_used_ = last_used_;
        signalled_used_wrap_ = used_wrap_;
        signalled_valid_ = true;
    }

    /// Asks the driver to kick on new buffers (before sleeping). Returns true if buffers
    /// became available meanwhile (then don't sleep). Full barrier included.
    bool enable_kicks() noexcept;
    /// Tells the driver that kicks are not needed (while busy-polling).
    void disable_kicks() noexcept;

    /// True if the driver has published buffers not yet popped.
    bool has_available() const noexcept;

    /// Indexes for the transport (GET_VRING_BASE); packed: bit 15 = wrap counter.
    uint16_t last_avail_base() const noexcept;
    uint16_t last_used_base() const noexcept;

private:
    PopStatus pop_split(Chain& c, ChainError* err) noexcept;
    PopStatus pop_packed(Chain& c, ChainError* err) noexcept;
    bool add_segment(Chain& c, uint64_t addr, uint32_t len, bool writable,
                     ChainError* err) noexcept;
    bool walk_indirect_split(Chain& c, uint64_t addr, uint32_t len, ChainError* err) noexcept;
    bool walk_indirect_packed(Chain& c, uint64_t addr, uint32_t len, ChainError* err) noexcept;

    VringAddrs a_{};
    const GuestMemory* mem_ = nullptr;
    uint16_t size_ = 0;
    bool packed_ = false;
    bool event_idx_ = false;
    // split: free-running 16-bit indexes. packed: position 0..size-1 plus wrap counters.
    uint16_t last_avail_ = 0;
    uint16_t last_used_ = 0;
    bool avail_wrap_ = true;
    bool used_wrap_ = true;
    uint16_t signalled_used_ = 0;
    bool signalled_used_wrap_ = true;
    bool signalled_valid_ = false;
};

} // namespace vdh

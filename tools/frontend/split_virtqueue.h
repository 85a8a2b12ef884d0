// SPDX-License-Identifier: MIT
// SplitVirtqueue: the DRIVER side of a virtio split ring living in GuestMemory, as a guest
// kernel would run it: free-descriptor list, direct and indirect chains, avail publishing
// with release ordering, kick/interrupt suppression (flags or EVENT_IDX), used-ring polling
// and waiting on the call eventfd. Raw helpers let tests build malformed rings on purpose.
// Not thread-safe: one thread drives a queue (the device runs elsewhere).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "frontend/guest_memory.h"
#include "vdh/result.h"
#include "vdh/unique_fd.h"

namespace vdh::frontend {

// ---- split-ring layout (virtio 1.x §2.7) -------------------------------------------------

struct VringDesc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};
static_assert(sizeof(VringDesc) == 16);

struct VringUsedElem {
    uint32_t id;
    uint32_t len;
};
static_assert(sizeof(VringUsedElem) == 8);

inline constexpr uint16_t kDescFNext = 1;
inline constexpr uint16_t kDescFWrite = 2;
inline constexpr uint16_t kDescFIndirect = 4;
inline constexpr uint16_t kAvailFNoInterrupt = 1;
inline constexpr uint16_t kUsedFNoNotify = 1;

/// Bytes of each ring part for a queue of `size` entries (including the event-idx words).
constexpr uint64_t desc_table_bytes(uint16_t size) { return 16ULL * size; }
constexpr uint64_t avail_ring_bytes(uint16_t size) { return 6ULL + 2ULL * size; }
constexpr uint64_t used_ring_bytes(uint16_t size) { return 6ULL + 8ULL * size; }

/// virtio's vring_need_event(): true when moving an index from `old_idx` to `new_idx` passes
/// the other side's `event_idx`.
constexpr bool vring_need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old_idx) {
    return static_cast<uint16_t>(new_idx - event_idx - 1) <
           static_cast<uint16_t>(new_idx - old_idx);
}

/// One buffer of a chain, given either by guest-physical address or by a host pointer into
/// GuestMemory (translated when the chain is added).
struct Segment {
    uint64_t gpa = 0;
    const void* host = nullptr; ///< when set, wins over `gpa`
    uint32_t len = 0;

    static Segment guest(uint64_t gpa, uint32_t len) { return Segment{gpa, nullptr, len}; }
    static Segment from_host(const void* p, uint32_t len) { return Segment{0, p, len}; }
};

/// One entry taken from the used ring.
struct UsedElem {
    uint32_t id = 0;
    uint32_t len = 0;
    /// True when `id` was neither an in-flight add_chain() head nor a publish_raw_head():
    /// a device bug (or a test that expects one). Counted in Stats::unexpected_used.
    bool unexpected = false;
};

class SplitVirtqueue {
public:
    using Millis = std::chrono::milliseconds;

    struct Stats {
        uint64_t chains_added = 0;
        uint64_t kicks_sent = 0;
        uint64_t kicks_suppressed = 0;
        uint64_t interrupts = 0; ///< call-eventfd wakeups consumed by wait_used()
        uint64_t used_consumed = 0;
        uint64_t unexpected_used = 0;
    };

    /// Allocates the rings from `mem` (which must outlive the queue) and creates the kick
    /// and call eventfds (EFD_NONBLOCK | EFD_CLOEXEC, as QEMU does). `size` must be a power
    /// of two in [1, 32768]; EINVAL otherwise. Allocates.
    static Result<std::unique_ptr<SplitVirtqueue>> create(GuestMemory& mem, uint16_t size);

    SplitVirtqueue(const SplitVirtqueue&) = delete;
    SplitVirtqueue& operator=(const SplitVirtqueue&) = delete;
    /// Returns the rings and indirect tables to the GuestMemory.
    ~SplitVirtqueue();

    uint16_t size() const noexcept { return size_; }
    GuestMemory& memory() const noexcept { return mem_; }

    // Ring locations: gpa for device-side code in tests, host pointers for SET_VRING_ADDR
    // (the vhost-user backend is given frontend virtual addresses).
    uint64_t desc_gpa() const noexcept { return desc_gpa_; }
    uint64_t avail_gpa() const noexcept { return avail_gpa_; }
    uint64_t used_gpa() const noexcept { return used_gpa_; }
    VringDesc* desc() const noexcept { return desc_; }
    uint16_t* avail() const noexcept { return avail_; } ///< flags, idx, ring[size], used_event
    uint8_t* used() const noexcept { return used_; }    ///< flags, idx, ring[size], avail_event

    /// The eventfds handed to the backend in SET_VRING_KICK / SET_VRING_CALL (borrowed).
    int kick_fd() const noexcept { return kick_fd_.get(); }
    int call_fd() const noexcept { return call_fd_.get(); }
    /// Installs a fresh call eventfd and returns the previous one (for SET_VRING_CALL
    /// flapping). Completions signalled on the old fd are still found by the ring check.
    Result<UniqueFd> replace_call_fd();

    /// Turns VIRTIO_RING_F_EVENT_IDX handling on (used_event / avail_event words).
    void set_event_idx(bool on) noexcept { event_idx_ = on; }
    bool event_idx() const noexcept { return event_idx_; }
    /// Asks the device for interrupts (default) or not: VRING_AVAIL_F_NO_INTERRUPT, and with
    /// EVENT_IDX a used_event far behind. With interrupts off, wait_used() polls the ring.
    void set_interrupts(bool enabled) noexcept;
    bool interrupts() const noexcept { return interrupts_; }

    // ---- driver operations -----------------------------------------------------------

    /// Builds a chain (readable segments first, then writable) and publishes its head in the
    /// avail ring. With `indirect`, one descriptor points at a table allocated from guest
    /// memory. Returns the head id. EINVAL for an empty chain (or an indirect one longer than
    /// the queue), ENOSPC when too few descriptors are free, EFAULT for a host segment outside
    /// guest memory, ENOMEM when an indirect table does not fit.
    Result<uint16_t> add_chain(std::span<const Segment> readable,
                               std::span<const Segment> writable, bool indirect = false);
    /// Notifies the device unless it suppressed notifications (VRING_USED_F_NO_NOTIFY, or
    /// avail_event with EVENT_IDX). Returns whether the kick eventfd was written.
    Result<bool> kick();
    /// Writes the kick eventfd regardless of suppression.
    Status force_kick();

    /// Takes up to out.size() used entries (acquire load of used->idx), frees their chains
    /// and returns how many were taken. Hot path: no alloc.
    size_t poll_used(std::span<UsedElem> out);
    /// Allocating convenience: everything available now.
    std::vector<UsedElem> poll_used();
    /// Like poll_used(), but when nothing is ready sleeps on the call eventfd (or, with
    /// interrupts off, re-polls every millisecond) for at most `timeout`; ETIMEDOUT then.
    Result<size_t> wait_used(std::span<UsedElem> out, Millis timeout);
    Result<std::vector<UsedElem>> wait_used(Millis timeout);

    uint16_t num_free() const noexcept { return static_cast<uint16_t>(free_.size()); }
    uint16_t in_flight() const noexcept { return in_flight_; }
    const Stats& stats() const noexcept { return stats_; }

    // ---- raw access for tests of malformed input ---------------------------------------

    /// Writes any descriptor at any index (no validation, no bookkeeping).
    void write_desc(uint16_t index, const VringDesc& d) noexcept;
    VringDesc read_desc(uint16_t index) const noexcept;
    /// Removes `n` descriptors from the free list for raw use; ENOSPC if not available.
    Result<std::vector<uint16_t>> reserve_descs(uint16_t n);
    /// Gives reserved descriptors back to the free list.
    void release_descs(std::span<const uint16_t> ids);
    /// Puts any head value in the next avail slot and publishes it (release). poll_used()
    /// reports it as expected if the device returns it.
    void publish_raw_head(uint16_t head) noexcept;
    /// Writes avail->ring[slot] without publishing.
    void set_avail_ring(uint16_t slot, uint16_t head) noexcept;
    /// Stores avail->idx directly (release) and continues add_chain() from there.
    void set_avail_idx(uint16_t idx) noexcept;

    uint16_t avail_idx() const noexcept { return avail_idx_; }
    /// Device-written words, read with acquire ordering.
    uint16_t used_idx() const noexcept;
    uint16_t used_flags() const noexcept;
    uint16_t avail_event() const noexcept;
    /// Our used_event word (what we told the device).
    uint16_t used_event() const noexcept;
    uint16_t last_used_idx() const noexcept { return last_used_; }

private:
    struct ChainInfo {
        uint16_t count = 0;        // descriptors in the main table
        uint64_t indirect_gpa = 0; // indirect table to free, or 0
        bool in_flight = false;
        bool raw = false;          // published with publish_raw_head()
    };

    SplitVirtqueue(GuestMemory& mem, uint16_t size) : mem_(mem), size_(size) {}
    Result<uint64_t> segment_gpa(const Segment& s) const;
    void publish(uint16_t head) noexcept;
    void refresh_used_event() noexcept;
    void free_chain(uint16_t head);

    GuestMemory& mem_;
    uint16_t size_;
    uint64_t desc_gpa_ = 0, avail_gpa_ = 0, used_gpa_ = 0;
    std::vector<uint64_t> ring_allocs_; // the ring parts actually allocated (freed on exit)
    VringDesc* desc_ = nullptr;
    uint16_t* avail_ = nullptr;
    uint8_t* used_ = nullptr;
    UniqueFd kick_fd_;
    UniqueFd call_fd_;

    std::vector<uint16_t> free_;     // stack of free descriptor ids
    std::vector<uint16_t> next_;     // driver-private copy of each descriptor's `next`
    std::vector<ChainInfo> chains_;  // indexed by head id
    uint16_t avail_idx_ = 0;         // shadow of avail->idx
    uint16_t kicked_idx_ = 0;        // avail idx at the last kick decision
    uint16_t last_used_ = 0;         // next used slot to consume
    uint16_t in_flight_ = 0;
    bool event_idx_ = false;
    bool interrupts_ = true;
    Stats stats_;
};

} // namespace vdh::frontend

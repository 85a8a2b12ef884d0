// SPDX-License-Identifier: MIT
// GuestMemory: the guest's memory table (guest-physical → host-virtual regions) and
// bounds-checked translation of guest addresses into host iovecs. No DPDK calls, so the
// virtqueue tests run it over fake memory.
// Hot path: no alloc, no block, no throw.
#pragma once

#include <sys/uio.h>

#include <cstdint>

namespace vdh {

struct GuestRegion {
    uint64_t gpa = 0;   ///< guest-physical start
    uint64_t size = 0;  ///< bytes
    uint8_t* hva = nullptr; ///< where the host mapped it
};

class GuestMemory {
public:
    static constexpr int kMaxRegions = 8;

    GuestMemory() noexcept = default;
    /// Adds a region. Returns false if full, empty or overlapping an existing region.
    bool add_region(uint64_t gpa, uint64_t size, void* hva) noexcept;
    void clear() noexcept { n_ = 0; }
    int region_count() const noexcept { return n_; }
    const GuestRegion& region(int i) const noexcept { return regions_[i]; }

    /// Appends iovecs for [gpa, gpa+len) to \p out (at most \p max entries, splitting at
    /// region boundaries). Returns the number appended, or -1 if any byte is outside guest
    /// memory, the range wraps, or \p max is too small. len 0 yields 0 entries.
    int translate(uint64_t gpa, uint64_t len, struct iovec* out, int max) const noexcept;

    /// Host pointer for [gpa, gpa+len) if it lies inside one region, else nullptr.
    void* translate_contiguous(uint64_t gpa, uint64_t len) const noexcept;

private:
    const GuestRegion* find(uint64_t gpa) const noexcept;

    GuestRegion regions_[kMaxRegions];
    int n_ = 0;
};

} // namespace vdh

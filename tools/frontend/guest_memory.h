// SPDX-License-Identifier: MIT
// GuestMemory: memfd-backed "guest RAM" for the vhost-user frontend, laid out as up to 8
// regions at chosen guest-physical addresses, each mapped MAP_SHARED into this process so a
// backend that maps the same memfds sees our writes. It also hands out guest buffers (rings,
// indirect tables, data) from a first-fit free list. Not thread-safe: one owner thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <vector>

#include "frontend/vhost_user_messages.h"
#include "vdh/result.h"
#include "vdh/unique_fd.h"

namespace vdh::frontend {

inline constexpr uint64_t kPageSize = 4096;

/// How to build a GuestMemory.
struct GuestMemoryOptions {
    /// Guest-physical address of the first region (page aligned).
    uint64_t base_gpa = 0;
    /// Total bytes over all regions (page multiple). Ignored if `region_sizes` is set.
    uint64_t size = 0;
    /// Number of regions (1..8) `size` is split into; every region but the last gets
    /// `size / num_regions` rounded down to a page, the last one gets the rest.
    uint32_t num_regions = 1;
    /// Explicit region sizes (page multiples). Overrides `size` and `num_regions`.
    std::vector<uint64_t> region_sizes;
    /// GPA hole between consecutive regions (page multiple), like QEMU's 0xa0000..0xc0000.
    uint64_t region_gap = 0;
    /// true: one memfd, regions are windows at increasing offsets (mmap_offset != 0).
    /// false: one memfd per region (mmap_offset == 0).
    bool single_fd = false;
};

/// One guest memory region as it goes into SET_MEM_TABLE.
struct GuestRegion {
    uint64_t gpa = 0;
    uint64_t size = 0;
    uint8_t* host = nullptr; ///< our mapping: the region's `userspace_addr`
    int fd = -1;             ///< borrowed; owned by the GuestMemory
    uint64_t fd_offset = 0;  ///< the region's `mmap_offset`
};

class GuestMemory {
public:
    /// Creates the memfds and maps them. EINVAL for a bad layout, else the syscall's errno.
    /// Allocates.
    static Result<std::unique_ptr<GuestMemory>> create(const GuestMemoryOptions& options);

    GuestMemory(const GuestMemory&) = delete;
    GuestMemory& operator=(const GuestMemory&) = delete;
    ~GuestMemory();

    /// Adds a region backed by a new memfd at [gpa, gpa+size) (e.g. to test a SET_MEM_TABLE
    /// update while running); its bytes join the allocator. EEXIST if it overlaps a region,
    /// ENOSPC if there are already 8, EINVAL if not page aligned.
    Status add_region(uint64_t gpa, uint64_t size);

    /// The regions in memory-table order (creation order).
    std::span<const GuestRegion> regions() const noexcept { return regions_; }

    /// Builds the SET_MEM_TABLE entries (userspace_addr = our mapping) and the matching fds.
    void memory_table(std::vector<MemoryRegionDesc>& descs, std::vector<int>& fds) const;

    // ---- translation -----------------------------------------------------------------

    /// Host pointer for [gpa, gpa+len) if that range lies inside ONE region (host memory is
    /// contiguous only within a region); EFAULT otherwise.
    Result<void*> translate(uint64_t gpa, uint64_t len = 1) const noexcept;
    /// Typed shortcut for translate(); nullptr when the range is not inside one region.
    template <typename T>
    T* ptr(uint64_t gpa, uint64_t len = sizeof(T)) const noexcept {
        auto r = translate(gpa, len);
        return r ? static_cast<T*>(*r) : nullptr;
    }
    /// Reverse translation of a host pointer inside one of our regions; EFAULT otherwise.
    Result<uint64_t> to_gpa(const void* host, uint64_t len = 1) const noexcept;
    /// Copies in/out of guest memory; the range may cross region boundaries but not holes
    /// (EFAULT).
    Status write(uint64_t gpa, const void* src, uint64_t len) const noexcept;
    Status read(uint64_t gpa, void* dst, uint64_t len) const noexcept;

    // ---- allocator -------------------------------------------------------------------

    /// Allocates `size` bytes aligned to `align` (a power of two) entirely inside one region,
    /// so the host pointer is contiguous. Returns the gpa; ENOMEM when nothing fits, EINVAL
    /// for size 0 or a bad alignment. Allocates (map nodes).
    Result<uint64_t> allocate(uint64_t size, uint64_t align = 64);
    /// Claims exactly [gpa, gpa+size), which may span regions (to put a buffer across a
    /// region boundary). EBUSY if any byte is already taken, EFAULT if not backed.
    Status reserve(uint64_t gpa, uint64_t size);
    /// Releases an allocate()/reserve() result. EINVAL if `gpa` does not start one.
    Status free(uint64_t gpa);
    /// Bytes currently free in the allocator.
    uint64_t bytes_free() const noexcept;

private:
    GuestMemory() = default;
    Status map_region(int fd, uint64_t fd_offset, uint64_t gpa, uint64_t size);
    const GuestRegion* find_region(uint64_t gpa) const noexcept;
    void insert_free(uint64_t gpa, uint64_t size);
    void release_range(uint64_t gpa, uint64_t size);

    std::vector<UniqueFd> fds_;       // owners of the memfds (one, or one per region)
    std::vector<GuestRegion> regions_;
    // Free ranges, gpa -> size. A range never crosses a region boundary, so a free range is
    // always host-contiguous; adjacent ranges merge only inside the same region.
    std::map<uint64_t, uint64_t> free_;
    // Live allocations, gpa -> size.
    std::map<uint64_t, uint64_t> used_;
};

/// Opens an anonymous memfd of `size` bytes (MFD_CLOEXEC). Exposed for tests.
Result<UniqueFd> make_memfd(const char* name, uint64_t size);

} // namespace vdh::frontend

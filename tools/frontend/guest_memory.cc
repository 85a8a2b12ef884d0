// SPDX-License-Identifier: MIT
// GuestMemory implementation: memfd creation, MAP_SHARED mappings, gpa<->host translation
// and the first-fit free-list allocator. See guest_memory.h for the contracts.
#include "frontend/guest_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <iterator>

namespace vdh::frontend {

namespace {

bool page_aligned(uint64_t v) { return (v & (kPageSize - 1)) == 0; }

uint64_t align_up(uint64_t v, uint64_t align) { return (v + align - 1) & ~(align - 1); }

} // namespace

Result<UniqueFd> make_memfd(const char* name, uint64_t size) {
    auto fd = UniqueFd::from_syscall(::memfd_create(name, MFD_CLOEXEC));
    if (!fd) {
        return fd;
    }
    if (::ftruncate(fd->get(), static_cast<off_t>(size)) < 0) {
        return errno_err();
    }
    return fd;
}

Result<std::unique_ptr<GuestMemory>> GuestMemory::create(const GuestMemoryOptions& o) {
    std::vector<uint64_t> sizes = o.region_sizes;
    if (sizes.empty()) {
        if (o.num_regions == 0 || o.num_regions > kMaxMemRegions || o.size == 0 ||
            !page_aligned(o.size)) {
            return make_err(EINVAL);
        }
        uint64_t each = (o.size / o.num_regions) & ~(kPageSize - 1);
        if (each == 0) {
            return make_err(EINVAL);
        }
        for (uint32_t i = 0; i + 1 < o.num_regions; i++) {
            sizes.push_back(each);
        }
        sizes.push_back(o.size - each * (o.num_regions - 1));
    }
    if (sizes.size() > kMaxMemRegions || !page_aligned(o.base_gpa) ||
        !page_aligned(o.region_gap)) {
        return make_err(EINVAL);
    }
    uint64_t total = 0;
    for (uint64_t s : sizes) {
        if (s == 0 || !page_aligned(s)) {
            return make_err(EINVAL);
        }
        total += s;
    }

    std::unique_ptr<GuestMemory> mem(new GuestMemory());
    if (o.single_fd) {
        auto fd = make_memfd("vdh-guest-ram", total);
        if (!fd) {
            return Err{fd.error()};
        }
        mem->fds_.push_back(std::move(*fd));
    }
    uint64_t gpa = o.base_gpa;
    uint64_t offset = 0;
    for (uint64_t s : sizes) {
        int fd = -1;
        uint64_t fd_offset = 0;
        if (o.single_fd) {
            fd = mem->fds_.front().get();
            fd_offset = offset;
        } else {
            auto own = make_memfd("vdh-guest-ram", s);
            if (!own) {
                return Err{own.error()};
            }
            fd = own->get();
            mem->fds_.push_back(std::move(*own));
        }
        VDH_TRY(mem->map_region(fd, fd_offset, gpa, s));
        gpa += s + o.region_gap;
        offset += s;
    }
    return mem;
}

GuestMemory::~GuestMemory() {
    for (const GuestRegion& r : regions_) {
        ::munmap(r.host, r.size);
    }
}

Status GuestMemory::map_region(int fd, uint64_t fd_offset, uint64_t gpa, uint64_t size) {
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                     static_cast<off_t>(fd_offset));
    if (p == MAP_FAILED) {
        return errno_err();
    }
    regions_.push_back(GuestRegion{gpa, size, static_cast<uint8_t*>(p), fd, fd_offset});
    insert_free(gpa, size);
    return ok();
}

Status GuestMemory::add_region(uint64_t gpa, uint64_t size) {
    if (size == 0 || !page_aligned(gpa) || !page_aligned(size)) {
        return make_err(EINVAL);
    }
    if (regions_.size() >= kMaxMemRegions) {
        return make_err(ENOSPC);
    }
    for (const GuestRegion& r : regions_) {
        if (gpa < r.gpa + r.size && r.gpa < gpa + size) {
            return make_err(EEXIST);
        }
    }
    auto fd = make_memfd("vdh-guest-ram-hotplug", size);
    if (!fd) {
        return Err{fd.error()};
    }
    int raw = fd->get();
    fds_.push_back(std::move(*fd));
    return map_region(raw, 0, gpa, size);
}

void GuestMemory::memory_table(std::vector<MemoryRegionDesc>& descs, std::vector<int>& fds) const {
    descs.clear();
    fds.clear();
    for (const GuestRegion& r : regions_) {
        descs.push_back(MemoryRegionDesc{r.gpa, r.size, reinterpret_cast<uintptr_t>(r.host),
                                         r.fd_offset});
        fds.push_back(r.fd);
    }
}

const GuestRegion* GuestMemory::find_region(uint64_t gpa) const noexcept {
    for (const GuestRegion& r : regions_) {
        if (gpa >= r.gpa && gpa - r.gpa < r.size) {
            return &r;
        }
    }
    return nullptr;
}

Result<void*> GuestMemory::translate(uint64_t gpa, uint64_t len) const noexcept {
    const GuestRegion* r = find_region(gpa);
    if (r == nullptr || len > r->size - (gpa - r->gpa)) {
        return make_err(EFAULT);
    }
    return static_cast<void*>(r->host + (gpa - r->gpa));
}

Result<uint64_t> GuestMemory::to_gpa(const void* host, uint64_t len) const noexcept {
    auto p = reinterpret_cast<uintptr_t>(host);
    for (const GuestRegion& r : regions_) {
        auto base = reinterpret_cast<uintptr_t>(r.host);
        if (p >= base && p - base < r.size && len <= r.size - (p - base)) {
            return r.gpa + (p - base);
        }
    }
    return make_err(EFAULT);
}

Status GuestMemory::write(uint64_t gpa, const void* src, uint64_t len) const noexcept {
    auto* s = static_cast<const uint8_t*>(src);
    while (len > 0) {
        const GuestRegion* r = find_region(gpa);
        if (r == nullptr) {
            return make_err(EFAULT);
        }
        uint64_t n = std::min(len, r->size - (gpa - r->gpa));
        std::memcpy(r->host + (gpa - r->gpa), s, n);
        s += n;
        gpa += n;
        len -= n;
    }
    return ok();
}

Status GuestMemory::read(uint64_t gpa, void* dst, uint64_t len) const noexcept {
    auto* d = static_cast<uint8_t*>(dst);
    while (len > 0) {
        const GuestRegion* r = find_region(gpa);
        if (r == nullptr) {
            return make_err(EFAULT);
        }
        uint64_t n = std::min(len, r->size - (gpa - r->gpa));
        std::memcpy(d, r->host + (gpa - r->gpa), n);
        d += n;
        gpa += n;
        len -= n;
    }
    return ok();
}

// ---- allocator ---------------------------------------------------------------------------

void GuestMemory::insert_free(uint64_t gpa, uint64_t size) {
    const GuestRegion* region = find_region(gpa);
    auto next = free_.lower_bound(gpa);
    // Merge with the range that ends exactly at `gpa`, if it is in the same region.
    if (next != free_.begin()) {
        auto prev = std::prev(next);
        if (prev->first + prev->second == gpa && find_region(prev->first) == region) {
            gpa = prev->first;
            size += prev->second;
            free_.erase(prev);
        }
    }
    // Merge with the range that starts exactly at our end, if it is in the same region.
    next = free_.find(gpa + size);
    if (next != free_.end() && find_region(next->first) == region) {
        size += next->second;
        free_.erase(next);
    }
    free_[gpa] = size;
}

Result<uint64_t> GuestMemory::allocate(uint64_t size, uint64_t align) {
    if (size == 0 || align == 0 || (align & (align - 1)) != 0) {
        return make_err(EINVAL);
    }
    for (auto it = free_.begin(); it != free_.end(); ++it) {
        uint64_t start = it->first;
        uint64_t end = start + it->second;
        uint64_t a = align_up(start, align);
        if (a < start || a > end || size > end - a) {
            continue;
        }
        free_.erase(it);
        if (a > start) {
            free_[start] = a - start;
        }
        if (a + size < end) {
            free_[a + size] = end - (a + size);
        }
        used_[a] = size;
        return a;
    }
    return make_err(ENOMEM);
}

Status GuestMemory::reserve(uint64_t gpa, uint64_t size) {
    if (size == 0) {
        return make_err(EINVAL);
    }
    // Every byte must be backed and free. Free ranges never cross regions, so walk the
    // request region by region and check each piece is inside a single free range.
    uint64_t cur = gpa;
    uint64_t end = gpa + size;
    while (cur < end) {
        const GuestRegion* r = find_region(cur);
        if (r == nullptr) {
            return make_err(EFAULT);
        }
        uint64_t piece_end = std::min(end, r->gpa + r->size);
        auto it = free_.upper_bound(cur);
        if (it == free_.begin()) {
            return make_err(EBUSY);
        }
        --it;
        if (it->first + it->second < piece_end) {
            return make_err(EBUSY);
        }
        cur = piece_end;
    }
    // Carve the pieces out.
    cur = gpa;
    while (cur < end) {
        const GuestRegion* r = find_region(cur);
        uint64_t piece_end = std::min(end, r->gpa + r->size);
        auto it = std::prev(free_.upper_bound(cur));
        uint64_t fstart = it->first;
        uint64_t fend = fstart + it->second;
        free_.erase(it);
        if (fstart < cur) {
            free_[fstart] = cur - fstart;
        }
        if (piece_end < fend) {
            free_[piece_end] = fend - piece_end;
        }
        cur = piece_end;
    }
    used_[gpa] = size;
    return ok();
}

void GuestMemory::release_range(uint64_t gpa, uint64_t size) {
    uint64_t end = gpa + size;
    while (gpa < end) {
        const GuestRegion* r = find_region(gpa);
        // Allocations only ever cover backed bytes, so r is never null here.
        uint64_t piece_end = std::min(end, r->gpa + r->size);
        insert_free(gpa, piece_end - gpa);
        gpa = piece_end;
    }
}

Status GuestMemory::free(uint64_t gpa) {
    auto it = used_.find(gpa);
    if (it == used_.end()) {
        return make_err(EINVAL);
    }
    uint64_t size = it->second;
    used_.erase(it);
    release_range(gpa, size);
    return ok();
}

uint64_t GuestMemory::bytes_free() const noexcept {
    uint64_t total = 0;
    for (const auto& [gpa, size] : free_) {
        total += size;
    }
    return total;
}

} // namespace vdh::frontend

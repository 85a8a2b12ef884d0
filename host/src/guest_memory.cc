// SPDX-License-Identifier: MIT
// Guest address translation over at most eight regions (linear scan: the vhost-user
// transport never gives more than eight).
#include "guest_memory.h"

namespace vdh {

bool GuestMemory::add_region(uint64_t gpa, uint64_t size, void* hva) noexcept {
    if (n_ == kMaxRegions || size == 0 || hva == nullptr || gpa + size < gpa) {
        return false;
    }
    for (int i = 0; i < n_; ++i) {
        const GuestRegion& r = regions_[i];
        if (gpa < r.gpa + r.size && r.gpa < gpa + size) {
            return false;
        }
    }
    regions_[n_++] = GuestRegion{gpa, size, static_cast<uint8_t*>(hva)};
    return true;
}

const GuestRegion* GuestMemory::find(uint64_t gpa) const noexcept {
    for (int i = 0; i < n_; ++i) {
        const GuestRegion& r = regions_[i];
        if (gpa >= r.gpa && gpa - r.gpa < r.size) {
            return &r;
        }
    }
    return nullptr;
}

int GuestMemory::translate(uint64_t gpa, uint64_t len, struct iovec* out, int max) const noexcept {
    if (gpa + len < gpa) {
        return -1;
    }
    int count = 0;
    while (len > 0) {
        const GuestRegion* r = find(gpa);
        if (r == nullptr || count == max) {
            return -1;
        }
        uint64_t off = gpa - r->gpa;
        uint64_t chunk = r->size - off;
        if (chunk > len) {
            chunk = len;
        }
        out[count].iov_base = r->hva + off;
        out[count].iov_len = chunk;
        ++count;
        gpa += chunk;
        len -= chunk;
    }
    return count;
}

void* GuestMemory::translate_contiguous(uint64_t gpa, uint64_t len) const noexcept {
    if (gpa + len < gpa) {
        return nullptr;
    }
    const GuestRegion* r = find(gpa);
    if (r == nullptr) {
        return nullptr;
    }
    uint64_t off = gpa - r->gpa;
    if (len > r->size - off) {
        return nullptr;
    }
    return r->hva + off;
}

} // namespace vdh

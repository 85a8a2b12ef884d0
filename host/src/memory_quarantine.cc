// SPDX-License-Identifier: MIT
// The quarantine registry behind the munmap wrapper (see memory_quarantine.h).
#include "memory_quarantine.h"

#include <sys/mman.h>

#include <algorithm>
#include <mutex>
#include <vector>

namespace vdh {
namespace {

struct Range {
    void* addr;
    size_t len;
    bool placeholder; ///< the owner already unmapped it; the placeholder is ours
};

std::mutex g_mu; // guards g_ranges. Lock order: leaf (munmap is called with it held only
                 // for our own placeholder, which never re-enters the registry)
std::vector<Range> g_ranges;

} // namespace

void quarantine_add(void* addr, size_t len) {
    std::lock_guard<std::mutex> g(g_mu);
    for (const Range& r : g_ranges) {
        if (r.addr == addr) {
            return;
        }
    }
    g_ranges.push_back(Range{addr, len, false});
}

void quarantine_release(void* addr, size_t len) {
    Range found{nullptr, 0, false};
    {
        std::lock_guard<std::mutex> g(g_mu);
        auto it = std::find_if(g_ranges.begin(), g_ranges.end(),
                               [addr](const Range& r) { return r.addr == addr; });
        if (it == g_ranges.end()) {
            return;
        }
        found = *it;
        g_ranges.erase(it);
    }
    if (found.placeholder) {
        // Not registered any more, so this goes through to the kernel.
        ::munmap(found.addr, found.len != 0 ? found.len : len);
    }
}

bool quarantine_intercept_munmap(void* addr, size_t len) {
    std::lock_guard<std::mutex> g(g_mu);
    for (Range& r : g_ranges) {
        if (r.addr != addr || r.placeholder) {
            continue;
        }
        // MAP_FIXED replaces the guest mapping atomically: no instant without a mapping.
        void* p = ::mmap(addr, len, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
        if (p == MAP_FAILED) {
            return false; // fall back to a real unmap
        }
        r.len = len;
        r.placeholder = true;
        return true;
    }
    return false;
}

} // namespace vdh

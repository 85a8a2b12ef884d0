// SPDX-License-Identifier: MIT
// The munmap wrapper linked into vdhost (-Wl,--wrap=munmap, see host/meson.build): every
// munmap of the binary, rte_vhost's unmapping of guest memory included, asks the memory
// quarantine first. Not part of the host library, so tests link without the wrap.
#include <cstddef>

#include "memory_quarantine.h"

extern "C" int __real_munmap(void* addr, size_t len);

extern "C" int __wrap_munmap(void* addr, size_t len) {
    if (vdh::quarantine_intercept_munmap(addr, len)) {
        return 0;
    }
    return __real_munmap(addr, len);
}

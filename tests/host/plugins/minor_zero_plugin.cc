// SPDX-License-Identifier: MIT
// Test plugin built for ABI minor 0 (before vdh_host_api::reserve_fds): still accepted.
#include <cerrno>

#include "vdh/compiler.h"
#include "vdh/plugin_abi.h"

namespace {
int create(const vdh_host_api*, void*, const char*, const char*, size_t, const char*, void**,
           const vdh_device_ops**, char*, size_t) {
    return -ENOSYS;
}

vdh_plugin_info g_info = {
    .struct_size = sizeof(vdh_plugin_info),
    .abi_major = VDH_ABI_MAJOR,
    .abi_minor = 0,
    .virtio_device_id = 0xFFFF,
    .name = "minor-zero",
    .version = "0",
    .device_features = 0,
    .request_ctx_size = 0,
    .min_queues = 1,
    .create = create,
    .check_config = nullptr,
};
} // namespace

extern "C" VDH_EXPORT const vdh_plugin_info* vdh_plugin_entry(void) { return &g_info; }

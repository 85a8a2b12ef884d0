// SPDX-License-Identifier: MIT
// Test plugin whose descriptor claims to be smaller than the fields the host needs.
#include "vdh/compiler.h"
#include "vdh/plugin_abi.h"

namespace {
vdh_plugin_info g_info = {
    .struct_size = 8,
    .abi_major = VDH_ABI_MAJOR,
    .abi_minor = VDH_ABI_MINOR,
    .virtio_device_id = 0xFFFF,
    .name = "short",
    .version = "0",
    .device_features = 0,
    .request_ctx_size = 0,
    .min_queues = 1,
    .create = nullptr,
    .check_config = nullptr,
};
} // namespace

extern "C" VDH_EXPORT const vdh_plugin_info* vdh_plugin_entry(void) { return &g_info; }

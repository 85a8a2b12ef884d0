// SPDX-License-Identifier: MIT
// Test plugin built for a future ABI major: the loader must refuse it by version.
#include "vdh/compiler.h"
#include "vdh/plugin_abi.h"

namespace {
const vdh_plugin_info g_info = {
    .struct_size = sizeof(vdh_plugin_info),
    .abi_major = VDH_ABI_MAJOR + 98,
    .abi_minor = 3,
    .virtio_device_id = 0xFFFF,
    .name = "bad-abi",
    .version = "0",
    .device_features = 0,
    .request_ctx_size = 0,
    .min_queues = 1,
    .create = nullptr,
    .check_config = nullptr,
};
} // namespace

extern "C" VDH_EXPORT const vdh_plugin_info* vdh_plugin_entry(void) { return &g_info; }

// SPDX-License-Identifier: MIT
// The virtio-blk plugin's C entry point: the plugin description, with the C tables made
// out of VirtioblkDevice by the plugin adapter (vdh/plugin_adapter.h).
#include "config_space.h"
#include "vdh/compiler.h"
#include "vdh/plugin_adapter.h"
#include "virtioblk_device.h"

namespace vdh::virtioblk {
namespace {

constexpr uint32_t kVirtioIdBlock = 2;

constexpr vdh_plugin_info kInfo = make_plugin_info<VirtioblkDevice>({
    .name = "virtioblk",
    .version = "1.0",
    .virtio_device_id = kVirtioIdBlock,
    // The rest (RO, DISCARD, WRITE_ZEROES, MQ) follows the profile: get_features().
    .device_features = kFSegMax | kFBlkSize | kFFlush,
    .request_ctx_size = static_cast<uint32_t>(sizeof(RequestCtx)),
    .min_queues = 1,
});

} // namespace
} // namespace vdh::virtioblk

extern "C" VDH_EXPORT const vdh_plugin_info* vdh_plugin_entry(void) {
    return &vdh::virtioblk::kInfo;
}

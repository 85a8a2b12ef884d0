// SPDX-License-Identifier: MIT
// C trampolines behind vdh_host_api.
#include "host_api.h"

#include <rte_cycles.h>

#include "device.h"
#include "log.h"
#include "queue_runtime.h"

namespace vdh {
namespace {

void api_log(void* /*host*/, int level, const char* device, const char* msg) {
    if (level <= log_level()) {
        log_msg(level, device, "%s", msg);
    }
}

void api_complete(void* token, int64_t written) {
    QueueRuntime::complete(static_cast<RequestSlot*>(token), written);
}

void api_wake(void* host_dev, uint16_t queue) { static_cast<Device*>(host_dev)->wake(queue); }

int api_reserve_fds(void* host_dev, uint64_t n, char* err, size_t err_len) {
    return static_cast<Device*>(host_dev)->reserve_fds(n, err, err_len);
}

vdh_host_api g_api = {
    .struct_size = sizeof(vdh_host_api),
    .abi_major = VDH_ABI_MAJOR,
    .abi_minor = VDH_ABI_MINOR,
    .flags = 0,
    .host = nullptr,
    .log = api_log,
    .complete = api_complete,
    .wake = api_wake,
    .reserve_fds = api_reserve_fds,
};

/// The table of --check-config's trial devices: the same, with VDH_HOST_CHECK_ONLY.
const vdh_host_api g_check_api = {
    .struct_size = sizeof(vdh_host_api),
    .abi_major = VDH_ABI_MAJOR,
    .abi_minor = VDH_ABI_MINOR,
    .flags = VDH_HOST_CHECK_ONLY,
    .host = nullptr,
    .log = api_log,
    .complete = api_complete,
    .wake = api_wake,
    .reserve_fds = api_reserve_fds,
    .tsc_hz = 0, // set by host_api() once the EAL knows it
};

} // namespace

const vdh_host_api* host_api(bool check_only) {
    if (g_api.tsc_hz == 0) {
        g_api.tsc_hz = rte_get_tsc_hz(); // 0 until rte_eal_init() measured it
    }
    return check_only ? &g_check_api : &g_api;
}

} // namespace vdh

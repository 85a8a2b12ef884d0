// SPDX-License-Identifier: MIT
// Test plugin with a writable virtio config space (ABI 1.6 get_config + set_config), for
// the host's vhost-user GET_CONFIG / SET_CONFIG handling: 16 bytes, the first 8 read-only
// ("vdhcfg01"), the last 8 writable by the driver. Every request is answered with the
// current 16 bytes, so a test sees through the data path that a write took effect and that
// the device still serves. Device id 0xFFFF (none), type `configspace`.
#include <sys/uio.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>

#include "vdh/compiler.h"
#include "vdh/plugin_abi.h"

namespace {

constexpr uint32_t kSpace = 16;
constexpr uint32_t kWritableFrom = 8;
constexpr char kMagic[kWritableFrom + 1] = "vdhcfg01";

struct ConfigDevice {
    /// Bytes 8..15 of the space. Written on the control thread, read on the lcore.
    std::atomic<uint64_t> writable{0};
    uint32_t set_calls = 0; ///< control thread only

    void snapshot(uint8_t out[kSpace]) const noexcept {
        std::memcpy(out, kMagic, kWritableFrom);
        const uint64_t w = writable.load(std::memory_order_acquire);
        std::memcpy(out + kWritableFrom, &w, sizeof(w));
    }
};

ConfigDevice* self(void* d) { return static_cast<ConfigDevice*>(d); }

int dev_start(void*, uint64_t, const vdh_queue_info*, uint16_t) { return 0; }
void dev_stop(void*) {}
void dev_destroy(void* d) { delete self(d); }

int64_t dev_handle(void* d, const vdh_request* r) {
    uint8_t space[kSpace];
    self(d)->snapshot(space);
    uint64_t done = 0;
    for (uint32_t i = 0; i < r->n_out && done < kSpace; ++i) {
        const uint64_t n = r->out[i].iov_len < kSpace - done ? r->out[i].iov_len : kSpace - done;
        std::memcpy(r->out[i].iov_base, space + done, n);
        done += n;
    }
    return static_cast<int64_t>(done);
}

int dev_get_config(void* d, uint32_t offset, uint8_t* buf, uint32_t len) {
    uint8_t space[kSpace];
    self(d)->snapshot(space);
    for (uint32_t i = 0; i < len; ++i) {
        buf[i] = offset < kSpace && i < kSpace - offset ? space[offset + i] : 0;
    }
    return static_cast<int>(kSpace);
}

int dev_set_config(void* d, uint32_t offset, const uint8_t* buf, uint32_t len) {
    ConfigDevice* dev = self(d);
    ++dev->set_calls;
    // The host promises offset + len inside the space: check it, so a test notices if not.
    if (offset > kSpace || len > kSpace - offset) {
        return -ERANGE;
    }
    if (offset < kWritableFrom) {
        return -EPERM; // the magic is read-only
    }
    uint8_t w[8];
    const uint64_t cur = dev->writable.load(std::memory_order_relaxed);
    std::memcpy(w, &cur, sizeof(w));
    std::memcpy(w + (offset - kWritableFrom), buf, len);
    uint64_t next;
    std::memcpy(&next, w, sizeof(next));
    dev->writable.store(next, std::memory_order_release);
    return 0;
}

int dev_stats(void* d, char* buf, size_t len) {
    int n = snprintf(buf, len, "{\"set_config_calls\":%u}", self(d)->set_calls);
    return n < 0 || static_cast<size_t>(n) >= len ? -ENOSPC : n;
}

const vdh_device_ops g_ops = {
    .struct_size = sizeof(vdh_device_ops),
    .reserved = 0,
    .get_features = nullptr,
    .start = dev_start,
    .stop = dev_stop,
    .handle_request = dev_handle,
    .poll = nullptr,
    .wake_fd = nullptr,
    .stats_json = dev_stats,
    .destroy = dev_destroy,
    .disconnect = nullptr,
    .flush = nullptr,
    .metrics = nullptr,
    .revoke = nullptr,
    .get_config = dev_get_config,
    .set_config = dev_set_config,
};

int plugin_create(const vdh_host_api*, void*, const char*, const char*, size_t, const char*,
                  void** dev, const vdh_device_ops** ops, char*, size_t) {
    auto* d = new (std::nothrow) ConfigDevice();
    if (d == nullptr) {
        return -ENOMEM;
    }
    *dev = d;
    *ops = &g_ops;
    return 0;
}

const vdh_plugin_info g_info = {
    .struct_size = sizeof(vdh_plugin_info),
    .abi_major = VDH_ABI_MAJOR,
    .abi_minor = VDH_ABI_MINOR,
    .virtio_device_id = 0xFFFF,
    .name = "configspace",
    .version = "1.0",
    .device_features = 0,
    .request_ctx_size = 0,
    .min_queues = 1,
    .create = plugin_create,
    .check_config = nullptr,
};

} // namespace

extern "C" VDH_EXPORT const vdh_plugin_info* vdh_plugin_entry(void) { return &g_info; }

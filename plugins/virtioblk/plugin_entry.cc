// SPDX-License-Identifier: MIT
// The virtio-blk plugin's C entry point: the plugin description and the create /
// check_config / host_paths callbacks, with the noexcept trampolines of vdh_device_ops in
// front of VirtioblkDevice. No C++ type or exception crosses this boundary.
#include <cerrno>
#include <cstdio>
#include <memory>
#include <new>
#include <string>

#include "backing_file.h"
#include "blk_profile.h"
#include "preopened.h"
#include "vdh/compiler.h"
#include "vdh/plugin_abi.h"
#include "virtioblk_device.h"

namespace vdh::virtioblk {
namespace {

constexpr uint32_t kVirtioIdBlock = 2;
/// fds a disk holds: its backing file, and an io_uring plus its eventfd per queue.
constexpr uint64_t kFixedFds = 4;
constexpr uint64_t kFdsPerQueue = 2;

VirtioblkDevice* self(void* dev) {
    return static_cast<VirtioblkDevice*>(dev);
}

void copy_err(const std::string& msg, char* err, size_t len) {
    if (err != nullptr && len > 0) {
        std::snprintf(err, len, "%s", msg.c_str());
    }
}

int op_start(void* dev, uint64_t features, const vdh_queue_info* q, uint16_t nq) noexcept {
    try {
        return self(dev)->start(features, q, nq);
    } catch (...) {
        return -ENOMEM;
    }
}
void op_stop(void* dev) noexcept {
    self(dev)->stop();
}
int64_t op_handle(void* dev, const vdh_request* req) noexcept {
    return self(dev)->handle_request(req);
}
uint32_t op_poll(void* dev, uint16_t q) noexcept {
    return self(dev)->poll(q);
}
int op_wake_fd(void* dev, uint16_t q) noexcept {
    return self(dev)->wake_fd(q);
}
int op_stats(void* dev, char* buf, size_t len) noexcept {
    return self(dev)->stats_json(buf, len);
}
void op_destroy(void* dev) noexcept {
    delete self(dev);
}
void op_disconnect(void* dev) noexcept {
    self(dev)->disconnect();
}
uint32_t op_flush(void* dev, uint16_t q) noexcept {
    return self(dev)->flush(q);
}
int op_metrics(void* dev, vdh_metric_emit_fn emit, void* ctx) noexcept {
    return self(dev)->metrics(emit, ctx);
}
uint64_t op_get_features(void* dev) noexcept {
    return self(dev)->get_features();
}
int op_get_config(void* dev, uint32_t offset, uint8_t* buf, uint32_t len) noexcept {
    return self(dev)->get_config(offset, buf, len);
}
int op_set_config(void* dev, uint32_t offset, const uint8_t* buf, uint32_t len) noexcept {
    return self(dev)->set_config(offset, buf, len);
}

const vdh_device_ops g_ops = {
    .struct_size = sizeof(vdh_device_ops),
    .reserved = 0,
    .get_features = op_get_features,
    .start = op_start,
    .stop = op_stop,
    .handle_request = op_handle,
    .poll = op_poll,
    .wake_fd = op_wake_fd,
    .stats_json = op_stats,
    .destroy = op_destroy,
    .disconnect = op_disconnect,
    .flush = op_flush,
    .metrics = op_metrics,
    .revoke = nullptr,
    .get_config = op_get_config,
    .set_config = op_set_config,
};

int plugin_check(const char* text, size_t len, const char* origin, char* err,
                 size_t err_len) noexcept {
    try {
        std::string e;
        if (!parse_blk_profile(std::string_view(text, len), origin, "check", &e)) {
            copy_err(e, err, err_len);
            return -EINVAL;
        }
        return 0;
    } catch (...) {
        copy_err("out of memory", err, err_len);
        return -ENOMEM;
    }
}

int plugin_host_paths(const char* text, size_t len, const char* origin,
                      void (*)(void* ctx, const char* path, uint32_t flags), void*, char* err,
                      size_t err_len) noexcept {
    try {
        std::string e;
        auto p = parse_blk_profile(std::string_view(text, len), origin, "sandbox", &e);
        if (!p) {
            copy_err(e, err, err_len);
            return -EINVAL;
        }
        // No directory to bind: the backing file is opened now, before the sandbox, and
        // create() takes the fd. A path that cannot be opened is reported by create().
        if (auto b = open_backing(*p, origin, &e)) {
            put_preopened(origin, std::string_view(text, len), std::move(*b));
        }
        return 0;
    } catch (...) {
        copy_err("out of memory", err, err_len);
        return -ENOMEM;
    }
}

int plugin_create(const vdh_host_api* host, void* host_dev, const char* name, const char* text,
                  size_t len, const char* origin, void** dev_out, const vdh_device_ops** ops_out,
                  char* err, size_t err_len) noexcept {
    try {
        std::string e;
        const std::string_view config(text, len);
        auto p = parse_blk_profile(config, origin, name, &e);
        if (!p) {
            copy_err(e, err, err_len);
            return -EINVAL;
        }
        auto b = take_preopened(origin, config);
        if (!b) {
            b = open_backing(*p, origin, &e);
        }
        if (!b) {
            copy_err(e, err, err_len);
            return -EINVAL;
        }
        if (VDH_HOST_HAS(host, reserve_fds)) {
            const int rc =
                host->reserve_fds(host_dev, kFixedFds + kFdsPerQueue * p->num_queues, err, err_len);
            if (rc != 0) {
                return rc;
            }
        }
        auto d = std::make_unique<VirtioblkDevice>(host, name, std::move(*p), std::move(*b));
        *dev_out = d.release();
        *ops_out = &g_ops;
        return 0;
    } catch (const std::bad_alloc&) {
        copy_err("out of memory", err, err_len);
        return -ENOMEM;
    } catch (const std::exception& ex) {
        copy_err(ex.what(), err, err_len);
        return -EIO;
    }
}

const vdh_plugin_info g_info = {
    .struct_size = sizeof(vdh_plugin_info),
    .abi_major = VDH_ABI_MAJOR,
    .abi_minor = VDH_ABI_MINOR,
    .virtio_device_id = kVirtioIdBlock,
    .name = "virtioblk",
    .version = "1.0",
    .device_features = kFSegMax | kFBlkSize | kFFlush,
    .request_ctx_size = static_cast<uint32_t>(sizeof(RequestCtx)),
    .min_queues = 1,
    .create = plugin_create,
    .check_config = plugin_check,
    .host_paths = plugin_host_paths,
};

} // namespace
} // namespace vdh::virtioblk

extern "C" VDH_EXPORT const vdh_plugin_info* vdh_plugin_entry(void) {
    return &vdh::virtioblk::g_info;
}

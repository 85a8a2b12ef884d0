// SPDX-License-Identifier: MIT
// The virtio-fs plugin's C entry point and the noexcept trampolines behind
// vdh_device_ops. No C++ type or exception crosses this boundary.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>
#include <set>
#include <string>

#include "fuse/fuse_dispatcher.h"
#include "share_profile.h"
#include "vdh/compiler.h"
#include "vdh/plugin_abi.h"
#include "virtiofs_device.h"

namespace vdh::virtiofs {
namespace {

constexpr uint32_t kVirtioIdFs = 26;
/// fds the device holds besides the guest's budget: the share's root, proc and mount fds,
/// and an io_uring plus its eventfd for each of up to 64 queues.
constexpr uint64_t kDeviceOverheadFds = 16 + 2 * 64;

VirtiofsDevice* self(void* dev) { return static_cast<VirtiofsDevice*>(dev); }

/// Shares that host_paths() created (`create: true`), so that create(), which can log,
/// says so. Control thread only.
std::set<std::string>& created_by_host_paths() {
    static std::set<std::string> created;
    return created;
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
void op_stop(void* dev) noexcept { self(dev)->stop(); }
int64_t op_handle(void* dev, const vdh_request* req) noexcept { return self(dev)->handle(req); }
uint32_t op_poll(void* dev, uint16_t q) noexcept { return self(dev)->poll(q); }
int op_wake_fd(void* dev, uint16_t q) noexcept { return self(dev)->wake_fd(q); }
int op_stats(void* dev, char* buf, size_t len) noexcept { return self(dev)->stats_json(buf, len); }
void op_destroy(void* dev) noexcept { delete self(dev); }
void op_disconnect(void* dev) noexcept { self(dev)->disconnect(); }
uint32_t op_flush(void* dev, uint16_t q) noexcept { return self(dev)->flush(q); }
int op_metrics(void* dev, vdh_metric_emit_fn emit, void* ctx) noexcept {
    return self(dev)->metrics(emit, ctx);
}
void op_revoke(void* dev) noexcept { self(dev)->revoke(); }
int op_get_config(void* dev, uint32_t offset, uint8_t* buf, uint32_t len) noexcept {
    return self(dev)->get_config(offset, buf, len);
}

const vdh_device_ops g_ops = {
    .struct_size = sizeof(vdh_device_ops),
    .reserved = 0,
    .get_features = nullptr,
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
    .revoke = op_revoke,
    .get_config = op_get_config,
};

int plugin_check(const char* text, size_t len, const char* origin, char* err,
                 size_t err_len) noexcept {
    try {
        std::string e;
        auto p = parse_share_profile(std::string_view(text, len), origin, "check", &e);
        SharedDirState state{};
        if (!p || (p->backend != BackendKind::Null &&
                   !prepare_shared_dir(*p, origin, /*dry_run=*/true, &state, &e))) {
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
                      void (*add)(void* ctx, const char* path, uint32_t flags), void* ctx,
                      char* err, size_t err_len) noexcept {
    try {
        std::string e;
        auto p = parse_share_profile(std::string_view(text, len), origin, "sandbox", &e);
        if (!p) {
            copy_err(e, err, err_len);
            return -EINVAL;
        }
        // The sandbox binds the share before create(): a `create: true` share is made here,
        // while the host still sees the whole file system.
        SharedDirState state{};
        if (p->backend != BackendKind::Null &&
            !prepare_shared_dir(*p, origin, /*dry_run=*/false, &state, &e)) {
            copy_err(e, err, err_len);
            return -EINVAL;
        }
        if (state == SharedDirState::Created) {
            created_by_host_paths().insert(p->shared_dir);
        }
        if (p->backend != BackendKind::Null) {
            add(ctx, p->shared_dir.c_str(), p->readonly ? VDH_HOST_PATH_READONLY : 0u);
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
        auto p = parse_share_profile(std::string_view(text, len), origin, name, &e);
        // A --check-config trial creates nothing on the host: a `create: true` share that is
        // missing is checked (dry) and its trial device gets the null backend, which opens
        // nothing; its fds are reserved as the real share's.
        const bool trial = (host->flags & VDH_HOST_CHECK_ONLY) != 0;
        SharedDirState state{};
        if (!p ||
            (p->backend != BackendKind::Null &&
             !prepare_shared_dir(*p, origin, /*dry_run=*/trial, &state, &e)) ||
            (state != SharedDirState::WillCreate && !resolve_write_path(*p, origin, &e))) {
            copy_err(e, err, err_len);
            return -EINVAL;
        }
        if (state == SharedDirState::Exists && !trial && created_by_host_paths().erase(p->shared_dir)) {
            state = SharedDirState::Created; // by host_paths(), before the sandbox
        }
        if (state != SharedDirState::Exists) {
            const std::string line =
                state == SharedDirState::Created
                    ? "created shared_dir " + p->shared_dir + " (create: true)"
                    : "shared_dir " + p->shared_dir +
                          " does not exist: it will be created at start (create: true)";
            host->log(host->host, VDH_LOG_NOTICE, name, line.c_str());
        }
        // The share's fd budget comes out of the process's: the host refuses a config whose
        // budgets cannot all be open at once.
        if (VDH_HOST_HAS(host, reserve_fds)) {
            uint64_t guest_fds = p->backend == BackendKind::Null ? 0 : p->fd_limit;
            int rc = host->reserve_fds(host_dev, guest_fds + kDeviceOverheadFds, err, err_len);
            if (rc != 0) {
                return rc;
            }
        }
        if (state == SharedDirState::WillCreate) {
            p->backend = BackendKind::Null;
        }
        auto d = VirtiofsDevice::create(host, host_dev, name, std::move(*p), &e);
        if (!d) {
            copy_err(e, err, err_len);
            return -EINVAL;
        }
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
    .virtio_device_id = kVirtioIdFs,
    .name = "virtiofs",
    .version = "1.0",
    .device_features = 0,
    .request_ctx_size = static_cast<uint32_t>(kFuseRequestCtxSize),
    .min_queues = 2,
    .create = plugin_create,
    .check_config = plugin_check,
    .host_paths = plugin_host_paths,
};

} // namespace
} // namespace vdh::virtiofs

extern "C" VDH_EXPORT const vdh_plugin_info* vdh_plugin_entry(void) {
    return &vdh::virtiofs::g_info;
}

// SPDX-License-Identifier: MIT
// The virtio-fs plugin's static side and C entry point: checking a share profile, naming the
// share's directory for the sandbox, creating a VirtiofsDevice (its profile, fd reservation
// and `create: true` directory). The plugin adapter (vdh/plugin_adapter.h) makes the C ABI
// out of VirtiofsDevice; nothing C++ crosses it.
#include <cerrno>
#include <set>
#include <string>

#include "fuse/fuse_dispatcher.h"
#include "share_profile.h"
#include "vdh/compiler.h"
#include "vdh/plugin_abi.h"
#include "vdh/plugin_adapter.h"
#include "virtiofs_device.h"

namespace vdh::virtiofs {
namespace {

constexpr uint32_t kVirtioIdFs = 26;
/// fds the device holds besides the guest's budget: the share's root, proc and mount fds,
/// and an io_uring plus its eventfd for each of up to 64 queues.
constexpr uint64_t kDeviceOverheadFds = 16 + 2 * 64;

/// Shares that host_paths() created (`create: true`), so that create(), which can log,
/// says so. Control thread only.
std::set<std::string>& created_by_host_paths() {
    static std::set<std::string> created;
    return created;
}

} // namespace

Status VirtiofsDevice::check_config(const ConfigContext& ctx) {
    std::string e;
    auto p = parse_share_profile(ctx.config, ctx.origin, "check", &e);
    SharedDirState state{};
    if (!p || (p->backend != BackendKind::Null &&
               !prepare_shared_dir(*p, ctx.origin, /*dry_run=*/true, &state, &e))) {
        return ctx.fail(EINVAL, e);
    }
    return ok();
}

Status VirtiofsDevice::host_paths(HostPathsContext& ctx) {
    std::string e;
    auto p = parse_share_profile(ctx.config, ctx.origin, "sandbox", &e);
    if (!p) {
        return ctx.fail(EINVAL, e);
    }
    // The sandbox binds the share before create(): a `create: true` share is made here,
    // while the host still sees the whole file system.
    SharedDirState state{};
    if (p->backend != BackendKind::Null &&
        !prepare_shared_dir(*p, ctx.origin, /*dry_run=*/false, &state, &e)) {
        return ctx.fail(EINVAL, e);
    }
    if (state == SharedDirState::Created) {
        created_by_host_paths().insert(p->shared_dir);
    }
    if (p->backend != BackendKind::Null) {
        ctx.add(p->shared_dir.c_str(), p->readonly ? VDH_HOST_PATH_READONLY : 0u);
    }
    return ok();
}

Result<std::unique_ptr<VirtiofsDevice>> VirtiofsDevice::create(CreateContext& ctx) {
    std::string e;
    auto p = parse_share_profile(ctx.config, ctx.origin, ctx.device_name, &e);
    // A --check-config trial creates nothing on the host: a `create: true` share that is
    // missing is checked (dry) and its trial device gets the null backend, which opens
    // nothing; its fds are reserved as the real share's.
    const bool trial = ctx.check_only();
    SharedDirState state{};
    if (!p ||
        (p->backend != BackendKind::Null &&
         !prepare_shared_dir(*p, ctx.origin, /*dry_run=*/trial, &state, &e)) ||
        (state != SharedDirState::WillCreate && !resolve_write_path(*p, ctx.origin, &e))) {
        return ctx.fail(EINVAL, e);
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
        ctx.log(VDH_LOG_NOTICE, line.c_str());
    }
    // The share's fd budget comes out of the process's: the host refuses a config whose
    // budgets cannot all be open at once.
    const uint64_t guest_fds = p->backend == BackendKind::Null ? 0 : p->fd_limit;
    VDH_TRY(ctx.reserve_fds(guest_fds + kDeviceOverheadFds));
    if (state == SharedDirState::WillCreate) {
        p->backend = BackendKind::Null;
    }
    auto d = create(ctx.host, ctx.host_dev, std::string(ctx.device_name), std::move(*p), &e);
    if (!d) {
        return ctx.fail(EINVAL, e);
    }
    return d;
}

namespace {

constexpr vdh_plugin_info kInfo = make_plugin_info<VirtiofsDevice>({
    .name = "virtiofs",
    .version = "1.0",
    .virtio_device_id = kVirtioIdFs,
    .request_ctx_size = static_cast<uint32_t>(kFuseRequestCtxSize),
    .min_queues = 2,
});

} // namespace
} // namespace vdh::virtiofs

extern "C" VDH_EXPORT const vdh_plugin_info* vdh_plugin_entry(void) {
    return &vdh::virtiofs::kInfo;
}

// SPDX-License-Identifier: MIT
// VirtiofsDevice: one virtio-fs device (a share). Ties the share profile, the filesystem
// backend, the FUSE dispatcher (session state), one io_uring engine per queue and the
// blocking pool together behind the plugin ABI. Queue 0 is hiprio (FORGETs), queues
// 1..N are request queues, possibly served by different poll lcores. Rings, eventfds and
// pool threads exist only while a frontend is connected; the FUSE session ends on DESTROY,
// on a new INIT (guest reset) and on disconnect, not when the vrings merely stop. The
// plugin adapter (vdh/plugin_adapter.h) makes the plugin ABI out of this class.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "blocking_pool.h"
#include "filesystem.h"
#include "fuse/fuse_dispatcher.h"
#include "share_profile.h"
#include "uring_engine.h"
#include "vdh/plugin_abi.h"
#include "vdh/plugin_adapter.h"

namespace vdh::virtiofs {

class VirtiofsDevice {
public:
    /// Creates the backend for \p profile. Returns nullptr with \p err set on failure.
    static std::unique_ptr<VirtiofsDevice> create(const vdh_host_api* host, void* host_dev,
                                                  std::string name, ShareProfile profile,
                                                  std::string* err);
    ~VirtiofsDevice();
    VirtiofsDevice(const VirtiofsDevice&) = delete;
    VirtiofsDevice& operator=(const VirtiofsDevice&) = delete;

    /// The plugin's static side (plugin_entry.cc), see vdh/plugin_adapter.h: checks a share
    /// profile (--check-config), names the share's directory for the sandbox (making a
    /// `create: true` one), and creates a device from its profile, reserving its fds.
    static Status check_config(const ConfigContext& ctx);
    static Status host_paths(HostPathsContext& ctx);
    static Result<std::unique_ptr<VirtiofsDevice>> create(CreateContext& ctx);

    int start(uint64_t features, const vdh_queue_info* queues, uint16_t nq);
    void stop();
    void disconnect();
    /// vdh_device_ops::revoke: the share is being removed under an attached guest. Ends the
    /// FUSE session (every inode, handle, lock and fd of the guest) and makes every later
    /// request fail with EIO, INIT included. Control thread, nothing in flight.
    void revoke();
    /// vdh_device_ops::get_config: the share's virtio_fs_config (config_space()).
    int get_config(uint32_t offset, uint8_t* buf, uint32_t len) const noexcept {
        return config_space(profile_, offset, buf, len);
    }
    /// Hot path: no alloc, no block, no throw.
    int64_t handle_request(const vdh_request* req) noexcept;
    /// End of a batch on queue \p q (lcore): submits what the batch queued for io_uring.
    uint32_t flush(uint16_t q) noexcept;
    uint32_t poll(uint16_t q) noexcept;
    int wake_fd(uint16_t q) noexcept;
    int stats_json(char* buf, size_t len) noexcept;
    /// vdh_device_ops::metrics: the dispatcher's counters (fuse_metrics.h). Any thread.
    int metrics(vdh_metric_emit_fn emit, void* ctx) noexcept;

private:
    VirtiofsDevice(const vdh_host_api* host, void* host_dev, std::string name,
                   ShareProfile profile);
    static void on_done(void* token, int64_t written);
    static void cancel_blocking(void* self, void* ctx);

    const vdh_host_api* host_;
    void* host_dev_;
    std::string name_;
    ShareProfile profile_;
    std::unique_ptr<Filesystem> fs_;
    std::unique_ptr<BlockingPool> pool_;
    std::unique_ptr<FuseDispatcher> dispatcher_;
    /// Guards changes of engines_ and dispatcher_ (control thread) against stats_json()
    /// (any thread). Lcores read both without it: they change only while no queue is served.
    std::mutex ctl_mu_;
    std::vector<std::unique_ptr<UringEngine>> engines_; ///< per queue (queue 0: none)
    UringEngineTotals retired_; ///< statistics of the engines freed at disconnect
    static const vdh_host_api* g_host_; ///< for on_done (the host API is process-wide)
};

} // namespace vdh::virtiofs

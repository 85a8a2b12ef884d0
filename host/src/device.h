// SPDX-License-Identifier: MIT
// Device: one configured virtio device and its session — its plugin instance, its queues
// on their lcores, the drain state machine, QoS and stats — independent of how the frontend
// reaches it: a Transport (vhost-user today) describes the session's memory and rings and
// notifies the guest. Lifecycle: start when the driver is ready, pause around memory-table
// and ring changes, stop on reset or disconnect. All lifecycle calls come from the control
// thread (the transport's event thread, or main during shutdown).
#pragma once

#include <atomic>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config.h"
#include "guest_memory.h"
#include "plugin_loader.h"
#include "qos_control.h"
#include "queue_runtime.h"
#include "token_bucket.h"
#include "transport.h"
#include "vdh/plugin_abi.h"

namespace vdh {

class FdBudget;
class PollLcore;

enum class DeviceState : uint8_t {
    Idle,       ///< no frontend connected
    Connected,  ///< a frontend is connected, driver not ready yet
    Running,    ///< queues are being served
    Paused,     ///< stopped around a memory-table/ring change, will resume
    /// A teardown gave up on in-flight requests (host.teardown_timeout_ms). Their queues
    /// are kept as zombies until the last late completion; until then no frontend is
    /// accepted and no session starts. Then the device recovers at the next connect
    /// attempt or session start.
    Broken,
};

const char* device_state_name(DeviceState s) noexcept;

class Device final {
public:
    static constexpr uint16_t kMaxQueues = 64;

    Device(const DeviceConfig& cfg, const Plugin* plugin, std::vector<PollLcore*> lcores);
    ~Device();
    Device(const Device&) = delete;
    Device& operator=(const Device&) = delete;

    /// How long a teardown waits for in-flight requests before it abandons them.
    void set_teardown_timeout_ms(uint32_t ms) noexcept { teardown_timeout_ms_ = ms; }

    /// The process fd budget the device's host fds and its plugin's reserve_fds() draw on
    /// (nullptr: not accounted). Everything is given back when the device is destroyed.
    void set_fd_budget(FdBudget* b) noexcept { fd_budget_ = b; }
    /// vdh_host_api::reserve_fds for this device (during create() only).
    int reserve_fds(uint64_t n, char* err, size_t err_len);

    /// Creates the plugin instance. Returns false and sets \p err on failure.
    bool create(const vdh_host_api* api, const std::string& origin, std::string* err);

    const std::string& name() const noexcept { return cfg_.name; }
    const std::string& socket() const noexcept { return cfg_.socket; }
    const DeviceConfig& config() const noexcept { return cfg_; }
    const Plugin* plugin() const noexcept { return plugin_; }
    uint64_t offered_features() const noexcept;
    /// Size of the virtio config space the plugin serves to vhost-user GET_CONFIG (ABI 1.5
    /// get_config), 0 when it serves none (then CONFIG is not offered). Control thread.
    uint32_t config_space_size() const noexcept;
    /// vhost-user GET_CONFIG: \p len bytes of the config space from \p offset into \p buf.
    /// Returns 0 or -errno. Control thread.
    int read_config(uint32_t offset, uint8_t* buf, uint32_t len);
    /// vhost-user SET_CONFIG: the driver writes \p len bytes of \p buf at \p offset of the
    /// config space, through the plugin's set_config (ABI 1.6), serialized with the
    /// lifecycle calls. Returns 0, -ENOTSUP (no config space or not writable), -ERANGE
    /// (not inside the space; the plugin is not asked) or the plugin's -errno. Control
    /// thread.
    int write_config(uint32_t offset, const uint8_t* buf, uint32_t len);
    DeviceState state() const noexcept { return state_.load(std::memory_order_acquire); }

    /// The transport that serves this device's frontend (set once, before the first
    /// connection; the device owns it).
    void set_transport(std::unique_ptr<Transport> t) noexcept { transport_ = std::move(t); }
    Transport* transport() const noexcept { return transport_.get(); }

    // --- lifecycle (control thread, called by the transport) ---
    /// A frontend connects: false (refuse it) while the device is broken and stuck
    /// requests are still outstanding; reaps the zombies that finished first.
    bool admit_frontend();
    /// Frontend connection \p conn (the transport's id for it, e.g. the vhost-user vid) is
    /// attached / gone. The transport describes the session from on_connect() on.
    void on_connect(int conn);
    void on_disconnect(int conn);
    /// The driver is ready: the session starts from the transport's description. Returns 0
    /// or -1.
    int start_session();
    /// Drain and stop; hands the ring indexes back to the transport.
    void stop_session();
    /// Pause before a message that changes memory or rings while running; resume after.
    void pause();
    void resume();
    void set_vring_enabled(uint16_t q, bool on);

    /// Changes the device's QoS limits (validated by the caller, see qos_check()). Any
    /// thread, lock-free for the lcores: each picks the new setting up at its next pass
    /// (sleeping lcores are woken for it); a running limit's debt is forgiven.
    void set_qos(const QosConfig& c);
    /// The current QoS limits. Any thread.
    QosConfig qos() const noexcept { return qos_.get(); }

    /// The device is being removed while its frontend is attached: the plugin's revoke()
    /// (ABI 1.4) makes every request fail from now on and drops what the guest held, so
    /// the guest sees errors instead of a hang. Serialized with the vhost-user lifecycle
    /// calls. False when the plugin has no revoke(), no frontend is attached, or the device
    /// is broken (then the caller disconnects it instead).
    bool revoke();
    bool revoked() const noexcept { return revoked_; }

    /// Wakes the lcore of queue \p q (plugin request). Any thread.
    void wake(uint16_t q) noexcept;

    /// Requests abandoned by a teardown that have not completed yet. Any thread.
    uint32_t stuck_requests() const;

    /// JSON object with state and per-queue counters. Any thread.
    std::string stats_json() const;
    /// Queues that had a session so far (queue_stats(q) is meaningful for q below). Any thread.
    uint16_t queues_seen() const;
    /// Queue \p q's counters, cumulative over sessions (q < kMaxQueues). Any thread.
    const QueueStats& queue_stats(uint16_t q) const noexcept { return queue_stats_[q]; }

    void* plugin_dev() const noexcept { return pdev_; }
    const vdh_device_ops* ops() const noexcept { return ops_; }
    /// The attached frontend connection's id, -1 when none is attached. Any thread.
    int connection() const noexcept { return conn_.load(std::memory_order_acquire); }

private:
    /// A queue whose in-flight requests outlived the teardown deadline.
    struct Zombie {
        std::unique_ptr<QueueRuntime> q;
        std::future<void> detached; ///< ready once its lcore let go of it
    };

    bool setup_queues(std::string* err);
    /// Drains and releases the session's queues. Returns false when the deadline passed:
    /// the stuck queues became zombies and the device is Broken.
    bool teardown_queues();
    /// Frees the zombies whose lcore let go of them; true when none is left.
    bool reap_zombies();
    /// Ends the quarantine of every guest mapping this device kept reserved.
    void release_quarantine();
    /// The plugin's optional disconnect(): drops the connection's state.
    void plugin_disconnect();
    /// Total in-flight requests of the zombies. Caller holds stats_mu_.
    uint32_t stuck_requests_locked() const;

    DeviceConfig cfg_;
    const Plugin* plugin_;
    std::vector<PollLcore*> lcores_; ///< lcores_[i] serves queues q with q % size == i
    QosControl qos_;                 ///< the live QoS setting
    /// buckets_[i]: QoS state of lcores_[i] for this device (private to that lcore while
    /// a session runs).
    std::unique_ptr<TokenBucket[]> buckets_;
    void* pdev_ = nullptr;
    const vdh_device_ops* ops_ = nullptr;
    std::atomic<DeviceState> state_{DeviceState::Idle};
    std::unique_ptr<Transport> transport_;
    std::atomic<int> conn_{-1};
    uint64_t features_ = 0;
    GuestMemory mem_;
    std::vector<TransportRegion> regions_; ///< the session's memory, as the transport gave it
    std::atomic<bool> enabled_[kMaxQueues];
    uint16_t nqueues_ = 0;
    std::vector<std::unique_ptr<QueueRuntime>> queues_;
    /// Per-queue counters, cumulative over sessions (queue index → stats).
    std::unique_ptr<QueueStats[]> queue_stats_;
    uint16_t max_queues_seen_ = 0;
    uint32_t queue_cpu_[kMaxQueues] = {};
    mutable std::mutex stats_mu_; ///< guards queues_ against stats readers. Lock order: leaf.
    uint64_t sessions_ = 0;
    uint64_t pauses_ = 0;
    uint32_t teardown_timeout_ms_ = 2000;
    FdBudget* fd_budget_ = nullptr;
    bool creating_ = false;                 ///< inside the plugin's create()
    uint64_t reserved_fds_ = 0;
    std::vector<Zombie> zombies_;           ///< guarded by stats_mu_
    std::vector<std::pair<void*, size_t>> quarantined_; ///< guest mappings kept reserved
    bool disconnect_pending_ = false;       ///< plugin disconnect() deferred while broken
    /// Serializes the lifecycle calls of the vhost-user thread with revoke() from the
    /// control socket's thread. Recursive: on_disconnect() stops the session itself.
    std::recursive_mutex life_mu_;
    std::atomic<bool> revoked_{false};
    uint64_t abandoned_total_ = 0;          ///< requests abandoned over the device's life
};

} // namespace vdh

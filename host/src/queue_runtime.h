// SPDX-License-Identifier: MIT
// QueueRuntime: everything one virtqueue needs on its poll lcore during a session — the
// ring, pre-allocated request slots (host iovecs + the plugin's per-request context), the
// completion ring for completions from other threads, and counters. Owned by a device
// session, polled only by its lcore; the control thread touches it only while it is
// detached. It knows the plugin's function table and instance and, for the guest's
// interrupts, a QueueNotifier (the transport): nothing else of Device or the transport.
// Hot path: no alloc, no block, no throw.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "qos_control.h"
#include "queue_notifier.h"
#include "token_bucket.h"
#include "vdh/compiler.h"
#include "vdh/plugin_abi.h"
#include "virtqueue.h"

struct rte_ring;

namespace vdh {

class PollLcore;
class QueueRuntime;

/// Counters readable at run time from any thread (written by the lcore only).
struct alignas(kCacheLine) QueueStats {
    std::atomic<uint64_t> requests{0};
    std::atomic<uint64_t> bytes_in{0};   ///< guest → device bytes of completed requests
    std::atomic<uint64_t> bytes_out{0};  ///< device → guest bytes written
    std::atomic<uint64_t> async{0};      ///< requests the plugin completed later
    std::atomic<uint64_t> errors{0};     ///< plugin returned -errno
    std::atomic<uint64_t> bad_chains{0}; ///< malformed chains refused
    std::atomic<uint64_t> busy_polls{0}; ///< loop iterations that found work on this queue
    std::atomic<uint64_t> idle_polls{0}; ///< loop iterations that found none
    std::atomic<uint64_t> kicks{0};      ///< guest kicks seen while sleeping
    std::atomic<uint64_t> notifies{0};   ///< interrupts sent to the guest
    std::atomic<uint64_t> notify_retries{0}; ///< notification deferred (vring lock busy)
    std::atomic<uint64_t> batches{0};    ///< passes that took requests (one plugin flush each)
    /// Passes that stopped at their limit (64 requests or the time slice) with requests still
    /// waiting in the ring: the guest keeps the ring fuller than one pass drains.
    std::atomic<uint64_t> ring_full{0};
    std::atomic<uint64_t> broken{0};     ///< 1 once the ring was found corrupt
    std::atomic<uint64_t> late_completions{0}; ///< completions after teardown gave up
    std::atomic<uint64_t> chain_errors[static_cast<int>(ChainError::Count)]{};
    std::atomic<uint64_t> qos_throttled{0}; ///< passes that left requests for the QoS limit

    void add(std::atomic<uint64_t>& c, uint64_t v = 1) noexcept {
        c.store(c.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
    }
};

/// One in-flight request. Indexed by chain id, so a guest cannot have two slots per id.
struct RequestSlot {
    QueueRuntime* queue = nullptr;
    vdh_request req{};
    uint16_t id = 0;
    uint16_t ndesc = 0;
    bool in_flight = false;
    int64_t result = 0; ///< set by a foreign thread before it enqueues the slot
};

/// Per-queue session state. Created and destroyed by its owner on the control thread.
class alignas(kCacheLine) QueueRuntime {
public:
    /// iovec capacity of one request: a 1 MiB request in 4 KiB pages plus headers and a
    /// few region splits. Longer chains are refused (counted as TooManyIovecs).
    static constexpr uint32_t kSlotIovecs = 272;

    /// \p ops and \p plugin_dev: the plugin's table and instance (first argument of every
    /// op); \p notifier interrupts the guest. All three outlive the runtime, and so does
    /// \p stats: counters accumulate across sessions.
    QueueRuntime(const vdh_device_ops* ops, void* plugin_dev, QueueNotifier* notifier,
                 uint16_t index, QueueStats& stats) noexcept
        : ops_(ops), pdev_(plugin_dev), notifier_(notifier), index_(index), stats_(stats) {}
    ~QueueRuntime();
    QueueRuntime(const QueueRuntime&) = delete;
    QueueRuntime& operator=(const QueueRuntime&) = delete;

    /// Allocates slots for \p size entries and the completion ring. Control thread.
    bool allocate(uint16_t size, uint32_t ctx_size) noexcept;

    Virtqueue& vq() noexcept { return vq_; }
    const Virtqueue& vq() const noexcept { return vq_; }
    uint16_t index() const noexcept { return index_; }
    QueueStats& stats() noexcept { return stats_; }
    const QueueStats& stats() const noexcept { return stats_; }

    void set_lcore(PollLcore* l) noexcept { lcore_ = l; }
    PollLcore* lcore() const noexcept { return lcore_; }
    void set_kick_fd(int fd) noexcept { kick_fd_ = fd; }
    int kick_fd() const noexcept { return kick_fd_; }
    void set_wake_fd(int fd) noexcept { wake_fd_ = fd; }
    int wake_fd() const noexcept { return wake_fd_; }
    /// The device's QoS setting and the bucket of this queue's lcore (shared with the
    /// device's other queues on that lcore). Control thread, before attach. Without it the
    /// queue is unlimited.
    void set_qos(const QosControl* ctl, TokenBucket* bucket) noexcept {
        qos_ = ctl;
        bucket_ = bucket;
    }
    /// TSC time at which this throttled queue (requests waiting in its ring, QoS budget
    /// spent) should be polled again; 0 when not throttled. Lcore, after prepare_sleep().
    uint64_t throttled_until() const noexcept { return throttled_until_; }

    /// Enable state from SET_VRING_ENABLE / vring_state_changed. Any thread.
    void set_enabled(bool on) noexcept { enabled_.store(on, std::memory_order_release); }
    /// Stop taking new requests (session ending). Control thread.
    void set_stopping() noexcept { stopping_.store(true, std::memory_order_release); }
    /// Teardown gave up on this queue's in-flight requests: from now on their completions
    /// only retire the slot (no used-ring write, no guest notification), because the
    /// session, its rings and the vid are gone. Control thread, after set_stopping().
    void abandon() noexcept { abandoned_.store(true, std::memory_order_release); }
    bool abandoned() const noexcept { return abandoned_.load(std::memory_order_acquire); }
    uint32_t inflight() const noexcept { return inflight_.load(std::memory_order_acquire); }

    /// One pass: plugin poll, new requests (for at most \p slice_cycles TSC cycles after
    /// the first one; 0 = no limit), the plugin's flush of that batch, completions, then
    /// one publication of the used entries and at most one guest notification. Returns
    /// the work done.
    uint32_t poll(uint64_t slice_cycles = 0) noexcept;
    /// Publishes used entries written outside this queue's own pass (a completion reaped by
    /// another queue's pass on the same lcore). The lcore calls it before letting go of a
    /// drained queue.
    void publish() noexcept;
    /// Before sleeping: arm kicks. Returns true if work is already pending (don't sleep).
    /// A throttled queue keeps kicks off and counts as idle until throttled_until().
    bool prepare_sleep() noexcept;
    /// After waking: kicks off again.
    void after_sleep() noexcept { vq_.disable_kicks(); }
    /// Completion entry for the host API (any thread).
    static void complete(RequestSlot* slot, int64_t written) noexcept;

private:
    uint32_t drain_completions() noexcept;
    template <bool kLimited>
    uint32_t take_requests(uint32_t budget, uint64_t slice_cycles, uint64_t now = 0) noexcept;
    /// take_requests() under the QoS setting of version \p version (not 0).
    uint32_t take_limited(uint64_t version, uint64_t slice_cycles) noexcept;
    void finish(RequestSlot* slot, int64_t written) noexcept;
    void flush_notify() noexcept;

    const vdh_device_ops* ops_;
    void* pdev_;
    QueueNotifier* notifier_;
    uint32_t (*flush_)(void* dev, uint16_t queue) = nullptr; ///< the plugin's, if it has one
    uint16_t index_;
    PollLcore* lcore_ = nullptr;
    Virtqueue vq_;
    int kick_fd_ = -1; ///< borrowed from the transport for the session
    int wake_fd_ = -1; ///< plugin's wake fd, or -1
    const QosControl* qos_ = &QosControl::unlimited();
    TokenBucket* bucket_ = nullptr; ///< set whenever qos_ can be limited
    uint64_t throttled_until_ = 0;
    std::atomic<bool> enabled_{true};
    std::atomic<bool> stopping_{false};
    std::atomic<bool> abandoned_{false};
    bool broken_ = false;
    bool notify_pending_ = false;
    std::atomic<uint32_t> inflight_{0};
    uint16_t slot_count_ = 0;
    std::unique_ptr<RequestSlot[]> slots_;
    /// slot_count_+1 iovec areas of kSlotIovecs each. A chain is popped into the spare
    /// area (stage_) before its id is known; accepting it swaps that area with the slot's.
    std::unique_ptr<struct iovec[]> iovs_;
    std::unique_ptr<uint16_t[]> slot_home_;
    uint16_t stage_ = 0;
    std::unique_ptr<uint8_t[]> ctx_mem_;
    std::unique_ptr<uint8_t[]> ring_mem_;
    rte_ring* done_ring_ = nullptr;
    QueueStats& stats_;
};

} // namespace vdh

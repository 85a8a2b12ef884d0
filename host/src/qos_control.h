// SPDX-License-Identifier: MIT
// QosControl: a device's current QoS setting as the poll lcores see it. Any thread may
// change it (Device::set_qos); lcores read, without locks, one word per pass (version():
// 0 while unlimited, a fresh number after every change to a limited setting) and, only when
// that word changed, the whole setting through a seqlock.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>

#include "qos_config.h"
#include "vdh/compiler.h"

namespace vdh {

class QosControl {
  public:
    explicit QosControl(const QosConfig& initial = QosConfig{}) { set(initial); }
    QosControl(const QosControl&) = delete;
    QosControl& operator=(const QosControl&) = delete;

    /// An unlimited setting that never changes (queues without a device, tests).
    static const QosControl& unlimited() noexcept {
        static const QosControl u;
        return u;
    }

    /// Publishes \p c. Any thread; concurrent writers are serialized.
    void set(const QosConfig& c) {
        std::lock_guard<std::mutex> g(mu_);
        uint64_t s = seq_.load(std::memory_order_relaxed);
        seq_.store(s + 1, std::memory_order_relaxed);
        std::atomic_thread_fence(std::memory_order_release);
        iops_.store(c.iops, std::memory_order_relaxed);
        bandwidth_.store(c.bandwidth, std::memory_order_relaxed);
        burst_ms_.store(c.burst_ms, std::memory_order_relaxed);
        seq_.store(s + 2, std::memory_order_release);
        version_.store(c.limited() ? ++last_version_ : 0, std::memory_order_release);
    }

    /// The current setting (seqlock read; retries while a writer is in the middle). Any
    /// thread; lock-free for the reader.
    QosConfig get() const noexcept {
        QosConfig c;
        for (;;) {
            uint64_t s1 = seq_.load(std::memory_order_acquire);
            if ((s1 & 1) == 0) {
                c.iops = iops_.load(std::memory_order_relaxed);
                c.bandwidth = bandwidth_.load(std::memory_order_relaxed);
                c.burst_ms = burst_ms_.load(std::memory_order_relaxed);
                std::atomic_thread_fence(std::memory_order_acquire);
                if (seq_.load(std::memory_order_relaxed) == s1) {
                    return c;
                }
            }
        }
    }

    /// 0 while unlimited; otherwise changes with every set(). Hot path: one plain load.
    uint64_t version() const noexcept { return version_.load(std::memory_order_acquire); }

  private:
    /// Read by the lcores every pass, written only by set(): its own cache line.
    alignas(kCacheLine) std::atomic<uint64_t> version_{0};
    alignas(kCacheLine) std::atomic<uint64_t> seq_{0};
    std::atomic<uint64_t> iops_{0};
    std::atomic<uint64_t> bandwidth_{0};
    std::atomic<uint32_t> burst_ms_{QosConfig::kDefaultBurstMs};
    std::mutex mu_;             ///< serializes set(); Lock order: leaf.
    uint64_t last_version_ = 0; ///< guarded by mu_
};

} // namespace vdh

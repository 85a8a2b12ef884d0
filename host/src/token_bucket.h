// SPDX-License-Identifier: MIT
// TokenBucket: the rate limiter one poll lcore applies to one device's queues it serves,
// as two generic cell rate algorithm (GCRA) schedules, one for requests and one for bytes,
// in TSC cycles. Private to its lcore (no atomics); Device owns one per lcore and splits the
// device's rates evenly over them. A request is admitted while both schedules are at most
// burst_ms ahead of now, and then charged in full (it may overdraw: a request larger than
// the burst still passes, and the following ones wait for the debt to be paid).
// Hot path: no alloc, no block, no throw.
#pragma once

#include <cstdint>

#include "qos_config.h"
#include "vdh/compiler.h"

namespace vdh {

class QosControl;

class alignas(kCacheLine) TokenBucket {
  public:
    /// Never-configured marker for seen_version_.
    static constexpr uint64_t kNoVersion = UINT64_MAX;

    /// Sets the clock rate and how many lcores share the device's rates; forgets the
    /// applied setting, so the next sync() applies the current one. Control thread, while
    /// no queue using this bucket is attached.
    void prepare(uint64_t tsc_hz, uint32_t split) noexcept {
        tsc_hz_ = tsc_hz;
        split_ = split == 0 ? 1 : split;
        seen_version_ = kNoVersion;
    }

    /// Applies \p c (divided by the split) from time \p now on. A request schedule that
    /// ran ahead of now (debt) is forgiven, so a raised limit acts at once.
    void configure(const QosConfig& c, uint64_t now) noexcept;

    /// Applies \p ctl's setting if its version is not the one applied last. Lcore.
    void sync(const QosControl& ctl, uint64_t version, uint64_t now) noexcept;

    /// Whether a request may be taken at \p now.
    bool admits(uint64_t now) const noexcept { return horizon() <= now + tau_; }

    /// Charges one request of \p bytes bytes taken at \p now.
    void charge(uint64_t now, uint64_t bytes) noexcept {
        tat_ops_ = (tat_ops_ > now ? tat_ops_ : now) + cycles_per_op_;
        if (cycles_per_byte_fp_ != 0) {
            __extension__ using Wide = unsigned __int128;
            Wide c = (static_cast<Wide>(bytes) * cycles_per_byte_fp_) >> kFracBits;
            uint64_t cost = c > kMaxCharge ? kMaxCharge : static_cast<uint64_t>(c);
            tat_bytes_ = (tat_bytes_ > now ? tat_bytes_ : now) + cost;
        }
    }

    /// The first time admits() is true again (≤ now when it already is).
    uint64_t next_admit() const noexcept {
        uint64_t h = horizon();
        return h > tau_ ? h - tau_ : 0;
    }
    /// When a throttled queue should be looked at again: half a burst after next_admit(),
    /// so that a sleeping lcore wakes for a batch of requests rather than for each one,
    /// and still before the bucket would overflow (no rate is lost).
    uint64_t wake_at() const noexcept { return next_admit() + tau_ / 2; }

    uint64_t tsc_hz() const noexcept { return tsc_hz_; }
    uint32_t split() const noexcept { return split_; }
    uint64_t cycles_per_op() const noexcept { return cycles_per_op_; }
    uint64_t burst_cycles() const noexcept { return tau_; }

  private:
    static constexpr unsigned kFracBits = 16;
    /// Bound of one request's byte charge (about a year at 4 GHz): no overflow of the
    /// schedule whatever a guest sends at the smallest rate.
    static constexpr uint64_t kMaxCharge = 1ULL << 56;

    uint64_t horizon() const noexcept { return tat_ops_ > tat_bytes_ ? tat_ops_ : tat_bytes_; }

    uint64_t tat_ops_ = 0;            ///< theoretical arrival time of the next request (cycles)
    uint64_t tat_bytes_ = 0;          ///< same for the byte schedule
    uint64_t cycles_per_op_ = 0;      ///< 0: requests unlimited
    uint64_t cycles_per_byte_fp_ = 0; ///< cycles per byte << kFracBits; 0: bytes unlimited
    uint64_t tau_ = 0;                ///< burst tolerance (cycles)
    uint64_t tsc_hz_ = 0;
    uint32_t split_ = 1;
    uint64_t seen_version_ = kNoVersion;
};

} // namespace vdh

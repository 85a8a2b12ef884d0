// SPDX-License-Identifier: MIT
// TokenBucket configuration (rate → cycles per unit). Runs on the lcore when a device's
// QoS setting changed; no allocation, no lock.
#include "token_bucket.h"

#include "qos_control.h"

namespace vdh {

void TokenBucket::configure(const QosConfig& c, uint64_t now) noexcept {
    __extension__ using Wide = unsigned __int128;
    // Each of split_ lcores gets rate/split_: one unit every split_*hz/rate cycles.
    Wide scaled = static_cast<Wide>(tsc_hz_) * split_;
    cycles_per_op_ = c.iops != 0 ? static_cast<uint64_t>(scaled / c.iops) : 0;
    if (c.iops != 0 && cycles_per_op_ == 0) {
        cycles_per_op_ = 1;
    }
    cycles_per_byte_fp_ =
        c.bandwidth != 0 ? static_cast<uint64_t>((scaled << kFracBits) / c.bandwidth) : 0;
    if (c.bandwidth != 0 && cycles_per_byte_fp_ == 0) {
        cycles_per_byte_fp_ = 1;
    }
    tau_ = static_cast<uint64_t>(static_cast<Wide>(tsc_hz_) * c.burst_ms / 1000);
    if (tat_ops_ > now) {
        tat_ops_ = now;
    }
    if (tat_bytes_ > now) {
        tat_bytes_ = now;
    }
}

void TokenBucket::sync(const QosControl& ctl, uint64_t version, uint64_t now) noexcept {
    if (VDH_LIKELY(version == seen_version_)) {
        return;
    }
    configure(ctl.get(), now);
    seen_version_ = version;
}

} // namespace vdh

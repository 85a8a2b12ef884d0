// SPDX-License-Identifier: MIT
// QosConfig: the per-device rate limits (`qos:` in the YAML, the control socket's `qos`
// command) and the parsing of byte rates such as "100MiB" shared by both. Enforcement lives
// in token_bucket.h (per lcore) and qos_control.h (the live value); this is only the value.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace vdh {

struct QosConfig {
    static constexpr uint32_t kDefaultBurstMs = 10;
    static constexpr uint32_t kMinBurstMs = 1;
    static constexpr uint32_t kMaxBurstMs = 10000;
    static constexpr uint64_t kMaxIops = 100000000;       ///< 10^8 requests/s
    static constexpr uint64_t kMinBandwidth = 1024;       ///< 1 KiB/s
    static constexpr uint64_t kMaxBandwidth = 1ULL << 40; ///< 1 TiB/s

    uint64_t iops = 0;      ///< requests per second; 0 = unlimited
    uint64_t bandwidth = 0; ///< bytes per second; 0 = unlimited
    /// How much of an idle period the device may spend at once: up to rate * burst_ms of
    /// requests and bytes pass without waiting after an idle time.
    uint32_t burst_ms = kDefaultBurstMs;

    bool limited() const noexcept { return iops != 0 || bandwidth != 0; }
    bool operator==(const QosConfig&) const = default;
};

/// Parses a byte count or rate: digits with an optional unit K, M, G, T, KiB, MiB, GiB, TiB
/// (powers of 1024) or KB, MB, GB, TB (powers of 1000), an optional "/s" after it. Returns
/// false and sets \p why when \p s is not one.
bool parse_byte_rate(std::string_view s, uint64_t* out, std::string* why);

/// Checks the ranges (iops 0..kMaxIops, bandwidth 0 or kMinBandwidth..kMaxBandwidth,
/// burst_ms kMinBurstMs..kMaxBurstMs). Returns "" when valid, else which key is wrong and
/// why ("bandwidth: ...").
std::string qos_check(const QosConfig& c);

/// {"iops":N,"bandwidth":N,"burst_ms":N} (0 = unlimited).
std::string qos_json(const QosConfig& c);

} // namespace vdh

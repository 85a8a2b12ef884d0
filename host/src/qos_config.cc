// SPDX-License-Identifier: MIT
// Byte-rate parsing, range checks and JSON of QosConfig. Cold path.
#include "qos_config.h"

#include <cctype>

namespace vdh {

bool parse_byte_rate(std::string_view s, uint64_t* out, std::string* why) {
    size_t i = 0;
    uint64_t v = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])) != 0) {
        uint64_t d = static_cast<uint64_t>(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            *why = "number too large";
            return false;
        }
        v = v * 10 + d;
        ++i;
    }
    if (i == 0) {
        *why = "expected a byte rate such as 104857600, \"100MiB\" or \"20MB/s\"";
        return false;
    }
    std::string_view unit = s.substr(i);
    while (!unit.empty() && unit.front() == ' ') {
        unit.remove_prefix(1);
    }
    if (unit.size() >= 2 && unit.substr(unit.size() - 2) == "/s") {
        unit.remove_suffix(2);
    }
    struct Unit {
        std::string_view name;
        uint64_t factor;
    };
    static constexpr Unit kUnits[] = {
        {"", 1},
        {"B", 1},
        {"K", 1ULL << 10},
        {"KiB", 1ULL << 10},
        {"KB", 1000},
        {"M", 1ULL << 20},
        {"MiB", 1ULL << 20},
        {"MB", 1000000},
        {"G", 1ULL << 30},
        {"GiB", 1ULL << 30},
        {"GB", 1000000000},
        {"T", 1ULL << 40},
        {"TiB", 1ULL << 40},
        {"TB", 1000000000000ULL},
    };
    for (const Unit& u : kUnits) {
        if (unit == u.name) {
            if (v != 0 && u.factor > UINT64_MAX / v) {
                *why = "number too large";
                return false;
            }
            *out = v * u.factor;
            return true;
        }
    }
    *why = "unknown unit \"" + std::string(unit) +
           "\" (expected K, M, G, T, KiB, MiB, GiB, TiB, KB, MB, GB or TB)";
    return false;
}

std::string qos_check(const QosConfig& c) {
    if (c.iops > QosConfig::kMaxIops) {
        return "iops: out of range: " + std::to_string(c.iops) + " (expected 0.." +
               std::to_string(QosConfig::kMaxIops) + ", 0 = unlimited)";
    }
    if (c.bandwidth != 0 &&
        (c.bandwidth < QosConfig::kMinBandwidth || c.bandwidth > QosConfig::kMaxBandwidth)) {
        return "bandwidth: out of range: " + std::to_string(c.bandwidth) +
               " bytes/s (expected 0 = unlimited, or " + std::to_string(QosConfig::kMinBandwidth) +
               ".." + std::to_string(QosConfig::kMaxBandwidth) + ")";
    }
    if (c.burst_ms < QosConfig::kMinBurstMs || c.burst_ms > QosConfig::kMaxBurstMs) {
        return "burst_ms: out of range: " + std::to_string(c.burst_ms) + " (expected " +
               std::to_string(QosConfig::kMinBurstMs) + ".." +
               std::to_string(QosConfig::kMaxBurstMs) + ")";
    }
    return "";
}

std::string qos_json(const QosConfig& c) {
    return "{\"iops\":" + std::to_string(c.iops) + ",\"bandwidth\":" + std::to_string(c.bandwidth) +
           ",\"burst_ms\":" + std::to_string(c.burst_ms) + "}";
}

} // namespace vdh

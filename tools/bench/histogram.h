// SPDX-License-Identifier: MIT
// LatencyHistogram: a fixed-size log-linear histogram of nanosecond latencies (64
// sub-buckets per power of two, so percentiles are within 1.6 %), filled per op by the
// benchmark threads without allocating and merged after the run.
#pragma once

#include <array>
#include <cstdint>

namespace vdh::bench {

class LatencyHistogram {
public:
    static constexpr int kSubBits = 6;
    static constexpr uint64_t kSub = uint64_t{1} << kSubBits;
    static constexpr int kBuckets = static_cast<int>(kSub + (64 - kSubBits) * kSub);

    /// Hot path: no alloc.
    void record(uint64_t ns) noexcept {
        counts_[index(ns)]++;
        count_++;
        sum_ += ns;
        if (ns < min_) {
            min_ = ns;
        }
        if (ns > max_) {
            max_ = ns;
        }
    }
    void merge(const LatencyHistogram& o) noexcept;
    void clear() noexcept;

    uint64_t count() const noexcept { return count_; }
    double mean_ns() const noexcept {
        return count_ == 0 ? 0.0 : static_cast<double>(sum_) / static_cast<double>(count_);
    }
    uint64_t min_ns() const noexcept { return count_ == 0 ? 0 : min_; }
    uint64_t max_ns() const noexcept { return max_; }
    /// The latency below which a fraction \p p (0..1) of the samples lie (bucket middle).
    uint64_t percentile_ns(double p) const noexcept;

private:
    static int index(uint64_t v) noexcept {
        if (v < kSub) {
            return static_cast<int>(v);
        }
        int msb = 63 - __builtin_clzll(v);
        int shift = msb - kSubBits;
        return static_cast<int>(kSub + static_cast<uint64_t>(shift) * kSub +
                                ((v >> shift) - kSub));
    }
    static uint64_t bucket_mid(int idx) noexcept;

    std::array<uint64_t, kBuckets> counts_{};
    uint64_t count_ = 0;
    uint64_t sum_ = 0;
    uint64_t min_ = UINT64_MAX;
    uint64_t max_ = 0;
};

} // namespace vdh::bench

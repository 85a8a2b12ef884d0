// SPDX-License-Identifier: MIT
// LatencyHistogram: merging and percentile lookup.
#include "bench/histogram.h"

#include <algorithm>
#include <cmath>

namespace vdh::bench {

void LatencyHistogram::merge(const LatencyHistogram& o) noexcept {
    for (int i = 0; i < kBuckets; i++) {
        counts_[i] += o.counts_[i];
    }
    count_ += o.count_;
    sum_ += o.sum_;
    min_ = std::min(min_, o.min_);
    max_ = std::max(max_, o.max_);
}

void LatencyHistogram::clear() noexcept { *this = LatencyHistogram{}; }

uint64_t LatencyHistogram::bucket_mid(int idx) noexcept {
    if (idx < static_cast<int>(kSub)) {
        return static_cast<uint64_t>(idx);
    }
    uint64_t shift = static_cast<uint64_t>(idx - static_cast<int>(kSub)) / kSub;
    uint64_t m = kSub + static_cast<uint64_t>(idx - static_cast<int>(kSub)) % kSub;
    uint64_t lo = m << shift;
    uint64_t width = uint64_t{1} << shift;
    return lo + width / 2;
}

uint64_t LatencyHistogram::percentile_ns(double p) const noexcept {
    if (count_ == 0) {
        return 0;
    }
    p = std::clamp(p, 0.0, 1.0);
    auto rank = static_cast<uint64_t>(std::ceil(p * static_cast<double>(count_)));
    rank = std::max<uint64_t>(rank, 1);
    uint64_t seen = 0;
    for (int i = 0; i < kBuckets; i++) {
        seen += counts_[i];
        if (seen >= rank) {
            return std::clamp(bucket_mid(i), min_, max_);
        }
    }
    return max_;
}

} // namespace vdh::bench

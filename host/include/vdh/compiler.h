// SPDX-License-Identifier: MIT
// Small compiler helpers shared by the host and plugins: branch hints, cache-line size.
#pragma once

#include <cstddef>

#define VDH_LIKELY(x) __builtin_expect(!!(x), 1)
#define VDH_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define VDH_COLD __attribute__((cold))
#define VDH_EXPORT __attribute__((visibility("default")))

namespace vdh {
inline constexpr std::size_t kCacheLine = 64;
} // namespace vdh

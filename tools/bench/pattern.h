// SPDX-License-Identifier: MIT
// Data pattern of the benchmark files: every 8-byte word is a hash of its file offset and
// a stamp, so any range can be produced or checked on its own. Prepared files hold stamp
// 0; --verify writes use a per-op stamp and read the range back.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace vdh::bench {

/// The word at file offset \p offset (a multiple of 8) for \p stamp.
constexpr uint64_t pattern_word(uint64_t offset, uint64_t stamp) noexcept {
    uint64_t x = offset ^ (stamp * 0x9E3779B97F4A7C15ULL) ^ 0x5BD1E995A5A5A5A5ULL;
    x ^= x >> 33;
    x *= 0xFF51AFD7ED558CCDULL;
    x ^= x >> 33;
    return x;
}

/// Fills \p len bytes (multiple of 8) for file offset \p offset (multiple of 8).
inline void fill_pattern(uint8_t* dst, uint64_t offset, size_t len, uint64_t stamp) noexcept {
    for (size_t i = 0; i + 8 <= len; i += 8) {
        uint64_t w = pattern_word(offset + i, stamp);
        std::memcpy(dst + i, &w, 8);
    }
}

/// Index of the first byte of \p src that differs from the pattern, or \p len if none.
inline size_t check_pattern(const uint8_t* src, uint64_t offset, size_t len,
                            uint64_t stamp) noexcept {
    for (size_t i = 0; i + 8 <= len; i += 8) {
        uint64_t w = pattern_word(offset + i, stamp);
        if (std::memcmp(src + i, &w, 8) != 0) {
            return i;
        }
    }
    return len;
}

} // namespace vdh::bench

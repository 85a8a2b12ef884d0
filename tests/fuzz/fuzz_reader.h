// SPDX-License-Identifier: MIT
// FuzzReader: reads a fuzz input front to back as little-endian integers and byte runs,
// yielding zeros once the input is used up. The fuzz targets decode their inputs with it
// so that hand-written seeds (tests/fuzz/make_seeds.py) have a simple forward layout.
// libFuzzer's FuzzedDataProvider takes integers from the end, which makes seeds opaque.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace vdh::fuzz {

class FuzzReader {
  public:
    FuzzReader(const uint8_t* data, size_t size) noexcept : p_(data), end_(data + size) {}

    bool empty() const noexcept { return p_ == end_; }
    size_t remaining() const noexcept { return static_cast<size_t>(end_ - p_); }

    /// The next sizeof(T) bytes as a little-endian integer (missing bytes read as 0).
    template <typename T> T take() noexcept {
        uint64_t v = 0;
        for (size_t i = 0; i < sizeof(T); ++i) {
            if (p_ != end_) {
                v |= static_cast<uint64_t>(*p_++) << (8 * i);
            }
        }
        return static_cast<T>(v);
    }
    uint8_t u8() noexcept { return take<uint8_t>(); }
    uint16_t u16() noexcept { return take<uint16_t>(); }
    uint32_t u32() noexcept { return take<uint32_t>(); }
    uint64_t u64() noexcept { return take<uint64_t>(); }

    /// Up to \p n bytes (fewer at the end of the input); returns how many were copied.
    size_t bytes(void* out, size_t n) noexcept {
        size_t k = std::min(n, remaining());
        if (k > 0) {
            std::memcpy(out, p_, k);
        }
        p_ += k;
        return k;
    }
    /// Skips up to \p n bytes and returns where they start (valid for the returned count).
    const uint8_t* view(size_t n, size_t* got) noexcept {
        const uint8_t* at = p_;
        *got = std::min(n, remaining());
        p_ += *got;
        return at;
    }

  private:
    const uint8_t* p_;
    const uint8_t* end_;
};

} // namespace vdh::fuzz

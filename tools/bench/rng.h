// SPDX-License-Identifier: MIT
// Rng: the load loops' cheap per-thread randomness (xorshift64*), for offsets and names.
// Not for anything that needs quality or secrecy.
#pragma once

#include <cstdint>

namespace vdh::bench {

/// xorshift64*; the state must not be 0. Hot path: no alloc.
struct Rng {
    uint64_t s;
    uint64_t next() noexcept {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        return s * 0x2545F4914F6CDD1DULL;
    }
    uint64_t below(uint64_t n) noexcept { return n == 0 ? 0 : next() % n; }
};

} // namespace vdh::bench

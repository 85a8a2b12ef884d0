// SPDX-License-Identifier: MIT
// FUZZ_CHECK: the fuzz targets' contract checks. A broken check prints where and traps, so
// libFuzzer records the input as a crash like a sanitizer finding. has_position_prefix: the
// config loaders' error contract ("file:line:column: ...").
#pragma once

#include <cstddef>
#include <cstdio>
#include <string_view>

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            std::fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond);     \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

namespace vdh::fuzz {

/// Whether \p msg starts with "ORIGIN:L:C:" with L and C decimal: the position every
/// config error must name.
inline bool has_position_prefix(std::string_view msg, std::string_view origin) {
    if (msg.substr(0, origin.size()) != origin || msg.substr(origin.size(), 1) != ":") {
        return false;
    }
    size_t i = origin.size() + 1;
    for (int field = 0; field < 2; ++field) {
        size_t digits = 0;
        while (i < msg.size() && msg[i] >= '0' && msg[i] <= '9') {
            ++i;
            ++digits;
        }
        if (digits == 0 || i >= msg.size() || msg[i] != ':') {
            return false;
        }
        ++i;
    }
    return true;
}

} // namespace vdh::fuzz

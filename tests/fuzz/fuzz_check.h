// SPDX-License-Identifier: MIT
// FUZZ_CHECK: the fuzz targets' contract checks. A broken check prints where and traps, so
// libFuzzer records the input as a crash like a sanitizer finding.
#pragma once

#include <cstdio>

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            std::fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond);     \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

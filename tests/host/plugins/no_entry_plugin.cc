// SPDX-License-Identifier: MIT
// Test plugin without the entry point: the loader must say which symbol is missing.
#include "vdh/compiler.h"

extern "C" VDH_EXPORT int vdh_something_else(void) { return 42; }

// SPDX-License-Identifier: MIT
// Includes <rte_vhost.h> in a way that compiles as C++20: the ring structs it needs come
// from the kernel headers (via vring_defs.h), which rte_vhost.h skips under __cplusplus.
#pragma once

#include "vring_defs.h"

#include <linux/vhost.h>

#include <rte_vhost.h>

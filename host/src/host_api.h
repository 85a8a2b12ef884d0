// SPDX-License-Identifier: MIT
// The vdh_host_api table handed to plugins: logging, async completion and wake-ups,
// routed to the host's logger, QueueRuntime and Device.
#pragma once

#include "vdh/plugin_abi.h"

namespace vdh {

/// The process-wide host API table (static storage).
/// \p check_only: the table for --check-config's trial devices (VDH_HOST_CHECK_ONLY).
const vdh_host_api* host_api(bool check_only = false);

} // namespace vdh

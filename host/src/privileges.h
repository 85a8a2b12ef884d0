// SPDX-License-Identifier: MIT
// Process credentials at start-up: supplementary groups are dropped so that nothing the
// daemon creates (in a setgid directory, say) can inherit privileges through them (the
// CVE-2022-0358 class), and whether the process may raise RLIMIT_NOFILE's hard limit.
#pragma once

#include <string>

namespace vdh {

/// setgroups(0, NULL). When that is not permitted (an unprivileged process) and the
/// process has supplementary groups, returns false with a message; with none, true.
bool drop_supplementary_groups(std::string* err);

/// True when the process has CAP_SYS_RESOURCE in its effective set (it may raise hard
/// resource limits).
bool has_cap_sys_resource();

} // namespace vdh

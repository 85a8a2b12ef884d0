// SPDX-License-Identifier: MIT
// Setting up a plugin queue's io_uring on its poll lcore, the same way for every plugin: the
// ring (SINGLE_ISSUER when the kernel has it), the eventfd that wakes the lcore on a
// completion, and the io-wq worker CPUs moved off the poll CPU (traps.md #1). Only the
// one-time setup lives here; submission and reaping stay in each plugin's own engine.
#pragma once

#include <liburing.h>
#include <sched.h>

#include <cstdint>

#include "vdh/result.h"
#include "vdh/unique_fd.h"

namespace vdh {

/// Ring size a plugin asks for, clamped to [8, 4096] entries.
constexpr uint32_t clamp_ring_entries(uint32_t entries) noexcept {
    return entries < 8 ? 8 : entries > 4096 ? 4096 : entries;
}

/// Non-blocking, close-on-exec eventfd to register with a ring (the queue's wake fd).
Result<UniqueFd> make_ring_eventfd() noexcept;

/// Every online CPU except `poll_cpu`: where io-wq workers may run. Empty on a 1-CPU host.
cpu_set_t iowq_cpus_except(uint32_t poll_cpu) noexcept;

/// Initialises `ring` on the calling thread, which must be the only one that submits to it:
/// `entries` SQEs with IORING_SETUP_SINGLE_ISSUER (6.0+; without it on older kernels),
/// `efd` registered for completions, and the workers moved to iowq_cpus_except(poll_cpu)
/// (skipped when that set is empty; a refusal there is ignored). On false the ring is not
/// initialised and must not be exited.
bool init_poll_ring(struct io_uring* ring, uint32_t entries, int efd, uint32_t poll_cpu) noexcept;

} // namespace vdh

// SPDX-License-Identifier: MIT
// A plugin queue's io_uring setup on its poll lcore (see vdh/poll_ring.h; shared by the
// virtio-fs and virtio-blk plugins).
#include "vdh/poll_ring.h"

#include <sys/eventfd.h>
#include <unistd.h>

namespace vdh {

Result<UniqueFd> make_ring_eventfd() noexcept {
    return UniqueFd::from_syscall(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
}

cpu_set_t iowq_cpus_except(uint32_t poll_cpu) noexcept {
    cpu_set_t mask;
    CPU_ZERO(&mask);
    const long n = sysconf(_SC_NPROCESSORS_ONLN);
    for (long c = 0; c < n && c < CPU_SETSIZE; ++c) {
        if (static_cast<uint32_t>(c) != poll_cpu) {
            CPU_SET(c, &mask);
        }
    }
    return mask;
}

bool init_poll_ring(struct io_uring* ring, uint32_t entries, int efd, uint32_t poll_cpu) noexcept {
    // Created on the lcore: the thread that submits owns io_uring's worker pool. Only this
    // thread ever submits: SINGLE_ISSUER lets the kernel skip the submission lock (6.0+;
    // older kernels refuse the flag, so fall back). COOP_TASKRUN is not used: its task work
    // would not wake the lcore while it sleeps in epoll on the eventfd.
    if (io_uring_queue_init(entries, ring, IORING_SETUP_SINGLE_ISSUER) != 0 &&
        io_uring_queue_init(entries, ring, 0) != 0) {
        return false;
    }
    if (io_uring_register_eventfd(ring, efd) != 0) {
        io_uring_queue_exit(ring);
        return false;
    }
    // io-wq workers inherit this thread's pinning to the poll CPU (traps.md #1): give them
    // every other CPU, so a punted read or write does not compete with the busy-polling lcore.
    cpu_set_t mask = iowq_cpus_except(poll_cpu);
    if (CPU_COUNT(&mask) > 0) {
        io_uring_register_iowq_aff(ring, sizeof(mask), &mask);
    }
    return true;
}

} // namespace vdh

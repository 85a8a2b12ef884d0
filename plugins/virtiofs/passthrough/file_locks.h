// SPDX-License-Identifier: MIT
// FileLocks: the guest's file locks on host files, for PassthroughFs. POSIX locks are
// OFD locks on one fd per (inode, lock_owner) (OwnerLockFds, kept in the inode), released
// by FLUSH of that owner (close semantics) and when the inode is forgotten. flock() uses
// the open handle's fd. A blocking SETLKW waits by retrying the non-blocking call every
// few ms (1 ms backing off to 10 ms) on a condition variable that interrupt() and
// cancel_all() signal. This was chosen over a real F_OFD_SETLKW interrupted by a signal:
// that needs a process-wide signal handler installed by a plugin inside a DPDK host and a
// careful race around entering the syscall, whereas polling is self-contained. Its costs:
// wake-up latency of up to 10 ms after the lock is freed and no FIFO fairness between
// waiters (OFD locks have no deadlock detection either way).
// Not for finding inodes or open files (the caller passes them) or the lock options.
#pragma once

#include <linux/fuse.h>

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

#include "fd_budget.h"
#include "vdh/result.h"
#include "vdh/unique_fd.h"

namespace vdh::virtiofs::passthrough {

class InodeData;
class InodeStore;

/// An OFD lock fd opened for one lock_owner of the guest (POSIX locks are emulated with
/// OFD locks: one open file description per owner, so owners do not share locks).
struct LockOwnerFd {
    uint64_t owner = 0;
    UniqueFd fd;
    FdSlot slot;
};

/// The lock fds of one inode's owners; part of InodeData, dropped with it.
struct OwnerLockFds {
    /// Lock order: leaf. Never taken while holding InodeStore's map lock.
    std::mutex mutex;
    std::vector<LockOwnerFd> fds; ///< guarded by mutex
};

class FileLocks {
public:
    /// \p store opens the owners' lock fds, charged to \p budget; both outlive this.
    FileLocks(const InodeStore& store, GuestFdBudget& budget) noexcept
        : store_(store), budget_(budget) {}
    FileLocks(const FileLocks&) = delete;
    FileLocks& operator=(const FileLocks&) = delete;

    /// GETLK of a POSIX lock on \p inode: the lock that would conflict with \p in's for
    /// its owner (type F_UNLCK: none). EINVAL for a bad range or an F_UNLCK query.
    Result<fuse_lk_out> get_posix(InodeData& inode, const fuse_lk_in& in);
    /// SETLK (\p sleep false: EAGAIN on conflict) or SETLKW of a POSIX lock on \p inode
    /// for in.owner; request \p unique can be interrupted while it waits.
    Status set_posix(uint64_t unique, InodeData& inode, const fuse_lk_in& in, bool sleep);
    /// flock() (lock type \p type: F_RDLCK, F_WRLCK, F_UNLCK) on an open file's \p fd.
    Status set_flock(uint64_t unique, int fd, uint32_t type, bool sleep);
    /// FLUSH by \p owner: closing any fd of the file drops the owner's POSIX locks on it.
    static void drop_owner(InodeData& inode, uint64_t owner);

    /// Cancels the wait of request \p unique (it fails with EINTR); false if none waits.
    bool interrupt(uint64_t unique);
    /// Cancels every wait (end of session).
    void cancel_all();

private:
    /// A blocked SETLKW (or blocking flock) that interrupt() can cancel.
    struct Waiter {
        uint64_t unique = 0;
        bool cancelled = false;
    };

    /// Applies one POSIX lock request for \p owner on \p inode without blocking: 0 or an
    /// errno. Opens the owner's OFD fd on first use.
    int posix_lock_once(InodeData& inode, uint64_t owner, struct flock& fl);
    /// Retries \p try_once (returns 0 or an errno) until it stops reporting contention or
    /// the request is interrupted (EINTR).
    template <typename F>
    Status wait_for_lock(uint64_t unique, F&& try_once);

    const InodeStore& store_;
    GuestFdBudget& budget_;
    // Lock order: leaf; protects waiters_. Never held across a syscall that can block.
    std::mutex waiters_mutex_;
    std::condition_variable waiters_cv_;
    std::vector<Waiter*> waiters_; // guarded by waiters_mutex_
};

} // namespace vdh::virtiofs::passthrough

// SPDX-License-Identifier: MIT
// FileLocks: POSIX locks as per-owner OFD locks, flock() on open files, and the
// interruptible wait of blocking lock requests (see file_locks.h).

#include "file_locks.h"

#include <fcntl.h>
#include <stdint.h>
#include <sys/file.h>

#include <algorithm>
#include <chrono>
#include <new>

#include "inode_store.h"
#include "vdh/scope_exit.h"

namespace vdh::virtiofs::passthrough {

namespace {

/// fuse_file_lock → struct flock (whole-file when end is OFFSET_MAX).
Result<struct flock> to_flock(const fuse_file_lock& lk) {
    if (lk.type != F_RDLCK && lk.type != F_WRLCK && lk.type != F_UNLCK) {
        return make_err(EINVAL);
    }
    constexpr uint64_t kOffsetMax = static_cast<uint64_t>(INT64_MAX);
    if (lk.start > kOffsetMax || lk.end < lk.start) {
        return make_err(EINVAL);
    }
    struct flock fl{};
    fl.l_type = static_cast<short>(lk.type);
    fl.l_whence = SEEK_SET;
    fl.l_start = static_cast<off_t>(lk.start);
    fl.l_len = lk.end >= kOffsetMax ? 0 : static_cast<off_t>(lk.end - lk.start + 1);
    fl.l_pid = 0;
    return fl;
}

} // namespace

int FileLocks::posix_lock_once(InodeData& inode, uint64_t owner, struct flock& fl) {
    std::lock_guard<std::mutex> g(inode.locks.mutex);
    int fd = -1;
    for (auto& lf : inode.locks.fds) {
        if (lf.owner == owner) {
            fd = lf.fd.get();
            break;
        }
    }
    if (fd < 0) {
        if (fl.l_type == F_UNLCK) {
            return 0; // nothing locked by this owner
        }
        auto slot = budget_.acquire();
        if (!slot) {
            return slot.error();
        }
        // One open file description per owner. Write locks need a writable fd.
        auto opened = store_.open(inode, O_RDWR | O_NONBLOCK);
        if (!opened && fl.l_type == F_RDLCK &&
            (opened.error() == EROFS || opened.error() == EACCES || opened.error() == EISDIR)) {
            opened = store_.open(inode, O_RDONLY | O_NONBLOCK);
        }
        if (!opened) {
            return opened.error();
        }
        try {
            inode.locks.fds.push_back(LockOwnerFd{owner, std::move(*opened), std::move(*slot)});
        } catch (const std::bad_alloc&) {
            return ENOMEM;
        }
        fd = inode.locks.fds.back().fd.get();
    }
    if (::fcntl(fd, F_OFD_SETLK, &fl) < 0) {
        return errno;
    }
    return 0;
}

template <typename F>
Status FileLocks::wait_for_lock(uint64_t unique, F&& try_once) {
    int err = try_once();
    if (err == 0) {
        return ok();
    }
    if (err != EAGAIN && err != EACCES && err != EWOULDBLOCK) {
        return make_err(err);
    }
    Waiter w;
    w.unique = unique;
    {
        std::lock_guard<std::mutex> g(waiters_mutex_);
        try {
            waiters_.push_back(&w);
        } catch (const std::bad_alloc&) {
            return make_err(ENOMEM);
        }
    }
    ScopeExit unregister([&] {
        std::lock_guard<std::mutex> g(waiters_mutex_);
        waiters_.erase(std::find(waiters_.begin(), waiters_.end(), &w));
    });
    auto delay = std::chrono::milliseconds(1);
    for (;;) {
        {
            std::unique_lock<std::mutex> lk(waiters_mutex_);
            waiters_cv_.wait_for(lk, delay, [&] { return w.cancelled; });
            if (w.cancelled) {
                return make_err(EINTR);
            }
        }
        err = try_once();
        if (err == 0) {
            return ok();
        }
        if (err != EAGAIN && err != EACCES && err != EWOULDBLOCK) {
            return make_err(err);
        }
        delay = std::min(delay * 2, std::chrono::milliseconds(10));
    }
}

Result<fuse_lk_out> FileLocks::get_posix(InodeData& inode, const fuse_lk_in& in) {
    auto converted = to_flock(in.lk);
    if (!converted) {
        return make_err(converted.error());
    }
    struct flock fl = *converted;
    if (fl.l_type == F_UNLCK) {
        return make_err(EINVAL);
    }
    {
        // Query through the owner's own description if it has one (its own locks do not
        // conflict); otherwise any fresh description sees every lock as another owner's.
        std::lock_guard<std::mutex> g(inode.locks.mutex);
        int fd = -1;
        for (auto& lf : inode.locks.fds) {
            if (lf.owner == in.owner) {
                fd = lf.fd.get();
            }
        }
        UniqueFd temp;
        if (fd < 0) {
            auto opened = store_.open(inode, O_RDONLY | O_NONBLOCK);
            if (!opened) {
                return make_err(opened.error());
            }
            temp = std::move(*opened);
            fd = temp.get();
        }
        if (::fcntl(fd, F_OFD_GETLK, &fl) < 0) {
            return errno_err();
        }
    }
    fuse_lk_out out{};
    out.lk.type = static_cast<uint32_t>(fl.l_type);
    if (fl.l_type != F_UNLCK) {
        out.lk.start = static_cast<uint64_t>(fl.l_start);
        out.lk.end = fl.l_len == 0 ? static_cast<uint64_t>(INT64_MAX)
                                   : static_cast<uint64_t>(fl.l_start + fl.l_len - 1);
        out.lk.pid = fl.l_pid > 0 ? static_cast<uint32_t>(fl.l_pid) : 0;
    }
    return out;
}

Status FileLocks::set_posix(uint64_t unique, InodeData& inode, const fuse_lk_in& in,
                            bool sleep) {
    auto converted = to_flock(in.lk);
    if (!converted) {
        return make_err(converted.error());
    }
    const struct flock fl = *converted;
    const uint64_t owner = in.owner;
    auto once = [this, &inode, owner, fl]() -> int {
        struct flock copy = fl;
        return posix_lock_once(inode, owner, copy);
    };
    if (!sleep || fl.l_type == F_UNLCK) {
        int err = once();
        if (err == EACCES) {
            err = EAGAIN;
        }
        return err == 0 ? ok() : make_err(err);
    }
    return wait_for_lock(unique, once);
}

Status FileLocks::set_flock(uint64_t unique, int fd, uint32_t type, bool sleep) {
    int op;
    switch (type) {
    case F_RDLCK: op = LOCK_SH; break;
    case F_WRLCK: op = LOCK_EX; break;
    case F_UNLCK: op = LOCK_UN; break;
    default: return make_err(EINVAL);
    }
    auto once = [fd, op]() -> int { return ::flock(fd, op | LOCK_NB) < 0 ? errno : 0; };
    if (!sleep || op == LOCK_UN) {
        int err = once();
        return err == 0 ? ok() : make_err(err == EWOULDBLOCK ? EAGAIN : err);
    }
    return wait_for_lock(unique, once);
}

void FileLocks::drop_owner(InodeData& inode, uint64_t owner) {
    LockOwnerFd victim; // closed after the lock is released
    std::lock_guard<std::mutex> g(inode.locks.mutex);
    auto& v = inode.locks.fds;
    for (auto it = v.begin(); it != v.end(); ++it) {
        if (it->owner == owner) {
            victim = std::move(*it);
            v.erase(it);
            break;
        }
    }
}

bool FileLocks::interrupt(uint64_t unique) {
    bool found = false;
    {
        std::lock_guard<std::mutex> g(waiters_mutex_);
        for (auto* w : waiters_) {
            if (w->unique == unique) {
                w->cancelled = true;
                found = true;
            }
        }
    }
    if (found) {
        waiters_cv_.notify_all();
    }
    return found;
}

void FileLocks::cancel_all() {
    {
        std::lock_guard<std::mutex> g(waiters_mutex_);
        for (auto* w : waiters_) {
            w->cancelled = true;
        }
    }
    waiters_cv_.notify_all();
}

} // namespace vdh::virtiofs::passthrough

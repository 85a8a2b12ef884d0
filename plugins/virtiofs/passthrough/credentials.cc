// SPDX-License-Identifier: MIT
// Raw-syscall credential switching (setfsuid/setfsgid/setgroups/capset act on the
// calling thread only when invoked directly; glibc's wrappers of setgroups, setuid & co.
// signal every thread to keep POSIX process-wide semantics).

#include "credentials.h"

#include <linux/capability.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>

namespace vdh::virtiofs::passthrough {

namespace {

uid_t current_fsuid() noexcept {
    // setfsuid(-1) always fails and returns the current value.
    return static_cast<uid_t>(::syscall(SYS_setfsuid, static_cast<uid_t>(-1)));
}

gid_t current_fsgid() noexcept {
    return static_cast<gid_t>(::syscall(SYS_setfsgid, static_cast<gid_t>(-1)));
}

bool set_fsuid(uid_t uid) noexcept {
    ::syscall(SYS_setfsuid, uid);
    return current_fsuid() == uid;
}

bool set_fsgid(gid_t gid) noexcept {
    ::syscall(SYS_setfsgid, gid);
    return current_fsgid() == gid;
}

} // namespace

Result<ScopedCredentials> ScopedCredentials::enter(uint32_t uid, uint32_t gid,
                                                   const uint32_t* supp_group) noexcept {
    ScopedCredentials c;
    c.old_uid_ = current_fsuid();
    c.old_gid_ = current_fsgid();
    if (c.old_uid_ == uid && c.old_gid_ == gid && supp_group == nullptr) {
        return c; // nothing to switch
    }
    c.active_ = true;

    // Save and clear the supplementary groups of this thread.
    long n = ::syscall(SYS_getgroups, 0, nullptr);
    if (n < 0) {
        c.active_ = false;
        return errno_err();
    }
    gid_t* save = c.inline_groups_;
    if (n > kInlineGroups) {
        c.heap_groups_.reset(new (std::nothrow) gid_t[static_cast<size_t>(n)]);
        if (!c.heap_groups_) {
            c.active_ = false;
            return make_err(ENOMEM);
        }
        save = c.heap_groups_.get();
    }
    n = ::syscall(SYS_getgroups, n, save);
    if (n < 0) {
        c.active_ = false;
        return errno_err();
    }
    c.ngroups_ = static_cast<int>(n);
    if (supp_group != nullptr) {
        const gid_t g = *supp_group;
        if (::syscall(SYS_setgroups, 1, &g) < 0) {
            c.active_ = false;
            return errno_err();
        }
        c.groups_changed_ = true;
    } else if (c.ngroups_ != 0) {
        if (::syscall(SYS_setgroups, 0, nullptr) < 0) {
            c.active_ = false;
            return errno_err();
        }
        c.groups_changed_ = true;
    }
    if (!set_fsgid(gid) || !set_fsuid(uid)) {
        c.restore();
        c.active_ = false;
        return make_err(EPERM);
    }
    return c;
}

ScopedCredentials::ScopedCredentials(ScopedCredentials&& o) noexcept
    : active_(o.active_), groups_changed_(o.groups_changed_), old_uid_(o.old_uid_),
      old_gid_(o.old_gid_), ngroups_(o.ngroups_), heap_groups_(std::move(o.heap_groups_)) {
    std::memcpy(inline_groups_, o.inline_groups_, sizeof(inline_groups_));
    o.active_ = false;
    o.groups_changed_ = false;
}

ScopedCredentials::~ScopedCredentials() {
    if (active_) {
        restore();
    }
}

void ScopedCredentials::restore() noexcept {
    int saved = errno;
    set_fsuid(old_uid_);
    set_fsgid(old_gid_);
    if (groups_changed_) {
        const gid_t* list = heap_groups_ ? heap_groups_.get() : inline_groups_;
        ::syscall(SYS_setgroups, ngroups_, list);
        groups_changed_ = false;
    }
    active_ = false;
    errno = saved;
}

namespace {

constexpr unsigned int kFsetidBit = 1U << CAP_FSETID; // CAP_FSETID (4) is in word 0

bool cap_get(struct __user_cap_data_struct (&data)[2]) noexcept {
    struct __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
    return ::syscall(SYS_capget, &hdr, data) == 0;
}

bool cap_set(struct __user_cap_data_struct (&data)[2]) noexcept {
    struct __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
    return ::syscall(SYS_capset, &hdr, data) == 0;
}

} // namespace

ScopedDropFsetid::ScopedDropFsetid() noexcept {
    int saved = errno;
    struct __user_cap_data_struct data[2]{};
    if (!cap_get(data)) {
        ok_ = false;
    } else if ((data[0].effective & kFsetidBit) != 0) {
        data[0].effective &= ~kFsetidBit;
        if (cap_set(data)) {
            dropped_ = true;
        } else {
            ok_ = false;
        }
    }
    errno = saved;
}

ScopedDropFsetid::~ScopedDropFsetid() {
    if (!dropped_) {
        return;
    }
    int saved = errno;
    struct __user_cap_data_struct data[2]{};
    if (cap_get(data)) {
        data[0].effective |= kFsetidBit;
        (void)cap_set(data);
    }
    errno = saved;
}

Result<ScopedUmask> ScopedUmask::enter(uint32_t mask) noexcept {
    VDH_TRY(prepare_thread_for_creates());
    ScopedUmask u;
    ::umask(static_cast<mode_t>(mask & 0777));
    u.active_ = true;
    return u;
}

ScopedUmask::~ScopedUmask() {
    if (active_) {
        ::umask(0); // this thread's own fs_struct: prepare_thread_for_creates() made it 0
    }
}

Status prepare_thread_for_creates() noexcept {
    thread_local int state = 0; // 0: not yet, 1: done, -errno: failed
    if (state == 1) {
        return ok();
    }
    if (state < 0) {
        return make_err(-state);
    }
    if (::unshare(CLONE_FS) < 0) {
        state = -(errno != 0 ? errno : EPERM);
        return make_err(-state);
    }
    ::umask(0);
    state = 1;
    return ok();
}

} // namespace vdh::virtiofs::passthrough

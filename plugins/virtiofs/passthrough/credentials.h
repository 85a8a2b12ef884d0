// SPDX-License-Identifier: MIT
// Per-thread credential switching for operations done on a guest caller's behalf:
// fsuid/fsgid and supplementary groups via raw syscalls (per thread in the kernel; the
// glibc wrappers broadcast setgroups/setuid to every thread of the process), dropping
// CAP_FSETID for kill-suid writes, and a per-thread umask of 0 so that the mode the
// guest computed (mode & ~umask, FUSE_DONT_MASK style) reaches the kernel unchanged.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>

#include "vdh/result.h"

namespace vdh::virtiofs::passthrough {

/// While alive, the calling thread's fsuid/fsgid are the caller's and its supplementary
/// group list is exactly \p supp_group when given (a create's FUSE_EXT_GROUPS: the parent
/// directory's group, which the guest says the caller is in) and empty otherwise (the
/// guest's other groups are never sent), so permission checks and new-file ownership are
/// the caller's; the
/// kernel also drops the filesystem capabilities (CAP_DAC_OVERRIDE, CAP_FOWNER,
/// CAP_MKNOD, CAP_DAC_READ_SEARCH, ...) while fsuid is non-zero. Restored on destruction.
/// Must be destroyed on the thread that created it. Needs CAP_SETUID/CAP_SETGID unless
/// the ids already match the thread's (then nothing is switched).
class ScopedCredentials {
public:
    /// Switches to \p uid/\p gid. EPERM when the process may not.
    static Result<ScopedCredentials> enter(uint32_t uid, uint32_t gid,
                                           const uint32_t* supp_group = nullptr) noexcept;

    ScopedCredentials(ScopedCredentials&& o) noexcept;
    ScopedCredentials& operator=(ScopedCredentials&&) = delete;
    ScopedCredentials(const ScopedCredentials&) = delete;
    ScopedCredentials& operator=(const ScopedCredentials&) = delete;
    ~ScopedCredentials();

    bool switched() const noexcept { return active_; }

private:
    static constexpr int kInlineGroups = 32;
    ScopedCredentials() noexcept = default;
    void restore() noexcept;

    bool active_ = false;
    bool groups_changed_ = false;
    uid_t old_uid_ = 0;
    gid_t old_gid_ = 0;
    int ngroups_ = 0;
    gid_t inline_groups_[kInlineGroups] = {};
    std::unique_ptr<gid_t[]> heap_groups_; // more than kInlineGroups (rare; allocates)
};

/// While alive, CAP_FSETID is removed from the calling thread's effective set, so a
/// write or truncate clears the file's set-user-ID (and group-executable set-group-ID)
/// bits as it would for an unprivileged writer (FUSE_WRITE_KILL_SUIDGID and
/// FATTR_KILL_SUIDGID, killpriv_v2). No-op when the thread lacks CAP_FSETID already.
class ScopedDropFsetid {
public:
    ScopedDropFsetid() noexcept;
    ~ScopedDropFsetid();
    ScopedDropFsetid(const ScopedDropFsetid&) = delete;
    ScopedDropFsetid& operator=(const ScopedDropFsetid&) = delete;

    /// False when the capability could not be dropped (then the caller should clear the
    /// bits itself).
    bool ok() const noexcept { return ok_; }

private:
    bool dropped_ = false;
    bool ok_ = true;
};

/// While alive, the calling thread's umask is \p mask (restored to 0 after), so the host
/// kernel applies it to a create exactly when the parent directory has no default ACL
/// (FUSE_DONT_MASK with posix_acl: the guest leaves the umask to us). Needs
/// prepare_thread_for_creates() to have succeeded on this thread (the umask is otherwise
/// the whole process's): use enter().
class ScopedUmask {
public:
    /// EPERM-like failure of prepare_thread_for_creates() is returned as is.
    static Result<ScopedUmask> enter(uint32_t mask) noexcept;
    ScopedUmask(ScopedUmask&& o) noexcept : active_(o.active_) { o.active_ = false; }
    ScopedUmask& operator=(ScopedUmask&&) = delete;
    ScopedUmask(const ScopedUmask&) = delete;
    ScopedUmask& operator=(const ScopedUmask&) = delete;
    ~ScopedUmask();

private:
    ScopedUmask() noexcept = default;
    bool active_ = false;
};

/// Gives the calling thread its own fs_struct (unshare(CLONE_FS)) and a umask of 0, once
/// per thread; later calls are free. Needed because umask is otherwise process-wide and
/// the backend passes the guest's mode & ~umask explicitly. Threads that run create-type
/// operations should call it at start (style guide §6); the backend also calls it lazily.
/// Note that such a thread no longer follows later chdir()/chroot() of the process.
Status prepare_thread_for_creates() noexcept;

} // namespace vdh::virtiofs::passthrough

// SPDX-License-Identifier: MIT
// The mount-fd manager: open_by_handle_at() needs an fd on the handle's mount, so this
// keeps one O_RDONLY fd per mount id, shared by every handle-held inode on that mount
// (inodes own a std::shared_ptr<MountFd>; the map keeps only a std::weak_ptr), and closes
// it when the last such inode is forgotten.
//
// How a mount's fd is found, and why:
//  * Not from /proc/self/mountinfo. The open_by_handle_at(2) man page suggests opening
//    the mount point path listed there, but those paths are relative to the namespace's
//    root, not ours: inside a chroot or a container with a partial view they point
//    outside or nowhere (the Rust virtiofsd refuses to start in a chroot with "Failed to
//    find mount root for mount ID ...", traps.md #6). A path is also a race (the mount
//    point may be covered by a later mount, or renamed), it needs parsing with escapes,
//    and it reaches outside the share.
//  * Instead, from files we already hold, checked by the kernel: a candidate is reopened
//    O_RDONLY|O_NONBLOCK through /proc/self/fd/N of its pinned O_PATH fd, and kept only if
//    statx() of the new fd reports the expected file type and the same STATX_MNT_ID.
//    Candidates, in order (chosen by the inode store): (1) the parent directory of the
//    lookup when it is on the same mount, (2) the share root when it is on that mount,
//    (3) the looked-up file itself if it is a directory, or if it is a regular file and
//    no directory on its mount is known (it is then the root of its own mount, e.g. a
//    bind-mounted file, and nothing else is on that mount).
//  * Why directories first: the mount fd stays open until the last inode on the mount is
//    forgotten. A regular file as mount fd would keep that file's inode, and so its
//    blocks, allocated after the host deletes it, for as long as any inode of the mount is
//    held: a guest could choose which file's space is never reclaimed (a large deleted
//    log, say). An O_RDONLY fd on a regular file also blocks write leases on it. A
//    directory only keeps an (empty, once removed) directory inode.
//  * Trade-off vs. "first inode seen" alone (the Rust virtiofsd): using only the file
//    being looked up fails for special files and files we may not open, and then
//    handle use for that mount depends on which file the guest happened to look up first.
//    Using directories makes the outcome depend only on the mount layout, leaving one
//    reproducible fallback case (a special or unopenable file that is itself a mount
//    point, i.e. on another mount than its parent), for which the inode store falls back
//    to an O_PATH fd in `prefer` mode. Like any fd the mount fd keeps the mount busy.
//    Because a mount fd may already exist when a later lookup of the same file runs,
//    handle generation for a file can start working after it failed; the inode store
//    handles that (see inode_store.h).
//
// Thread safety: MountFdMap has its own mutex, a leaf lock (taken with no other lock
// held, never while holding the inode store's map lock). Fds are opened and closed
// outside it.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "sys.h"
#include "vdh/result.h"
#include "vdh/unique_fd.h"

namespace vdh::virtiofs::passthrough {

class MountFdMap;

/// One O_RDONLY fd on a mount. Owned through std::shared_ptr by the inodes that need it;
/// the destructor removes the map entry (if it still refers to this object) and closes.
class MountFd {
public:
    MountFd(const MountFd&) = delete;
    MountFd& operator=(const MountFd&) = delete;
    ~MountFd();

    /// Borrowed; valid while this object lives.
    int fd() const noexcept { return fd_.get(); }
    uint64_t mnt_id() const noexcept { return mnt_id_; }

private:
    friend class MountFdMap;
    struct Shared;
    MountFd(uint64_t mnt_id, UniqueFd fd, std::weak_ptr<Shared> owner) noexcept
        : mnt_id_(mnt_id), fd_(std::move(fd)), owner_(std::move(owner)) {}

    uint64_t mnt_id_;
    UniqueFd fd_;
    std::weak_ptr<Shared> owner_;
};

/// A file we hold that may provide a mount fd: a pinned fd (usually O_PATH) and its file
/// type (S_IFMT bits). Only S_IFDIR and S_IFREG candidates are tried.
struct MountFdCandidate {
    int fd = -1;
    uint32_t type = 0;
};

/// mount id → weak MountFd. Thread-safe.
class MountFdMap {
public:
    /// \p sys must outlive the map and every MountFd it hands out.
    explicit MountFdMap(Sys& sys);
    ~MountFdMap();
    MountFdMap(const MountFdMap&) = delete;
    MountFdMap& operator=(const MountFdMap&) = delete;

    /// The live mount fd for \p mnt_id, or null.
    std::shared_ptr<MountFd> find(uint64_t mnt_id) const;

    /// The live mount fd for \p mnt_id, or a new one made from the first candidate (in
    /// order) that is a directory or regular file, can be reopened O_RDONLY and is on
    /// \p mnt_id. Errors: the last candidate's errno (EACCES, ...), EXDEV if a candidate
    /// was on another mount, ENOTSUP if no candidate was of a usable type, ENOMEM.
    /// Allocates: one MountFd per mount (metadata path).
    Result<std::shared_ptr<MountFd>> get(uint64_t mnt_id, const MountFdCandidate* candidates,
                                         size_t count);

    /// Live entries (for tests and stats).
    size_t size() const;

private:
    Result<UniqueFd> open_candidate(uint64_t mnt_id, const MountFdCandidate& c);

    Sys& sys_;
    std::shared_ptr<MountFd::Shared> shared_;
};

} // namespace vdh::virtiofs::passthrough

// SPDX-License-Identifier: MIT
// InodeData: what the passthrough backend keeps per guest-visible inode — its FUSE node
// id, host identity, how it is held (an O_PATH fd, or a file handle plus the mount fd to
// open it), its lookup count and its lock owners' fds. Plain data; the rules live in
// InodeStore (and FileLocks for the lock fds).
#pragma once

#include <sys/stat.h>

#include <atomic>
#include <compare>
#include <cstdint>
#include <memory>
#include <variant>

#include "fd_budget.h"
#include "file_handle.h"
#include "file_locks.h"
#include "mount_fd.h"
#include "queue_epochs.h"
#include "vdh/unique_fd.h"

namespace vdh::virtiofs::passthrough {

/// Host identity of a file: inode number, device and mount id (statx STATX_MNT_ID; 0 if
/// the kernel cannot report it). Only meaningful while something pins the inode: a freed
/// inode number can be reused by a new file.
struct InodeIds {
    uint64_t ino = 0;
    uint64_t dev = 0;
    uint64_t mnt_id = 0;
    friend auto operator<=>(const InodeIds&, const InodeIds&) = default;
};

/// Hash of InodeIds for the by-ids index (a hash map: LOOKUP hits search it).
struct InodeIdsHash {
    size_t operator()(const InodeIds& i) const noexcept {
        uint64_t h = i.ino * 0x9E3779B97F4A7C15ULL;
        h ^= (i.dev + 0x632BE59BD9B4E019ULL) * 0xC2B2AE3D27D4EB4FULL;
        h ^= (i.mnt_id + 0x165667B19E3779F9ULL) * 0x94D049BB133111EBULL;
        return static_cast<size_t>(h ^ (h >> 31));
    }
};

/// How a handle-held inode is held: its file handle and the fd of its mount to open it
/// with (open_by_handle_at). Pins nothing.
struct OpenableHandle {
    FileHandle handle;
    std::shared_ptr<MountFd> mount_fd;
};

/// How an inode is held, fixed at creation: by an O_PATH fd (pins the inode; found again
/// by ids) or by an OpenableHandle (pins nothing; found again only by handle).
using InodeHold = std::variant<UniqueFd, OpenableHandle>;

/// One inode the guest holds.
class InodeData : public Retirable {
public:
    /// \p slot_: of the fd budget (fd-held), of the inode_limit budget (handle-held).
    InodeData(uint64_t id_, const InodeIds& ids_, uint32_t type_, InodeHold hold_,
              FdSlot slot_) noexcept
        : id(id_), ids(ids_), type(type_), hold(std::move(hold_)), fd_slot(std::move(slot_)) {}
    InodeData(const InodeData&) = delete;
    InodeData& operator=(const InodeData&) = delete;

    bool fd_held() const noexcept { return std::holds_alternative<UniqueFd>(hold); }
    /// The O_PATH fd of an fd-held inode, else -1.
    int fd() const noexcept {
        const UniqueFd* fd = std::get_if<UniqueFd>(&hold);
        return fd != nullptr ? fd->get() : -1;
    }
    /// The handle of a handle-held inode, else null.
    const OpenableHandle* handle() const noexcept { return std::get_if<OpenableHandle>(&hold); }

    const uint64_t id;    ///< FUSE node id (counter; 1 is the share root)
    const InodeIds ids;   ///< identity when created
    const uint32_t type;  ///< S_IFMT bits; a path never changes its file type
    /// Guest lookup count. Changed with atomics; see InodeStore for the removal protocol.
    std::atomic<uint64_t> refcount{0};

    const InodeHold hold;
    /// Budget unit: of the fd budget (fd-held), of the inode_limit budget (handle-held).
    const FdSlot fd_slot;

    /// The POSIX lock fds of the guest's lock owners (file_locks.h).
    OwnerLockFds locks;
};

} // namespace vdh::virtiofs::passthrough

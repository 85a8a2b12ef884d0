// SPDX-License-Identifier: MIT
// InodeData: what the passthrough backend keeps per guest-visible inode — its FUSE node
// id, host identity, how it is held (an O_PATH fd, or a file handle plus the mount fd to
// open it) and its lookup count. Plain data; the rules live in InodeStore.
#pragma once

#include <sys/stat.h>

#include <atomic>
#include <compare>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "fd_budget.h"
#include "file_handle.h"
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

/// An OFD lock fd opened for one lock_owner of the guest (POSIX locks are emulated with
/// OFD locks: one open file description per owner, so owners do not share locks).
struct LockOwnerFd {
    uint64_t owner = 0;
    UniqueFd fd;
    FdSlot slot;
};

/// One inode the guest holds. Exactly one of (fd) or (handle, mount_fd) is set, fixed at
/// creation: fd-held inodes are pinned by their O_PATH fd and may be found by ids;
/// handle-held inodes pin nothing and may be found only by handle.
class InodeData : public Retirable {
public:
    /// fd-held.
    InodeData(uint64_t id_, const InodeIds& ids_, uint32_t type_, UniqueFd fd_,
              FdSlot slot_) noexcept
        : id(id_), ids(ids_), type(type_), fd(std::move(fd_)), fd_slot(std::move(slot_)) {}
    /// handle-held.
    InodeData(uint64_t id_, const InodeIds& ids_, uint32_t type_, const FileHandle& handle_,
              std::shared_ptr<MountFd> mount_fd_, FdSlot slot_) noexcept
        : id(id_), ids(ids_), type(type_), fd_slot(std::move(slot_)), handle(handle_),
          mount_fd(std::move(mount_fd_)) {}
    InodeData(const InodeData&) = delete;
    InodeData& operator=(const InodeData&) = delete;

    bool fd_held() const noexcept { return fd.valid(); }

    const uint64_t id;    ///< FUSE node id (counter; 1 is the share root)
    const InodeIds ids;   ///< identity when created
    const uint32_t type;  ///< S_IFMT bits; a path never changes its file type
    /// Guest lookup count. Changed with atomics; see InodeStore for the removal protocol.
    std::atomic<uint64_t> refcount{0};

    const UniqueFd fd;    ///< O_PATH fd (fd-held), else invalid
    /// Budget unit: of the fd budget for fd (fd-held), of the inode_limit budget
    /// (handle-held).
    const FdSlot fd_slot;
    const std::optional<FileHandle> handle;     ///< handle-held: the handle
    const std::shared_ptr<MountFd> mount_fd;    ///< handle-held: its mount's fd

    /// Lock order: leaf. Never taken while holding InodeStore's map lock.
    std::mutex lock_mutex;
    std::vector<LockOwnerFd> lock_fds; ///< guarded by lock_mutex
};

} // namespace vdh::virtiofs::passthrough

// SPDX-License-Identifier: MIT
// InodeStore: the guest-visible inodes of one share. Maps FUSE node ids (counters; the
// share root is 1 = FUSE_ROOT_ID) to InodeData, and finds existing inodes again on lookup
// by file handle or by host ids. It decides how a new inode is held (O_PATH fd or file
// handle, per FileHandleMode), owns the mount-fd manager and charges O_PATH fds to the
// share's fd budget. Not for open files (handle_table.h) or FUSE encoding.
//
// The rules (see also the virtio-fs list thread "Add inodes_by_handle hash table"):
//  1. A handle-held inode pins nothing: its inode number may be freed and reused by
//     another file. So it is indexed ONLY by handle and is never found by (ino, dev,
//     mnt_id); a handle carries the generation and cannot be confused.
//  2. The by-ids index holds only fd-held inodes: their O_PATH fd pins the inode, so the
//     ids cannot be reused while the entry exists. A lookup that can produce a handle now
//     still consults it, because the inode may have been created earlier without a
//     handle (the handle became usable later, e.g. once a mount fd exists).
//  3. FileHandleMode::Prefer: a filesystem without handle support (EOPNOTSUPP/ENOTSUP/
//     EOVERFLOW) falls back to an O_PATH fd; so does a file whose mount has no mount fd
//     yet and that cannot provide one (special file, no permission, a mount point on
//     another mount than its parent). Those are reproducible, valid cases. Any OTHER
//     name_to_handle_at error fails the lookup, every time, so an inode never silently
//     changes how it is held. Mandatory: every failure fails the lookup (the share root
//     excepted: it is always held by the fd the share was opened with). Never: O_PATH
//     fds only.
//  4. forget() releases the fd or handle when the count reaches zero; counts saturate at
//     zero, so a bogus forget cannot underflow. Memory and fds are bounded by what the
//     guest holds.
//  5. Each O_PATH fd takes a unit of the share's GuestFdBudget; exhaustion fails the
//     lookup with ENFILE. Handle-held inodes take no fd unit (they hold no fd; the mount
//     fd is one per mount) but a unit of a second budget, the share's inode_limit, so
//     their memory stays bounded too; its exhaustion also fails the lookup with ENFILE.
// Handle-held inodes are opened with open_by_handle_at(mount_fd, O_PATH or the open
// flags) on every use; there is no cache of such fds (a cache would either pin inodes,
// breaking rule 1's point, or need its own eviction and budget accounting). The cost is
// one syscall per metadata operation on such inodes.
//
// Unknown node ids (including 0) fail with EBADF, as in virtiofsd.
//
// Threading: any thread. The maps are guarded by one std::shared_mutex (lookups of ids
// take it shared; inserting and removing take it exclusively); lookup counts are
// atomics. No fd is closed and no MountFd dropped while it is held: removed entries are
// moved out and released after unlocking.
#pragma once

#include <sys/stat.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string_view>
#include <unordered_map>

#include "fd_budget.h"
#include "file_handle.h"
#include "inode_data.h"
#include "mount_fd.h"
#include "passthrough_options.h"
#include "sys.h"
#include "vdh/result.h"
#include "vdh/unique_fd.h"

namespace vdh::virtiofs::passthrough {

inline constexpr uint64_t kRootNodeId = 1; // FUSE_ROOT_ID

/// An fd to use an inode with: borrowed from an fd-held inode, or owned (opened from a
/// handle for this use). Valid while the InodeData it came from is alive.
class InodeFd {
public:
    InodeFd() noexcept = default;
    explicit InodeFd(int borrowed) noexcept : fd_(borrowed) {}
    explicit InodeFd(UniqueFd owned) noexcept : owned_(std::move(owned)), fd_(owned_.get()) {}
    InodeFd(InodeFd&& o) noexcept : owned_(std::move(o.owned_)), fd_(std::exchange(o.fd_, -1)) {}
    InodeFd& operator=(InodeFd&& o) noexcept {
        owned_ = std::move(o.owned_);
        fd_ = std::exchange(o.fd_, -1);
        return *this;
    }
    int get() const noexcept { return fd_; }

private:
    UniqueFd owned_;
    int fd_ = -1;
};

/// A lookup's outcome: the inode (its count already incremented by one) and fresh
/// attributes of the file.
struct LookupResult {
    std::shared_ptr<InodeData> inode;
    struct statx attr {};
};

class InodeStore {
public:
    /// \p sys, \p budget (fds: fd-held inodes) and \p handle_budget (handle-held inodes)
    /// must outlive the store; so must \p epochs (may be null: no per-queue caches).
    InodeStore(Sys& sys, FileHandleMode mode, GuestFdBudget& budget,
               GuestFdBudget& handle_budget, QueueEpochs* epochs = nullptr);
    ~InodeStore();
    InodeStore(const InodeStore&) = delete;
    InodeStore& operator=(const InodeStore&) = delete;

    /// Installs the share root (node id 1), held by \p root (an O_PATH directory fd).
    /// Call once before anything else. Allocates.
    Status init_root(UniqueFd root);

    /// The inode with node id \p id, or EBADF. Takes the map lock shared; one atomic
    /// increment (shared_ptr copy), no allocation.
    Result<std::shared_ptr<InodeData>> get(uint64_t id) const;
    /// get() for one request: from \p s's queue cache when the section is active (no lock,
    /// no reference count; valid until \p s ends), else a locked get().
    /// Hot path: no alloc, no block, no throw; on a cache hit no locked instruction.
    Result<EntryRef<InodeData>> find(const EpochSection& s, uint64_t id) const;

    /// Looks up \p name in directory \p parent (\p parent_fd: an fd for it, as from
    /// path_fd()) and takes one lookup reference on the result. "." is the parent itself,
    /// ".." of the root is the root; other names are opened as one component, never
    /// following a symlink, never leaving \p parent (openat2 RESOLVE_BENEATH). Empty names
    /// and names with '/' fail with EINVAL. Must run with the daemon's own credentials.
    /// In Never mode the name is first statx'ed by name: a hit on an existing (fd-held,
    /// so pinned) inode and ENOENT are answered without opening the child.
    /// Allocates: a new inode.
    Result<LookupResult> lookup(const InodeData& parent, int parent_fd, std::string_view name);

    /// Like lookup(), for a file the caller already opened (\p path_fd, O_PATH): create,
    /// tmpfile. \p parent may be null (then the share root and the file itself are the
    /// mount-fd candidates; see decide_holding()).
    Result<LookupResult> claim(const InodeData* parent, int parent_fd, UniqueFd path_fd);

    /// Drops \p n lookup references of \p id (saturating). At zero the inode is removed and
    /// its fd or handle released. Unknown ids are ignored; the root is never removed.
    void forget(uint64_t id, uint64_t n);

    /// Takes one more lookup reference on an inode the caller holds.
    static void ref(InodeData& inode) noexcept;

    /// An O_PATH fd for \p inode (borrowed when fd-held; open_by_handle_at otherwise:
    /// ESTALE when the file is gone). Needs CAP_DAC_READ_SEARCH for handle-held inodes.
    Result<InodeFd> path_fd(const InodeData& inode) const;

    /// Opens \p inode for I/O with \p flags (O_CREAT/O_EXCL ignored): reopen through
    /// /proc/self/fd or open_by_handle_at. Only directories and regular files: ELOOP for
    /// symlinks, EBADF for special files (opening host devices or FIFOs on the guest's
    /// behalf is not allowed), checked before the open by the inode's type and after it
    /// by fstat of the new fd; the open itself is non-blocking (open_guard.h).
    Result<UniqueFd> open(const InodeData& inode, int flags) const;

    /// Drops every inode except the root (whose count is reset to 1).
    void clear();

    /// Number of inodes (root included), fd-held inodes, handle-held inodes.
    size_t size() const;
    size_t fd_held_count() const;
    size_t handle_held_count() const;

    MountFdMap& mount_fds() noexcept { return mount_fds_; }
    Sys& sys() const noexcept { return sys_; }
    FileHandleMode mode() const noexcept { return mode_; }
    const std::shared_ptr<InodeData>& root() const noexcept { return root_; }

private:
    /// How claim() holds a new inode: by its handle, or (nullopt) by its O_PATH fd.
    Result<std::optional<OpenableHandle>> decide_holding(const InodeData* parent, int parent_fd,
                                                         int fd, uint32_t type);
    /// LOOKUP hit without opening the child: statx(parent_fd, name) and, when the ids
    /// name an existing fd-held inode, that inode with one more reference. nullopt: take
    /// the open path (no match, statx failed other than ENOENT, or a mode in which
    /// handles must be made). Never mode only. Takes the map lock shared, after statx.
    Result<std::optional<LookupResult>> find_by_name(int parent_fd, const char* name);
    /// \p handle: null when the file has none.
    std::shared_ptr<InodeData> find_locked(const FileHandle* handle, const InodeIds& ids) const;
    LookupResult self_result(const std::shared_ptr<InodeData>& inode, int fd);

    Sys& sys_;
    const FileHandleMode mode_;
    GuestFdBudget& budget_;
    GuestFdBudget& handle_budget_;
    MountFdMap mount_fds_;
    std::shared_ptr<InodeData> root_;
    std::atomic<uint64_t> next_id_{kRootNodeId + 1};
    QueueEpochs* epochs_;
    /// One per queue slot of epochs_ (null without epochs_); each written by one lcore.
    std::unique_ptr<QueueLookupCache<InodeData>[]> caches_;

    // Lock order: taken before nothing. MountFdMap's mutex and InodeData::locks.mutex are
    // never acquired while this is held, and no fd is closed under it.
    mutable std::shared_mutex mutex_;
    std::unordered_map<uint64_t, std::shared_ptr<InodeData>> by_id_;  // guarded by mutex_
    std::unordered_map<InodeIds, uint64_t, InodeIdsHash> by_ids_;                             // fd-held only
    std::unordered_map<FileHandle, uint64_t, FileHandleHash> by_handle_; // handle-held only
};

/// Converts statx device numbers into one dev_t-style value for InodeIds.
uint64_t statx_dev(const struct statx& st) noexcept;

} // namespace vdh::virtiofs::passthrough

// SPDX-License-Identifier: MIT
// HandleTable: the guest's open files and directories (FUSE fh values). fh is a counter,
// never an fd number or pointer; every use is looked up and checked against the node id
// the guest names with it (EBADF otherwise). Each entry owns its fd and a unit of the
// share's fd budget; directories also carry their getdents64 stream state.
#pragma once

#include <fcntl.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>

#include "fd_budget.h"
#include "queue_epochs.h"
#include "vdh/result.h"
#include "vdh/unique_fd.h"

namespace vdh::virtiofs::passthrough {

/// Buffered getdents64 state of one open directory. Readers of one handle are
/// serialized by `mutex`; the FUSE offset of each entry is the filesystem's d_off cookie.
struct DirStream {
    static constexpr size_t kBufSize = 16 * 1024;

    std::mutex mutex;       ///< Lock order: leaf (never with a table or store lock held)
    std::unique_ptr<char[]> buf; ///< kBufSize bytes, allocated at opendir
    size_t len = 0;         ///< valid bytes in buf
    size_t pos = 0;         ///< next unread entry in buf
    uint64_t offset = 0;    ///< cookie (FUSE offset) of the entry at buf[pos]
};

/// One open file or directory. Shared (std::shared_ptr) by the table and in-flight users;
/// a queue's lookup cache may point at it without a reference (Retirable).
class HandleData : public Retirable, public std::enable_shared_from_this<HandleData> {
public:
    HandleData(uint64_t nodeid_, int flags_, UniqueFd fd_, FdSlot slot_,
               std::unique_ptr<DirStream> dir_ = nullptr) noexcept
        : nodeid(nodeid_), flags(flags_), fd(std::move(fd_)), slot(std::move(slot_)),
          dir(std::move(dir_)) {}
    HandleData(const HandleData&) = delete;
    HandleData& operator=(const HandleData&) = delete;

    /// True when the fd was opened for writing.
    bool writable() const noexcept {
        int acc = flags & O_ACCMODE;
        return acc == O_WRONLY || acc == O_RDWR;
    }

    const uint64_t nodeid; ///< the inode this handle was opened on
    const int flags;       ///< host open flags actually used
    const UniqueFd fd;
    const FdSlot slot;
    const std::unique_ptr<DirStream> dir; ///< set for opendir handles
};

/// fh → HandleData. Thread-safe (shared_mutex; lookups take it shared). Entries are
/// released outside the lock. With QueueEpochs, poll lcores look handles up in a per-queue
/// cache without the lock (find()), and removed entries are retired there.
class HandleTable {
public:
    /// \p epochs (may be null: no per-queue caches) must outlive the table.
    explicit HandleTable(QueueEpochs* epochs = nullptr);
    ~HandleTable();
    HandleTable(const HandleTable&) = delete;
    HandleTable& operator=(const HandleTable&) = delete;

    /// Stores \p h and returns its new fh (never 0). Allocates: one map node.
    Result<uint64_t> insert(std::shared_ptr<HandleData> h);
    /// The handle \p fh if it exists and belongs to \p nodeid; EBADF otherwise.
    /// Hot path: no alloc, no block (shared lock), no throw; one atomic increment.
    Result<std::shared_ptr<HandleData>> get(uint64_t fh, uint64_t nodeid) const;
    /// get() for one request: from \p s's queue cache when the section is active (no lock,
    /// no reference count; valid until \p s ends), else a locked get().
    /// Hot path: no alloc, no block, no throw; on a cache hit no locked instruction.
    Result<EntryRef<HandleData>> find(const EpochSection& s, uint64_t fh, uint64_t nodeid) const;
    /// Removes \p fh (checked like get()) and returns it so the caller controls when the
    /// fd closes (in-flight users keep it alive until they finish).
    Result<std::shared_ptr<HandleData>> remove(uint64_t fh, uint64_t nodeid);
    /// Drops every handle.
    void clear();
    size_t size() const;

private:
    // Lock order: leaf with respect to InodeStore's lock (never both held).
    mutable std::shared_mutex mutex_;
    std::unordered_map<uint64_t, std::shared_ptr<HandleData>> map_; // guarded by mutex_
    std::atomic<uint64_t> next_fh_{1};
    QueueEpochs* epochs_;
    /// One per queue slot of epochs_ (null without epochs_); each written by one lcore.
    std::unique_ptr<QueueLookupCache<HandleData>[]> caches_;
};

} // namespace vdh::virtiofs::passthrough

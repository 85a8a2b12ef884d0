// SPDX-License-Identifier: MIT
// InodeStore: lookup/claim/forget of guest inodes with the file-handle rules documented
// in inode_store.h. Everything that can block (open, statx, name_to_handle_at, mount fd
// creation) happens before the map lock is taken.

#include "inode_store.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <sys/sysmacros.h>

#include <cstring>
#include <new>
#include <vector>

#include "open_guard.h"

namespace vdh::virtiofs::passthrough {

namespace {

constexpr unsigned int kStatxMask = STATX_BASIC_STATS | STATX_MNT_ID;

InodeIds ids_of(const struct statx& st) {
    InodeIds ids;
    ids.ino = st.stx_ino;
    ids.dev = statx_dev(st);
    ids.mnt_id = (st.stx_mask & STATX_MNT_ID) != 0 ? st.stx_mnt_id : 0;
    return ids;
}

} // namespace

uint64_t statx_dev(const struct statx& st) noexcept {
    return makedev(st.stx_dev_major, st.stx_dev_minor);
}

InodeStore::InodeStore(Sys& sys, FileHandleMode mode, GuestFdBudget& budget,
                       GuestFdBudget& handle_budget, QueueEpochs* epochs)
    : sys_(sys), mode_(mode), budget_(budget), handle_budget_(handle_budget), mount_fds_(sys),
      epochs_(epochs) {
    if (epochs_ != nullptr) {
        caches_.reset(new QueueLookupCache<InodeData>[QueueEpochs::kMaxQueues]);
    }
}

InodeStore::~InodeStore() {
    clear();
    std::shared_ptr<InodeData> root;
    {
        std::unique_lock lock(mutex_);
        by_id_.clear();
        by_ids_.clear();
        root = std::move(root_);
    }
}

Status InodeStore::init_root(UniqueFd root) {
    struct statx st{};
    VDH_TRY(sys_.statx(root.get(), "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, kStatxMask, &st));
    if ((st.stx_mode & S_IFMT) != S_IFDIR) {
        return make_err(ENOTDIR);
    }
    try {
        auto data = std::make_shared<InodeData>(kRootNodeId, ids_of(st), S_IFDIR, std::move(root),
                                                FdSlot{});
        data->refcount.store(1, std::memory_order_relaxed);
        std::unique_lock lock(mutex_);
        by_id_.emplace(kRootNodeId, data);
        by_ids_.emplace(data->ids, kRootNodeId);
        root_ = std::move(data);
    } catch (const std::bad_alloc&) {
        return make_err(ENOMEM);
    }
    return ok();
}

Result<std::shared_ptr<InodeData>> InodeStore::get(uint64_t id) const {
    std::shared_lock lock(mutex_);
    auto it = by_id_.find(id);
    if (it == by_id_.end()) {
        return make_err(EBADF);
    }
    return it->second;
}

Result<EntryRef<InodeData>> InodeStore::find(const EpochSection& s, uint64_t id) const {
    if (!s.active() || s.epochs() != epochs_) {
        Result<std::shared_ptr<InodeData>> i = get(id);
        if (!i) {
            return make_err(i.error());
        }
        return EntryRef<InodeData>(std::move(*i));
    }
    QueueLookupCache<InodeData>& cache = caches_[s.queue()];
    // Read after the section began: a pointer cached at this generation is not freed
    // before the section ends (queue_epochs.h).
    if (InodeData* hit = cache.find(id, epochs_->generation())) {
        return EntryRef<InodeData>(hit);
    }
    std::shared_ptr<InodeData> i;
    uint64_t gen = 0;
    {
        std::shared_lock lock(mutex_);
        auto it = by_id_.find(id);
        if (it == by_id_.end()) {
            return make_err(EBADF);
        }
        i = it->second;
        gen = epochs_->generation(); // under the lock: removals bump it under the lock
    }
    cache.fill(id, gen, i.get());
    return EntryRef<InodeData>(std::move(i));
}

void InodeStore::ref(InodeData& inode) noexcept {
    inode.refcount.fetch_add(1, std::memory_order_relaxed);
}

Result<LookupResult> InodeStore::lookup(const InodeData& parent, int parent_fd,
                                        std::string_view name) {
    if (name.empty() || name.find('/') != std::string_view::npos ||
        name.find('\0') != std::string_view::npos) {
        return make_err(EINVAL);
    }
    if (name.size() > NAME_MAX) {
        return make_err(ENAMETOOLONG);
    }
    char cname[NAME_MAX + 1];
    std::memcpy(cname, name.data(), name.size());
    cname[name.size()] = '\0';

    if (name == "." || (name == ".." && parent.id == kRootNodeId)) {
        // "." is the directory itself; ".." of the share root stays at the root.
        auto self = get(name == "." ? parent.id : kRootNodeId);
        if (!self) {
            return make_err(self.error());
        }
        int fd = name == "." ? parent_fd : root_->fd();
        LookupResult out;
        VDH_TRY(sys_.statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, kStatxMask, &out.attr));
        ref(**self);
        out.inode = std::move(*self);
        return out;
    }

    if (name != "..") {
        auto hit = find_by_name(parent_fd, cname);
        if (!hit) {
            return make_err(hit.error());
        }
        if (hit->has_value()) {
            return std::move(**hit);
        }
    }

    Result<UniqueFd> fd = make_err(EIO);
    if (name == "..") {
        // RESOLVE_BENEATH refuses "..": this is the only multi-level step, and only for a
        // directory below the root (checked above), so the result stays inside the share
        // unless the host moves directories out of it concurrently.
        fd = sys_.openat(parent_fd, "..", O_PATH | O_NOFOLLOW | O_DIRECTORY, 0);
    } else {
        fd = sys_.openat2(parent_fd, cname, O_PATH | O_NOFOLLOW, 0,
                          RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS);
        if (!fd && fd.error() == ENOSYS) {
            // Kernels before 5.6: one component with O_NOFOLLOW cannot leave the parent.
            fd = sys_.openat(parent_fd, cname, O_PATH | O_NOFOLLOW, 0);
        }
    }
    if (!fd) {
        return make_err(fd.error());
    }
    return claim(&parent, parent_fd, std::move(*fd));
}

Result<std::optional<LookupResult>> InodeStore::find_by_name(int parent_fd,
                                                             const char* name) {
    // Only in Never mode. With handles (Prefer, Mandatory) every lookup must produce the
    // handle: a handle-held inode of the same file takes precedence over an fd-held one,
    // and a real name_to_handle_at error fails the lookup every time (rule 3). Skipping
    // that here would change what a lookup returns, so those modes take the open path.
    if (mode_ != FileHandleMode::Never) {
        return std::optional<LookupResult>();
    }
    // Same walk as the open in lookup(): one component, no symlink followed, no automount
    // (an O_PATH open does not trigger one either). ENOENT is the open's answer too, so a
    // miss costs one syscall; any other failure: the open path decides.
    LookupResult out;
    auto st = sys_.statx(parent_fd, name,
                         AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_STATX_SYNC_AS_STAT,
                         kStatxMask, &out.attr);
    if (!st) {
        if (st.error() == ENOENT) {
            return make_err(ENOENT);
        }
        return std::optional<LookupResult>();
    }
    const InodeIds ids = ids_of(out.attr);
    std::shared_lock lock(mutex_);
    // by_ids_ holds only fd-held inodes (rule 1/2), so a handle-held inode is never found
    // here. The O_PATH fd pins the inode: these ids name that file and no other. If the
    // name is renamed or replaced after the statx, the result is the file the name
    // pointed at when statx ran, the same guarantee the open-then-statx path gives.
    auto it = by_ids_.find(ids);
    if (it == by_ids_.end()) {
        return std::optional<LookupResult>();
    }
    out.inode = by_id_.at(it->second);
    ref(*out.inode); // under the lock, as in claim(): forget() re-checks under it
    return std::optional<LookupResult>(std::move(out));
}

Result<std::optional<OpenableHandle>> InodeStore::decide_holding(const InodeData* parent,
                                                                 int parent_fd, int fd,
                                                                 uint32_t type) {
    if (mode_ == FileHandleMode::Never) {
        return std::optional<OpenableHandle>();
    }
    auto handle = FileHandle::from_fd(sys_, fd);
    if (!handle) {
        // Not "unsupported": a real failure, in every mode and every time (rule 3).
        return make_err(handle.error());
    }
    if (!handle->has_value()) {
        if (mode_ == FileHandleMode::Mandatory) {
            return make_err(EOPNOTSUPP);
        }
        return std::optional<OpenableHandle>();
    }
    const FileHandle& h = **handle;
    // Directories first (mount_fd.h): the mount fd stays open as long as any inode of the
    // mount is held, so it must not be a file the guest chose (it would keep that file's
    // inode and blocks allocated after the host deletes it). A regular file is used only
    // when no directory on its mount is known, i.e. it is itself the root of its mount.
    MountFdCandidate candidates[3];
    size_t n = 0;
    if (parent != nullptr && parent_fd >= 0 && parent->ids.mnt_id == h.mnt_id) {
        candidates[n++] = MountFdCandidate{parent_fd, S_IFDIR};
    }
    if (root_ && root_.get() != parent && root_->ids.mnt_id == h.mnt_id) {
        candidates[n++] = MountFdCandidate{root_->fd(), S_IFDIR};
    }
    if (type == S_IFDIR || (type == S_IFREG && n == 0)) {
        candidates[n++] = MountFdCandidate{fd, type};
    }
    auto mfd = mount_fds_.get(h.mnt_id, candidates, n);
    if (!mfd) {
        if (mode_ == FileHandleMode::Mandatory) {
            return make_err(mfd.error());
        }
        // Reproducible and valid (special file or no permission, and no other file of
        // that mount gave us a mount fd): hold an O_PATH fd instead. If a mount fd shows
        // up later, lookups of this file will produce a handle but still find this inode
        // by ids (rule 2). Transient mount-fd errors (EMFILE, ENOMEM) take the same path;
        // that is safe for the same reason, and the next lookup after the inode is
        // forgotten may then use a handle.
        return std::optional<OpenableHandle>();
    }
    return std::optional<OpenableHandle>(OpenableHandle{h, std::move(*mfd)});
}

std::shared_ptr<InodeData> InodeStore::find_locked(const FileHandle* handle,
                                                   const InodeIds& ids) const {
    if (handle != nullptr) {
        auto it = by_handle_.find(*handle);
        if (it != by_handle_.end()) {
            return by_id_.at(it->second);
        }
    }
    // Only fd-held inodes are indexed by ids (rule 1/2): whatever is found here is pinned,
    // so its ids still name the same file.
    auto it = by_ids_.find(ids);
    if (it != by_ids_.end()) {
        return by_id_.at(it->second);
    }
    return nullptr;
}

Result<LookupResult> InodeStore::claim(const InodeData* parent, int parent_fd, UniqueFd fd) {
    LookupResult out;
    VDH_TRY(sys_.statx(fd.get(), "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, kStatxMask, &out.attr));
    const InodeIds ids = ids_of(out.attr);
    const uint32_t type = out.attr.stx_mode & S_IFMT;

    auto holding = decide_holding(parent, parent_fd, fd.get(), type);
    if (!holding) {
        return make_err(holding.error());
    }

    {
        std::shared_lock lock(mutex_);
        if (auto found = find_locked(*holding ? &(*holding)->handle : nullptr, ids)) {
            ref(*found);
            out.inode = std::move(found);
            return out; // fd and holding are released after the lock (declared earlier)
        }
    }

    // A new inode (probably). Build it outside the lock; dropped after unlocking if
    // another thread inserted the same file meanwhile.
    std::shared_ptr<InodeData> made;
    const uint64_t id = next_id_.fetch_add(1, std::memory_order_relaxed);
    try {
        if (*holding) {
            // No fd, but memory: handle-held inodes have their own cap (inode_limit).
            auto slot = handle_budget_.acquire();
            if (!slot) {
                return make_err(slot.error());
            }
            made = std::make_shared<InodeData>(id, ids, type, std::move(**holding),
                                               std::move(*slot));
        } else {
            auto slot = budget_.acquire();
            if (!slot) {
                return make_err(slot.error());
            }
            made = std::make_shared<InodeData>(id, ids, type, std::move(fd), std::move(*slot));
        }
    } catch (const std::bad_alloc&) {
        return make_err(ENOMEM);
    }
    made->refcount.store(1, std::memory_order_relaxed);

    std::unique_lock lock(mutex_);
    const OpenableHandle* made_handle = made->handle();
    if (auto found = find_locked(made_handle ? &made_handle->handle : nullptr, ids)) {
        ref(*found);
        out.inode = std::move(found);
        lock.unlock();
        return out; // `made` (and its fd) is released here, unlocked
    }
    bool in_id = false;
    try {
        by_id_.emplace(id, made);
        in_id = true;
        if (made_handle != nullptr) {
            by_handle_.emplace(made_handle->handle, id);
        } else {
            by_ids_.emplace(ids, id);
        }
    } catch (const std::bad_alloc&) {
        if (in_id) {
            by_id_.erase(id);
        }
        lock.unlock();
        return make_err(ENOMEM);
    }
    lock.unlock();
    out.inode = std::move(made);
    return out;
}

void InodeStore::forget(uint64_t id, uint64_t n) {
    if (n == 0) {
        return;
    }
    {
        std::shared_lock lock(mutex_);
        auto it = by_id_.find(id);
        if (it == by_id_.end()) {
            return;
        }
        auto& count = it->second->refcount;
        uint64_t cur = count.load(std::memory_order_relaxed);
        uint64_t next;
        do {
            next = cur > n ? cur - n : 0; // saturating: a bogus forget cannot underflow
        } while (!count.compare_exchange_weak(cur, next, std::memory_order_acq_rel));
        if (next != 0 || id == kRootNodeId) {
            return;
        }
    }
    // The count reached zero. Re-check under the exclusive lock: a concurrent lookup may
    // have found the entry (under the shared lock) and taken a reference meanwhile.
    std::shared_ptr<InodeData> victim;
    uint64_t gen = 0;
    {
        std::unique_lock lock(mutex_);
        auto it = by_id_.find(id);
        if (it == by_id_.end() || it->second->refcount.load(std::memory_order_acquire) != 0) {
            return;
        }
        victim = std::move(it->second);
        by_id_.erase(it);
        if (epochs_ != nullptr) {
            gen = epochs_->bump();
        }
        if (const OpenableHandle* handle = victim->handle(); handle != nullptr) {
            auto h = by_handle_.find(handle->handle);
            if (h != by_handle_.end() && h->second == id) {
                by_handle_.erase(h);
            }
        } else {
            auto i = by_ids_.find(victim->ids);
            if (i != by_ids_.end() && i->second == id) {
                by_ids_.erase(i);
            }
        }
    }
    if (epochs_ != nullptr) {
        // Another queue's request may be using it through its cache: dropped after that.
        epochs_->retire(std::move(victim), gen);
    }
    // victim's fd, budget unit, lock fds and mount fd reference go here (or once retired),
    // unlocked.
}

Result<InodeFd> InodeStore::path_fd(const InodeData& inode) const {
    const OpenableHandle* handle = inode.handle();
    if (handle == nullptr) {
        return InodeFd(inode.fd());
    }
    auto fd = handle->handle.open(sys_, handle->mount_fd->fd(), O_PATH);
    if (!fd) {
        return make_err(fd.error());
    }
    return InodeFd(std::move(*fd));
}

Result<UniqueFd> InodeStore::open(const InodeData& inode, int flags) const {
    VDH_TRY(check_guest_open_type(inode.type));
    const int kernel_flags = guest_open_flags(flags);
    const OpenableHandle* handle = inode.handle();
    if (handle == nullptr) {
        return check_guest_open(sys_.reopen(inode.fd(), kernel_flags), flags);
    }
    return check_guest_open(handle->handle.open(sys_, handle->mount_fd->fd(), kernel_flags),
                            flags);
}

void InodeStore::clear() {
    std::vector<std::shared_ptr<InodeData>> victims;
    if (epochs_ != nullptr) {
        {
            std::unique_lock lock(mutex_);
            const uint64_t gen = epochs_->bump();
            for (auto& [id, data] : by_id_) {
                if (id != kRootNodeId) {
                    // Linked only (no allocation, nothing dropped under the lock).
                    epochs_->retire(std::move(data), gen, false);
                }
            }
            std::erase_if(by_id_, [](const auto& kv) { return kv.first != kRootNodeId; });
            by_handle_.clear();
            std::erase_if(by_ids_, [](const auto& kv) { return kv.second != kRootNodeId; });
            if (root_) {
                root_->refcount.store(1, std::memory_order_relaxed);
            }
        }
        epochs_->reclaim();
        return;
    }
    {
        std::unique_lock lock(mutex_);
        try {
            victims.reserve(by_id_.size());
        } catch (const std::bad_alloc&) {
            // Fall through: entries are then destroyed under the lock, acceptable here.
        }
        for (auto& [id, data] : by_id_) {
            if (id != kRootNodeId && victims.size() < victims.capacity()) {
                victims.push_back(std::move(data));
            }
        }
        std::erase_if(by_id_, [](const auto& kv) { return kv.first != kRootNodeId; });
        by_handle_.clear();
        std::erase_if(by_ids_, [](const auto& kv) { return kv.second != kRootNodeId; });
        if (root_) {
            root_->refcount.store(1, std::memory_order_relaxed);
        }
    }
}

size_t InodeStore::size() const {
    std::shared_lock lock(mutex_);
    return by_id_.size();
}

size_t InodeStore::fd_held_count() const {
    std::shared_lock lock(mutex_);
    return by_ids_.size();
}

size_t InodeStore::handle_held_count() const {
    std::shared_lock lock(mutex_);
    return by_handle_.size();
}

} // namespace vdh::virtiofs::passthrough

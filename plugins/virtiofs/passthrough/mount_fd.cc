// SPDX-License-Identifier: MIT
// MountFdMap: finds or makes the per-mount O_RDONLY fd used by open_by_handle_at, from
// files the caller holds (see the design comment in mount_fd.h).

#include "mount_fd.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <new>
#include <utility>

namespace vdh::virtiofs::passthrough {

// Lock order: leaf. Never held while opening or closing fds, nor while calling out.
struct MountFd::Shared {
    mutable std::mutex mutex;
    std::unordered_map<uint64_t, std::weak_ptr<MountFd>> map;
};

MountFd::~MountFd() {
    if (auto owner = owner_.lock()) {
        std::lock_guard<std::mutex> g(owner->mutex);
        auto it = owner->map.find(mnt_id_);
        // A newer MountFd may already have replaced this entry after our strong count hit
        // zero (get() treats an expired entry as absent); only erase an expired one.
        if (it != owner->map.end() && it->second.expired()) {
            owner->map.erase(it);
        }
    }
    // fd_ closes here, after the lock is released.
}

MountFdMap::MountFdMap(Sys& sys) : sys_(sys), shared_(std::make_shared<MountFd::Shared>()) {}

MountFdMap::~MountFdMap() = default;

std::shared_ptr<MountFd> MountFdMap::find(uint64_t mnt_id) const {
    std::lock_guard<std::mutex> g(shared_->mutex);
    auto it = shared_->map.find(mnt_id);
    if (it == shared_->map.end()) {
        return nullptr;
    }
    return it->second.lock();
}

size_t MountFdMap::size() const {
    std::lock_guard<std::mutex> g(shared_->mutex);
    size_t n = 0;
    for (const auto& [id, weak] : shared_->map) {
        n += weak.expired() ? 0 : 1;
    }
    return n;
}

Result<UniqueFd> MountFdMap::open_candidate(uint64_t mnt_id, const MountFdCandidate& c) {
    // O_NONBLOCK for directories too: no open on a guest's behalf may wait (open_guard.h).
    // The fd is never used for I/O, so the flag stays set.
    int flags = O_RDONLY | O_NOCTTY | O_NONBLOCK;
    if (c.type == S_IFDIR) {
        flags |= O_DIRECTORY;
    } else if (c.type != S_IFREG) {
        return make_err(ENOTSUP);
    }
    auto fd = sys_.reopen(c.fd, flags);
    if (!fd) {
        return make_err(fd.error());
    }
    // The reopened fd must really be on the handle's mount: that is the whole check that
    // replaces mountinfo. And the kernel's answer must be the type we asked for (a device
    // or FIFO is never kept open).
    struct statx stx{};
    auto st = sys_.statx(fd->get(), "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW,
                         STATX_TYPE | STATX_MNT_ID, &stx);
    if (!st) {
        return make_err(st.error());
    }
    if ((stx.stx_mask & STATX_TYPE) == 0 || (stx.stx_mode & S_IFMT) != c.type) {
        return make_err(ENOTSUP);
    }
    if ((stx.stx_mask & STATX_MNT_ID) == 0 || stx.stx_mnt_id != mnt_id) {
        return make_err(EXDEV);
    }
    return std::move(*fd);
}

Result<std::shared_ptr<MountFd>> MountFdMap::get(uint64_t mnt_id,
                                                 const MountFdCandidate* candidates,
                                                 size_t count) {
    if (auto live = find(mnt_id)) {
        return live;
    }
    int err = ENOTSUP;
    UniqueFd fd;
    for (size_t i = 0; i < count && !fd; ++i) {
        auto r = open_candidate(mnt_id, candidates[i]);
        if (r) {
            fd = std::move(*r);
        } else if (r.error() != ENOTSUP || err == ENOTSUP) {
            err = r.error();
        }
    }
    if (!fd) {
        return make_err(err);
    }

    std::shared_ptr<MountFd> made;
    try {
        made = std::shared_ptr<MountFd>(new MountFd(mnt_id, std::move(fd), shared_));
    } catch (const std::bad_alloc&) {
        return make_err(ENOMEM);
    }
    std::shared_ptr<MountFd> result;
    bool insert_failed = false;
    {
        std::lock_guard<std::mutex> g(shared_->mutex);
        auto it = shared_->map.find(mnt_id);
        if (it != shared_->map.end()) {
            result = it->second.lock();
        }
        if (!result) {
            try {
                shared_->map[mnt_id] = made;
            } catch (const std::bad_alloc&) {
                insert_failed = true;
            }
            result = made;
        }
    }
    // If another thread won the race, `made` is dropped here, outside the lock (its
    // destructor takes the lock and leaves the winner's entry alone).
    if (insert_failed) {
        return make_err(ENOMEM);
    }
    return result;
}

} // namespace vdh::virtiofs::passthrough

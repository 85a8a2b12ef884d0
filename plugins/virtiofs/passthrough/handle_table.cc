// SPDX-License-Identifier: MIT
// HandleTable: counter-keyed map of open files/directories with validated lookups.

#include "handle_table.h"

#include <fcntl.h>

#include <new>
#include <vector>

namespace vdh::virtiofs::passthrough {

HandleTable::~HandleTable() { clear(); }

Result<uint64_t> HandleTable::insert(std::shared_ptr<HandleData> h) {
    if (!h) {
        return make_err(EINVAL);
    }
    uint64_t fh = next_fh_.fetch_add(1, std::memory_order_relaxed);
    try {
        std::unique_lock lock(mutex_);
        map_.emplace(fh, std::move(h));
    } catch (const std::bad_alloc&) {
        return make_err(ENOMEM); // h (moved or not) is released by the caller's scope
    }
    return fh;
}

Result<std::shared_ptr<HandleData>> HandleTable::get(uint64_t fh, uint64_t nodeid) const {
    std::shared_lock lock(mutex_);
    auto it = map_.find(fh);
    if (it == map_.end() || it->second->nodeid != nodeid) {
        return make_err(EBADF);
    }
    return it->second;
}

Result<std::shared_ptr<HandleData>> HandleTable::remove(uint64_t fh, uint64_t nodeid) {
    std::shared_ptr<HandleData> out;
    {
        std::unique_lock lock(mutex_);
        auto it = map_.find(fh);
        if (it == map_.end() || it->second->nodeid != nodeid) {
            return make_err(EBADF);
        }
        out = std::move(it->second);
        map_.erase(it);
    }
    return out;
}

void HandleTable::clear() {
    std::unordered_map<uint64_t, std::shared_ptr<HandleData>> victims;
    {
        std::unique_lock lock(mutex_);
        victims.swap(map_);
    }
    // victims close here, unlocked.
}

size_t HandleTable::size() const {
    std::shared_lock lock(mutex_);
    return map_.size();
}

} // namespace vdh::virtiofs::passthrough

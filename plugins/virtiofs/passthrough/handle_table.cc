// SPDX-License-Identifier: MIT
// HandleTable: counter-keyed map of open files/directories with validated lookups.

#include "handle_table.h"

#include <fcntl.h>

#include <new>
#include <vector>

namespace vdh::virtiofs::passthrough {

HandleTable::HandleTable(QueueEpochs* epochs) : epochs_(epochs) {
    if (epochs_ != nullptr) {
        caches_.reset(new QueueLookupCache<HandleData>[QueueEpochs::kMaxQueues]);
    }
}

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

Result<EntryRef<HandleData>> HandleTable::find(const EpochSection& s, uint64_t fh,
                                               uint64_t nodeid) const {
    if (!s.active() || s.epochs() != epochs_) {
        Result<std::shared_ptr<HandleData>> h = get(fh, nodeid);
        if (!h) {
            return make_err(h.error());
        }
        return EntryRef<HandleData>(std::move(*h));
    }
    QueueLookupCache<HandleData>& cache = caches_[s.queue()];
    // Read after the section began: a pointer cached at this generation is not freed
    // before the section ends (queue_epochs.h).
    if (HandleData* hit = cache.find(fh, epochs_->generation())) {
        if (hit->nodeid != nodeid) {
            return make_err(EBADF);
        }
        return EntryRef<HandleData>(hit);
    }
    std::shared_ptr<HandleData> h;
    uint64_t gen = 0;
    {
        std::shared_lock lock(mutex_);
        auto it = map_.find(fh);
        if (it == map_.end() || it->second->nodeid != nodeid) {
            return make_err(EBADF);
        }
        h = it->second;
        gen = epochs_->generation(); // under the lock: removals bump it under the lock
    }
    cache.fill(fh, gen, h.get());
    return EntryRef<HandleData>(std::move(h));
}

Result<std::shared_ptr<HandleData>> HandleTable::remove(uint64_t fh, uint64_t nodeid) {
    std::shared_ptr<HandleData> out;
    uint64_t gen = 0;
    {
        std::unique_lock lock(mutex_);
        auto it = map_.find(fh);
        if (it == map_.end() || it->second->nodeid != nodeid) {
            return make_err(EBADF);
        }
        out = std::move(it->second);
        map_.erase(it);
        if (epochs_ != nullptr) {
            gen = epochs_->bump();
        }
    }
    if (epochs_ != nullptr) {
        // Cached pointers may still be in use on other queues: the table's reference is
        // dropped when their requests ended; the caller gets its own.
        epochs_->retire(std::shared_ptr<HandleData>(out), gen);
    }
    return out;
}

void HandleTable::clear() {
    std::unordered_map<uint64_t, std::shared_ptr<HandleData>> victims;
    uint64_t gen = 0;
    {
        std::unique_lock lock(mutex_);
        victims.swap(map_);
        if (epochs_ != nullptr && !victims.empty()) {
            gen = epochs_->bump();
        }
    }
    if (epochs_ != nullptr) {
        for (auto& [fh, h] : victims) {
            epochs_->retire(std::move(h), gen);
        }
    }
    // victims close here (or once retired), unlocked.
}

size_t HandleTable::size() const {
    std::shared_lock lock(mutex_);
    return map_.size();
}

} // namespace vdh::virtiofs::passthrough

// SPDX-License-Identifier: MIT
// Lock-free lookups for the poll lcores: a small per-queue cache of table entries (raw
// pointers, no reference counts) and QueueEpochs, which makes sure an entry removed by
// another thread (RELEASE, FORGET, the end of the session) is not freed while a request
// may still use it through such a pointer. Each queue has a cache-line slot that only the
// lcore serving it writes: the table generation it saw when it entered its request (odd:
// inside a request), or 0 (outside). A table that removes an entry bumps the generation
// (every cached pointer of every queue becomes stale at once) and retires its last
// reference here; the reference is dropped once no queue is inside a request that began
// at an older generation - at once when no queue is inside one, else when the last such
// request ends (its exit() drops it). An fd therefore outlives its RELEASE by at most one
// request of another lcore, as it did when such a request held a shared_ptr copy.
//
// Cost per request on the lcore: one exchange on its own slot at enter() and one at exit()
// (both lines written by that lcore alone), instead of a shared lock and a reference count
// on lines every lcore writes. Retiring is intrusive (Retirable): no allocation.
// Not for blocking-pool or control threads: they have no slot and take the tables' locks
// (RequestCtx::queue == kNoQueue).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

#include "vdh/compiler.h"

namespace vdh::virtiofs::passthrough {

class QueueEpochs;

/// Base of table entries that can be retired without allocating: while retired, the
/// entry holds the table's last reference to itself.
class Retirable {
  protected:
    Retirable() noexcept = default;
    ~Retirable() = default;

  private:
    friend class QueueEpochs;
    std::shared_ptr<const void> retired_ref_; ///< the table's last reference, while retired
    Retirable* retired_next_ = nullptr;
    uint64_t retired_gen_ = 0; ///< generation its removal made current
};

/// Per-queue request sections and deferred release of removed table entries.
/// Thread-safety: enter()/exit() for queue q only from the thread serving q; the rest
/// from any thread.
class QueueEpochs {
  public:
    /// Queues with a slot (and a lookup cache); others use the tables' locks.
    static constexpr uint16_t kMaxQueues = 64;

    QueueEpochs() = default;
    /// Drops what is still retired. No queue may be inside a request.
    ~QueueEpochs();
    QueueEpochs(const QueueEpochs&) = delete;
    QueueEpochs& operator=(const QueueEpochs&) = delete;

    /// The current table generation (changes whenever an entry is removed).
    uint64_t generation() const noexcept { return gen_.load(std::memory_order_seq_cst); }

    /// Queue \p q starts a request. Hot path: one exchange on q's own line.
    void enter(uint16_t q) noexcept {
        const uint64_t g = gen_.load(std::memory_order_seq_cst);
        slots_[q].state.exchange((g << 1) | 1, std::memory_order_seq_cst);
    }
    /// Queue \p q ends its request: its cached pointers may be freed from now on. Drops
    /// retired entries that waited for it. Hot path: one exchange; the drop is rare.
    void exit(uint16_t q) noexcept {
        slots_[q].state.exchange(0, std::memory_order_seq_cst);
        if (VDH_UNLIKELY(pending_.load(std::memory_order_seq_cst))) {
            reclaim();
        }
    }

    /// Makes every cached pointer stale; returns the new generation. Call when an entry
    /// became unreachable through its table (under the table's exclusive lock), then
    /// retire() it with the value returned.
    uint64_t bump() noexcept { return gen_.fetch_add(1, std::memory_order_seq_cst) + 1; }

    /// Takes the table's last reference to a removed entry (generation \p gen from bump())
    /// and drops it when no request that may use it through a cached pointer is running.
    /// Any thread, no table lock held (the drop may close fds). No allocation.
    /// \p reclaim_now false: only link it (allowed under a table lock); the caller calls
    /// reclaim() once unlocked.
    template <typename T>
    void retire(std::shared_ptr<T> ref, uint64_t gen, bool reclaim_now = true) noexcept {
        if (!ref) {
            return;
        }
        Retirable* r = ref.get();
        r->retired_ref_ = std::move(ref);
        retire_node(r, gen, reclaim_now);
    }
    /// Drops every retired entry no running request can hold. Any thread, no lock held.
    void reclaim() noexcept;

    /// Retired entries not dropped yet (for tests and statistics).
    size_t retired() const;

  private:
    struct alignas(kCacheLine) Slot {
        std::atomic<uint64_t> state{0}; ///< 0 outside a request; else (generation << 1) | 1
    };
    void retire_node(Retirable* r, uint64_t gen, bool reclaim_now) noexcept;
    /// Oldest generation a request now inside may have looked entries up at (~0: none).
    uint64_t oldest_active() const noexcept;

    std::array<Slot, kMaxQueues> slots_{};
    alignas(kCacheLine) std::atomic<uint64_t> gen_{1};
    std::atomic<bool> pending_{false}; ///< retired_ is not empty
    /// Lock order: leaf; held only to link and unlink retired entries (never across a drop).
    mutable std::mutex mutex_;
    Retirable* retired_ = nullptr; ///< guarded by mutex_
    size_t retired_count_ = 0;     ///< guarded by mutex_
};

/// One request's section on the queue of RequestCtx::queue (inactive for kNoQueue and
/// queues without a slot: lookups then take the locks). Declare it before any lookup
/// result of the request, so those end first.
class EpochSection {
  public:
    EpochSection(QueueEpochs* epochs, uint16_t queue) noexcept
        : epochs_(epochs != nullptr && queue < QueueEpochs::kMaxQueues ? epochs : nullptr),
          queue_(queue) {
        if (epochs_ != nullptr) {
            epochs_->enter(queue_);
        }
    }
    ~EpochSection() {
        if (epochs_ != nullptr) {
            epochs_->exit(queue_);
        }
    }
    EpochSection(const EpochSection&) = delete;
    EpochSection& operator=(const EpochSection&) = delete;

    bool active() const noexcept { return epochs_ != nullptr; }
    uint16_t queue() const noexcept { return queue_; }
    QueueEpochs* epochs() const noexcept { return epochs_; }

  private:
    QueueEpochs* epochs_;
    uint16_t queue_;
};

/// A table entry found for one request: borrowed from the queue's cache (valid while the
/// request's EpochSection lasts) or owned (a reference from a locked lookup).
template <typename T> class EntryRef {
  public:
    explicit EntryRef(T* borrowed) noexcept : p_(borrowed) {}
    explicit EntryRef(std::shared_ptr<T> owned) noexcept
        : p_(owned.get()), own_(std::move(owned)) {}

    T* get() const noexcept { return p_; }
    T* operator->() const noexcept { return p_; }
    T& operator*() const noexcept { return *p_; }
    /// The owned reference (empty when borrowed).
    std::shared_ptr<T>& owned() noexcept { return own_; }

  private:
    T* p_;
    std::shared_ptr<T> own_;
};

/// A queue's small direct-mapped cache of one table: key -> entry, valid for the
/// generation it was filled at. Written and read only by the queue's lcore.
template <typename T> class alignas(kCacheLine) QueueLookupCache {
  public:
    static constexpr size_t kEntries = 8;

    /// The entry cached for \p key if it was filled at generation \p gen, else null.
    T* find(uint64_t key, uint64_t gen) const noexcept {
        const Entry& e = entries_[key & (kEntries - 1)];
        return e.key == key && e.gen == gen ? e.ptr : nullptr;
    }
    /// Caches \p p for \p key, found in the table at generation \p gen.
    void fill(uint64_t key, uint64_t gen, T* p) noexcept {
        entries_[key & (kEntries - 1)] = {key, gen, p};
    }

  private:
    struct Entry {
        uint64_t key = 0;
        uint64_t gen = 0; ///< 0: never filled (generations start at 1)
        T* ptr = nullptr;
    };
    std::array<Entry, kEntries> entries_{};
};

} // namespace vdh::virtiofs::passthrough

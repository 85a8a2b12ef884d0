// SPDX-License-Identifier: MIT
// The per-queue data path: pop chains, hand them to the plugin, let it submit the batch
// (flush), publish the used entries and notify the guest once per pass.
#include "queue_runtime.h"

#include <rte_cycles.h>
#include <rte_ring.h>

#include <new>

#include "poll_lcore.h"

namespace vdh {
namespace {
constexpr uint32_t kBatch = 64;

uint32_t ring_count_for(uint16_t size) {
    uint32_t n = 1;
    while (n <= size) {
        n <<= 1;
    }
    return n; // strictly greater than size: the ring never fills (one entry per slot)
}
} // namespace

QueueRuntime::~QueueRuntime() = default;

bool QueueRuntime::allocate(uint16_t size, uint32_t ctx_size) noexcept {
    slot_count_ = size;
    // Default-initialised (not zeroed) arrays: pages are touched only when used.
    slots_.reset(new (std::nothrow) RequestSlot[size]);
    iovs_.reset(new (std::nothrow) struct iovec[(static_cast<size_t>(size) + 1) * kSlotIovecs]);
    slot_home_.reset(new (std::nothrow) uint16_t[size]);
    size_t ctx_stride = (static_cast<size_t>(ctx_size) + kCacheLine - 1) & ~(kCacheLine - 1);
    if (ctx_stride > 0) {
        ctx_mem_.reset(new (std::nothrow) uint8_t[ctx_stride * size + kCacheLine]);
    }
    uint32_t rcount = ring_count_for(size);
    ssize_t rsize = rte_ring_get_memsize(rcount);
    if (rsize <= 0) {
        return false;
    }
    ring_mem_.reset(new (std::nothrow) uint8_t[static_cast<size_t>(rsize) + kCacheLine]);
    if (!slots_ || !iovs_ || !slot_home_ || (ctx_stride > 0 && !ctx_mem_) || !ring_mem_) {
        return false;
    }
    auto align = [](uint8_t* p) {
        auto v = reinterpret_cast<uintptr_t>(p);
        return reinterpret_cast<uint8_t*>((v + kCacheLine - 1) & ~(uintptr_t{kCacheLine} - 1));
    };
    flush_ = VDH_OPS_HAS(ops_, flush) ? ops_->flush : nullptr;
    done_ring_ = reinterpret_cast<rte_ring*>(align(ring_mem_.get()));
    if (rte_ring_init(done_ring_, "vdh_done", rcount, RING_F_SC_DEQ) != 0) {
        return false;
    }
    uint8_t* ctx_base = ctx_stride > 0 ? align(ctx_mem_.get()) : nullptr;
    stage_ = size;
    for (uint16_t i = 0; i < size; ++i) {
        slot_home_[i] = i;
        RequestSlot& s = slots_[i];
        s.queue = this;
        s.in_flight = false;
        s.req = vdh_request{};
        s.req.queue = index_;
        s.req.ctx = ctx_base != nullptr ? ctx_base + ctx_stride * i : nullptr;
        s.req.token = &s;
    }
    return true;
}

void QueueRuntime::finish(RequestSlot* slot, int64_t written) noexcept {
    if (VDH_UNLIKELY(abandoned_.load(std::memory_order_acquire))) {
        // The session is gone: retire the slot without touching its rings.
        stats_.add(stats_.late_completions);
        slot->in_flight = false;
        inflight_.store(inflight_.load(std::memory_order_relaxed) - 1, std::memory_order_release);
        return;
    }
    uint32_t len = 0;
    if (written >= 0) {
        len = written > static_cast<int64_t>(slot->req.out_bytes)
                  ? static_cast<uint32_t>(slot->req.out_bytes)
                  : static_cast<uint32_t>(written);
        stats_.add(stats_.bytes_out, len);
    } else {
        stats_.add(stats_.errors);
    }
    stats_.add(stats_.bytes_in, slot->req.in_bytes);
    stats_.add(stats_.requests);
    slot->in_flight = false;
    vq_.add_used(slot->id, slot->ndesc, len); // published by flush_notify()
    inflight_.store(inflight_.load(std::memory_order_relaxed) - 1, std::memory_order_release);
    notify_pending_ = true;
}

void QueueRuntime::complete(RequestSlot* slot, int64_t written) noexcept {
    QueueRuntime* q = slot->queue;
    // Read before the enqueue: once the lcore drained the last completion, the runtime may
    // be freed; the lcore itself lives as long as the process.
    PollLcore* l = q->lcore_;
    if (l != nullptr && l->on_this_lcore()) {
        q->finish(slot, written);
        return;
    }
    slot->result = written;
    // The ring has more entries than there are slots, so this cannot fail.
    rte_ring_mp_enqueue(q->done_ring_, slot);
    if (l != nullptr) {
        l->wake();
    }
}

uint32_t QueueRuntime::drain_completions() noexcept {
    void* batch[kBatch];
    uint32_t total = 0;
    for (;;) {
        unsigned n = rte_ring_sc_dequeue_burst(done_ring_, batch, kBatch, nullptr);
        for (unsigned i = 0; i < n; ++i) {
            auto* s = static_cast<RequestSlot*>(batch[i]);
            finish(s, s->result);
        }
        total += n;
        if (n < kBatch) {
            return total;
        }
    }
}

template <bool kLimited>
uint32_t QueueRuntime::take_requests(uint32_t budget, uint64_t slice_cycles,
                                     [[maybe_unused]] uint64_t now) noexcept {
    const vdh_device_ops* ops = ops_;
    void* pdev = pdev_;
    const uint64_t start = slice_cycles != 0 ? rte_rdtsc() : 0;
    uint32_t n = 0;
    // The slice is checked after each request, so every pass takes at least one.
    while (n < budget && (n == 0 || slice_cycles == 0 || rte_rdtsc() - start < slice_cycles)) {
        if constexpr (kLimited) {
            if (!bucket_->admits(now)) {
                break; // the rest stays in the ring for a later pass
            }
        }
        // Pop into a scratch chain first: the slot is only known once the id is.
        Chain c;
        c.iov = iovs_.get() + static_cast<size_t>(stage_) * kSlotIovecs;
        c.iov_cap = kSlotIovecs;
        ChainError err;
        PopStatus st = vq_.pop(c, &err);
        if (st == PopStatus::Empty) {
            return n;
        }
        if (VDH_UNLIKELY(st == PopStatus::Broken)) {
            broken_ = true;
            stats_.add(stats_.broken);
            break;
        }
        ++n;
        if constexpr (kLimited) {
            // Cost: one request plus every byte of its buffers, whatever the device does
            // with them (a guest is charged for what it offers).
            bucket_->charge(now, c.in_bytes + c.out_bytes);
        }
        RequestSlot& s = slots_[c.id];
        if (VDH_UNLIKELY(s.in_flight)) {
            // The driver made an id available twice: the ring is corrupt.
            broken_ = true;
            stats_.add(stats_.broken);
            break;
        }
        if (VDH_UNLIKELY(st == PopStatus::Bad)) {
            stats_.add(stats_.bad_chains);
            stats_.add(stats_.chain_errors[static_cast<int>(err)]);
            vq_.add_used(c.id, c.ndesc, 0);
            notify_pending_ = true;
            continue;
        }
        // The chain landed in the staging iovecs; make the slot own them by swapping the
        // staging index with the slot's home index.
        uint16_t staged = stage_;
        stage_ = slot_home_[c.id];
        slot_home_[c.id] = staged;
        s.id = c.id;
        s.ndesc = c.ndesc;
        s.in_flight = true;
        s.req.in = c.iov;
        s.req.n_in = c.n_in;
        s.req.out = c.iov + c.n_in;
        s.req.n_out = c.n_out;
        s.req.in_bytes = c.in_bytes;
        s.req.out_bytes = c.out_bytes;
        inflight_.store(inflight_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
        int64_t r = ops->handle_request(pdev, &s.req);
        if (r == VDH_ASYNC) {
            stats_.add(stats_.async);
            continue;
        }
        finish(&s, r);
    }
    // The budget or the slice ended the pass (a corrupt ring is no backlog).
    if (VDH_UNLIKELY(!broken_ && vq_.has_available())) {
        stats_.add(stats_.ring_full);
    }
    return n;
}

uint32_t QueueRuntime::take_limited(uint64_t version, uint64_t slice_cycles) noexcept {
    uint64_t now = rte_rdtsc();
    bucket_->sync(*qos_, version, now);
    if (!bucket_->admits(now)) {
        // Only a queue with requests waiting is throttled; an empty one sleeps on kicks.
        if (vq_.has_available()) {
            throttled_until_ = bucket_->wake_at();
            stats_.add(stats_.qos_throttled);
        } else {
            throttled_until_ = 0;
        }
        return 0;
    }
    throttled_until_ = 0;
    return take_requests<true>(kBatch, slice_cycles, now);
}

void QueueRuntime::flush_notify() noexcept {
    if (!notify_pending_) {
        return;
    }
    if (VDH_UNLIKELY(abandoned_.load(std::memory_order_acquire))) {
        notify_pending_ = false; // the transport may already serve another connection
        return;
    }
    vq_.publish_used();
    if (!vq_.should_notify()) {
        notify_pending_ = false;
        vq_.mark_notified();
        return;
    }
    if (notifier_->notify(*this)) {
        vq_.mark_notified();
        notify_pending_ = false;
        stats_.add(stats_.notifies);
    } else {
        stats_.add(stats_.notify_retries);
    }
}

void QueueRuntime::publish() noexcept {
    if (notify_pending_ && !abandoned_.load(std::memory_order_acquire)) {
        vq_.publish_used();
    }
}

uint32_t QueueRuntime::poll(uint64_t slice_cycles) noexcept {
    const vdh_device_ops* ops = ops_;
    void* pdev = pdev_;
    uint32_t work = 0;
    if (ops->poll != nullptr) {
        work += ops->poll(pdev, index_);
    }
    if (!broken_ && enabled_.load(std::memory_order_acquire) &&
        !stopping_.load(std::memory_order_acquire)) {
        // Unlimited devices pay one load and one predictable branch here.
        uint64_t qos_version = qos_->version();
        uint32_t taken = VDH_LIKELY(qos_version == 0 || bucket_ == nullptr)
                             ? take_requests<false>(kBatch, slice_cycles)
                             : take_limited(qos_version, slice_cycles);
        if (taken > 0) {
            stats_.add(stats_.batches);
        }
        if (taken > 0 && flush_ != nullptr) {
            work += flush_(pdev, index_);
            // What the submission finished at once (page-cache hits) is reaped now, so it
            // is published and notified with the rest of this pass.
            if (ops->poll != nullptr) {
                work += ops->poll(pdev, index_);
            }
        }
        work += taken;
    }
    // Last, so completions other threads queued during this pass go out with it.
    work += drain_completions();
    flush_notify();
    if (work > 0) {
        stats_.add(stats_.busy_polls);
    } else {
        stats_.add(stats_.idle_polls);
    }
    return work;
}

bool QueueRuntime::prepare_sleep() noexcept {
    if (notify_pending_) {
        return true; // a notification still has to go out
    }
    if (rte_ring_count(done_ring_) > 0) {
        return true;
    }
    if (broken_ || !enabled_.load(std::memory_order_acquire) ||
        stopping_.load(std::memory_order_acquire)) {
        throttled_until_ = 0; // not taking requests at all: no deadline to wake for
        return false;
    }
    if (VDH_UNLIKELY(throttled_until_ != 0)) {
        if (qos_->version() != 0 && rte_rdtsc() < throttled_until_) {
            // Requests wait in the ring for the QoS budget: kicks stay off (a guest that
            // honours suppression does not kick), and the lcore wakes at the deadline.
            return false;
        }
        throttled_until_ = 0; // due, or the limit was lifted: poll again
        return true;
    }
    return vq_.enable_kicks();
}

} // namespace vdh

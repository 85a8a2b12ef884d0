// SPDX-License-Identifier: MIT
// SplitVirtqueue implementation: ring allocation, descriptor bookkeeping, publishing with
// release stores, kick/interrupt suppression and the used-ring consumer. Memory ordering
// follows the Linux virtio_ring driver: descriptors and ring slots are plain stores made
// visible by a release store of avail->idx; used->idx is read with acquire; the event-idx
// checks sit behind full fences.
#include "frontend/split_virtqueue.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>

namespace vdh::frontend {

namespace {

using Clock = std::chrono::steady_clock;

// Safety: every word passed here is a naturally aligned u16 inside a ring allocated from
// GuestMemory, shared with the device; atomic_ref gives the required ordering.
uint16_t load_acquire(const uint16_t* p) noexcept {
    return std::atomic_ref<uint16_t>(*const_cast<uint16_t*>(p)).load(std::memory_order_acquire);
}
void store_release(uint16_t* p, uint16_t v) noexcept {
    std::atomic_ref<uint16_t>(*p).store(v, std::memory_order_release);
}

Result<UniqueFd> make_eventfd() {
    return UniqueFd::from_syscall(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
}

} // namespace

Result<std::unique_ptr<SplitVirtqueue>> SplitVirtqueue::create(GuestMemory& mem, uint16_t size) {
    if (size == 0 || (size & (size - 1)) != 0 || size > 32768) {
        return make_err(EINVAL);
    }
    std::unique_ptr<SplitVirtqueue> q(new SplitVirtqueue(mem, size));
    // Spec alignments are 16/2/4; a cache line keeps the parts from sharing lines.
    auto desc = mem.allocate(desc_table_bytes(size), 64);
    if (!desc) {
        return Err{desc.error()};
    }
    q->desc_gpa_ = *desc;
    q->ring_allocs_.push_back(*desc);
    auto avail = mem.allocate(avail_ring_bytes(size), 64);
    if (!avail) {
        return Err{avail.error()};
    }
    q->avail_gpa_ = *avail;
    q->ring_allocs_.push_back(*avail);
    auto used = mem.allocate(used_ring_bytes(size), 64);
    if (!used) {
        return Err{used.error()};
    }
    q->used_gpa_ = *used;
    q->ring_allocs_.push_back(*used);
    q->desc_ = mem.ptr<VringDesc>(q->desc_gpa_, desc_table_bytes(size));
    q->avail_ = mem.ptr<uint16_t>(q->avail_gpa_, avail_ring_bytes(size));
    q->used_ = mem.ptr<uint8_t>(q->used_gpa_, used_ring_bytes(size));
    // Guest memory may be reused from an earlier queue: start from clean rings.
    std::memset(q->desc_, 0, desc_table_bytes(size));
    std::memset(q->avail_, 0, avail_ring_bytes(size));
    std::memset(q->used_, 0, used_ring_bytes(size));

    auto kick = make_eventfd();
    if (!kick) {
        return Err{kick.error()};
    }
    q->kick_fd_ = std::move(*kick);
    auto call = make_eventfd();
    if (!call) {
        return Err{call.error()};
    }
    q->call_fd_ = std::move(*call);

    q->next_.assign(size, 0);
    q->chains_.assign(size, ChainInfo{});
    q->free_.reserve(size);
    for (int i = size - 1; i >= 0; i--) {
        q->free_.push_back(static_cast<uint16_t>(i)); // pops as 0, 1, 2, ...
    }
    return q;
}

SplitVirtqueue::~SplitVirtqueue() {
    for (const ChainInfo& c : chains_) {
        if (c.in_flight && c.indirect_gpa != 0) {
            (void)mem_.free(c.indirect_gpa);
        }
    }
    for (uint64_t gpa : ring_allocs_) {
        (void)mem_.free(gpa);
    }
}

Result<UniqueFd> SplitVirtqueue::replace_call_fd() {
    auto fresh = make_eventfd();
    if (!fresh) {
        return fresh;
    }
    std::swap(call_fd_, *fresh);
    return fresh;
}

void SplitVirtqueue::set_interrupts(bool enabled) noexcept {
    interrupts_ = enabled;
    // With EVENT_IDX the driver must keep flags at 0 and steer with used_event instead.
    store_release(&avail_[0], (!enabled && !event_idx_) ? kAvailFNoInterrupt : 0);
    if (event_idx_) {
        // "Far behind": the device only crosses it after 65535 more completions.
        store_release(&avail_[2 + size_], enabled ? last_used_ : uint16_t(last_used_ - 1));
        std::atomic_thread_fence(std::memory_order_seq_cst);
    }
}

Result<uint64_t> SplitVirtqueue::segment_gpa(const Segment& s) const {
    if (s.host == nullptr) {
        return s.gpa;
    }
    return mem_.to_gpa(s.host, s.len == 0 ? 1 : s.len);
}

Result<uint16_t> SplitVirtqueue::add_chain(std::span<const Segment> readable,
                                           std::span<const Segment> writable, bool indirect) {
    size_t total = readable.size() + writable.size();
    if (total == 0 || (indirect && total > size_)) {
        return make_err(EINVAL);
    }
    size_t need = indirect ? 1 : total;
    if (need > free_.size()) {
        return make_err(ENOSPC);
    }
    // Resolve every address first so a failure leaves the queue untouched.
    std::vector<VringDesc> descs(total);
    for (size_t i = 0; i < total; i++) {
        bool w = i >= readable.size();
        const Segment& s = w ? writable[i - readable.size()] : readable[i];
        auto gpa = segment_gpa(s);
        if (!gpa) {
            return Err{gpa.error()};
        }
        descs[i] = VringDesc{*gpa, s.len, static_cast<uint16_t>(w ? kDescFWrite : 0), 0};
    }

    uint16_t head;
    ChainInfo info;
    info.in_flight = true;
    if (indirect) {
        auto table = mem_.allocate(total * sizeof(VringDesc), 16);
        if (!table) {
            return Err{table.error()};
        }
        auto* t = mem_.ptr<VringDesc>(*table, total * sizeof(VringDesc));
        for (size_t i = 0; i < total; i++) {
            t[i] = descs[i];
            if (i + 1 < total) {
                t[i].flags |= kDescFNext;
                t[i].next = static_cast<uint16_t>(i + 1);
            }
        }
        head = free_.back();
        free_.pop_back();
        desc_[head] = VringDesc{*table, static_cast<uint32_t>(total * sizeof(VringDesc)),
                                kDescFIndirect, 0};
        info.count = 1;
        info.indirect_gpa = *table;
    } else {
        head = free_.back();
        uint16_t id = head;
        for (size_t i = 0; i < total; i++) {
            free_.pop_back();
            VringDesc d = descs[i];
            if (i + 1 < total) {
                uint16_t nxt = free_.back();
                d.flags |= kDescFNext;
                d.next = nxt;
                next_[id] = nxt;
                desc_[id] = d;
                id = nxt;
            } else {
                desc_[id] = d;
            }
        }
        info.count = static_cast<uint16_t>(total);
    }
    chains_[head] = info;
    in_flight_++;
    stats_.chains_added++;
    publish(head);
    return head;
}

void SplitVirtqueue::publish(uint16_t head) noexcept {
    avail_[2 + (avail_idx_ & (size_ - 1))] = head;
    avail_idx_++;
    store_release(&avail_[1], avail_idx_);
}

Result<bool> SplitVirtqueue::kick() {
    // Order the avail->idx store before reading the device's suppression state.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    bool need = event_idx_ ? vring_need_event(avail_event(), avail_idx_, kicked_idx_)
                           : (used_flags() & kUsedFNoNotify) == 0;
    kicked_idx_ = avail_idx_;
    if (!need) {
        stats_.kicks_suppressed++;
        return false;
    }
    VDH_TRY(force_kick());
    return true;
}

Status SplitVirtqueue::force_kick() {
    uint64_t one = 1;
    if (::write(kick_fd_.get(), &one, sizeof(one)) != sizeof(one)) {
        return errno_err();
    }
    stats_.kicks_sent++;
    return ok();
}

void SplitVirtqueue::free_chain(uint16_t head) {
    ChainInfo& c = chains_[head];
    if (!c.raw) {
        uint16_t id = head;
        for (uint16_t i = 0; i < c.count; i++) {
            free_.push_back(id);
            id = next_[id];
        }
        if (c.indirect_gpa != 0) {
            (void)mem_.free(c.indirect_gpa);
        }
    }
    c = ChainInfo{};
    in_flight_--;
}

void SplitVirtqueue::refresh_used_event() noexcept {
    if (event_idx_ && interrupts_) {
        store_release(&avail_[2 + size_], last_used_);
        // Like virtio_store_mb(): the device must see used_event before we re-read used->idx.
        std::atomic_thread_fence(std::memory_order_seq_cst);
    }
}

size_t SplitVirtqueue::poll_used(std::span<UsedElem> out) {
    uint16_t idx = used_idx();
    const auto* ring = reinterpret_cast<const VringUsedElem*>(used_ + 4);
    size_t n = 0;
    while (last_used_ != idx && n < out.size()) {
        VringUsedElem e = ring[last_used_ & (size_ - 1)];
        UsedElem u{e.id, e.len, false};
        if (e.id >= size_ || !chains_[e.id].in_flight) {
            u.unexpected = true;
            stats_.unexpected_used++;
        } else {
            free_chain(static_cast<uint16_t>(e.id));
        }
        out[n++] = u;
        last_used_++;
        stats_.used_consumed++;
    }
    refresh_used_event();
    return n;
}

std::vector<UsedElem> SplitVirtqueue::poll_used() {
    std::vector<UsedElem> out(size_);
    out.resize(poll_used(std::span<UsedElem>(out)));
    return out;
}

Result<size_t> SplitVirtqueue::wait_used(std::span<UsedElem> out, Millis timeout) {
    if (out.empty()) {
        return make_err(EINVAL);
    }
    auto deadline = Clock::now() + timeout;
    for (;;) {
        size_t n = poll_used(out);
        if (n > 0) {
            return n;
        }
        // poll_used() published used_event behind a full fence; a completion that raced
        // with it is either visible now or will be signalled.
        if (used_idx() != last_used_) {
            continue;
        }
        auto now = Clock::now();
        if (now >= deadline) {
            return make_err(ETIMEDOUT);
        }
        if (!interrupts_) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
            continue;
        }
        auto left = std::chrono::duration_cast<Millis>(deadline - now).count();
        pollfd p{call_fd_.get(), POLLIN, 0};
        int rc = ::poll(&p, 1, static_cast<int>(left + 1));
        if (rc < 0 && errno != EINTR) {
            return errno_err();
        }
        if (rc > 0) {
            uint64_t v;
            if (::read(call_fd_.get(), &v, sizeof(v)) == sizeof(v)) {
                stats_.interrupts++;
            }
        }
    }
}

Result<std::vector<UsedElem>> SplitVirtqueue::wait_used(Millis timeout) {
    std::vector<UsedElem> out(size_);
    auto n = wait_used(std::span<UsedElem>(out), timeout);
    if (!n) {
        return Err{n.error()};
    }
    out.resize(*n);
    return out;
}

// ---- raw access --------------------------------------------------------------------------

void SplitVirtqueue::write_desc(uint16_t index, const VringDesc& d) noexcept {
    desc_[index & (size_ - 1)] = d;
}

VringDesc SplitVirtqueue::read_desc(uint16_t index) const noexcept {
    return desc_[index & (size_ - 1)];
}

Result<std::vector<uint16_t>> SplitVirtqueue::reserve_descs(uint16_t n) {
    if (n > free_.size()) {
        return make_err(ENOSPC);
    }
    std::vector<uint16_t> ids(free_.end() - n, free_.end());
    free_.resize(free_.size() - n);
    return ids;
}

void SplitVirtqueue::release_descs(std::span<const uint16_t> ids) {
    for (uint16_t id : ids) {
        free_.push_back(id);
    }
}

void SplitVirtqueue::publish_raw_head(uint16_t head) noexcept {
    if (head < size_ && !chains_[head].in_flight) {
        chains_[head] = ChainInfo{0, 0, true, true};
        in_flight_++;
    }
    publish(head);
}

void SplitVirtqueue::set_avail_ring(uint16_t slot, uint16_t head) noexcept {
    avail_[2 + (slot & (size_ - 1))] = head;
}

void SplitVirtqueue::set_avail_idx(uint16_t idx) noexcept {
    avail_idx_ = idx;
    store_release(&avail_[1], idx);
}

uint16_t SplitVirtqueue::used_idx() const noexcept {
    return load_acquire(reinterpret_cast<const uint16_t*>(used_ + 2));
}

uint16_t SplitVirtqueue::used_flags() const noexcept {
    return load_acquire(reinterpret_cast<const uint16_t*>(used_));
}

uint16_t SplitVirtqueue::avail_event() const noexcept {
    return load_acquire(reinterpret_cast<const uint16_t*>(used_ + 4 + 8 * size_));
}

uint16_t SplitVirtqueue::used_event() const noexcept { return load_acquire(&avail_[2 + size_]); }

} // namespace vdh::frontend

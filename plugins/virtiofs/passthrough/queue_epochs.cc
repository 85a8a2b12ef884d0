// SPDX-License-Identifier: MIT
// QueueEpochs: retiring removed table entries until no request that may hold a cached
// pointer to them is running (see queue_epochs.h for the protocol).
#include "queue_epochs.h"

namespace vdh::virtiofs::passthrough {

QueueEpochs::~QueueEpochs() {
    Retirable* r = nullptr;
    {
        std::lock_guard<std::mutex> g(mutex_);
        r = retired_;
        retired_ = nullptr;
        retired_count_ = 0;
    }
    while (r != nullptr) {
        Retirable* next = r->retired_next_;
        std::shared_ptr<const void> drop = std::move(r->retired_ref_); // may free r
        r = next;
    }
}

uint64_t QueueEpochs::oldest_active() const noexcept {
    uint64_t oldest = ~uint64_t{0};
    for (const Slot& s : slots_) {
        const uint64_t v = s.state.load(std::memory_order_seq_cst);
        if ((v & 1) != 0 && (v >> 1) < oldest) {
            oldest = v >> 1;
        }
    }
    return oldest;
}

void QueueEpochs::retire_node(Retirable* r, uint64_t gen, bool reclaim_now) noexcept {
    r->retired_gen_ = gen;
    {
        std::lock_guard<std::mutex> g(mutex_);
        r->retired_next_ = retired_;
        retired_ = r;
        ++retired_count_;
        // Published before the slots are read (seq_cst on both sides): a request that
        // this scan sees inside will see pending_ when it leaves.
        pending_.store(true, std::memory_order_seq_cst);
    }
    if (reclaim_now) {
        reclaim();
    }
}

void QueueEpochs::reclaim() noexcept {
    Retirable* ready = nullptr;
    {
        std::lock_guard<std::mutex> g(mutex_);
        // A request inside at generation a may use what it found at a or later, i.e.
        // entries retired at a generation > a. Anything retired at <= oldest is free.
        const uint64_t oldest = oldest_active();
        Retirable** link = &retired_;
        while (*link != nullptr) {
            Retirable* r = *link;
            if (r->retired_gen_ <= oldest) {
                *link = r->retired_next_;
                r->retired_next_ = ready;
                ready = r;
                --retired_count_;
            } else {
                link = &r->retired_next_;
            }
        }
        if (retired_ == nullptr) {
            pending_.store(false, std::memory_order_seq_cst);
        }
    }
    while (ready != nullptr) {
        Retirable* next = ready->retired_next_;
        std::shared_ptr<const void> drop = std::move(ready->retired_ref_); // may free it
        ready = next;
    }
}

size_t QueueEpochs::retired() const {
    std::lock_guard<std::mutex> g(mutex_);
    return retired_count_;
}

} // namespace vdh::virtiofs::passthrough

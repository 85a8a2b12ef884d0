// SPDX-License-Identifier: MIT
// GuestFdBudget: a compare-and-swap counter; no unit is ever handed out beyond the limit,
// even under concurrent acquire() calls.

#include "fd_budget.h"

#include <cerrno>

namespace vdh::virtiofs::passthrough {

void FdSlot::reset() noexcept {
    if (budget_ != nullptr) {
        budget_->release();
        budget_ = nullptr;
    }
}

Result<FdSlot> GuestFdBudget::acquire() noexcept {
    uint32_t cur = in_use_.load(std::memory_order_relaxed);
    do {
        if (limit_ != 0 && cur >= limit_) {
            // Likely returned to the guest: a meaningful errno beats a message.
            return make_err(ENFILE);
        }
    } while (!in_use_.compare_exchange_weak(cur, cur + 1, std::memory_order_relaxed));
    return FdSlot(this);
}

} // namespace vdh::virtiofs::passthrough

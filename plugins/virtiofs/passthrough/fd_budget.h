// SPDX-License-Identifier: MIT
// GuestFdBudget: caps the host fds one share holds on the guest's behalf (O_PATH fds of
// inodes, open files and directories, lock fds). When it is exhausted the operation that
// wanted a new fd fails with ENFILE for that share only; other shares and the host keep
// working. Short-lived fds opened and closed within one request are not counted.
#pragma once

#include <atomic>
#include <cstdint>
#include <utility>

#include "vdh/result.h"

namespace vdh::virtiofs::passthrough {

class GuestFdBudget;

/// One unit of the budget. Move-only; gives the unit back on destruction. An empty slot
/// (default-constructed or moved-from) holds nothing.
class FdSlot {
public:
    FdSlot() noexcept = default;
    FdSlot(FdSlot&& o) noexcept : budget_(std::exchange(o.budget_, nullptr)) {}
    FdSlot& operator=(FdSlot&& o) noexcept {
        if (this != &o) {
            reset();
            budget_ = std::exchange(o.budget_, nullptr);
        }
        return *this;
    }
    FdSlot(const FdSlot&) = delete;
    FdSlot& operator=(const FdSlot&) = delete;
    ~FdSlot() { reset(); }

    bool held() const noexcept { return budget_ != nullptr; }
    void reset() noexcept;

private:
    friend class GuestFdBudget;
    explicit FdSlot(GuestFdBudget* b) noexcept : budget_(b) {}
    GuestFdBudget* budget_ = nullptr;
};

/// The per-share counter. Lock-free; any thread. Must outlive every slot it hands out.
class GuestFdBudget {
public:
    /// \p limit 0 means unlimited (the process RLIMIT_NOFILE still applies).
    explicit GuestFdBudget(uint32_t limit) noexcept : limit_(limit) {}
    GuestFdBudget(const GuestFdBudget&) = delete;
    GuestFdBudget& operator=(const GuestFdBudget&) = delete;

    /// Takes one unit, or fails with ENFILE when \p limit units are out.
    /// Hot path: no alloc, no block, no throw.
    Result<FdSlot> acquire() noexcept;

    uint32_t in_use() const noexcept { return in_use_.load(std::memory_order_relaxed); }
    uint32_t limit() const noexcept { return limit_; }

private:
    friend class FdSlot;
    void release() noexcept { in_use_.fetch_sub(1, std::memory_order_relaxed); }

    const uint32_t limit_;
    std::atomic<uint32_t> in_use_{0};
};

} // namespace vdh::virtiofs::passthrough

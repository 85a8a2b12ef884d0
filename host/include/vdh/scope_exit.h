// SPDX-License-Identifier: MIT
// ScopeExit: runs a callable when the scope ends unless cancelled. For one-off cleanups
// that are not file descriptors (those belong in UniqueFd).
#pragma once

#include <utility>

namespace vdh {

template <typename F>
class [[nodiscard]] ScopeExit {
public:
    explicit ScopeExit(F f) noexcept : f_(std::move(f)) {}
    ScopeExit(const ScopeExit&) = delete;
    ScopeExit& operator=(const ScopeExit&) = delete;
    ~ScopeExit() {
        if (armed_) {
            f_();
        }
    }
    void cancel() noexcept { armed_ = false; }

private:
    F f_;
    bool armed_ = true;
};

} // namespace vdh

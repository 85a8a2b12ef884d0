// SPDX-License-Identifier: MIT
// Result<T>: a value or a positive errno, with no exceptions and no allocation. Its API is
// a subset of std::expected<T, int> (has_value, value, error, operator*, operator->), so it
// can become an alias once the toolchain allows C++23. Status is Result<void>.
#pragma once

#include <cassert>
#include <cerrno>
#include <new>
#include <type_traits>
#include <utility>

namespace vdh {

/// Tag type that carries an errno into a Result.
struct Err {
    int code;
};

/// Builds an error from a positive errno value.
[[nodiscard]] constexpr Err make_err(int code) noexcept { return Err{code}; }
/// Builds an error from the current errno (after a failed system call).
[[nodiscard]] inline Err errno_err() noexcept { return Err{errno != 0 ? errno : EIO}; }

template <typename T>
class [[nodiscard]] Result {
public:
    Result(const T& v) noexcept(std::is_nothrow_copy_constructible_v<T>) : ok_(true) {
        new (&storage_) T(v);
    }
    Result(T&& v) noexcept(std::is_nothrow_move_constructible_v<T>) : ok_(true) {
        new (&storage_) T(std::move(v));
    }
    Result(Err e) noexcept : ok_(false), err_(e.code) { assert(e.code > 0); }
    Result(Result&& o) noexcept(std::is_nothrow_move_constructible_v<T>) : ok_(o.ok_), err_(o.err_) {
        if (ok_) {
            new (&storage_) T(std::move(*o.ptr()));
        }
    }
    Result& operator=(Result&& o) noexcept(std::is_nothrow_move_constructible_v<T>) {
        if (this != &o) {
            destroy();
            ok_ = o.ok_;
            err_ = o.err_;
            if (ok_) {
                new (&storage_) T(std::move(*o.ptr()));
            }
        }
        return *this;
    }
    Result(const Result&) = delete;
    Result& operator=(const Result&) = delete;
    ~Result() { destroy(); }

    bool has_value() const noexcept { return ok_; }
    explicit operator bool() const noexcept { return ok_; }
    /// The positive errno. Only valid when !has_value().
    int error() const noexcept {
        assert(!ok_);
        return err_;
    }
    T& value() & noexcept {
        assert(ok_);
        return *ptr();
    }
    const T& value() const& noexcept {
        assert(ok_);
        return *ptr();
    }
    T&& value() && noexcept {
        assert(ok_);
        return std::move(*ptr());
    }
    T& operator*() & noexcept { return value(); }
    const T& operator*() const& noexcept { return value(); }
    T&& operator*() && noexcept { return std::move(value()); }
    T* operator->() noexcept { return &value(); }
    const T* operator->() const noexcept { return &value(); }

private:
    T* ptr() noexcept { return std::launder(reinterpret_cast<T*>(&storage_)); }
    const T* ptr() const noexcept { return std::launder(reinterpret_cast<const T*>(&storage_)); }
    void destroy() noexcept {
        if (ok_) {
            ptr()->~T();
            ok_ = false;
        }
    }

    alignas(T) unsigned char storage_[sizeof(T)];
    bool ok_;
    int err_ = 0;
};

template <>
class [[nodiscard]] Result<void> {
public:
    Result() noexcept = default;
    Result(Err e) noexcept : err_(e.code) { assert(e.code > 0); }
    bool has_value() const noexcept { return err_ == 0; }
    explicit operator bool() const noexcept { return err_ == 0; }
    int error() const noexcept {
        assert(err_ != 0);
        return err_;
    }

private:
    int err_ = 0;
};

using Status = Result<void>;

/// Success value for Status-returning functions.
inline Status ok() noexcept { return Status{}; }

} // namespace vdh

/// Evaluates a Result expression; on error returns its errno from the enclosing function.
#define VDH_TRY(expr)                                                                             \
    do {                                                                                          \
        auto&& vdh_try_r_ = (expr);                                                               \
        if (!vdh_try_r_.has_value()) {                                                            \
            return ::vdh::Err{vdh_try_r_.error()};                                                \
        }                                                                                         \
    } while (0)

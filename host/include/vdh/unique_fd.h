// SPDX-License-Identifier: MIT
// UniqueFd: the only owner of a file descriptor in vdhost. Move-only; closes on
// destruction. This is the one file allowed to call close(); everything else holds fds
// in a UniqueFd (or borrows them as a plain `int` parameter for one call).
#pragma once

#include <cassert>
#include <cerrno>
#include <unistd.h>
#include <utility>

#include "vdh/result.h"

namespace vdh {

class UniqueFd {
public:
    UniqueFd() noexcept = default;
    /// Takes ownership of \p fd (may be -1).
    explicit UniqueFd(int fd) noexcept : fd_(fd) {}
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
    UniqueFd& operator=(UniqueFd&& o) noexcept {
        if (this != &o) {
            reset(o.release());
        }
        return *this;
    }
    ~UniqueFd() { reset(); }

    /// Wraps the result of a system call that returns an fd or -1 with errno.
    static Result<UniqueFd> from_syscall(int fd) noexcept {
        if (fd < 0) {
            return errno_err();
        }
        return UniqueFd(fd);
    }

    int get() const noexcept { return fd_; }
    explicit operator bool() const noexcept { return fd_ >= 0; }
    bool valid() const noexcept { return fd_ >= 0; }

    /// Gives up ownership and returns the fd.
    [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }

    /// Closes the owned fd (if any) and takes \p fd.
    void reset(int fd = -1) noexcept {
        int old = std::exchange(fd_, fd);
        if (old >= 0) {
            int saved = errno;
            [[maybe_unused]] int rc = ::close(old);
            assert(!(rc < 0 && errno == EBADF) && "double close");
            errno = saved;
        }
    }

    /// Duplicates the fd (O_CLOEXEC).
    Result<UniqueFd> dup() const noexcept;

private:
    int fd_ = -1;
};

} // namespace vdh

#include <fcntl.h>

inline vdh::Result<vdh::UniqueFd> vdh::UniqueFd::dup() const noexcept {
    return from_syscall(::fcntl(fd_, F_DUPFD_CLOEXEC, 0));
}

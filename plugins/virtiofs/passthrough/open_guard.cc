// SPDX-License-Identifier: MIT
// The flag policy and the post-open type check of open_guard.h.

#include "open_guard.h"

#include <sys/stat.h>

namespace vdh::virtiofs::passthrough {

int guest_open_flags(int flags) noexcept {
    // O_TMPFILE contains O_DIRECTORY's bit; remove only its own part.
    constexpr int kTmpfileOnly = O_TMPFILE & ~O_DIRECTORY;
    flags &= ~(O_CREAT | O_EXCL | O_PATH | kTmpfileOnly);
    return flags | kGuestOpenForced;
}

Status check_guest_open_type(mode_t mode) noexcept {
    if (S_ISLNK(mode)) {
        return make_err(ELOOP);
    }
    if (!S_ISREG(mode) && !S_ISDIR(mode)) {
        return make_err(EBADF);
    }
    return ok();
}

Result<UniqueFd> check_guest_open(Result<UniqueFd> opened, int guest_flags) noexcept {
    if (!opened) {
        return opened;
    }
    UniqueFd fd = std::move(*opened);
    struct stat st {};
    if (::fstat(fd.get(), &st) < 0) {
        return errno_err();
    }
    // On error the fd closes here: a device or FIFO is never used.
    VDH_TRY(check_guest_open_type(st.st_mode));
    if ((guest_flags & O_NONBLOCK) == 0) {
        const int fl = ::fcntl(fd.get(), F_GETFL);
        if (fl < 0 || ::fcntl(fd.get(), F_SETFL, fl & ~O_NONBLOCK) < 0) {
            return errno_err();
        }
    }
    return fd;
}

} // namespace vdh::virtiofs::passthrough

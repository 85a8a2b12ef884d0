// SPDX-License-Identifier: MIT
// RealSys: the kernel behind the Sys interface. Raw syscall() is used where glibc 2.36
// has no wrapper (openat2). No policy lives here; callers interpret the errno values.

#include "sys.h"

#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <new>

namespace vdh::virtiofs::passthrough {

char* format_fd(int fd, char (&buf)[16]) noexcept {
    char tmp[16];
    int n = 0;
    unsigned int v = fd < 0 ? 0U : static_cast<unsigned int>(fd);
    do {
        tmp[n++] = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v != 0 && n < 15);
    for (int i = 0; i < n; ++i) {
        buf[i] = tmp[n - 1 - i];
    }
    buf[n] = '\0';
    return buf;
}

char* proc_fd_path(int fd, char (&buf)[32]) noexcept {
    static constexpr char kPrefix[] = "/proc/self/fd/";
    char num[16];
    format_fd(fd, num);
    size_t i = 0;
    for (; kPrefix[i] != '\0'; ++i) {
        buf[i] = kPrefix[i];
    }
    for (size_t j = 0; num[j] != '\0'; ++j) {
        buf[i++] = num[j];
    }
    buf[i] = '\0';
    return buf;
}

Result<UniqueFd> RealSys::open_proc_self_fd() noexcept {
    return UniqueFd::from_syscall(
        ::open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
}

Result<std::unique_ptr<RealSys>> RealSys::create() {
    auto fd = open_proc_self_fd();
    if (!fd) {
        return make_err(fd.error());
    }
    auto* sys = new (std::nothrow) RealSys(std::move(*fd));
    if (sys == nullptr) {
        return make_err(ENOMEM);
    }
    return std::unique_ptr<RealSys>(sys);
}

Result<UniqueFd> RealSys::openat(int dirfd, const char* path, int flags, mode_t mode) {
    return UniqueFd::from_syscall(::openat(dirfd, path, flags | O_CLOEXEC, mode));
}

Result<UniqueFd> RealSys::openat2(int dirfd, const char* path, uint64_t flags, uint64_t mode,
                                  uint64_t resolve) {
    struct open_how how{};
    how.flags = flags | O_CLOEXEC;
    how.mode = mode;
    how.resolve = resolve;
    return UniqueFd::from_syscall(
        static_cast<int>(::syscall(SYS_openat2, dirfd, path, &how, sizeof(how))));
}

Result<UniqueFd> RealSys::reopen(int fd, int flags) {
    char name[16];
    format_fd(fd, name);
    flags &= ~O_NOFOLLOW;
    return UniqueFd::from_syscall(::openat(proc_self_fd_.get(), name, flags | O_CLOEXEC));
}

Status RealSys::name_to_handle_at(int dirfd, const char* path, struct file_handle* fh,
                                  int* mount_id, int flags) {
    if (::name_to_handle_at(dirfd, path, fh, mount_id, flags) < 0) {
        return errno_err();
    }
    return ok();
}

Result<UniqueFd> RealSys::open_by_handle_at(int mount_fd, struct file_handle* fh, int flags) {
    return UniqueFd::from_syscall(::open_by_handle_at(mount_fd, fh, flags | O_CLOEXEC));
}

Status RealSys::statx(int dirfd, const char* path, int flags, unsigned int mask,
                      struct statx* out) {
    if (::statx(dirfd, path, flags, mask, out) < 0) {
        return errno_err();
    }
    return ok();
}

Status RealSys::fstatat(int dirfd, const char* path, struct stat* out, int flags) {
    if (::fstatat(dirfd, path, out, flags) < 0) {
        return errno_err();
    }
    return ok();
}

Result<size_t> RealSys::readlinkat(int dirfd, const char* path, char* buf, size_t size) {
    ssize_t n = ::readlinkat(dirfd, path, buf, size);
    if (n < 0) {
        return errno_err();
    }
    return static_cast<size_t>(n);
}

} // namespace vdh::virtiofs::passthrough

// SPDX-License-Identifier: MIT
// The injectable system-call layer of the passthrough backend: the calls whose outcome
// decides how an inode is held (file handle or O_PATH fd) and how a mount fd is found.
// RealSys forwards to the kernel; tests derive from it to inject failures (EOPNOTSUPP,
// EACCES, EOVERFLOW, inode number reuse). Plain data-path calls (preadv, mkdirat, ...) are
// not routed through here.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "vdh/result.h"
#include "vdh/unique_fd.h"

struct file_handle;

namespace vdh::virtiofs::passthrough {

/// Writes the decimal form of \p fd into \p buf (NUL-terminated). Returns buf.
/// Hot path: no alloc, no block, no throw.
char* format_fd(int fd, char (&buf)[16]) noexcept;

/// Writes "/proc/self/fd/<fd>" into \p buf. Used only for the few calls without an *at
/// form (the xattr family); \p fd must be a pinned fd of ours.
char* proc_fd_path(int fd, char (&buf)[32]) noexcept;

/// The system calls the inode store, the file-handle code and the mount-fd manager make.
/// Every method returns a Result with the raw errno on failure. Implementations must be
/// thread-safe (RealSys is: it holds only an immutable fd).
class Sys {
public:
    virtual ~Sys() = default;

    virtual Result<UniqueFd> openat(int dirfd, const char* path, int flags, mode_t mode) = 0;
    /// openat2(2) with \p resolve (RESOLVE_* flags).
    virtual Result<UniqueFd> openat2(int dirfd, const char* path, uint64_t flags, uint64_t mode,
                                     uint64_t resolve) = 0;
    /// Reopens \p fd (a pinned fd of ours, never a symlink) through /proc/self/fd/N with
    /// \p flags (O_CLOEXEC is added; O_NOFOLLOW is removed because the magic link must be
    /// followed).
    virtual Result<UniqueFd> reopen(int fd, int flags) = 0;
    /// name_to_handle_at(2). \p fh->handle_bytes must hold the buffer size on entry.
    virtual Status name_to_handle_at(int dirfd, const char* path, struct file_handle* fh,
                                     int* mount_id, int flags) = 0;
    /// open_by_handle_at(2). Needs CAP_DAC_READ_SEARCH.
    virtual Result<UniqueFd> open_by_handle_at(int mount_fd, struct file_handle* fh,
                                               int flags) = 0;
    virtual Status statx(int dirfd, const char* path, int flags, unsigned int mask,
                         struct statx* out) = 0;
    virtual Status fstatat(int dirfd, const char* path, struct stat* out, int flags) = 0;
    /// Returns the number of bytes placed in \p buf (no NUL added).
    virtual Result<size_t> readlinkat(int dirfd, const char* path, char* buf, size_t size) = 0;
    /// The /proc/self/fd directory fd (borrowed), for *at calls on "N".
    virtual int proc_self_fd() const = 0;
};

/// The real kernel. Opens /proc/self/fd once at creation (so reopening keeps working
/// when the process later changes its root, as long as it keeps this fd).
class RealSys : public Sys {
public:
    /// Allocates: cold path (device creation).
    static Result<std::unique_ptr<RealSys>> create();

    Result<UniqueFd> openat(int dirfd, const char* path, int flags, mode_t mode) override;
    Result<UniqueFd> openat2(int dirfd, const char* path, uint64_t flags, uint64_t mode,
                             uint64_t resolve) override;
    Result<UniqueFd> reopen(int fd, int flags) override;
    Status name_to_handle_at(int dirfd, const char* path, struct file_handle* fh, int* mount_id,
                             int flags) override;
    Result<UniqueFd> open_by_handle_at(int mount_fd, struct file_handle* fh, int flags) override;
    Status statx(int dirfd, const char* path, int flags, unsigned int mask,
                 struct statx* out) override;
    Status fstatat(int dirfd, const char* path, struct stat* out, int flags) override;
    Result<size_t> readlinkat(int dirfd, const char* path, char* buf, size_t size) override;
    int proc_self_fd() const override { return proc_self_fd_.get(); }

    /// Takes an open /proc/self/fd directory fd (see create()).
    explicit RealSys(UniqueFd proc_self_fd) noexcept : proc_self_fd_(std::move(proc_self_fd)) {}
    /// Opens /proc/self/fd as a directory fd.
    static Result<UniqueFd> open_proc_self_fd() noexcept;

private:
    UniqueFd proc_self_fd_;
};

} // namespace vdh::virtiofs::passthrough

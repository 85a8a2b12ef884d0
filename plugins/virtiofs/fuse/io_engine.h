// SPDX-License-Identifier: MIT
// The asynchronous half of request handling: an engine (io_uring on the poll lcore, worker
// threads for calls that may sleep) that the FUSE dispatcher hands disk I/O and blocking
// calls to. The device implements it; the dispatcher only submits. Not for metadata ops,
// which the dispatcher runs synchronously through the Filesystem.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <limits>

namespace vdh::virtiofs {

/// Accepts work for one request and finishes it later.
///
/// Every submit function returns true when it took the work, and false when it cannot take
/// it now (ring full, no worker, unsupported): the dispatcher then does the operation
/// synchronously through the Filesystem. \p ctx is the request's FuseRequestCtx (opaque here).
///
/// Completion contract:
///  - readv/writev/fsync/fallocate: once the operation finished, the engine calls
///    FuseDispatcher::complete_io(ctx, res) exactly once, with res = bytes transferred
///    (readv/writev) or 0 (fsync/fallocate), or -errno. Any thread; typically the lcore's
///    poll() after reaping a completion.
///  - run_blocking: the engine runs fn(ctx) once on a thread that may block (never the poll
///    lcore). fn completes the request itself (it calls complete_io); the engine must not.
///  - Never complete inside the submit call: the dispatcher still owns ctx until the submit
///    function has returned true.
///  - iovecs and ctx stay valid until completion; the engine must not keep them after.
///  - On device stop the engine must finish (or cancel with -ECANCELED) everything it took.
///
/// Hot path: the submit functions must not allocate, block or throw.
class IoEngine {
public:
    virtual ~IoEngine() = default;

    /// preadv(fd, iov, n, off) into guest memory.
    virtual bool readv(int fd, const struct iovec* iov, int n, uint64_t off, void* ctx) = 0;
    /// pwritev(fd, iov, n, off) from guest memory.
    virtual bool writev(int fd, const struct iovec* iov, int n, uint64_t off, void* ctx) = 0;
    /// fsync(fd) or fdatasync(fd).
    virtual bool fsync(int fd, bool datasync, void* ctx) = 0;
    /// fallocate(fd, mode, off, len).
    virtual bool fallocate(int fd, int mode, uint64_t off, uint64_t len, void* ctx) = 0;
    /// Runs fn(ctx) on a thread that may block (SETLKW, COPY_FILE_RANGE, SYNCFS, FSYNCDIR).
    virtual bool run_blocking(void (*fn)(void* ctx), void* ctx) = 0;

    /// write_now()'s answer when the write was not done: submit it with writev().
    static constexpr int64_t kNotNow = std::numeric_limits<int64_t>::min();
    /// Does the WRITE of \p len bytes at once on the calling thread (the lcore) when the
    /// share's write path allows it for this request (a small page-cache write, see
    /// write_path.h). Returns the bytes written or -errno when it did, kNotNow otherwise.
    /// \p open_flags are the flags \p fd was opened with.
    virtual int64_t write_now(int fd, int open_flags, const struct iovec* iov, int n,
                              uint64_t off, uint64_t len) {
        (void)fd, (void)open_flags, (void)iov, (void)n, (void)off, (void)len;
        return kNotNow;
    }
};

} // namespace vdh::virtiofs

// SPDX-License-Identifier: MIT
// The write-path probe of a share and the inline-write gate of a queue (see vdh/write_path.h; shared by the virtio-fs and virtio-blk plugins).
#include "vdh/write_path.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "vdh/unique_fd.h"

namespace vdh {
namespace {

constexpr uint64_t kPage = 4096;

/// Local filesystems whose buffered writes only touch the page cache (no server).
const char* local_fs_name(long type) noexcept {
    switch (static_cast<unsigned long>(type)) {
    case EXT4_SUPER_MAGIC: return "ext4"; // also ext2/ext3 (same magic)
    case TMPFS_MAGIC: return "tmpfs";
    case XFS_SUPER_MAGIC: return "xfs";
    case BTRFS_SUPER_MAGIC: return "btrfs";
    case F2FS_SUPER_MAGIC: return "f2fs";
    default: return nullptr;
    }
}

/// Whether a 4 KiB buffered RWF_NOWAIT write succeeds on a fresh O_TMPFILE in \p dir:
/// 1 yes, 0 refused (EOPNOTSUPP / EINVAL / EAGAIN twice), -errno when no temp file could
/// be made.
int probe_nowait(const std::string& dir) {
    auto fd = UniqueFd::from_syscall(::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
    if (!fd) {
        return -fd.error();
    }
    alignas(64) static char buf[kPage];
    struct iovec iov = {buf, sizeof(buf)};
    for (int attempt = 0; attempt < 2; ++attempt) {
        ssize_t r = ::pwritev2(fd->get(), &iov, 1, 0, RWF_NOWAIT);
        if (r == static_cast<ssize_t>(kPage)) {
            return 1;
        }
        if (r >= 0 || errno != EAGAIN) {
            return 0;
        }
        // EAGAIN can mean "would allocate": write once normally, then try the overwrite.
        if (::pwrite(fd->get(), buf, sizeof(buf), 0) != static_cast<ssize_t>(kPage)) {
            return 0;
        }
    }
    return 0;
}

} // namespace

const char* write_path_name(WritePath p) noexcept {
    switch (p) {
    case WritePath::Auto: return "auto";
    case WritePath::Nowait: return "nowait";
    case WritePath::Inline: return "inline";
    case WritePath::Punt: return "punt";
    }
    return "?";
}

Result<WritePathChoice> choose_write_path(const std::string& dir, WritePath requested,
                                          bool readonly, std::string* error) {
    WritePathChoice c;
    if (readonly) {
        c.path = WritePath::Punt;
        c.reason = "read-only share: no writes";
        return c;
    }
    if (requested == WritePath::Punt) {
        c.path = WritePath::Punt;
        c.reason = "write_path: punt";
        return c;
    }
    struct statfs sf {};
    if (::statfs(dir.c_str(), &sf) != 0) {
        int e = errno;
        *error = "statfs " + dir + ": " + std::strerror(e);
        return make_err(e);
    }
    const char* local = local_fs_name(sf.f_type);
    char fsname[32];
    if (local != nullptr) {
        std::snprintf(fsname, sizeof(fsname), "%s", local);
    } else {
        std::snprintf(fsname, sizeof(fsname), "filesystem 0x%lx",
                      static_cast<unsigned long>(sf.f_type));
    }
    const int nowait = probe_nowait(dir);
    if (requested == WritePath::Nowait || (requested == WritePath::Auto && nowait == 1)) {
        if (nowait != 1) {
            *error = std::string("write_path: nowait, but ") + fsname + " at " + dir +
                     (nowait < 0 ? " could not be probed (O_TMPFILE: " +
                                       std::string(std::strerror(-nowait)) + ")"
                                 : " refuses non-blocking buffered writes (RWF_NOWAIT)");
            return make_err(EINVAL);
        }
        c.path = WritePath::Nowait;
        c.reason = std::string(fsname) + " accepts RWF_NOWAIT buffered writes";
        return c;
    }
    if (local == nullptr) {
        if (requested == WritePath::Inline) {
            *error = std::string("write_path: inline, but ") + fsname + " at " + dir +
                     " is not a local page-cache filesystem (ext4, tmpfs, xfs, btrfs, f2fs)";
            return make_err(EINVAL);
        }
        c.path = WritePath::Punt;
        c.reason = std::string(fsname) + " is not a known local filesystem";
        return c;
    }
    c.path = WritePath::Inline;
    c.reason = std::string(fsname) +
               (nowait == 1 ? " (write_path: inline requested)"
                            : " refuses RWF_NOWAIT buffered writes; small page-cache writes inline");
    return c;
}

bool InlineWriteGate::page_ready(int fd, uint64_t page_off) noexcept {
    char b;
    struct iovec iov = {&b, 1};
    // Cached: 1. Wholly beyond EOF: 0 (no read needed, the page starts zeroed). Not cached:
    // EAGAIN. A write-only fd: EBADF (we cannot tell: not ready).
    return ::preadv2(fd, &iov, 1, static_cast<off_t>(page_off), RWF_NOWAIT) >= 0;
}

bool InlineWriteGate::allow(int fd, int open_flags, uint64_t off, uint64_t len,
                            uint32_t io_in_flight) noexcept {
    if (!enabled_ || len == 0 || len > max_inline_ || io_in_flight != 0 ||
        (open_flags & (O_DIRECT | O_SYNC | O_DSYNC)) != 0) {
        return false;
    }
    if (backoff_.count() != 0 && Clock::now() < backoff_until_) {
        return false;
    }
    const uint64_t end = off + len;
    if (end < off) {
        return false;
    }
    const uint64_t first = off & ~(kPage - 1);
    const uint64_t last = (end - 1) & ~(kPage - 1);
    if ((off & (kPage - 1)) != 0 && !page_ready(fd, first)) {
        return false;
    }
    if ((end & (kPage - 1)) != 0 && (last != first || (off & (kPage - 1)) == 0) &&
        !page_ready(fd, last)) {
        return false;
    }
    return true;
}

int64_t InlineWriteGate::run_delay_ns() noexcept {
    // schedstat: "<on-cpu ns> <runnable-but-waiting ns> <timeslices>". Read on slow writes
    // only; -1 when unavailable (then no preemption is subtracted).
    auto fd = UniqueFd::from_syscall(::open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC));
    if (!fd) {
        return -1;
    }
    char buf[96];
    ssize_t n = ::read(fd->get(), buf, sizeof(buf) - 1);
    if (n <= 0) {
        return -1;
    }
    buf[n] = '\0';
    char* end = nullptr;
    std::strtoull(buf, &end, 10);
    if (end == buf) {
        return -1;
    }
    const char* second = end;
    unsigned long long v = std::strtoull(second, &end, 10);
    return end == second ? -1 : static_cast<int64_t>(v);
}

int64_t InlineWriteGate::write(int fd, const struct iovec* iov, int n, uint64_t off) noexcept {
    const Clock::time_point t0 = Clock::now();
    ssize_t r = ::pwritev(fd, iov, n, static_cast<off_t>(off));
    const int e = errno;
    const Clock::time_point t1 = Clock::now();
    bump(inline_);
    if (t1 - t0 > slow_limit_) {
        struct rusage ru {};
        const long nvcsw = ::getrusage(RUSAGE_THREAD, &ru) == 0 ? ru.ru_nvcsw : -2;
        const bool blocked = nvcsw_base_ < 0 || nvcsw < 0 || nvcsw != nvcsw_base_;
        nvcsw_base_ = nvcsw;
        // Time the thread spent runnable without a CPU since the last slow write: at least
        // the preemption inside this one. Only the rest of the write's time is a stall.
        const int64_t delay = run_delay_ns();
        const std::chrono::nanoseconds waited{
            run_delay_base_ >= 0 && delay >= run_delay_base_ ? delay - run_delay_base_ : 0};
        run_delay_base_ = delay;
        const std::chrono::nanoseconds took = t1 - t0;
        if (!blocked || took - waited <= slow_limit_) {
            bump(preempted_); // runnable (almost) all along: another task had the CPU
            return r < 0 ? -static_cast<int64_t>(e) : static_cast<int64_t>(r);
        }
        bump(slow_);
        // Drain the bucket for the time since the last stall, then add this one.
        // kStallBudgetPerSec of every second since the last stall (2 us per ms).
        const auto since = std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - last_slow_);
        const auto drained = since * kStallBudgetPerSec.count() / 1000000;
        stall_debt_ = (drained >= stall_debt_ ? std::chrono::nanoseconds{0} : stall_debt_ - drained) +
                      (took - waited);
        last_slow_ = t1;
        if (stall_debt_ > burst_) {
            bump(backoffs_);
            if (backoff_.count() == 0 || t1 - last_backoff_ > kQuiet) {
                backoff_ = kFirstBackoff;
            } else {
                backoff_ = backoff_ * 2 > kMaxBackoff ? kMaxBackoff : backoff_ * 2;
            }
            last_backoff_ = t1;
            backoff_until_ = t1 + backoff_;
            stall_debt_ = std::chrono::nanoseconds{0};
        }
    }
    return r < 0 ? -static_cast<int64_t>(e) : static_cast<int64_t>(r);
}

} // namespace vdh

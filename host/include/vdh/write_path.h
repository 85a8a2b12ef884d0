// SPDX-License-Identifier: MIT
// How a device's buffered WRITEs reach the host file, chosen once per share or disk at device
// creation by probing its filesystem (share key `write_path`), and the per-queue gate that
// decides, request by request, whether a write may run inline on the poll lcore.
//
// - nowait: the filesystem accepts non-blocking buffered writes (RWF_NOWAIT; XFS on Linux
//   6.x). io_uring then writes into the page cache inline, at submission, and punts to a
//   worker only when the write would block. Nothing to decide per request.
// - inline: the filesystem refuses RWF_NOWAIT for buffered writes (ext4, tmpfs on 6.1),
//   so io_uring would punt every write to a worker thread (100-260 us on a 2-CPU host,
//   where a page-cache pwrite costs ~2 us). Small page-cache writes instead run as a plain
//   pwritev on the lcore, under rules that bound their cost (InlineWriteGate).
// - punt: every write goes to io_uring (and so to its workers): network and FUSE
//   filesystems, where a write may wait on a server without bound.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include "vdh/result.h"

namespace vdh {

enum class WritePath : uint8_t {
    Auto,   ///< choose by probing (profile default)
    Nowait, ///< io_uring, inline in the kernel when it cannot block
    Inline, ///< small page-cache writes as pwritev on the lcore, the rest via io_uring
    Punt,   ///< everything via io_uring
};

const char* write_path_name(WritePath p) noexcept;

/// The probe's answer for one share.
struct WritePathChoice {
    WritePath path = WritePath::Punt;
    std::string reason; ///< one line for the log: the filesystem and what it accepted
};

/// Probes the filesystem of directory \p dir (statfs, and a 4 KiB RWF_NOWAIT write to an
/// O_TMPFILE there) and resolves \p requested: Auto picks nowait, else inline on a local
/// page-cache filesystem (ext4, tmpfs, xfs, btrfs, f2fs), else punt. An explicit request
/// the filesystem cannot honour (nowait where RWF_NOWAIT is refused, inline on a non-local
/// filesystem) is an error naming the filesystem. \p readonly shares are not probed (they
/// take no writes): punt. Control thread, at device creation.
Result<WritePathChoice> choose_write_path(const std::string& dir, WritePath requested,
                                          bool readonly, std::string* error);

/// Per-queue decision for WritePath::Inline (lcore only; no atomics, no allocation).
///
/// A write runs inline only when all of these hold, so that it cannot wait on disk:
///  - its file is on the share root's own filesystem, the one the path was probed on (a
///    submount may be NFS or FUSE; checked by the dispatcher through IoFile::on_share_fs);
///  - it is at most max_inline bytes (kMaxInline unless the plugin says otherwise);
///  - the file was not opened O_DIRECT, O_SYNC or O_DSYNC (those wait for the device);
///  - no write, fallocate or fsync of this queue is in flight on io_uring (the inline write
///    would wait for the inode lock such a request holds);
///  - a page it only partly covers is already in the page cache (checked with a 1-byte
///    RWF_NOWAIT read), or lies wholly beyond EOF: a write never reads from disk;
///  - the gate is not backing off.
/// Dirty-page throttling and lock holders outside this queue (another device, a host
/// process, the journal) cannot be seen in advance: every inline write is timed. A write
/// that took longer than kSlow is a stall; stalls fill a leaky bucket that drains at
/// kStallBudgetPerSec (0.2% of the lcore) and holds kStallBurst. When a stall overflows
/// it, inlining stops for this queue for a backoff that doubles (100 ms up to 10 s) while
/// overflows repeat and resets after a quiet minute. So inline writes cost the lcore at
/// most about 2 ms of waiting per second, plus one long stall per backoff period.
/// Preemption is not the filesystem's fault (a poll core that is not isolated shares its
/// CPU): a slow write during which the lcore thread made no voluntary context switch (its
/// ru_nvcsw, read only after a slow write, is where the previous slow write left it) was
/// preempted, not blocked, and is not counted (preempted_writes()); otherwise the time the
/// thread spent runnable but without a CPU since the previous slow write (schedstat's run
/// delay) is taken off the write's time, and only the rest is a stall.
class InlineWriteGate {
public:
    static constexpr uint64_t kMaxInline = 64 * 1024;
    static constexpr std::chrono::microseconds kSlow{200};
    static constexpr std::chrono::milliseconds kFirstBackoff{100};
    static constexpr std::chrono::milliseconds kMaxBackoff{10000};
    static constexpr std::chrono::seconds kQuiet{60};
    static constexpr std::chrono::microseconds kStallBudgetPerSec{2000};
    static constexpr std::chrono::microseconds kStallBurst{4000};

    /// \p enabled: the share's path is WritePath::Inline. \p slow: from how long an inline
    /// write counts as a stall; \p burst: the bucket's size (tests shorten both).
    /// \p max_inline: the largest write that may run inline.
    explicit InlineWriteGate(bool enabled, std::chrono::nanoseconds slow = kSlow,
                             std::chrono::nanoseconds burst = kStallBurst,
                             uint64_t max_inline = kMaxInline) noexcept
        : enabled_(enabled), slow_limit_(slow), burst_(burst), max_inline_(max_inline) {}

    uint64_t max_inline() const noexcept { return max_inline_; }

    /// True when the write of \p len bytes at \p off to \p fd (opened with \p open_flags)
    /// may run inline now. \p io_in_flight: write-class requests of this queue in flight.
    bool allow(int fd, int open_flags, uint64_t off, uint64_t len, uint32_t io_in_flight) noexcept;

    /// Runs an allowed write: pwritev, timed. Returns bytes written or -errno.
    int64_t write(int fd, const struct iovec* iov, int n, uint64_t off) noexcept;

    // Counters: written by the lcore only, readable from any thread (statistics).
    uint64_t inline_writes() const noexcept { return inline_.load(std::memory_order_relaxed); }
    uint64_t slow_writes() const noexcept { return slow_.load(std::memory_order_relaxed); }
    uint64_t preempted_writes() const noexcept {
        return preempted_.load(std::memory_order_relaxed);
    }
    uint64_t backoffs() const noexcept { return backoffs_.load(std::memory_order_relaxed); }
    /// The current backoff period (0 before the first slow write).
    std::chrono::milliseconds backoff() const noexcept { return backoff_; }

private:
    using Clock = std::chrono::steady_clock;
    /// The calling thread's schedstat run delay in ns (-1 when unavailable).
    static int64_t run_delay_ns() noexcept;
    /// True when the page at \p page_off needs no read from disk to be partly written.
    static bool page_ready(int fd, uint64_t page_off) noexcept;

    bool enabled_;
    std::chrono::nanoseconds slow_limit_;
    std::chrono::nanoseconds burst_;
    uint64_t max_inline_;
    Clock::time_point backoff_until_{};
    Clock::time_point last_slow_{};
    Clock::time_point last_backoff_{};
    std::chrono::nanoseconds stall_debt_{0}; ///< the leaky bucket's level
    std::chrono::milliseconds backoff_{0};
    /// Single writer (the lcore): plain load + store, no locked instruction.
    static void bump(std::atomic<uint64_t>& c) noexcept {
        c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
    std::atomic<uint64_t> inline_{0};
    std::atomic<uint64_t> slow_{0};
    std::atomic<uint64_t> preempted_{0};
    long nvcsw_base_ = -1; ///< ru_nvcsw after the last slow write (-1: none yet)
    int64_t run_delay_base_ = -1; ///< run_delay_ns() after the last slow write
    std::atomic<uint64_t> backoffs_{0};
};

} // namespace vdh

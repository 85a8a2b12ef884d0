// SPDX-License-Identifier: MIT
// VirtioblkDevice: one virtio-blk disk (device id 2) behind the plugin ABI, written as a
// class of the plugin adapter's shape (member names = vdh_device_ops names). It ties the
// profile, the backing file, the config space, the request decoder and one io_uring per
// request queue together: handle_request() decodes a chain and queues its I/O, flush()
// submits a batch, poll() reaps completions and writes the status byte. Requests answered
// without I/O (GET_ID, malformed ones) complete at once. Rings and eventfds exist only while
// a frontend is connected; the counters live as long as the device.
#pragma once

#include <sys/uio.h>

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backing_file.h"
#include "blk_profile.h"
#include "blk_uring.h"
#include "config_space.h"
#include "request_decoder.h"
#include "vdh/plugin_abi.h"
#include "vdh/plugin_adapter.h"
#include "vdh/write_path.h"

namespace vdh::virtioblk {

/// Data iovecs one request may carry (seg_max plus room for region splits); beyond, IOERR.
inline constexpr uint32_t kMaxDataIovecs = 2 * kSegMax + 4;

/// Per-request state in the host's pre-allocated request context (vdh_request::ctx, one per
/// ring slot): the data path allocates nothing.
struct RequestCtx {
    void* token = nullptr;
    uint8_t* status_byte = nullptr;
    uint64_t offset = 0;    ///< next byte to transfer (read/write), or the range's start
    uint64_t remaining = 0; ///< bytes still to transfer, or the range's length
    uint64_t len = 0;       ///< the request's data bytes (for the byte counters)
    uint32_t used_len = 0;  ///< what the used ring reports (the writable part's size)
    uint32_t iov_first = 0; ///< first iovec still to transfer (after a short transfer)
    uint32_t n_iov = 0;
    int fd = -1; ///< the backing fd this request uses (direct or buffered)
    uint16_t queue = 0;
    BlkOp op = BlkOp::Fail;
    uint8_t retries = 0;  ///< EAGAIN / EINTR resubmissions
    bool unmap = false;   ///< WRITE_ZEROES: punch a hole
    bool ordered = false; ///< a write-class request counted in write_inflight_ until finish()
    RequestCtx* next_deferred = nullptr; ///< in its queue's deferred-write list
    struct iovec iov[kMaxDataIovecs];
};

/// Counters of one request queue, written by its lcore only (relaxed), read by anyone.
struct alignas(64) QueueCounters {
    std::atomic<uint64_t> reads{0};
    std::atomic<uint64_t> writes{0};
    std::atomic<uint64_t> inline_writes{0}; ///< writes done as pwritev on the lcore
    std::atomic<uint64_t> uring_writes{0};  ///< writes done through io_uring
    std::atomic<uint64_t> flushes{0};
    std::atomic<uint64_t> discards{0};
    std::atomic<uint64_t> write_zeroes{0};
    std::atomic<uint64_t> get_ids{0};
    std::atomic<uint64_t> read_bytes{0};
    std::atomic<uint64_t> written_bytes{0};
    std::atomic<uint64_t> ioerr{0};     ///< answered VIRTIO_BLK_S_IOERR (malformed or failed)
    std::atomic<uint64_t> unsupp{0};    ///< answered VIRTIO_BLK_S_UNSUPP
    std::atomic<uint64_t> no_status{0}; ///< returned without a status (no writable byte)
    std::atomic<uint64_t> io_errors{0}; ///< the backing file failed an operation
    std::atomic<uint64_t> short_io{0};  ///< short reads / writes continued
    /// `direct` disk: reads / writes whose guest buffers O_DIRECT cannot take, done buffered.
    std::atomic<uint64_t> buffered_fallbacks{0};
    /// Malformed requests per reason (request_decoder.h BlkError).
    std::array<std::atomic<uint64_t>, static_cast<size_t>(BlkError::Count)> malformed{};
};

/// Totals over queues (a snapshot).
struct BlkStats {
    uint64_t reads = 0, writes = 0, inline_writes = 0, uring_writes = 0, flushes = 0, discards = 0,
             write_zeroes = 0, get_ids = 0;
    uint64_t read_bytes = 0, written_bytes = 0;
    uint64_t ioerr = 0, unsupp = 0, no_status = 0, io_errors = 0, short_io = 0;
    uint64_t buffered_fallbacks = 0;
    std::array<uint64_t, static_cast<size_t>(BlkError::Count)> malformed{};
    uint64_t uring_submitted = 0, uring_enters = 0;
    uint64_t inline_slow_writes = 0, inline_preempted_writes = 0, inline_backoffs = 0;
};

class VirtioblkDevice {
  public:
    // ---- the adapter's static members (vdh_plugin_info) ----------------------------------
    /// Parses the profile and takes the backing file host_paths() opened, or opens it;
    /// reserves the disk's fds. Control thread. Allocates.
    static Result<std::unique_ptr<VirtioblkDevice>> create(CreateContext& ctx);
    /// Parses the profile only (the --check-config trial create() checks the file).
    static Status check_config(ConfigContext& ctx);
    /// Opens the backing file before the sandbox (preopened.h); names no directory.
    static Status host_paths(HostPathsContext& ctx);

    /// Takes the opened backing file. Control thread. Allocates.
    VirtioblkDevice(const vdh_host_api* host, std::string name, BlkProfile profile,
                    BackingFile backing);
    ~VirtioblkDevice();
    VirtioblkDevice(const VirtioblkDevice&) = delete;
    VirtioblkDevice& operator=(const VirtioblkDevice&) = delete;

    // ---- the adapter's members (vdh_device_ops) ------------------------------------------
    /// Control thread. Refuses (-EINVAL, logged) more queues than num_queues.
    int start(uint64_t features, const vdh_queue_info* queues, uint16_t nq);
    void stop() noexcept;
    void disconnect() noexcept;
    /// Lcore. Hot path: no alloc, no block, no throw.
    int64_t handle_request(const vdh_request* req) noexcept;
    uint32_t flush(uint16_t q) noexcept;
    uint32_t poll(uint16_t q) noexcept;
    int wake_fd(uint16_t q) noexcept;
    int stats_json(char* buf, size_t len) noexcept;
    int metrics(vdh_metric_emit_fn emit, void* ctx) noexcept;
    uint64_t get_features() const noexcept { return device_features(geometry_); }
    int get_config(uint32_t offset, uint8_t* buf, uint32_t len) const noexcept {
        return read_config_space(geometry_, offset, buf, len);
    }
    /// No field is writable (no VIRTIO_BLK_F_CONFIG_WCE): every write is refused.
    int set_config(uint32_t, const uint8_t*, uint32_t) noexcept { return -EPERM; }

    const BlkGeometry& geometry() const noexcept { return geometry_; }
    BlkStats stats() const noexcept;

  private:
    static void on_cqe(void* self, uint64_t user_data, int32_t res) noexcept;
    /// Queues \p c's next operation on its queue's ring. False when no SQE could be had.
    bool submit(RequestCtx* c) noexcept;
    /// Runs an OUT request as a pwritev on the lcore when the queue's gate allows it (the
    /// disk's write path is inline; vdh/write_path.h). True when it completed (status OK);
    /// false when it goes to io_uring (\p c advanced past what a short write wrote).
    bool write_inline(RequestCtx* c) noexcept;
    /// Runs the queue's deferred writes once nothing write-class of it is in flight on
    /// io_uring: inline when the gate allows, else io_uring (the rest then waits again).
    void drain_deferred(uint16_t q) noexcept;
    /// Writes the status, counts, and completes \p c through the host (lcore).
    void finish(RequestCtx* c, uint8_t status) noexcept;
    void log(int level, const std::string& msg) const;

    const vdh_host_api* host_;
    std::string name_;
    BlkProfile profile_;
    BackingFile backing_;
    BlkGeometry geometry_;
    DecodeLimits limits_;
    std::array<char, kIdBytes> id_{}; ///< GET_ID answer: the serial, NUL-padded
    /// WRITE_ZEROES without UNMAP: ZERO_RANGE until the file system refuses it, then
    /// PUNCH_HOLE (a hole reads as zeroes). Set by an lcore, read by all.
    std::atomic<bool> zero_range_unsupported_{false};
    std::array<QueueCounters, kMaxQueues> counters_;
    /// Per queue: the inline-write gate (enabled only on the inline path) and the
    /// write-class requests (OUT, FLUSH, DISCARD, WRITE_ZEROES) in flight on io_uring, which
    /// an inline write must not overtake or wait behind. Lcore only (the gates' counters
    /// are readable by anyone).
    std::vector<std::unique_ptr<InlineWriteGate>> gates_;
    std::array<uint32_t, kMaxQueues> write_inflight_{};
    /// Per queue (inline path only): small writes that arrived while write-class requests
    /// were in flight on io_uring, in arrival order. Holding them (their ring slots bound the
    /// list) instead of punting them too keeps a full queue from staying on io_uring for
    /// good once one write went there.
    std::array<RequestCtx*, kMaxQueues> deferred_head_{};
    std::array<RequestCtx*, kMaxQueues> deferred_tail_{};
    bool inline_path_ = false; ///< the disk's write path is WritePath::Inline
    int open_flags_ = 0; ///< the backing fd's status flags (for the gate's O_DIRECT/O_SYNC rule)
    /// Guards changes of engines_ (control thread) against stats readers. Lcores read
    /// engines_ without it: it only changes while no queue is served. Lock order: leaf.
    mutable std::mutex ctl_mu_;
    std::vector<std::unique_ptr<BlkUring>> engines_; ///< per queue
    uint64_t retired_submitted_ = 0;                 ///< of engines freed at disconnect
    uint64_t retired_enters_ = 0;
};

} // namespace vdh::virtioblk

// SPDX-License-Identifier: MIT
// FuseDispatcher: decodes one FUSE request from a virtqueue chain (bounds-checked iovecs),
// validates it, calls the Filesystem, and encodes the reply byte-exactly into the chain's
// writable buffers. Disk I/O and calls that may block go to an IoEngine and finish through
// complete_io(). One dispatcher serves all queues of a device; it holds the FUSE session
// state (INIT negotiation) and per-queue scratch memory. A new INIT on a live session (a
// guest reset: QEMU restarts the vrings without disconnecting) ends the old session first.
// Not for vhost-user or ring work: the device plugin owns that and calls handle() per chain.
#pragma once

#include <sys/uio.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

#include "filesystem.h"
#include "fuse/fuse_counters.h"
#include "fuse/fuse_wire.h"
#include "fuse/io_engine.h"
#include "vdh/plugin_abi.h"

namespace vdh::virtiofs {

class FuseDispatcher;

/// Most iovecs one READ/WRITE data part may span (256 pages + slack for unaligned ends).
inline constexpr int kMaxIoIovs = 260;
/// Most iovecs the fixed reply of an async request (header + fuse_write_out) may span.
inline constexpr int kMaxReplyIovs = 24;
/// The hiprio queue: it takes FORGET, BATCH_FORGET and INTERRUPT only.
inline constexpr uint16_t kHiprioQueue = 0;
/// Most bytes one COPY_FILE_RANGE moves; a longer request gets a short count (legal: the
/// guest kernel returns it to userspace, which loops), so one request is bounded work.
inline constexpr uint64_t kMaxCopyChunk = 4ULL << 20;

/// Per-request state that outlives handle() for asynchronous requests. A plain struct:
/// the host pre-allocates kFuseRequestCtxSize bytes per ring entry (request_ctx_size) and
/// the dispatcher fills it; nothing in it owns memory. Fields are the dispatcher's; the
/// engine only passes the pointer back.
struct FuseRequestCtx {
    FuseDispatcher* owner;
    void* token; ///< vdh_request::token, for the completion callback
    uint64_t unique;
    uint32_t opcode;
    uint32_t n_reply_iov; ///< reply_iov entries in use
    int32_t n_io_iov;     ///< io_iov entries in use
    uint32_t io_bytes;    ///< bytes the data iovecs describe (READ/WRITE)
    uint64_t nodeid;
    uint64_t start_tsc; ///< TSC at the request's arrival (latency histogram)
    RequestCtx rc; ///< caller identity, for calls the worker makes
    union Args {
        fuse_read_in read;
        fuse_write_in write;
        fuse_fsync_in fsync;
        fuse_fallocate_in fallocate;
        fuse_lk_in lk;
        fuse_copy_file_range_in copy;
    } args;
    struct iovec reply_iov[kMaxReplyIovs]; ///< the out bytes of header (+ fuse_write_out)
    struct iovec io_iov[kMaxIoIovs];       ///< READ destination / WRITE source in guest memory
    /// While file_held: a std::shared_ptr<const void> (IoFile::keep) constructed in place,
    /// keeping the open file of an engine request (and so its fd number) alive until
    /// complete_io() has encoded the reply. The dispatcher creates and destroys it.
    alignas(std::shared_ptr<const void>) unsigned char file_ref[sizeof(
        std::shared_ptr<const void>)];
    bool file_held;
};

/// What plugins put in vdh_plugin_info::request_ctx_size.
inline constexpr size_t kFuseRequestCtxSize = sizeof(FuseRequestCtx);

struct FuseDispatcherConfig {
    /// max_pages announced at INIT (1..256); max_write = max_pages * 4096.
    uint32_t max_pages = kFuseMaxPagesLimit;
    /// INIT max_background / congestion_threshold (Rust virtiofsd's values).
    uint16_t max_background = UINT16_MAX;
    uint16_t congestion_threshold = (UINT16_MAX / 4) * 3;
    /// Queues handle() may be called for (req.queue < num_queues): one scratch area each
    /// (~140 KiB) for names and xattr values. Requests on other queues that need scratch
    /// get EIO.
    uint16_t num_queues = 2;
    /// Time each request into the latency histograms (FuseCounters::latency): two TSC
    /// reads per request. Off: no TSC read, the histograms stay empty.
    bool time_requests = true;
    /// Default engine for handle(req, ctx); null = everything synchronous.
    IoEngine* engine = nullptr;
    /// Called once per asynchronous request after its reply is encoded, with the bytes
    /// written (the device maps it to vdh_host_api::complete). Null = never go async.
    void (*done)(void* token, int64_t written) = nullptr;
};

class FuseDispatcher {
public:
    /// \p fs must outlive the dispatcher. Allocates the per-queue scratch.
    // Allocates: num_queues scratch areas (throws std::bad_alloc; cold path).
    FuseDispatcher(Filesystem& fs, const FuseDispatcherConfig& config);
    ~FuseDispatcher();
    FuseDispatcher(const FuseDispatcher&) = delete;
    FuseDispatcher& operator=(const FuseDispatcher&) = delete;

    /// Handles one request (a chain from any queue; FORGETs come on queue 0). \p ctx is the
    /// request's pre-allocated context (may be null: then everything is synchronous).
    /// Returns the bytes written to req.out (= fuse_out_header.len; 0 for requests that have
    /// no reply), VDH_ASYNC when complete_io() will finish it, or -errno when not even an
    /// error reply fits (the chain goes back with 0 bytes). Call only from the lcore that
    /// serves req.queue.
    /// Hot path: no alloc, no block, no throw.
    int64_t handle(const vdh_request& req, FuseRequestCtx* ctx) noexcept {
        return handle(req, ctx, config_.engine);
    }
    /// Same, with the engine of this queue (devices with one engine per lcore).
    int64_t handle(const vdh_request& req, FuseRequestCtx* ctx, IoEngine* engine) noexcept;

    /// Finishes an asynchronous request: encodes its reply from \p res (bytes or 0 on
    /// success, -errno on failure) and calls the config's done(token, written). Any thread.
    void complete_io(FuseRequestCtx* ctx, int64_t res) noexcept;
    /// complete_io() for engines that only have the void* ctx they were given.
    static void complete(void* ctx, int64_t res) noexcept {
        auto* c = static_cast<FuseRequestCtx*>(ctx);
        c->owner->complete_io(c, res);
    }
    /// complete() for an engine that reaps completions on the lcore serving the request's
    /// queue (io_uring polled by that lcore): counts into the queue's own block, without a
    /// locked instruction. Only from that lcore.
    static void complete_on_lcore(void* ctx, int64_t res) noexcept;

    /// The session ended without DESTROY (frontend disconnect): calls fs.destroy() and
    /// waits for a new INIT. Control thread. Requests that are still with an engine stay
    /// safe: they hold their open file (FuseRequestCtx::file_ref) and finish normally.
    void end_session() noexcept;
    /// Ends the session for good (the share is removed): every later request fails with
    /// EIO, INIT included. Called with nothing in flight.
    void revoke() noexcept;

    bool initialized() const noexcept { return initialized_.load(std::memory_order_acquire); }
    /// Negotiated minor version and FUSE_* flags (flags2 << 32); valid once initialized.
    uint32_t negotiated_minor() const noexcept { return minor_.load(std::memory_order_relaxed); }
    uint64_t negotiated_flags() const noexcept { return want_.load(std::memory_order_relaxed); }
    /// The counters summed over all queues (a snapshot). Any thread.
    FuseStats stats() const noexcept;
    const FuseDispatcherConfig& config() const noexcept { return config_; }

private:
    struct Call;
    struct QueueScratch;

    /// handle() after the header was read: validation and the opcode's handler.
    int64_t dispatch(Call& c) noexcept;
    /// Encodes an asynchronous request's reply, counts it into \p ctr and calls done().
    void finish_io(FuseRequestCtx* ctx, int64_t res, const FuseCounterSink& ctr) noexcept;

    // Session
    int64_t do_init(Call& c) noexcept;
    int64_t do_destroy(Call& c) noexcept;
    int64_t do_forget(Call& c) noexcept;
    int64_t do_batch_forget(Call& c) noexcept;
    int64_t do_interrupt(Call& c) noexcept;
    // Metadata (synchronous)
    int64_t do_lookup(Call& c) noexcept;
    int64_t do_getattr(Call& c) noexcept;
    int64_t do_setattr(Call& c) noexcept;
    int64_t do_readlink(Call& c) noexcept;
    int64_t do_symlink(Call& c) noexcept;
    int64_t do_mknod(Call& c) noexcept;
    int64_t do_mkdir(Call& c) noexcept;
    int64_t do_unlink_rmdir(Call& c) noexcept;
    int64_t do_rename(Call& c) noexcept;
    int64_t do_link(Call& c) noexcept;
    int64_t do_open(Call& c) noexcept;
    int64_t do_create(Call& c) noexcept;
    int64_t do_tmpfile(Call& c) noexcept;
    int64_t do_statfs(Call& c) noexcept;
    int64_t do_release(Call& c) noexcept;
    int64_t do_flush(Call& c) noexcept;
    int64_t do_opendir(Call& c) noexcept;
    int64_t do_readdir(Call& c) noexcept;
    int64_t do_releasedir(Call& c) noexcept;
    int64_t do_access(Call& c) noexcept;
    int64_t do_setxattr(Call& c) noexcept;
    int64_t do_getxattr(Call& c) noexcept;
    int64_t do_listxattr(Call& c) noexcept;
    int64_t do_removexattr(Call& c) noexcept;
    int64_t do_getlk(Call& c) noexcept;
    int64_t do_setlk(Call& c) noexcept;
    int64_t do_lseek(Call& c) noexcept;
    // I/O (engine or synchronous)
    int64_t do_read(Call& c) noexcept;
    int64_t do_write(Call& c) noexcept;
    int64_t do_fsync(Call& c) noexcept;
    int64_t do_fallocate(Call& c) noexcept;
    int64_t do_blocking(Call& c) noexcept; // SETLKW, COPY_FILE_RANGE, SYNCFS, FSYNCDIR

    /// Takes the fixed reply bytes into ctx->reply_iov; false when they do not fit.
    bool take_reply_iovs(Call& c, size_t bytes) noexcept;
    /// Hands ctx to the engine or runs it synchronously; returns handle()'s result.
    int64_t submit_io(Call& c, IoFile& file) noexcept;
    /// Replies with a variable-size payload of at most \p size bytes that \p fill
    /// (Result<size_t>(void* buf, size_t size)) writes: into guest memory directly when
    /// that area is contiguous, else into \p s's scratch and then copied.
    template <typename Fill>
    int64_t reply_filled(Call& c, size_t size, QueueScratch* s, Fill&& fill) noexcept;
    /// Submits ctx's operation on open handle \p fh to the engine when it has one and the
    /// backend gives an fd; otherwise runs it synchronously. Returns handle()'s result.
    int64_t submit_or_sync(Call& c, uint64_t fh, bool for_write) noexcept;
    /// Runs ctx's operation through the Filesystem; \p may_block false on the lcore.
    int64_t run_sync(FuseRequestCtx* ctx, bool may_block) noexcept;
    /// Encodes the reply of ctx's operation from \p res (counting into \p ctr); returns
    /// the bytes written.
    int64_t encode_io_reply(FuseRequestCtx* ctx, int64_t res,
                            const FuseCounterSink& ctr) noexcept;
    static void blocking_entry(void* ctx) noexcept;
    /// Drops ctx's open-file reference, if it holds one (may close the fd).
    static void release_file(FuseRequestCtx* ctx) noexcept;
    /// Ends the current session (fs.destroy()) if there is one. session_mu_ held.
    void end_session_locked() noexcept;
    /// Largest READ/WRITE size INIT announced (max_pages * 4096).
    uint32_t max_io() const noexcept {
        return config_.max_pages * static_cast<uint32_t>(kPageSize);
    }

    int64_t reply_error(const Call& c, int err) noexcept;
    int64_t reply_ok(const Call& c, const void* a, size_t na, const void* b = nullptr,
                     size_t nb = 0) noexcept;
    /// The reply to a backend call: its error, or its result as the payload (\p r's
    /// struct; none for a Status; CREATE/TMPFILE's entry then open).
    template <typename T>
    int64_t reply(const Call& c, const Result<T>& r) noexcept;
    int64_t reply(const Call& c, const Status& s) noexcept;
    int64_t reply(const Call& c, const Result<CreateOut>& r) noexcept;
    /// Whether the out buffers hold a header plus \p payload bytes.
    bool out_fits(const Call& c, size_t payload) const noexcept;
    /// Copies the request's whole argument payload to the queue's scratch (guest memory is
    /// read once, so names cannot change after validation). Returns 0 or a positive errno.
    int copy_args(Call& c, const char** data) noexcept;
    /// Reads a create-type request's extensions (after \p unread more payload bytes) into
    /// the queue's scratch and decodes them into c.rc. Returns 0 or a positive errno.
    int read_ext(Call& c, size_t unread) noexcept;
    QueueScratch* scratch(uint16_t queue) noexcept;
    /// Where requests of \p queue count (its own block; the shared one beyond num_queues).
    FuseCounterSink counters(uint16_t queue) noexcept;

    Filesystem& fs_;
    FuseDispatcherConfig config_;
    std::unique_ptr<QueueScratch[]> scratch_;
    /// One block per queue, written only by the lcore serving it (see fuse_counters.h).
    std::unique_ptr<FuseCounters[]> queue_counters_;
    /// Counts made off the lcores (complete_io on any thread) and for queues without a block.
    FuseCounters shared_counters_;
    std::atomic<bool> initialized_{false};
    std::atomic<bool> revoked_{false}; ///< revoke(): no session ever again
    std::atomic<uint32_t> minor_{0};
    std::atomic<uint64_t> want_{0};
    std::atomic<bool> xattr_{false};
    /// Serializes session changes (INIT, DESTROY, end_session()): fs.destroy() and fs.init()
    /// never overlap. Lcores only try_lock it (a busy session change answers EBUSY), so a
    /// guest racing INITs on several queues cannot make an lcore wait. Lock order: leaf with
    /// respect to the dispatcher; the Filesystem's own locks nest inside.
    std::mutex session_mu_;
};

} // namespace vdh::virtiofs

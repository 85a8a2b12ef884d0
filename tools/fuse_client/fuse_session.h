// SPDX-License-Identifier: MIT
// FuseSession: a FUSE-over-virtio-fs client (the guest kernel's role) on top of the
// vhost-user frontend library. It owns the guest memory and the frontend Device (queue 0
// hiprio, queues 1..N requests), negotiates FUSE_INIT, and offers two layers:
//   * a non-blocking core for load generators: submit() a pre-allocated FuseRequest with a
//     cookie, poll()/wait() for completions; no allocation, one thread per queue;
//   * blocking typed calls (lookup, read, readdirplus, ...) built on that core, for tests.
// Not a file system: no inode cache, no lookup counting; callers own FUSE semantics.
#pragma once

#include <linux/fuse.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "frontend/device.h"
#include "frontend/guest_memory.h"
#include "frontend/split_virtqueue.h"
#include "fuse_client/fuse_request.h"
#include "vdh/result.h"

namespace vdh::fuse_client {

/// What INIT offers by default: what a Linux 6.x virtio-fs guest offers (64-bit: the high
/// half travels in flags2 with FUSE_INIT_EXT).
inline constexpr uint64_t kDefaultInitFlags =
    FUSE_ASYNC_READ | FUSE_POSIX_LOCKS | FUSE_ATOMIC_O_TRUNC | FUSE_EXPORT_SUPPORT |
    FUSE_BIG_WRITES | FUSE_DONT_MASK | FUSE_FLOCK_LOCKS | FUSE_HAS_IOCTL_DIR |
    FUSE_AUTO_INVAL_DATA | FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO | FUSE_ASYNC_DIO |
    FUSE_WRITEBACK_CACHE | FUSE_NO_OPEN_SUPPORT | FUSE_PARALLEL_DIROPS | FUSE_HANDLE_KILLPRIV |
    FUSE_POSIX_ACL | FUSE_ABORT_ERROR | FUSE_MAX_PAGES | FUSE_CACHE_SYMLINKS |
    FUSE_NO_OPENDIR_SUPPORT | FUSE_EXPLICIT_INVAL_DATA | FUSE_HANDLE_KILLPRIV_V2 |
    FUSE_SETXATTR_EXT | FUSE_INIT_EXT | FUSE_SECURITY_CTX | FUSE_HAS_INODE_DAX |
    FUSE_HAS_EXPIRE_ONLY;

inline constexpr uint16_t kHiprioQueue = 0;
inline constexpr uint64_t kRootNodeId = FUSE_ROOT_ID;

struct SessionOptions {
    std::string socket_path;
    /// Request queues (virtqueues 1..N); queue 0 is always hiprio.
    uint16_t num_request_queues = 1;
    /// Entries per virtqueue (power of two). Bounds the requests in flight per queue.
    uint16_t queue_size = 128;
    /// Ring features asked for (only what the device offers is negotiated).
    uint64_t wanted_features = frontend::kFIndirectDesc | frontend::kFEventIdx;
    /// Put each request in an indirect table (one ring descriptor per request) when
    /// INDIRECT_DESC was negotiated; else direct chains.
    bool indirect = true;
    /// Split data parts and reply payloads into descriptors of at most this many bytes
    /// (4096: one per page, as the Linux driver does); 0 = one descriptor per part.
    uint32_t segment_size = 4096;
    /// Guest RAM (memfd) size. Rings, the blocking calls' buffers (about 2 * max_pages
    /// pages per queue used) and alloc_request() buffers come out of it.
    uint64_t memory_bytes = 64ULL << 20;
    /// Ask for used-buffer notifications (call eventfd). false: wait() polls the ring.
    bool interrupts = true;
    /// Send FUSE_INIT in connect().
    bool send_init = true;
    uint32_t init_minor = 38;
    uint64_t init_flags = kDefaultInitFlags;
    uint32_t max_readahead = 128 * 1024;
    /// Largest READ/WRITE the blocking calls do, in pages (1..256; also capped by INIT's
    /// max_pages).
    uint32_t max_pages = 256;
    /// Credentials put in every in header; kSelf = this process's (getuid() etc.).
    static constexpr uint32_t kSelf = UINT32_MAX;
    uint32_t uid = kSelf, gid = kSelf, pid = kSelf;
    std::chrono::milliseconds connect_timeout{5000};
    /// Limit of each vhost-user reply (longer for a backend that starts after the connect).
    std::chrono::milliseconds reply_timeout{5000};
    /// Limit of each blocking call.
    std::chrono::milliseconds call_timeout{5000};
};

/// One completed request, as poll()/wait() report it.
struct Completion {
    FuseRequest* request = nullptr; ///< null for an unexpected used id (device bug)
    uint64_t cookie = 0;
    uint32_t used_len = 0;
};

/// A reply of call()/send_raw(): what the device wrote, unparsed.
struct Reply {
    uint32_t used_len = 0;
    fuse_out_header header{};     ///< zero when used_len < 16
    std::vector<uint8_t> payload; ///< bytes after the header (per header.len, used_len)
};

struct CreateReply {
    fuse_entry_out entry;
    fuse_open_out open;
};

/// One READDIRPLUS record.
struct DirEntryPlus {
    fuse_entry_out entry; ///< nodeid 0 for entries without a lookup ("." and "..")
    uint64_t ino = 0;
    uint64_t off = 0; ///< offset of the next entry
    uint32_t type = 0;
    std::string name;
};

class FuseSession {
public:
    using Millis = std::chrono::milliseconds;

    /// Creates guest memory, connects the device (1 + num_request_queues queues), starts
    /// it, takes every descriptor of every queue for the session's own use, and sends
    /// FUSE_INIT when options.send_init (failure: the INIT reply's errno, or EPROTO).
    /// Allocates.
    static Result<std::unique_ptr<FuseSession>> connect(const SessionOptions& options);
    FuseSession(const FuseSession&) = delete;
    FuseSession& operator=(const FuseSession&) = delete;
    ~FuseSession();

    /// Sends FUSE_INIT on queue 1 (blocking) and records the answer.
    Result<fuse_init_out> init();
    bool initialized() const noexcept { return initialized_; }
    const fuse_init_out& init_reply() const noexcept { return init_out_; }
    /// Negotiated flags: init_reply().flags | flags2 << 32.
    uint64_t negotiated_flags() const noexcept;
    /// Largest READ/WRITE payload of the blocking calls (bytes).
    uint32_t max_io_bytes() const noexcept;

    uint16_t num_queues() const noexcept { return static_cast<uint16_t>(queues_.size()); }
    uint16_t num_request_queues() const noexcept { return num_queues() - 1; }
    frontend::Device& device() noexcept { return *device_; }
    frontend::GuestMemory& memory() noexcept { return *mem_; }
    const SessionOptions& options() const noexcept { return options_; }

    // ---- non-blocking core -------------------------------------------------------------
    // Threads: any number of threads, each driving its own set of queues; one thread per
    // queue at a time (that includes in_flight()). submit/poll/wait/kick allocate nothing.
    // The session owns every descriptor of every queue: do not use the queues' add_chain()
    // or a RequestHelper on them. Typical loop: alloc_request() N slots up front, then
    // begin()/append() + submit(kick=false) each, kick(), poll() or wait(), resubmit.

    /// Makes a request slot with \p in_capacity (>= 40) and \p out_capacity bytes of guest
    /// buffers and room for its descriptors. Owned by the session (freed at destruction or
    /// with free_request()). Thread-safe against other alloc/free calls and against
    /// submit/poll on any queue. ENOMEM when guest memory is exhausted. Allocates.
    Result<FuseRequest*> alloc_request(uint32_t in_capacity, uint32_t out_capacity);
    /// Returns a request's buffers. EBUSY while in flight.
    Status free_request(FuseRequest* request);

    /// Publishes \p request (built with begin()/append*() or set_raw()) on \p queue:
    /// fills in len and a fresh unique (unless raw), zeroes the out header, writes the
    /// descriptors and makes the head available; kicks when \p kick (else call kick()).
    /// EINVAL: bad queue, in area shorter than a header (not raw) or nothing to send;
    /// EBUSY: request in flight; ENOSPC: not enough free descriptors (wait for
    /// completions). A failing kick is returned too, but the request is in flight then.
    /// Hot path: no alloc.
    Status submit(uint16_t queue, FuseRequest& request, uint64_t cookie, bool kick = true) noexcept;
    /// Notifies the device of everything published on \p queue (honours suppression).
    Status kick(uint16_t queue) noexcept;
    /// Takes up to out.size() completions of \p queue without waiting.
    /// Hot path: no alloc.
    size_t poll(uint16_t queue, std::span<Completion> out) noexcept;
    /// Like poll(), but waits up to \p timeout for at least one (ETIMEDOUT).
    Result<size_t> wait(uint16_t queue, std::span<Completion> out, Millis timeout) noexcept;
    /// Requests submitted on \p queue and not yet completed.
    uint32_t in_flight(uint16_t queue) const noexcept;
    /// Used ids that matched no request in flight (device bugs), over all queues.
    uint64_t unexpected_completions() const noexcept { return unexpected_.load(); }

    // ---- blocking calls ----------------------------------------------------------------
    // Each sends one request on call_queue() (FORGET: on hiprio) and waits for it; EBUSY if
    // that queue has other requests in flight, ETIMEDOUT after options.call_timeout (the
    // request then stays in flight and the queue's blocking calls return EBUSY). Typed
    // calls return the reply's errno as the error (EPROTO for a malformed reply).
    // Allocates (buffers on a queue's first call, result vectors).

    /// Queue used by the blocking calls (default 1). EINVAL for a bad index.
    Status set_call_queue(uint16_t queue) noexcept;
    uint16_t call_queue() const noexcept { return call_queue_; }

    /// Raw call: \p args after a header for \p opcode / \p nodeid, \p out_size writable
    /// bytes (header included). The reply comes back unparsed, whatever its error.
    Result<Reply> call(uint32_t opcode, uint64_t nodeid, std::span<const uint8_t> args,
                       uint32_t out_size);
    /// Sends \p in_bytes verbatim (a hand-made, possibly malformed request) on \p queue with
    /// \p out_size writable bytes (0: none) and waits for the used entry.
    Result<Reply> send_raw(uint16_t queue, std::span<const uint8_t> in_bytes, uint32_t out_size);

    Result<fuse_entry_out> lookup(uint64_t parent, std::string_view name);
    /// \p fh: GETATTR_FH with that handle when non-null.
    Result<fuse_attr_out> getattr(uint64_t nodeid, const uint64_t* fh = nullptr);
    /// Truncates (FATTR_SIZE, plus FATTR_FH when \p fh is non-null).
    Result<fuse_attr_out> setattr_size(uint64_t nodeid, uint64_t size,
                                       const uint64_t* fh = nullptr);
    Result<fuse_open_out> open(uint64_t nodeid, uint32_t flags);
    Result<fuse_open_out> opendir(uint64_t nodeid, uint32_t flags = 0);
    Result<CreateReply> create(uint64_t parent, std::string_view name, uint32_t flags,
                               uint32_t mode, uint32_t umask = 0);
    Result<fuse_entry_out> mkdir(uint64_t parent, std::string_view name, uint32_t mode,
                                 uint32_t umask = 0);
    Status unlink(uint64_t parent, std::string_view name);
    Status rmdir(uint64_t parent, std::string_view name);
    /// One READ of dst.size() (<= max_io_bytes(), else EINVAL) bytes at \p offset into
    /// guest buffers, copied to \p dst. Returns the bytes read (short at EOF).
    Result<size_t> read(uint64_t nodeid, uint64_t fh, uint64_t offset, std::span<uint8_t> dst);
    /// One WRITE of src.size() (<= max_io_bytes(), else EINVAL) bytes. Returns the bytes
    /// the device reports written.
    Result<size_t> write(uint64_t nodeid, uint64_t fh, uint64_t offset,
                         std::span<const uint8_t> src, uint32_t write_flags = 0);
    Status release(uint64_t nodeid, uint64_t fh, uint32_t flags = 0);
    Status releasedir(uint64_t nodeid, uint64_t fh);
    Status flush(uint64_t nodeid, uint64_t fh, uint64_t lock_owner = 0);
    Status fsync(uint64_t nodeid, uint64_t fh, bool datasync = false);
    /// One READDIRPLUS of up to \p size bytes from \p offset; empty at the end. Each entry
    /// other than "." and ".." took a lookup count.
    Result<std::vector<DirEntryPlus>> readdirplus(uint64_t nodeid, uint64_t fh, uint64_t offset,
                                                  uint32_t size = 65536);
    Result<fuse_kstatfs> statfs(uint64_t nodeid = kRootNodeId);
    /// FUSE_FORGET on the hiprio queue; waits for the device to return the buffer (no
    /// reply is written).
    Status forget(uint64_t nodeid, uint64_t nlookup);

private:
    struct QueueState;
    explicit FuseSession(const SessionOptions& options);
    Status setup_queues();
    /// Turns the first \p n entries of qs.used into completions, freeing descriptors.
    size_t finish(QueueState& qs, size_t n, std::span<Completion> out) noexcept;
    /// Calls fn(gpa, len, writable) for each descriptor \p r needs, in chain order.
    template <typename Fn>
    void for_each_segment(const FuseRequest& r, Fn&& fn) const noexcept;
    uint32_t count_segments(const FuseRequest& r) const noexcept;
    uint32_t segments_for(uint32_t in_cap, uint32_t out_cap) const noexcept;
    /// The queue's blocking-call request (made on first use).
    Result<FuseRequest*> sync_request(uint16_t queue);
    /// Submits \p r on \p queue and waits for it (the queue must be otherwise idle).
    Status run(uint16_t queue, FuseRequest& r);
    /// run() plus the reply's errno.
    Status run_ok(uint16_t queue, FuseRequest& r);
    template <typename T>
    Result<T> run_typed(uint16_t queue, FuseRequest& r);
    Result<fuse_entry_out> entry_call(uint32_t opcode, uint64_t parent, const void* arg,
                                      size_t arg_len, std::string_view name);

    SessionOptions options_;
    std::unique_ptr<frontend::GuestMemory> mem_;
    std::unique_ptr<frontend::Device> device_;
    std::vector<std::unique_ptr<QueueState>> queues_;
    std::mutex alloc_mu_; ///< guards mem_'s allocator and requests_. Lock order: leaf.
    std::vector<std::unique_ptr<FuseRequest>> requests_;
    std::atomic<uint64_t> next_unique_{2};
    std::atomic<uint64_t> unexpected_{0};
    bool use_indirect_ = false;
    bool initialized_ = false;
    fuse_init_out init_out_{};
    uint16_t call_queue_ = 1;
};

} // namespace vdh::fuse_client

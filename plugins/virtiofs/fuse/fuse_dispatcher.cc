// SPDX-License-Identifier: MIT
// FUSE request decoding, validation, dispatch to the Filesystem and reply encoding (see
// fuse_dispatcher.h). Everything here runs per request: no allocation, no exceptions, no
// logging; failures become error replies and counters.
#include "fuse/fuse_dispatcher.h"

#include <x86intrin.h>

#include <cerrno>
#include <cstring>
#include <new>
#include <string_view>
#include <type_traits>

#include "fuse/dirent_writer.h"
#include "fuse/request_ext.h"
#include "vdh/compiler.h"
#include "vdh/iovec_cursor.h"

namespace vdh::virtiofs {

namespace {

/// Largest argument payload copied to scratch: SETXATTR (16 + name + 64 KiB value) and
/// SYMLINK (two names up to 4 KiB) fit.
constexpr size_t kArgScratchSize = kXattrSizeMax + 8192;
/// Largest errno we pass through; anything else from an engine becomes EIO.
constexpr int64_t kMaxErrno = 4095;

/// FUSE_INIT flags we enable whenever the guest offers them.
constexpr uint64_t kAlwaysOnFlags = FUSE_ASYNC_READ | FUSE_ATOMIC_O_TRUNC | FUSE_EXPORT_SUPPORT |
                                    FUSE_BIG_WRITES | FUSE_DONT_MASK | FUSE_ASYNC_DIO |
                                    FUSE_MAX_PAGES | FUSE_INIT_EXT | kFuseCreateSuppGroup;
/// What `posix_acl` needs from the guest (all three, or INIT fails as in virtiofsd).
constexpr uint64_t kPosixAclFlags = FUSE_POSIX_ACL | FUSE_DONT_MASK | FUSE_SETXATTR_EXT;
/// The first minor whose guests send the security context as a request extension
/// (total_extlen); 7.36 and 7.37 append it without saying so, which we do not decode.
constexpr uint32_t kExtMinor = 38;

/// Splits the next NUL-terminated string off [*p, end). False if there is no NUL.
bool next_string(const char** p, const char* end, std::string_view* out) noexcept {
    const auto* nul =
        static_cast<const char*>(std::memchr(*p, '\0', static_cast<size_t>(end - *p)));
    if (nul == nullptr) {
        return false;
    }
    *out = std::string_view(*p, static_cast<size_t>(nul - *p));
    *p = nul + 1;
    return true;
}

/// A directory entry name: non-empty, no '/'. "." and ".." are the backend's business.
bool valid_name(std::string_view s) noexcept {
    return !s.empty() && std::memchr(s.data(), '/', s.size()) == nullptr;
}

uint64_t flags_from(const FsCapabilities& caps) noexcept {
    uint64_t f = kAlwaysOnFlags;
    if (caps.writeback_cache) {
        f |= FUSE_WRITEBACK_CACHE;
    }
    if (caps.posix_locks) {
        f |= FUSE_POSIX_LOCKS;
    }
    if (caps.flock_locks) {
        f |= FUSE_FLOCK_LOCKS;
    }
    if (caps.submounts) {
        f |= FUSE_SUBMOUNTS;
    }
    if (caps.readdirplus) {
        f |= FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO;
    }
    if (caps.killpriv_v2) {
        f |= FUSE_HANDLE_KILLPRIV_V2;
    }
    if (caps.cache_symlinks) {
        f |= FUSE_CACHE_SYMLINKS;
    }
    if (caps.parallel_dirops) {
        f |= FUSE_PARALLEL_DIROPS;
    }
    // The kernel prefers AUTO_INVAL_DATA when both are set; offer exactly one.
    f |= caps.explicit_inval ? FUSE_EXPLICIT_INVAL_DATA : FUSE_AUTO_INVAL_DATA;
    if (caps.xattr && caps.setxattr_ext) {
        f |= FUSE_SETXATTR_EXT;
    }
    if (caps.direct_io_allow_mmap) {
        f |= kFuseDirectIoAllowMmap;
    }
    if (caps.xattr && caps.posix_acl) {
        f |= kPosixAclFlags;
    }
    if (caps.security_label) {
        f |= FUSE_SECURITY_CTX;
    }
    return f;
}

template <typename T>
int64_t to_res(const Result<T>& r) noexcept {
    return r.has_value() ? static_cast<int64_t>(r.value()) : -static_cast<int64_t>(r.error());
}

int64_t to_res(const Status& s) noexcept {
    return s.has_value() ? 0 : -static_cast<int64_t>(s.error());
}

} // namespace

/// One request being decoded on the lcore.
struct FuseDispatcher::Call {
    const vdh_request& req;
    fuse_in_header h;
    RequestCtx rc;
    IovecCursor in; ///< positioned after what was decoded so far
    size_t payload; ///< argument bytes not decoded yet (extensions excluded)
    FuseRequestCtx* ctx;
    IoEngine* engine; ///< null: synchronous only
    FuseCounterSink ctr; ///< the queue's counters (this lcore is their only writer)
    uint64_t start = 0;  ///< TSC at arrival, for the latency histogram
    size_t ext = 0;      ///< request extension bytes after the arguments (total_extlen * 8)

    /// Reads the next \p size bytes of arguments into a zeroed \p out (size <= sizeof(T):
    /// older, shorter struct versions). False if the payload is shorter.
    template <typename T>
    bool arg(T* out, size_t size = sizeof(T)) noexcept {
        if (payload < size) {
            return false;
        }
        *out = T{};
        in.read(out, size);
        payload -= size;
        return true;
    }
};

/// Per-queue memory for synchronous requests (one lcore per queue: no locking).
struct FuseDispatcher::QueueScratch {
    alignas(kCacheLine) char args[kArgScratchSize];
    alignas(kCacheLine) char out[kXattrSizeMax];
    alignas(kCacheLine) char ext[kMaxExtBytes]; ///< a create's request extensions
    FuseRequestCtx sync_ctx; ///< for handle() calls without a ctx
};

FuseDispatcher::FuseDispatcher(Filesystem& fs, const FuseDispatcherConfig& config)
    : fs_(fs), config_(config) {
    if (config_.max_pages == 0) {
        config_.max_pages = 1;
    }
    if (config_.max_pages > kFuseMaxPagesLimit) {
        config_.max_pages = kFuseMaxPagesLimit;
    }
    if (config_.num_queues == 0) {
        config_.num_queues = 1;
    }
    scratch_.reset(new QueueScratch[config_.num_queues]);
    queue_counters_.reset(new FuseCounters[config_.num_queues]);
}

FuseDispatcher::~FuseDispatcher() = default;

FuseCounterSink FuseDispatcher::counters(uint16_t queue) noexcept {
    // Only the lcore serving `queue` handles its requests, so it alone writes that block.
    // A queue without a block (beyond num_queues) shares the atomic one.
    if (VDH_LIKELY(queue < config_.num_queues)) {
        return FuseCounterSink(&queue_counters_[queue], true);
    }
    return FuseCounterSink(&shared_counters_, false);
}

FuseStats FuseDispatcher::stats() const noexcept {
    FuseStats s;
    for (uint16_t q = 0; q < config_.num_queues; ++q) {
        s.add(queue_counters_[q]);
    }
    s.add(shared_counters_);
    return s;
}

FuseDispatcher::QueueScratch* FuseDispatcher::scratch(uint16_t queue) noexcept {
    return queue < config_.num_queues ? &scratch_[queue] : nullptr;
}

void FuseDispatcher::end_session() noexcept {
    std::lock_guard<std::mutex> g(session_mu_);
    end_session_locked();
}

void FuseDispatcher::revoke() noexcept {
    std::lock_guard<std::mutex> g(session_mu_);
    revoked_.store(true, std::memory_order_release);
    end_session_locked();
}

void FuseDispatcher::end_session_locked() noexcept {
    if (initialized_.exchange(false, std::memory_order_acq_rel)) {
        want_.store(0, std::memory_order_relaxed);
        // Requests of the old session still running elsewhere hold shared references to
        // what they use (open files through file_ref, inodes and handles inside the
        // backend), and lock waits are cancelled by destroy(): nothing is freed under them.
        fs_.destroy();
    }
}

// ---- Reply helpers --------------------------------------------------------------------------

bool FuseDispatcher::out_fits(const Call& c, size_t payload) const noexcept {
    return c.req.out_bytes >= kOutHeaderSize + payload;
}

int64_t FuseDispatcher::reply_error(const Call& c, int err) noexcept {
    c.ctr.error(err);
    fuse_out_header oh{};
    oh.len = kOutHeaderSize;
    oh.error = -err;
    oh.unique = c.h.unique;
    IovecCursor out(c.req.out, c.req.n_out);
    if (!out.write(&oh, sizeof(oh))) {
        return -EINVAL; // handle() checked out_bytes; kept for safety
    }
    return kOutHeaderSize;
}

int64_t FuseDispatcher::reply_ok(const Call& c, const void* a, size_t na, const void* b,
                                 size_t nb) noexcept {
    const size_t total = kOutHeaderSize + na + nb;
    if (!out_fits(c, na + nb)) {
        c.ctr.add(&FuseCounters::malformed);
        return reply_error(c, EINVAL);
    }
    fuse_out_header oh{};
    oh.len = static_cast<uint32_t>(total);
    oh.error = 0;
    oh.unique = c.h.unique;
    IovecCursor out(c.req.out, c.req.n_out);
    out.write(&oh, sizeof(oh));
    if (na > 0) {
        out.write(a, na);
    }
    if (nb > 0) {
        out.write(b, nb);
    }
    return static_cast<int64_t>(total);
}

template <typename T>
int64_t FuseDispatcher::reply(const Call& c, const Result<T>& r) noexcept {
    static_assert(std::is_class_v<T>, "the payload is a FUSE reply struct");
    if (!r) {
        return reply_error(c, r.error());
    }
    return reply_ok(c, &*r, sizeof(T));
}

int64_t FuseDispatcher::reply(const Call& c, const Status& s) noexcept {
    if (!s) {
        return reply_error(c, s.error());
    }
    return reply_ok(c, nullptr, 0);
}

int64_t FuseDispatcher::reply(const Call& c, const Result<CreateOut>& r) noexcept {
    if (!r) {
        return reply_error(c, r.error());
    }
    return reply_ok(c, &r->entry, sizeof(fuse_entry_out), &r->open, sizeof(fuse_open_out));
}

int FuseDispatcher::read_ext(Call& c, size_t unread) noexcept {
    if (c.ext == 0) {
        return 0;
    }
    QueueScratch* s = scratch(c.req.queue);
    if (s == nullptr) {
        return EIO;
    }
    if (c.ext > kMaxExtBytes) {
        return EINVAL;
    }
    // Safety: unread + ext is what is left of req.in (h.len == in_bytes was checked).
    c.in.skip(unread);
    c.in.read(s->ext, c.ext);
    const uint64_t want = want_.load(std::memory_order_relaxed);
    const ExtPolicy policy{(want & kFuseCreateSuppGroup) != 0, (want & FUSE_SECURITY_CTX) != 0};
    return parse_request_ext(s->ext, c.ext, policy, &c.rc);
}

int FuseDispatcher::copy_args(Call& c, const char** data) noexcept {
    QueueScratch* s = scratch(c.req.queue);
    if (s == nullptr) {
        return EIO;
    }
    if (c.payload > kArgScratchSize) {
        return EINVAL;
    }
    // Safety: payload <= what is left of req.in (h.len == in_bytes was checked).
    c.in.read(s->args, c.payload);
    *data = s->args;
    return 0;
}

// ---- Entry point ----------------------------------------------------------------------------

int64_t FuseDispatcher::handle(const vdh_request& req, FuseRequestCtx* ctx,
                               IoEngine* engine) noexcept {
    Call c{req, {}, {}, IovecCursor(req.in, req.n_in), 0, ctx, engine, counters(req.queue)};
    if (VDH_UNLIKELY(!c.in.read(&c.h, sizeof(c.h)))) {
        c.ctr.add(&FuseCounters::malformed);
        return -EINVAL; // no header, no unique: nothing meaningful to reply
    }
    // start 0: untimed (an asynchronous request carries it in its context to finish_io).
    c.start = config_.time_requests ? __rdtsc() : 0;
    const int64_t r = dispatch(c);
    if (r != VDH_ASYNC && c.start != 0) {
        // An asynchronous request is timed when its reply is encoded (finish_io).
        c.ctr.latency(c.h.opcode, __rdtsc() - c.start);
    }
    return r;
}

int64_t FuseDispatcher::dispatch(Call& c) noexcept {
    const vdh_request& req = c.req;
    const uint32_t op = c.h.opcode;
    c.ctr.request(op);
    const bool replies = fuse_opcode_has_reply(op);
    if (VDH_UNLIKELY(replies && req.out_bytes < kOutHeaderSize)) {
        c.ctr.add(&FuseCounters::malformed);
        return -EINVAL;
    }
    const uint64_t ext = static_cast<uint64_t>(c.h.total_extlen) * 8;
    if (VDH_UNLIKELY(c.h.len != req.in_bytes || ext > c.h.len - kInHeaderSize)) {
        c.ctr.add(&FuseCounters::malformed);
        return replies ? reply_error(c, EINVAL) : 0;
    }
    c.payload = c.h.len - kInHeaderSize - ext;
    c.ext = static_cast<size_t>(ext);
    c.rc.unique = c.h.unique;
    c.rc.uid = c.h.uid;
    c.rc.gid = c.h.gid;
    c.rc.pid = c.h.pid;
    c.rc.queue = req.queue; // this lcore alone serves it (backends' per-queue caches)
    if (c.ctx == nullptr) {
        QueueScratch* s = scratch(req.queue);
        c.ctx = s != nullptr ? &s->sync_ctx : nullptr;
        c.engine = nullptr;
    }
    if (config_.done == nullptr) {
        c.engine = nullptr;
    }

    if (VDH_UNLIKELY(req.queue == kHiprioQueue && op != FUSE_FORGET &&
                     op != FUSE_BATCH_FORGET && op != FUSE_INTERRUPT)) {
        // hiprio has no engine and must never carry work: only forgets and interrupts.
        c.ctr.add(&FuseCounters::hiprio_rejected);
        return replies ? reply_error(c, EINVAL) : 0;
    }
    if (VDH_UNLIKELY((op != FUSE_INIT || revoked_.load(std::memory_order_relaxed)) &&
                     !initialized())) {
        if (!replies) {
            c.ctr.add(&FuseCounters::malformed);
            return 0;
        }
        return reply_error(c, EIO);
    }

    switch (op) {
    case FUSE_INIT: return do_init(c);
    case FUSE_DESTROY: return do_destroy(c);
    case FUSE_FORGET: return do_forget(c);
    case FUSE_BATCH_FORGET: return do_batch_forget(c);
    case FUSE_INTERRUPT: return do_interrupt(c);
    case FUSE_NOTIFY_REPLY: return 0; // we never ask (no NOTIFY_RETRIEVE); no reply wanted
    case FUSE_LOOKUP: return do_lookup(c);
    case FUSE_GETATTR: return do_getattr(c);
    case FUSE_SETATTR: return do_setattr(c);
    case FUSE_READLINK: return do_readlink(c);
    case FUSE_SYMLINK: return do_symlink(c);
    case FUSE_MKNOD: return do_mknod(c);
    case FUSE_MKDIR: return do_mkdir(c);
    case FUSE_UNLINK:
    case FUSE_RMDIR: return do_unlink_rmdir(c);
    case FUSE_RENAME:
    case FUSE_RENAME2: return do_rename(c);
    case FUSE_LINK: return do_link(c);
    case FUSE_OPEN: return do_open(c);
    case FUSE_READ: return do_read(c);
    case FUSE_WRITE: return do_write(c);
    case FUSE_STATFS: return do_statfs(c);
    case FUSE_RELEASE: return do_release(c);
    case FUSE_FSYNC: return do_fsync(c);
    case FUSE_SETXATTR: return do_setxattr(c);
    case FUSE_GETXATTR: return do_getxattr(c);
    case FUSE_LISTXATTR: return do_listxattr(c);
    case FUSE_REMOVEXATTR: return do_removexattr(c);
    case FUSE_FLUSH: return do_flush(c);
    case FUSE_OPENDIR: return do_opendir(c);
    case FUSE_READDIR:
    case FUSE_READDIRPLUS: return do_readdir(c);
    case FUSE_RELEASEDIR: return do_releasedir(c);
    case FUSE_FSYNCDIR: return do_blocking(c);
    case FUSE_GETLK: return do_getlk(c);
    case FUSE_SETLK: return do_setlk(c);
    case FUSE_SETLKW: return do_blocking(c);
    case FUSE_ACCESS: return do_access(c);
    case FUSE_CREATE: return do_create(c);
    case FUSE_FALLOCATE: return do_fallocate(c);
    case FUSE_LSEEK: return do_lseek(c);
    case FUSE_COPY_FILE_RANGE: return do_blocking(c);
    case FUSE_SYNCFS: return do_blocking(c);
    case FUSE_TMPFILE: return do_tmpfile(c);
    default:
        // BMAP, IOCTL, POLL, SETUPMAPPING, REMOVEMAPPING (no DAX), STATX,
        // COPY_FILE_RANGE_64, CUSE_INIT and anything unknown.
        c.ctr.add(&FuseCounters::unsupported);
        return reply_error(c, ENOSYS);
    }
}

// ---- Session --------------------------------------------------------------------------------

int64_t FuseDispatcher::do_init(Call& c) noexcept {
    if (c.payload < kInitInMinSize) {
        c.ctr.add(&FuseCounters::malformed);
        return reply_error(c, EINVAL);
    }
    fuse_init_in in{};
    // Older guests send a shorter fuse_init_in (16 bytes before 7.36); newer ones may send
    // a longer one. Read what there is, up to the struct we know.
    c.arg(&in, c.payload < sizeof(in) ? c.payload : sizeof(in));
    if (!out_fits(c, sizeof(fuse_init_out))) {
        c.ctr.add(&FuseCounters::malformed);
        return reply_error(c, EINVAL);
    }
    if (in.major < kFuseMajor) {
        return reply_error(c, EPROTO);
    }
    if (in.major > kFuseMajor) {
        // Tell the guest our major; it then sends a new INIT with major 7.
        fuse_init_out out{};
        out.major = kFuseMajor;
        out.minor = kFuseMinor;
        return reply_ok(c, &out, sizeof(out));
    }
    if (in.minor < kFuseMinMinor) {
        return reply_error(c, EPROTO);
    }
    std::unique_lock<std::mutex> session(session_mu_, std::try_to_lock);
    if (!session.owns_lock()) {
        c.ctr.add(&FuseCounters::session_busy); // another queue is changing the session right now
        return reply_error(c, EBUSY);
    }
    if (initialized()) {
        // A guest reset: QEMU stops and restarts the vrings without a disconnect, and the
        // new driver sends INIT on the old session. End it completely and start afresh.
        c.ctr.add(&FuseCounters::session_resets);
        end_session_locked();
    }
    const FsCapabilities caps = fs_.capabilities();
    uint64_t guest = in.flags;
    if ((in.flags & FUSE_INIT_EXT) != 0) {
        guest |= static_cast<uint64_t>(in.flags2) << 32;
    }
    uint64_t offer = flags_from(caps);
    if (in.minor < kExtMinor) {
        offer &= ~FUSE_SECURITY_CTX;
    }
    const uint64_t enabled = guest & offer;
    const uint32_t minor = in.minor < kFuseMinor ? in.minor : kFuseMinor;
    if ((offer & kPosixAclFlags) == kPosixAclFlags && (guest & kPosixAclFlags) != kPosixAclFlags) {
        // posix_acl: true promises ACL semantics the guest could not give (virtiofsd fails
        // the mount the same way).
        return reply_error(c, EPROTO);
    }

    fuse_init_out out{};
    out.major = kFuseMajor;
    out.minor = minor;
    out.max_readahead = in.max_readahead;
    out.flags = static_cast<uint32_t>(enabled);
    out.max_background = config_.max_background;
    out.congestion_threshold = config_.congestion_threshold;
    out.max_write = config_.max_pages * static_cast<uint32_t>(kPageSize);
    out.time_gran = 1;
    out.max_pages = static_cast<uint16_t>(config_.max_pages);
    out.map_alignment = 0;
    out.flags2 = static_cast<uint32_t>(enabled >> 32);

    minor_.store(minor, std::memory_order_relaxed);
    want_.store(enabled, std::memory_order_relaxed);
    xattr_.store(caps.xattr, std::memory_order_relaxed);
    fs_.init(minor, enabled);
    initialized_.store(true, std::memory_order_release);
    return reply_ok(c, &out, sizeof(out));
}

int64_t FuseDispatcher::do_destroy(Call& c) noexcept {
    std::unique_lock<std::mutex> session(session_mu_, std::try_to_lock);
    if (!session.owns_lock()) {
        c.ctr.add(&FuseCounters::session_busy);
        return reply_error(c, EBUSY);
    }
    end_session_locked();
    return reply_ok(c, nullptr, 0);
}

int64_t FuseDispatcher::do_forget(Call& c) noexcept {
    fuse_forget_in in;
    if (!c.arg(&in)) {
        c.ctr.add(&FuseCounters::malformed);
        return 0;
    }
    fs_.forget(c.h.nodeid, in.nlookup);
    return 0;
}

int64_t FuseDispatcher::do_batch_forget(Call& c) noexcept {
    fuse_batch_forget_in in;
    if (!c.arg(&in) || static_cast<uint64_t>(in.count) * sizeof(fuse_forget_one) > c.payload) {
        c.ctr.add(&FuseCounters::malformed); // forget nothing rather than read past the payload
        return 0;
    }
    for (uint32_t i = 0; i < in.count; ++i) {
        fuse_forget_one one{};
        if (!c.arg(&one)) {
            break; // cannot happen: the count was checked against the payload
        }
        fs_.forget(one.nodeid, one.nlookup);
    }
    return 0;
}

int64_t FuseDispatcher::do_interrupt(Call& c) noexcept {
    fuse_interrupt_in in;
    if (!c.arg(&in)) {
        c.ctr.add(&FuseCounters::malformed);
        return 0;
    }
    // Only a waiting SETLKW can be interrupted; everything else finishes on its own. The
    // interrupted request itself replies (EINTR); INTERRUPT never does.
    (void)fs_.interrupt_lock(in.unique);
    return 0;
}

// ---- Metadata -------------------------------------------------------------------------------

#define VDH_NEED_ARG(c, ptr)                 \
    do {                                     \
        if (!(c).arg(ptr)) {                 \
            c.ctr.add(&FuseCounters::malformed);          \
            return reply_error((c), EINVAL); \
        }                                    \
    } while (0)

#define VDH_NEED_OUT(c, bytes)               \
    do {                                     \
        if (!out_fits((c), (bytes))) {       \
            c.ctr.add(&FuseCounters::malformed);          \
            return reply_error((c), EINVAL); \
        }                                    \
    } while (0)

#define VDH_COPY_ARGS(c, data)                   \
    do {                                         \
        int copy_err_ = copy_args((c), &(data)); \
        if (copy_err_ != 0) {                    \
            c.ctr.add(&FuseCounters::malformed);              \
            return reply_error((c), copy_err_);  \
        }                                        \
    } while (0)

/// Decodes the create-type request's extensions into c.rc (\p unread payload bytes still
/// before them in the cursor).
#define VDH_READ_EXT(c, unread)                     \
    do {                                            \
        int ext_err_ = read_ext((c), (unread));     \
        if (ext_err_ != 0) {                        \
            c.ctr.add(&FuseCounters::malformed);    \
            return reply_error((c), ext_err_);      \
        }                                           \
    } while (0)

#define VDH_MALFORMED(c)                 \
    do {                                 \
        c.ctr.add(&FuseCounters::malformed);          \
        return reply_error((c), EINVAL); \
    } while (0)

int64_t FuseDispatcher::do_lookup(Call& c) noexcept {
    VDH_NEED_OUT(c, sizeof(fuse_entry_out));
    const char* p = nullptr;
    VDH_COPY_ARGS(c, p);
    const char* end = p + c.payload;
    std::string_view name;
    if (!next_string(&p, end, &name) || !valid_name(name)) {
        VDH_MALFORMED(c);
    }
    return reply(c, fs_.lookup(c.rc, c.h.nodeid, name));
}

int64_t FuseDispatcher::do_getattr(Call& c) noexcept {
    fuse_getattr_in in;
    VDH_NEED_ARG(c, &in);
    VDH_NEED_OUT(c, sizeof(fuse_attr_out));
    const uint64_t* fh = (in.getattr_flags & FUSE_GETATTR_FH) != 0 ? &in.fh : nullptr;
    return reply(c, fs_.getattr(c.rc, c.h.nodeid, fh));
}

int64_t FuseDispatcher::do_setattr(Call& c) noexcept {
    fuse_setattr_in in;
    VDH_NEED_ARG(c, &in);
    VDH_NEED_OUT(c, sizeof(fuse_attr_out));
    return reply(c, fs_.setattr(c.rc, c.h.nodeid, in));
}

template <typename Fill>
int64_t FuseDispatcher::reply_filled(Call& c, size_t size, QueueScratch* s, Fill&& fill) noexcept {
    // Straight into guest memory when the payload area is contiguous, else via scratch.
    IovecCursor out(c.req.out, c.req.n_out);
    out.skip(kOutHeaderSize);
    void* direct = out.peek_contiguous(size);
    void* buf = direct != nullptr ? direct : (s != nullptr ? s->out : nullptr);
    if (buf == nullptr) {
        return reply_error(c, EIO);
    }
    Result<size_t> r = fill(buf, size);
    if (!r) {
        return reply_error(c, r.error());
    }
    const size_t n = *r <= size ? *r : size;
    if (direct == nullptr) {
        out.write(buf, n);
    }
    fuse_out_header oh{static_cast<uint32_t>(kOutHeaderSize + n), 0, c.h.unique};
    IovecCursor head(c.req.out, c.req.n_out);
    head.write(&oh, sizeof(oh));
    return oh.len;
}

int64_t FuseDispatcher::do_readlink(Call& c) noexcept {
    QueueScratch* s = scratch(c.req.queue);
    size_t size = c.req.out_bytes - kOutHeaderSize;
    if (size > kXattrSizeMax) {
        size = kXattrSizeMax;
    }
    return reply_filled(c, size, s, [&](void* buf, size_t n) {
        return fs_.readlink(c.rc, c.h.nodeid, static_cast<char*>(buf), n);
    });
}

int64_t FuseDispatcher::do_symlink(Call& c) noexcept {
    VDH_NEED_OUT(c, sizeof(fuse_entry_out));
    const char* p = nullptr;
    VDH_COPY_ARGS(c, p);
    VDH_READ_EXT(c, 0);
    const char* end = p + c.payload;
    std::string_view name;
    std::string_view target;
    // Argument order on the wire: the new entry's name, then the link target.
    if (!next_string(&p, end, &name) || !valid_name(name) || !next_string(&p, end, &target)) {
        VDH_MALFORMED(c);
    }
    return reply(c, fs_.symlink(c.rc, c.h.nodeid, name, target));
}

int64_t FuseDispatcher::do_mknod(Call& c) noexcept {
    fuse_mknod_in in;
    VDH_NEED_ARG(c, &in);
    VDH_NEED_OUT(c, sizeof(fuse_entry_out));
    const char* p = nullptr;
    VDH_COPY_ARGS(c, p);
    VDH_READ_EXT(c, 0);
    std::string_view name;
    if (!next_string(&p, p + c.payload, &name) || !valid_name(name)) {
        VDH_MALFORMED(c);
    }
    return reply(c, fs_.mknod(c.rc, c.h.nodeid, name, in.mode, in.rdev, in.umask));
}

int64_t FuseDispatcher::do_mkdir(Call& c) noexcept {
    fuse_mkdir_in in;
    VDH_NEED_ARG(c, &in);
    VDH_NEED_OUT(c, sizeof(fuse_entry_out));
    const char* p = nullptr;
    VDH_COPY_ARGS(c, p);
    VDH_READ_EXT(c, 0);
    std::string_view name;
    if (!next_string(&p, p + c.payload, &name) || !valid_name(name)) {
        VDH_MALFORMED(c);
    }
    return reply(c, fs_.mkdir(c.rc, c.h.nodeid, name, in.mode, in.umask));
}

int64_t FuseDispatcher::do_unlink_rmdir(Call& c) noexcept {
    const char* p = nullptr;
    VDH_COPY_ARGS(c, p);
    std::string_view name;
    if (!next_string(&p, p + c.payload, &name) || !valid_name(name)) {
        VDH_MALFORMED(c);
    }
    return reply(c, c.h.opcode == FUSE_UNLINK ? fs_.unlink(c.rc, c.h.nodeid, name)
                                              : fs_.rmdir(c.rc, c.h.nodeid, name));
}

int64_t FuseDispatcher::do_rename(Call& c) noexcept {
    uint64_t newdir = 0;
    uint32_t flags = 0;
    if (c.h.opcode == FUSE_RENAME2) {
        fuse_rename2_in in;
        VDH_NEED_ARG(c, &in);
        newdir = in.newdir;
        flags = in.flags;
    } else {
        fuse_rename_in in;
        VDH_NEED_ARG(c, &in);
        newdir = in.newdir;
    }
    const char* p = nullptr;
    VDH_COPY_ARGS(c, p);
    const char* end = p + c.payload;
    std::string_view oldname;
    std::string_view newname;
    if (!next_string(&p, end, &oldname) || !valid_name(oldname) ||
        !next_string(&p, end, &newname) || !valid_name(newname)) {
        VDH_MALFORMED(c);
    }
    return reply(c, fs_.rename(c.rc, c.h.nodeid, oldname, newdir, newname, flags));
}

int64_t FuseDispatcher::do_link(Call& c) noexcept {
    fuse_link_in in;
    VDH_NEED_ARG(c, &in);
    VDH_NEED_OUT(c, sizeof(fuse_entry_out));
    const char* p = nullptr;
    VDH_COPY_ARGS(c, p);
    std::string_view name;
    if (!next_string(&p, p + c.payload, &name) || !valid_name(name)) {
        VDH_MALFORMED(c);
    }
    // The header's nodeid is the new parent; the existing inode is oldnodeid.
    return reply(c, fs_.link(c.rc, in.oldnodeid, c.h.nodeid, name));
}

int64_t FuseDispatcher::do_open(Call& c) noexcept {
    fuse_open_in in;
    VDH_NEED_ARG(c, &in);
    VDH_NEED_OUT(c, sizeof(fuse_open_out));
    return reply(c, fs_.open(c.rc, c.h.nodeid, in.flags));
}

int64_t FuseDispatcher::do_create(Call& c) noexcept {
    fuse_create_in in;
    VDH_NEED_ARG(c, &in);
    VDH_NEED_OUT(c, sizeof(fuse_entry_out) + sizeof(fuse_open_out));
    const char* p = nullptr;
    VDH_COPY_ARGS(c, p);
    VDH_READ_EXT(c, 0);
    std::string_view name;
    if (!next_string(&p, p + c.payload, &name) || !valid_name(name)) {
        VDH_MALFORMED(c);
    }
    return reply(c, fs_.create(c.rc, c.h.nodeid, name, in.flags, in.mode, in.umask));
}

int64_t FuseDispatcher::do_tmpfile(Call& c) noexcept {
    // The kernel appends the dentry name ("/") after fuse_create_in; it carries nothing.
    fuse_create_in in;
    VDH_NEED_ARG(c, &in);
    VDH_NEED_OUT(c, sizeof(fuse_entry_out) + sizeof(fuse_open_out));
    VDH_READ_EXT(c, c.payload);
    return reply(c, fs_.tmpfile(c.rc, c.h.nodeid, in.flags, in.mode, in.umask));
}

int64_t FuseDispatcher::do_statfs(Call& c) noexcept {
    VDH_NEED_OUT(c, sizeof(fuse_statfs_out));
    return reply(c, fs_.statfs(c.rc, c.h.nodeid));
}

int64_t FuseDispatcher::do_release(Call& c) noexcept {
    fuse_release_in in;
    VDH_NEED_ARG(c, &in);
    return reply(c, fs_.release(c.rc, c.h.nodeid, in.fh, in.flags, in.release_flags, in.lock_owner));
}

int64_t FuseDispatcher::do_flush(Call& c) noexcept {
    fuse_flush_in in;
    VDH_NEED_ARG(c, &in);
    return reply(c, fs_.flush(c.rc, c.h.nodeid, in.fh, in.lock_owner));
}

int64_t FuseDispatcher::do_opendir(Call& c) noexcept {
    fuse_open_in in;
    VDH_NEED_ARG(c, &in);
    VDH_NEED_OUT(c, sizeof(fuse_open_out));
    return reply(c, fs_.opendir(c.rc, c.h.nodeid, in.flags));
}

int64_t FuseDispatcher::do_readdir(Call& c) noexcept {
    fuse_read_in in;
    VDH_NEED_ARG(c, &in);
    IovecCursor out(c.req.out, c.req.n_out);
    out.skip(kOutHeaderSize);
    DirentWriter sink(&out, in.size, c.h.opcode == FUSE_READDIRPLUS);
    Status s = fs_.readdir(c.rc, c.h.nodeid, in.fh, in.offset, sink);
    // Entries already written stay (READDIRPLUS took lookup counts for them); an error
    // only goes back when nothing was.
    if (!s && sink.written() == 0) {
        return reply_error(c, s.error());
    }
    fuse_out_header oh{static_cast<uint32_t>(kOutHeaderSize + sink.written()), 0, c.h.unique};
    IovecCursor head(c.req.out, c.req.n_out);
    head.write(&oh, sizeof(oh));
    return oh.len;
}

int64_t FuseDispatcher::do_releasedir(Call& c) noexcept {
    fuse_release_in in;
    VDH_NEED_ARG(c, &in);
    return reply(c, fs_.releasedir(c.rc, c.h.nodeid, in.fh));
}

int64_t FuseDispatcher::do_access(Call& c) noexcept {
    fuse_access_in in;
    VDH_NEED_ARG(c, &in);
    return reply(c, fs_.access(c.rc, c.h.nodeid, in.mask));
}

int64_t FuseDispatcher::do_setxattr(Call& c) noexcept {
    if (!xattr_.load(std::memory_order_relaxed)) {
        c.ctr.add(&FuseCounters::unsupported);
        return reply_error(c, ENOSYS);
    }
    fuse_setxattr_in in;
    const bool ext = (want_.load(std::memory_order_relaxed) & FUSE_SETXATTR_EXT) != 0;
    if (!c.arg(&in, ext ? sizeof(in) : kSetxattrInCompatSize)) {
        VDH_MALFORMED(c);
    }
    const char* p = nullptr;
    VDH_COPY_ARGS(c, p);
    const char* end = p + c.payload;
    std::string_view name;
    if (!next_string(&p, end, &name) || name.empty() || in.size > static_cast<size_t>(end - p)) {
        VDH_MALFORMED(c);
    }
    return reply(c, fs_.setxattr(c.rc, c.h.nodeid, name, p, in.size, in.flags, in.setxattr_flags));
}

int64_t FuseDispatcher::do_getxattr(Call& c) noexcept {
    if (!xattr_.load(std::memory_order_relaxed)) {
        c.ctr.add(&FuseCounters::unsupported);
        return reply_error(c, ENOSYS);
    }
    fuse_getxattr_in in;
    VDH_NEED_ARG(c, &in);
    const char* p = nullptr;
    VDH_COPY_ARGS(c, p);
    std::string_view name;
    if (!next_string(&p, p + c.payload, &name) || name.empty()) {
        VDH_MALFORMED(c);
    }
    if (in.size == 0) {
        VDH_NEED_OUT(c, sizeof(fuse_getxattr_out));
        Result<size_t> r = fs_.getxattr(c.rc, c.h.nodeid, name, nullptr, 0);
        if (!r) {
            return reply_error(c, r.error());
        }
        fuse_getxattr_out out{};
        out.size = static_cast<uint32_t>(*r);
        return reply_ok(c, &out, sizeof(out));
    }
    size_t size = in.size;
    if (size > c.req.out_bytes - kOutHeaderSize) {
        size = c.req.out_bytes - kOutHeaderSize;
    }
    if (size > kXattrSizeMax) {
        size = kXattrSizeMax;
    }
    // Scratch is non-null: copy_args succeeded.
    return reply_filled(c, size, scratch(c.req.queue), [&](void* buf, size_t n) {
        return fs_.getxattr(c.rc, c.h.nodeid, name, buf, n);
    });
}

int64_t FuseDispatcher::do_listxattr(Call& c) noexcept {
    if (!xattr_.load(std::memory_order_relaxed)) {
        c.ctr.add(&FuseCounters::unsupported);
        return reply_error(c, ENOSYS);
    }
    fuse_getxattr_in in;
    VDH_NEED_ARG(c, &in);
    if (in.size == 0) {
        VDH_NEED_OUT(c, sizeof(fuse_getxattr_out));
        Result<size_t> r = fs_.listxattr(c.rc, c.h.nodeid, nullptr, 0);
        if (!r) {
            return reply_error(c, r.error());
        }
        fuse_getxattr_out out{};
        out.size = static_cast<uint32_t>(*r);
        return reply_ok(c, &out, sizeof(out));
    }
    size_t size = in.size;
    if (size > c.req.out_bytes - kOutHeaderSize) {
        size = c.req.out_bytes - kOutHeaderSize;
    }
    if (size > kXattrSizeMax) {
        size = kXattrSizeMax;
    }
    return reply_filled(c, size, scratch(c.req.queue), [&](void* buf, size_t n) {
        return fs_.listxattr(c.rc, c.h.nodeid, static_cast<char*>(buf), n);
    });
}

int64_t FuseDispatcher::do_removexattr(Call& c) noexcept {
    if (!xattr_.load(std::memory_order_relaxed)) {
        c.ctr.add(&FuseCounters::unsupported);
        return reply_error(c, ENOSYS);
    }
    const char* p = nullptr;
    VDH_COPY_ARGS(c, p);
    std::string_view name;
    if (!next_string(&p, p + c.payload, &name) || name.empty()) {
        VDH_MALFORMED(c);
    }
    return reply(c, fs_.removexattr(c.rc, c.h.nodeid, name));
}

namespace {
/// Whether the lock kind \p in asks for was negotiated (the guest handles the other locally).
bool lock_negotiated(const fuse_lk_in& in, uint64_t want) noexcept {
    return (in.lk_flags & FUSE_LK_FLOCK) != 0 ? (want & FUSE_FLOCK_LOCKS) != 0
                                              : (want & FUSE_POSIX_LOCKS) != 0;
}
} // namespace

int64_t FuseDispatcher::do_getlk(Call& c) noexcept {
    fuse_lk_in in;
    VDH_NEED_ARG(c, &in);
    VDH_NEED_OUT(c, sizeof(fuse_lk_out));
    if (!lock_negotiated(in, want_.load(std::memory_order_relaxed))) {
        c.ctr.add(&FuseCounters::unsupported);
        return reply_error(c, ENOSYS);
    }
    return reply(c, fs_.getlk(c.rc, c.h.nodeid, in));
}

int64_t FuseDispatcher::do_setlk(Call& c) noexcept {
    fuse_lk_in in;
    VDH_NEED_ARG(c, &in);
    if (!lock_negotiated(in, want_.load(std::memory_order_relaxed))) {
        c.ctr.add(&FuseCounters::unsupported);
        return reply_error(c, ENOSYS);
    }
    return reply(c, fs_.setlk(c.rc, c.h.nodeid, in, false));
}

int64_t FuseDispatcher::do_lseek(Call& c) noexcept {
    fuse_lseek_in in;
    VDH_NEED_ARG(c, &in);
    VDH_NEED_OUT(c, sizeof(fuse_lseek_out));
    Result<uint64_t> r = fs_.lseek(c.rc, c.h.nodeid, in.fh, in.offset, in.whence);
    if (!r) {
        return reply_error(c, r.error());
    }
    fuse_lseek_out out{};
    out.offset = *r;
    return reply_ok(c, &out, sizeof(out));
}

// ---- I/O and blocking calls -----------------------------------------------------------------

bool FuseDispatcher::take_reply_iovs(Call& c, size_t bytes) noexcept {
    IovecCursor out(c.req.out, c.req.n_out);
    const int n = out.take_iovecs(bytes, c.ctx->reply_iov, kMaxReplyIovs);
    if (n < 0) {
        return false;
    }
    c.ctx->n_reply_iov = static_cast<uint32_t>(n);
    return true;
}

namespace {
void fill_ctx(FuseRequestCtx* ctx, FuseDispatcher* owner, const vdh_request& req,
              const fuse_in_header& h, const RequestCtx& rc, uint64_t start) noexcept {
    ctx->owner = owner;
    ctx->start_tsc = start;
    ctx->token = req.token;
    ctx->unique = h.unique;
    ctx->opcode = h.opcode;
    ctx->n_reply_iov = 0;
    ctx->n_io_iov = 0;
    ctx->io_bytes = 0;
    ctx->file_held = false;
    ctx->nodeid = h.nodeid;
    ctx->rc = rc;
}
} // namespace

int64_t FuseDispatcher::do_read(Call& c) noexcept {
    fuse_read_in in;
    VDH_NEED_ARG(c, &in);
    if (in.size > max_io()) {
        c.ctr.add(&FuseCounters::oversize); // more than INIT announced: a hostile or broken guest
        return reply_error(c, EINVAL);
    }
    if (c.ctx == nullptr) {
        return reply_error(c, EIO);
    }
    FuseRequestCtx* ctx = c.ctx;
    fill_ctx(ctx, this, c.req, c.h, c.rc, c.start);
    ctx->args.read = in;
    // The guest sized the buffers; a shorter out part only shortens the read.
    size_t n = in.size;
    if (n > c.req.out_bytes - kOutHeaderSize) {
        n = c.req.out_bytes - kOutHeaderSize;
    }
    IovecCursor out(c.req.out, c.req.n_out);
    const int nh = out.take_iovecs(kOutHeaderSize, ctx->reply_iov, kMaxReplyIovs);
    const int nd = out.take_iovecs(n, ctx->io_iov, kMaxIoIovs);
    if (nh < 0 || nd < 0) {
        VDH_MALFORMED(c);
    }
    ctx->n_reply_iov = static_cast<uint32_t>(nh);
    ctx->n_io_iov = nd;
    ctx->io_bytes = static_cast<uint32_t>(n);
    if (c.engine != nullptr && n > 0) {
        Result<IoFile> f = fs_.io_fd(c.rc, c.h.nodeid, in.fh, false, 0);
        if (f) {
            return submit_io(c, *f);
        }
    }
    return encode_io_reply(ctx, run_sync(ctx, false), c.ctr);
}

int64_t FuseDispatcher::do_write(Call& c) noexcept {
    fuse_write_in in;
    VDH_NEED_ARG(c, &in);
    if (in.size > c.payload) {
        VDH_MALFORMED(c);
    }
    if (in.size > max_io()) {
        c.ctr.add(&FuseCounters::oversize); // beyond the max_write INIT announced
        return reply_error(c, EINVAL);
    }
    VDH_NEED_OUT(c, sizeof(fuse_write_out));
    if (c.ctx == nullptr) {
        return reply_error(c, EIO);
    }
    FuseRequestCtx* ctx = c.ctx;
    fill_ctx(ctx, this, c.req, c.h, c.rc, c.start);
    ctx->args.write = in;
    const int nd = c.in.take_iovecs(in.size, ctx->io_iov, kMaxIoIovs);
    if (nd < 0 || !take_reply_iovs(c, kOutHeaderSize + sizeof(fuse_write_out))) {
        VDH_MALFORMED(c);
    }
    ctx->n_io_iov = nd;
    ctx->io_bytes = in.size;
    if (c.engine != nullptr && in.size > 0) {
        // One handle lookup gives the fd and does the pre-write step (kill-priv).
        Result<IoFile> f = fs_.io_fd(c.rc, c.h.nodeid, in.fh, true, in.write_flags);
        if (f) {
            if (f->prepare_error != 0) {
                return reply_error(c, f->prepare_error);
            }
            // A small page-cache write may be cheaper done now than handed to a worker, on
            // the filesystem the share's write path was probed on (never a submount).
            const int64_t now =
                f->on_share_fs ? c.engine->write_now(f->fd, f->flags, ctx->io_iov, ctx->n_io_iov,
                                                     in.offset, in.size)
                               : IoEngine::kNotNow;
            if (now != IoEngine::kNotNow) {
                c.ctr.add(&FuseCounters::inline_writes);
                return encode_io_reply(ctx, now, c.ctr);
            }
            return submit_io(c, *f);
        }
    }
    return encode_io_reply(ctx, run_sync(ctx, false), c.ctr);
}

int64_t FuseDispatcher::submit_or_sync(Call& c, uint64_t fh, bool for_write) noexcept {
    if (c.engine != nullptr) {
        Result<IoFile> f = fs_.io_fd(c.rc, c.h.nodeid, fh, for_write, 0);
        if (f) {
            return submit_io(c, *f);
        }
    }
    return encode_io_reply(c.ctx, run_sync(c.ctx, false), c.ctr);
}

int64_t FuseDispatcher::do_fsync(Call& c) noexcept {
    fuse_fsync_in in;
    VDH_NEED_ARG(c, &in);
    if (c.ctx == nullptr) {
        return reply_error(c, EIO);
    }
    fill_ctx(c.ctx, this, c.req, c.h, c.rc, c.start);
    c.ctx->args.fsync = in;
    if (!take_reply_iovs(c, kOutHeaderSize)) {
        VDH_MALFORMED(c);
    }
    return submit_or_sync(c, in.fh, false);
}

int64_t FuseDispatcher::do_fallocate(Call& c) noexcept {
    fuse_fallocate_in in;
    VDH_NEED_ARG(c, &in);
    if (c.ctx == nullptr) {
        return reply_error(c, EIO);
    }
    fill_ctx(c.ctx, this, c.req, c.h, c.rc, c.start);
    c.ctx->args.fallocate = in;
    if (!take_reply_iovs(c, kOutHeaderSize)) {
        VDH_MALFORMED(c);
    }
    return submit_or_sync(c, in.fh, true);
}

int64_t FuseDispatcher::do_blocking(Call& c) noexcept {
    if (c.ctx == nullptr) {
        return reply_error(c, EIO);
    }
    FuseRequestCtx* ctx = c.ctx;
    fill_ctx(ctx, this, c.req, c.h, c.rc, c.start);
    size_t reply = kOutHeaderSize;
    switch (c.h.opcode) {
    case FUSE_SETLKW: {
        fuse_lk_in in;
        VDH_NEED_ARG(c, &in);
        if (!lock_negotiated(in, want_.load(std::memory_order_relaxed))) {
            c.ctr.add(&FuseCounters::unsupported);
            return reply_error(c, ENOSYS);
        }
        ctx->args.lk = in;
        break;
    }
    case FUSE_COPY_FILE_RANGE: {
        fuse_copy_file_range_in in;
        VDH_NEED_ARG(c, &in);
        VDH_NEED_OUT(c, sizeof(fuse_write_out));
        // One request is bounded work: longer copies get a short count and the guest
        // (its userspace) asks again for the rest.
        if (in.len > kMaxCopyChunk) {
            in.len = kMaxCopyChunk;
        }
        ctx->args.copy = in;
        reply += sizeof(fuse_write_out);
        break;
    }
    case FUSE_SYNCFS: {
        fuse_syncfs_in in;
        VDH_NEED_ARG(c, &in);
        break;
    }
    default: { // FUSE_FSYNCDIR
        fuse_fsync_in in;
        VDH_NEED_ARG(c, &in);
        ctx->args.fsync = in;
        break;
    }
    }
    if (!take_reply_iovs(c, reply)) {
        VDH_MALFORMED(c);
    }
    if (c.engine != nullptr) {
        c.ctr.add(&FuseCounters::async_submitted);
        ctx->rc.queue = kNoQueue; // a worker runs it, not this queue's lcore
        if (c.engine->run_blocking(&FuseDispatcher::blocking_entry, ctx)) {
            return VDH_ASYNC; // ctx belongs to the worker now
        }
        c.ctr.undo(&FuseCounters::async_submitted);
        // Never fall back to the lcore: these calls can wait without bound. The device sizes
        // its pool so that its own requests always fit; a refusal means it is stopping.
        // SETLKW gets EINTR (what an interrupted lock wait returns; callers retry), the
        // others EAGAIN.
        c.ctr.add(&FuseCounters::blocking_refused);
        return encode_io_reply(ctx, c.h.opcode == FUSE_SETLKW ? -EINTR : -EAGAIN, c.ctr);
    }
    // A dispatcher without an engine (tests, tools) is synchronous by design; SETLKW then
    // only tries once (run_sync), COPY_FILE_RANGE is bounded by kMaxCopyChunk.
    return encode_io_reply(ctx, run_sync(ctx, false), c.ctr);
}

int64_t FuseDispatcher::submit_io(Call& c, IoFile& file) noexcept {
    FuseRequestCtx* ctx = c.ctx;
    bool taken = false;
    const int fd = file.fd;
    // Hold the open file before the engine sees the fd: a RELEASE on another queue must not
    // close the number (and let it be reused) while the kernel may still use it.
    new (ctx->file_ref) std::shared_ptr<const void>(std::move(file.keep));
    ctx->file_held = true;
    // Count first: once the engine took ctx it may complete on another thread.
    c.ctr.add(&FuseCounters::async_submitted);
    switch (ctx->opcode) {
    case FUSE_READ:
        taken = c.engine->readv(fd, ctx->io_iov, ctx->n_io_iov, ctx->args.read.offset, ctx);
        break;
    case FUSE_WRITE:
        taken = c.engine->writev(fd, ctx->io_iov, ctx->n_io_iov, ctx->args.write.offset, ctx);
        break;
    case FUSE_FSYNC:
        taken = c.engine->fsync(fd, (ctx->args.fsync.fsync_flags & FUSE_FSYNC_FDATASYNC) != 0, ctx);
        break;
    case FUSE_FALLOCATE:
        taken = c.engine->fallocate(fd, static_cast<int>(ctx->args.fallocate.mode),
                                    ctx->args.fallocate.offset, ctx->args.fallocate.length, ctx);
        break;
    default: break;
    }
    if (taken) {
        return VDH_ASYNC;
    }
    release_file(ctx);
    c.ctr.undo(&FuseCounters::async_submitted);
    c.ctr.add(&FuseCounters::async_fallbacks);
    return encode_io_reply(ctx, run_sync(ctx, false), c.ctr);
}

int64_t FuseDispatcher::run_sync(FuseRequestCtx* ctx, bool may_block) noexcept {
    const RequestCtx& rc = ctx->rc;
    switch (ctx->opcode) {
    case FUSE_READ: {
        const fuse_read_in& a = ctx->args.read;
        return to_res(fs_.read(rc, ctx->nodeid, a.fh, a.offset, ctx->io_iov, ctx->n_io_iov));
    }
    case FUSE_WRITE: {
        const fuse_write_in& a = ctx->args.write;
        return to_res(
            fs_.write(rc, ctx->nodeid, a.fh, a.offset, ctx->io_iov, ctx->n_io_iov, a.write_flags));
    }
    case FUSE_FSYNC: {
        const fuse_fsync_in& a = ctx->args.fsync;
        return to_res(
            fs_.fsync(rc, ctx->nodeid, a.fh, (a.fsync_flags & FUSE_FSYNC_FDATASYNC) != 0));
    }
    case FUSE_FSYNCDIR: {
        const fuse_fsync_in& a = ctx->args.fsync;
        return to_res(
            fs_.fsyncdir(rc, ctx->nodeid, a.fh, (a.fsync_flags & FUSE_FSYNC_FDATASYNC) != 0));
    }
    case FUSE_FALLOCATE: {
        const fuse_fallocate_in& a = ctx->args.fallocate;
        return to_res(fs_.fallocate(rc, ctx->nodeid, a.fh, a.offset, a.length, a.mode));
    }
    case FUSE_SETLKW: {
        if (may_block) {
            return to_res(fs_.setlk(rc, ctx->nodeid, ctx->args.lk, true));
        }
        // Waiting on the poll lcore could deadlock the queue (the unlock that would wake
        // us may sit behind us in the same ring). Try once; on conflict answer EINTR, the
        // error a waiting F_SETLKW/flock() returns when a signal interrupts it, which
        // callers are written to retry.
        Status s = fs_.setlk(rc, ctx->nodeid, ctx->args.lk, false);
        if (!s && (s.error() == EAGAIN || s.error() == EACCES)) {
            return -EINTR;
        }
        return to_res(s);
    }
    case FUSE_COPY_FILE_RANGE: return to_res(fs_.copy_file_range(rc, ctx->args.copy, ctx->nodeid));
    case FUSE_SYNCFS: return to_res(fs_.syncfs(rc, ctx->nodeid));
    default: return -ENOSYS;
    }
}

int64_t FuseDispatcher::encode_io_reply(FuseRequestCtx* ctx, int64_t res,
                                        const FuseCounterSink& ctr) noexcept {
    IovecCursor out(ctx->reply_iov, ctx->n_reply_iov);
    fuse_out_header oh{};
    oh.len = kOutHeaderSize;
    oh.unique = ctx->unique;
    const bool sized = ctx->opcode == FUSE_READ || ctx->opcode == FUSE_WRITE;
    if (res >= 0 && sized && res > static_cast<int64_t>(ctx->io_bytes)) {
        res = -EIO; // more than asked for: never pass that on
    }
    if (res >= 0 && ctx->opcode == FUSE_COPY_FILE_RANGE && res > static_cast<int64_t>(UINT32_MAX)) {
        res = -EIO;
    }
    if (res < 0) {
        const int64_t err = res < -kMaxErrno ? EIO : -res;
        oh.error = static_cast<int32_t>(-err);
        ctr.error(err);
        out.write(&oh, sizeof(oh));
        return kOutHeaderSize;
    }
    switch (ctx->opcode) {
    case FUSE_READ:
        ctr.add(&FuseCounters::bytes_read, static_cast<uint64_t>(res));
        oh.len = static_cast<uint32_t>(kOutHeaderSize + static_cast<size_t>(res));
        out.write(&oh, sizeof(oh));
        return oh.len;
    case FUSE_WRITE:
    case FUSE_COPY_FILE_RANGE: {
        if (ctx->opcode == FUSE_WRITE) {
            ctr.add(&FuseCounters::bytes_written, static_cast<uint64_t>(res));
        }
        fuse_write_out wo{};
        wo.size = static_cast<uint32_t>(res);
        oh.len = kOutHeaderSize + sizeof(wo);
        out.write(&oh, sizeof(oh));
        out.write(&wo, sizeof(wo));
        return oh.len;
    }
    default: out.write(&oh, sizeof(oh)); return kOutHeaderSize;
    }
}

void FuseDispatcher::complete_io(FuseRequestCtx* ctx, int64_t res) noexcept {
    // Any thread (an engine's, a worker): count in the shared block.
    finish_io(ctx, res, FuseCounterSink(&shared_counters_, false));
}

void FuseDispatcher::complete_on_lcore(void* p, int64_t res) noexcept {
    auto* ctx = static_cast<FuseRequestCtx*>(p);
    // The caller is the lcore serving ctx's queue: its block has no other writer.
    ctx->owner->finish_io(ctx, res, ctx->owner->counters(ctx->rc.queue));
}

void FuseDispatcher::finish_io(FuseRequestCtx* ctx, int64_t res,
                               const FuseCounterSink& ctr) noexcept {
    const int64_t written = encode_io_reply(ctx, res, ctr);
    if (ctx->start_tsc != 0) {
        ctr.latency(ctx->opcode, __rdtsc() - ctx->start_tsc);
    }
    // The engine is done with the fd: let it go (the last reference closes it).
    release_file(ctx);
    void* token = ctx->token; // ctx may be reused once done() returns
    config_.done(token, written);
}

void FuseDispatcher::release_file(FuseRequestCtx* ctx) noexcept {
    if (ctx->file_held) {
        ctx->file_held = false;
        using Ref = std::shared_ptr<const void>;
        std::launder(reinterpret_cast<Ref*>(ctx->file_ref))->~Ref();
    }
}

void FuseDispatcher::blocking_entry(void* p) noexcept {
    auto* ctx = static_cast<FuseRequestCtx*>(p);
    FuseDispatcher* self = ctx->owner;
    self->complete_io(ctx, self->run_sync(ctx, true));
}

#undef VDH_NEED_ARG
#undef VDH_NEED_OUT
#undef VDH_COPY_ARGS
#undef VDH_MALFORMED

} // namespace vdh::virtiofs

// SPDX-License-Identifier: MIT
// The virtio-blk device behind the plugin ABI (see virtioblk_device.h).
#include "virtioblk_device.h"

#include <fcntl.h>
#include <linux/falloc.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "preopened.h"
#include "vdh/iovec_cursor.h"

namespace vdh::virtioblk {

namespace {

/// EAGAIN / EINTR resubmissions of one operation before it fails with IOERR.
constexpr uint8_t kMaxRetries = 8;
/// fds a disk holds: its backing file (two with `direct`), and an io_uring plus its eventfd per
/// queue.
constexpr uint64_t kFixedFds = 5;
constexpr uint64_t kFdsPerQueue = 2;
/// The largest OUT request written inline (virtio-fs: 64 KiB). 128 KiB, a common guest I/O
/// size (the writeback of 32 pages), is a page-cache copy of ~20-30 us on the lcore; larger
/// ones go to io_uring. The gate's stall budget bounds the rest.
constexpr uint64_t kMaxInlineWrite = 128 * 1024;

void bump(std::atomic<uint64_t>& c, uint64_t n = 1) noexcept {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

/// Skips \p n transferred bytes of \p c's iovecs (after a short read or write).
void advance(RequestCtx* c, uint64_t n) noexcept {
    c->offset += n;
    c->remaining -= n;
    while (n > 0 && c->iov_first < c->n_iov) {
        struct iovec& v = c->iov[c->iov_first];
        if (n < v.iov_len) {
            v.iov_base = static_cast<uint8_t*>(v.iov_base) + n;
            v.iov_len -= n;
            return;
        }
        n -= v.iov_len;
        ++c->iov_first;
    }
}

} // namespace

Result<std::unique_ptr<VirtioblkDevice>> VirtioblkDevice::create(CreateContext& ctx) {
    std::string e;
    auto p = parse_blk_profile(ctx.config, ctx.origin, ctx.device_name, &e);
    if (!p) {
        return ctx.fail(EINVAL, e);
    }
    auto b = take_preopened(ctx.origin, ctx.config);
    if (!b) {
        b = open_backing(*p, ctx.origin, &e);
    }
    if (!b) {
        return ctx.fail(EINVAL, e);
    }
    VDH_TRY(ctx.reserve_fds(kFixedFds + kFdsPerQueue * p->num_queues));
    return std::make_unique<VirtioblkDevice>(ctx.host, std::string(ctx.device_name), std::move(*p),
                                             std::move(*b));
}

Status VirtioblkDevice::check_config(ConfigContext& ctx) {
    std::string e;
    if (!parse_blk_profile(ctx.config, ctx.origin, "check", &e)) {
        return ctx.fail(EINVAL, e);
    }
    return ok();
}

Status VirtioblkDevice::host_paths(HostPathsContext& ctx) {
    std::string e;
    auto p = parse_blk_profile(ctx.config, ctx.origin, "sandbox", &e);
    if (!p) {
        return ctx.fail(EINVAL, e);
    }
    // No directory to bind: the backing file is opened now, before the sandbox, and create()
    // takes the fd. A path that cannot be opened is reported by create().
    if (auto b = open_backing(*p, ctx.origin, &e)) {
        put_preopened(ctx.origin, ctx.config, std::move(*b));
    }
    return ok();
}

VirtioblkDevice::VirtioblkDevice(const vdh_host_api* host, std::string name, BlkProfile profile,
                                 BackingFile backing)
    : host_(host), name_(std::move(name)), profile_(std::move(profile)),
      backing_(std::move(backing)) {
    geometry_.capacity_bytes = backing_.capacity_bytes;
    geometry_.block_size = profile_.block_size;
    geometry_.num_queues = static_cast<uint16_t>(profile_.num_queues);
    geometry_.readonly = profile_.readonly;
    // A read-only disk offers neither: the guest's block layer then never sends them.
    geometry_.discard = profile_.discard && !profile_.readonly;
    geometry_.write_zeroes = profile_.write_zeroes && !profile_.readonly;
    limits_ = decode_limits(geometry_);
    for (uint32_t q = 0; q < profile_.num_queues; ++q) {
        gates_.push_back(std::make_unique<InlineWriteGate>(
            backing_.write_path == WritePath::Inline, InlineWriteGate::kSlow,
            InlineWriteGate::kStallBurst, kMaxInlineWrite));
    }
    inline_path_ = backing_.write_path == WritePath::Inline;
    open_flags_ = ::fcntl(backing_.fd.get(), F_GETFL);
    if (open_flags_ < 0) {
        open_flags_ = O_SYNC; // unknown: the gate then never writes inline
    }
    std::memcpy(id_.data(), profile_.serial.data(),
                profile_.serial.size() < id_.size() ? profile_.serial.size() : id_.size());
}

VirtioblkDevice::~VirtioblkDevice() = default;

void VirtioblkDevice::log(int level, const std::string& msg) const {
    if (host_ != nullptr && host_->log != nullptr) {
        host_->log(host_->host, level, name_.c_str(), msg.c_str());
    }
}

int VirtioblkDevice::start(uint64_t /*features*/, const vdh_queue_info* queues, uint16_t nq) {
    if (nq == 0 || nq > profile_.num_queues) {
        log(VDH_LOG_ERR,
            "the frontend set up " + std::to_string(nq) + " queues; this disk has num_queues: " +
                std::to_string(profile_.num_queues) + " (QEMU: num-queues must not exceed it)");
        return -EINVAL;
    }
    std::lock_guard<std::mutex> g(ctl_mu_);
    bool same = engines_.size() == nq;
    if (!same) {
        for (auto& e : engines_) {
            retired_submitted_ += e->submitted();
            retired_enters_ += e->enters();
        }
        engines_.clear();
        // A host that calls flush() after each batch gets one submission per batch.
        const bool batched = host_ != nullptr && host_->abi_minor >= 2;
        for (uint16_t i = 0; i < nq; ++i) {
            auto e = std::make_unique<BlkUring>(queues[i].size, queues[i].cpu, batched);
            if (!e->init()) {
                engines_.clear();
                return -ENOMEM;
            }
            engines_.push_back(std::move(e));
        }
    }
    for (auto& e : engines_) {
        e->resume();
    }
    return 0;
}

void VirtioblkDevice::stop() noexcept {
    // In-flight I/O gets a short grace period; then the lcores (which the host keeps polling
    // until every request completed) cancel what is left.
    std::lock_guard<std::mutex> g(ctl_mu_);
    for (auto& e : engines_) {
        e->request_cancel();
    }
}

void VirtioblkDevice::disconnect() noexcept {
    // After stop(): nothing is in flight. Rings and eventfds go with the frontend.
    std::lock_guard<std::mutex> g(ctl_mu_);
    for (auto& e : engines_) {
        retired_submitted_ += e->submitted();
        retired_enters_ += e->enters();
    }
    engines_.clear();
}

int64_t VirtioblkDevice::handle_request(const vdh_request* req) noexcept {
    if (req->queue >= engines_.size()) {
        return -EIO; // start() refused more queues; not reached
    }
    auto* c = static_cast<RequestCtx*>(req->ctx);
    QueueCounters& qc = counters_[req->queue];
    const DecodedRequest d = decode_request(*req, limits_, c->iov, kMaxDataIovecs);
    if (d.error != BlkError::None) {
        bump(qc.malformed[static_cast<size_t>(d.error)]);
    }
    if (d.op == BlkOp::NoStatus) {
        bump(qc.no_status);
        return -EIO;
    }
    c->token = req->token;
    c->status_byte = d.status_byte;
    c->used_len = req->out_bytes > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(req->out_bytes);
    c->queue = req->queue;
    c->op = d.op;
    c->retries = 0;
    c->iov_first = 0;
    c->n_iov = d.n_iov;
    c->offset = d.offset;
    c->len = d.len;
    c->remaining = d.len;
    c->unmap = false;
    c->ordered = false;
    c->fd = backing_.fd.get();
    switch (d.op) {
    case BlkOp::Fail:
        bump(d.status == kStatusUnsupp ? qc.unsupp : qc.ioerr);
        *c->status_byte = d.status;
        return c->used_len;
    case BlkOp::GetId: {
        IovecCursor out(c->iov, c->n_iov);
        out.write(id_.data(), id_.size()); // the decoder checked there are 20 bytes
        bump(qc.get_ids);
        *c->status_byte = kStatusOk;
        return c->used_len;
    }
    case BlkOp::Discard:
    case BlkOp::WriteZeroes:
        c->offset = d.ranges[0].offset; // kMaxSegments is 1
        c->remaining = d.ranges[0].len;
        c->unmap = d.ranges[0].unmap && profile_.discard;
        break;
    case BlkOp::Read:
    case BlkOp::Write:
        if (backing_.buffered_fd &&
            !direct_ok(c->iov, c->n_iov, backing_.dio_mem_align, backing_.dio_align)) {
            c->fd = backing_.buffered_fd.get();
            bump(qc.buffered_fallbacks);
        }
        c->next_deferred = nullptr;
        if (d.op == BlkOp::Write && inline_path_ && c->fd == backing_.fd.get() &&
            c->remaining <= kMaxInlineWrite &&
            (write_inflight_[c->queue] > 0 || deferred_head_[c->queue] != nullptr)) {
            // Wait for the queue's io_uring writes instead of joining them (drain_deferred()).
            if (deferred_tail_[c->queue] != nullptr) {
                deferred_tail_[c->queue]->next_deferred = c;
            } else {
                deferred_head_[c->queue] = c;
            }
            deferred_tail_[c->queue] = c;
            return VDH_ASYNC;
        }
        if (d.op == BlkOp::Write && write_inline(c)) {
            return c->used_len;
        }
        break;
    default:
        break;
    }
    if (c->op == BlkOp::Write || c->op == BlkOp::Flush || c->op == BlkOp::Discard ||
        c->op == BlkOp::WriteZeroes) {
        c->ordered = true;
        ++write_inflight_[c->queue];
    }
    if (!submit(c)) {
        if (c->ordered) {
            --write_inflight_[c->queue];
        }
        bump(qc.io_errors);
        bump(qc.ioerr);
        *c->status_byte = kStatusIoErr;
        return c->used_len;
    }
    return VDH_ASYNC;
}

bool VirtioblkDevice::write_inline(RequestCtx* c) noexcept {
    InlineWriteGate& g = *gates_[c->queue];
    if (!g.allow(c->fd, open_flags_, c->offset, c->remaining, write_inflight_[c->queue])) {
        return false;
    }
    const int64_t n = g.write(c->fd, c->iov, static_cast<int>(c->n_iov), c->offset);
    if (n > 0 && static_cast<uint64_t>(n) == c->remaining) {
        QueueCounters& qc = counters_[c->queue];
        bump(qc.writes);
        bump(qc.inline_writes);
        bump(qc.written_bytes, c->len);
        *c->status_byte = kStatusOk;
        return true;
    }
    if (n > 0) {
        // Short: io_uring writes the rest (and reports its failure, if any).
        bump(counters_[c->queue].short_io);
        advance(c, static_cast<uint64_t>(n));
    }
    return false; // an error: io_uring tries again and reports what it gets
}

bool VirtioblkDevice::submit(RequestCtx* c) noexcept {
    BlkUring& r = *engines_[c->queue];
    const int fd = c->fd;
    const auto ud = reinterpret_cast<uint64_t>(c);
    switch (c->op) {
    case BlkOp::Read:
        return r.readv(fd, c->iov + c->iov_first, c->n_iov - c->iov_first, c->offset, ud);
    case BlkOp::Write:
        return r.writev(fd, c->iov + c->iov_first, c->n_iov - c->iov_first, c->offset, ud);
    case BlkOp::Flush:
        return r.fdatasync(fd, ud);
    case BlkOp::Discard:
        return r.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, c->offset, c->remaining,
                           ud);
    case BlkOp::WriteZeroes: {
        const bool punch = c->unmap || zero_range_unsupported_.load(std::memory_order_relaxed);
        return r.fallocate(
            fd, (punch ? FALLOC_FL_PUNCH_HOLE : FALLOC_FL_ZERO_RANGE) | FALLOC_FL_KEEP_SIZE,
            c->offset, c->remaining, ud);
    }
    default:
        return false;
    }
}

void VirtioblkDevice::on_cqe(void* self, uint64_t user_data, int32_t res) noexcept {
    auto* d = static_cast<VirtioblkDevice*>(self);
    // Safety: user_data is the RequestCtx pointer submit() queued; the host keeps the
    // request (and its ctx) alive until finish() completes it.
    auto* c = reinterpret_cast<RequestCtx*>(user_data);
    QueueCounters& qc = d->counters_[c->queue];
    if ((res == -EAGAIN || res == -EINTR) && c->retries < kMaxRetries) {
        ++c->retries;
        if (d->submit(c)) {
            return;
        }
    } else if (c->op == BlkOp::WriteZeroes && res == -EOPNOTSUPP && !c->unmap) {
        // The file system has no ZERO_RANGE (tmpfs): a hole reads as zeroes too.
        d->zero_range_unsupported_.store(true, std::memory_order_relaxed);
        c->unmap = true;
        if (d->submit(c)) {
            return;
        }
    } else if (res > 0 && (c->op == BlkOp::Read || c->op == BlkOp::Write) &&
               static_cast<uint64_t>(res) < c->remaining) {
        // A short transfer: continue with the rest.
        bump(qc.short_io);
        advance(c, static_cast<uint64_t>(res));
        c->retries = 0;
        if (d->submit(c)) {
            return;
        }
    } else if (res >= 0 && !((c->op == BlkOp::Read || c->op == BlkOp::Write) && res == 0)) {
        d->finish(c, kStatusOk);
        return;
    }
    // A failure, a read or write that made no progress (the file shrank under us), or no SQE
    // for the retry.
    bump(qc.io_errors);
    d->finish(c, kStatusIoErr);
}

void VirtioblkDevice::drain_deferred(uint16_t q) noexcept {
    while (write_inflight_[q] == 0 && deferred_head_[q] != nullptr) {
        RequestCtx* c = deferred_head_[q];
        deferred_head_[q] = c->next_deferred;
        if (deferred_head_[q] == nullptr) {
            deferred_tail_[q] = nullptr;
        }
        c->next_deferred = nullptr;
        if (write_inline(c)) {
            host_->complete(c->token, c->used_len);
            continue;
        }
        c->ordered = true;
        ++write_inflight_[q];
        if (!submit(c)) {
            c->ordered = false;
            --write_inflight_[q];
            bump(counters_[q].io_errors);
            bump(counters_[q].ioerr);
            *c->status_byte = kStatusIoErr;
            host_->complete(c->token, c->used_len);
        }
    }
}

void VirtioblkDevice::finish(RequestCtx* c, uint8_t status) noexcept {
    QueueCounters& qc = counters_[c->queue];
    if (c->ordered) {
        c->ordered = false;
        if (--write_inflight_[c->queue] == 0 && deferred_head_[c->queue] != nullptr) {
            drain_deferred(c->queue);
        }
    }
    if (status == kStatusOk) {
        switch (c->op) {
        case BlkOp::Read:
            bump(qc.reads);
            bump(qc.read_bytes, c->len);
            break;
        case BlkOp::Write:
            bump(qc.writes);
            bump(qc.uring_writes);
            bump(qc.written_bytes, c->len);
            break;
        case BlkOp::Flush:
            bump(qc.flushes);
            break;
        case BlkOp::Discard:
            bump(qc.discards);
            break;
        case BlkOp::WriteZeroes:
            bump(qc.write_zeroes);
            break;
        default:
            break;
        }
    } else {
        bump(qc.ioerr);
    }
    *c->status_byte = status;
    host_->complete(c->token, c->used_len);
}

uint32_t VirtioblkDevice::flush(uint16_t q) noexcept {
    return q < engines_.size() ? engines_[q]->flush() : 0;
}

uint32_t VirtioblkDevice::poll(uint16_t q) noexcept {
    return q < engines_.size() ? engines_[q]->poll(&VirtioblkDevice::on_cqe, this) : 0;
}

int VirtioblkDevice::wake_fd(uint16_t q) noexcept {
    return q < engines_.size() ? engines_[q]->wake_fd() : -1;
}

BlkStats VirtioblkDevice::stats() const noexcept {
    BlkStats s;
    auto get = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
    for (const QueueCounters& q : counters_) {
        s.reads += get(q.reads);
        s.writes += get(q.writes);
        s.inline_writes += get(q.inline_writes);
        s.uring_writes += get(q.uring_writes);
        s.flushes += get(q.flushes);
        s.discards += get(q.discards);
        s.write_zeroes += get(q.write_zeroes);
        s.get_ids += get(q.get_ids);
        s.read_bytes += get(q.read_bytes);
        s.written_bytes += get(q.written_bytes);
        s.ioerr += get(q.ioerr);
        s.unsupp += get(q.unsupp);
        s.no_status += get(q.no_status);
        s.io_errors += get(q.io_errors);
        s.short_io += get(q.short_io);
        s.buffered_fallbacks += get(q.buffered_fallbacks);
        for (size_t i = 0; i < s.malformed.size(); ++i) {
            s.malformed[i] += get(q.malformed[i]);
        }
    }
    for (const auto& gate : gates_) {
        s.inline_slow_writes += gate->slow_writes();
        s.inline_preempted_writes += gate->preempted_writes();
        s.inline_backoffs += gate->backoffs();
    }
    std::lock_guard<std::mutex> g(ctl_mu_);
    s.uring_submitted = retired_submitted_;
    s.uring_enters = retired_enters_;
    for (const auto& e : engines_) {
        s.uring_submitted += e->submitted();
        s.uring_enters += e->enters();
    }
    return s;
}

int VirtioblkDevice::stats_json(char* buf, size_t len) noexcept {
    const BlkStats s = stats();
    uint64_t malformed = 0;
    for (uint64_t m : s.malformed) {
        malformed += m;
    }
    using ull = unsigned long long;
    int n = std::snprintf(
        buf, len,
        "{\"capacity_bytes\":%llu,\"block_size\":%u,\"readonly\":%s,\"direct\":%s,"
        "\"reads\":%llu,\"writes\":%llu,\"flushes\":%llu,\"discards\":%llu,"
        "\"write_zeroes\":%llu,\"get_ids\":%llu,\"read_bytes\":%llu,\"written_bytes\":%llu,"
        "\"errors\":%llu,\"ioerr\":%llu,\"unsupp\":%llu,\"no_status\":%llu,\"io_errors\":%llu,"
        "\"malformed\":%llu,\"short_io\":%llu,\"buffered_fallbacks\":%llu,"
        "\"uring_submitted\":%llu,\"uring_enters\":%llu,\"write_path\":\"%s\","
        "\"inline_writes\":%llu,\"uring_writes\":%llu,\"inline_slow_writes\":%llu,"
        "\"inline_preempted_writes\":%llu,\"inline_backoffs\":%llu",
        static_cast<ull>(geometry_.capacity_bytes), geometry_.block_size,
        profile_.readonly ? "true" : "false", profile_.direct ? "true" : "false",
        static_cast<ull>(s.reads), static_cast<ull>(s.writes), static_cast<ull>(s.flushes),
        static_cast<ull>(s.discards), static_cast<ull>(s.write_zeroes), static_cast<ull>(s.get_ids),
        static_cast<ull>(s.read_bytes), static_cast<ull>(s.written_bytes),
        static_cast<ull>(s.ioerr + s.unsupp + s.no_status), static_cast<ull>(s.ioerr),
        static_cast<ull>(s.unsupp), static_cast<ull>(s.no_status), static_cast<ull>(s.io_errors),
        static_cast<ull>(malformed), static_cast<ull>(s.short_io),
        static_cast<ull>(s.buffered_fallbacks), static_cast<ull>(s.uring_submitted),
        static_cast<ull>(s.uring_enters), write_path_name(backing_.write_path),
        static_cast<ull>(s.inline_writes), static_cast<ull>(s.uring_writes),
        static_cast<ull>(s.inline_slow_writes), static_cast<ull>(s.inline_preempted_writes),
        static_cast<ull>(s.inline_backoffs));
    if (n < 0 || static_cast<size_t>(n) >= len) {
        return -ENOSPC;
    }
    // The malformed requests by reason, only those seen.
    for (size_t i = 1; i < s.malformed.size(); ++i) {
        if (s.malformed[i] == 0) {
            continue;
        }
        const int m =
            std::snprintf(buf + n, len - static_cast<size_t>(n), ",\"malformed_%s\":%llu",
                          to_string(static_cast<BlkError>(i)), static_cast<ull>(s.malformed[i]));
        if (m < 0 || static_cast<size_t>(n + m) >= len) {
            return -ENOSPC;
        }
        n += m;
    }
    if (static_cast<size_t>(n) + 2 > len) {
        return -ENOSPC;
    }
    buf[n++] = '}';
    buf[n] = '\0';
    return n;
}

int VirtioblkDevice::metrics(vdh_metric_emit_fn emit, void* ctx) noexcept {
    const BlkStats s = stats();
    auto counter = [&](const char* name, const char* help, const char* labels, uint64_t v) {
        vdh_metric m{};
        m.name = name;
        m.help = help;
        m.kind = VDH_METRIC_COUNTER;
        m.labels = labels;
        m.value = v;
        emit(ctx, &m);
    };
    const char* req_help = "virtio-blk: requests completed successfully, per operation";
    counter("blk_requests_total", req_help, "op=\"read\"", s.reads);
    counter("blk_requests_total", req_help, "op=\"write\"", s.writes);
    counter("blk_requests_total", req_help, "op=\"flush\"", s.flushes);
    counter("blk_requests_total", req_help, "op=\"discard\"", s.discards);
    counter("blk_requests_total", req_help, "op=\"write_zeroes\"", s.write_zeroes);
    counter("blk_requests_total", req_help, "op=\"get_id\"", s.get_ids);
    const char* err_help = "virtio-blk: requests answered with an error status";
    counter("blk_errors_total", err_help, "status=\"ioerr\"", s.ioerr);
    counter("blk_errors_total", err_help, "status=\"unsupp\"", s.unsupp);
    counter("blk_errors_total", err_help, "status=\"none\"", s.no_status);
    const char* path_help = "virtio-blk: writes completed, per path (inline pwritev or io_uring)";
    counter("blk_writes_total", path_help, "path=\"inline\"", s.inline_writes);
    counter("blk_writes_total", path_help, "path=\"uring\"", s.uring_writes);
    counter("blk_inline_write_stalls_total",
            "virtio-blk: inline writes slower than the gate's limit (each counts toward backoff)",
            "", s.inline_slow_writes);
    counter("blk_inline_write_backoffs_total",
            "virtio-blk: times the inline-write gate stopped inlining for a while", "",
            s.inline_backoffs);
    counter("blk_read_bytes_total", "virtio-blk: bytes read for the guest", "", s.read_bytes);
    counter("blk_written_bytes_total", "virtio-blk: bytes written for the guest", "",
            s.written_bytes);
    counter("blk_backend_errors_total", "virtio-blk: operations the backing file failed", "",
            s.io_errors);
    return 0;
}

} // namespace vdh::virtioblk

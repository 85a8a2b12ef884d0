// SPDX-License-Identifier: MIT
// FuseSession: session setup and INIT, the allocation-free submit/poll core (descriptors
// are taken from the queue once and managed here, chains published as raw heads), and the
// blocking typed calls on top of it (see fuse_session.h).
#include "fuse_client/fuse_session.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace vdh::fuse_client {

using frontend::SplitVirtqueue;
using frontend::UsedElem;
using frontend::VringDesc;

namespace {

constexpr uint32_t kPage = 4096;
/// Argument room of a blocking call's in area beyond the I/O payload (names, structs).
constexpr uint32_t kArgRoom = 2 * kPage + 256;
/// Out room of a blocking call besides READ data: READDIRPLUS's default size.
constexpr uint32_t kMinOutRoom = 65536;

uint32_t chunks(uint32_t len, uint32_t seg) noexcept {
    if (len == 0) {
        return 0;
    }
    return seg == 0 ? 1 : (len + seg - 1) / seg;
}

} // namespace

/// Per-virtqueue driver state. Owned by the thread driving the queue.
struct FuseSession::QueueState {
    SplitVirtqueue* vq = nullptr;
    /// Descriptor ids this session may use (all of the queue's), as a stack. Capacity is
    /// the queue size, so pushes never allocate.
    std::vector<uint16_t> free_descs;
    /// Request whose chain starts at each head id (null when not in flight).
    std::vector<FuseRequest*> by_head;
    /// Scratch for poll_used().
    std::vector<UsedElem> used;
    FuseRequest* sync = nullptr; ///< blocking calls' request (made on first use)
    uint32_t in_flight = 0;
};

FuseSession::FuseSession(const SessionOptions& options) : options_(options) {
    if (options_.uid == SessionOptions::kSelf) {
        options_.uid = static_cast<uint32_t>(getuid());
    }
    if (options_.gid == SessionOptions::kSelf) {
        options_.gid = static_cast<uint32_t>(getgid());
    }
    if (options_.pid == SessionOptions::kSelf) {
        options_.pid = static_cast<uint32_t>(getpid());
    }
    // FUSE's own limit is 256 pages (FUSE_MAX_MAX_PAGES).
    options_.max_pages = std::clamp<uint32_t>(options_.max_pages, 1, 256);
}

FuseSession::~FuseSession() = default;

Result<std::unique_ptr<FuseSession>> FuseSession::connect(const SessionOptions& options) {
    if (options.num_request_queues == 0 || options.num_request_queues > 63) {
        return make_err(EINVAL);
    }
    std::unique_ptr<FuseSession> s(new FuseSession(options));
    frontend::GuestMemoryOptions mo;
    mo.size = (options.memory_bytes + kPage - 1) & ~static_cast<uint64_t>(kPage - 1);
    auto mem = frontend::GuestMemory::create(mo);
    if (!mem) {
        return Err{mem.error()};
    }
    s->mem_ = std::move(*mem);

    frontend::DeviceOptions dopt;
    dopt.socket_path = options.socket_path;
    dopt.num_queues = static_cast<uint16_t>(1 + options.num_request_queues);
    dopt.queue_size = options.queue_size;
    dopt.wanted_features = options.wanted_features;
    dopt.connect_timeout = options.connect_timeout;
    dopt.reply_timeout = options.reply_timeout;
    auto dev = frontend::Device::connect(*s->mem_, dopt);
    if (!dev) {
        return Err{dev.error()};
    }
    s->device_ = std::move(*dev);
    VDH_TRY(s->device_->start());
    s->use_indirect_ =
        options.indirect && (s->device_->features() & frontend::kFIndirectDesc) != 0;
    VDH_TRY(s->setup_queues());
    if (options.send_init) {
        auto r = s->init();
        if (!r) {
            return Err{r.error()};
        }
    }
    return s;
}

Status FuseSession::setup_queues() {
    for (uint16_t q = 0; q < device_->num_queues(); ++q) {
        auto qs = std::make_unique<QueueState>();
        qs->vq = &device_->queue(q);
        qs->vq->set_interrupts(options_.interrupts);
        const uint16_t size = qs->vq->size();
        auto ids = qs->vq->reserve_descs(size);
        if (!ids) {
            return Err{ids.error()};
        }
        qs->free_descs = std::move(*ids);
        qs->free_descs.reserve(size);
        qs->by_head.assign(size, nullptr);
        qs->used.resize(size);
        queues_.push_back(std::move(qs));
    }
    return ok();
}

// ---- INIT ----------------------------------------------------------------------------------

Result<fuse_init_out> FuseSession::init() {
    auto sr = sync_request(call_queue_);
    if (!sr) {
        return Err{sr.error()};
    }
    FuseRequest& r = **sr;
    fuse_init_in in{};
    in.major = FUSE_KERNEL_VERSION;
    in.minor = options_.init_minor;
    in.max_readahead = options_.max_readahead;
    in.flags = static_cast<uint32_t>(options_.init_flags);
    in.flags2 = static_cast<uint32_t>(options_.init_flags >> 32);
    r.begin(FUSE_INIT, 0);
    r.append(in);
    r.set_out_len(kOutHeaderSize + sizeof(fuse_init_out));
    VDH_TRY(run_ok(call_queue_, r));
    auto p = r.out_payload();
    // Servers older than 7.23 answer with a 24-byte fuse_init_out.
    if (p.size() < FUSE_COMPAT_22_INIT_OUT_SIZE) {
        return make_err(EPROTO);
    }
    fuse_init_out out{};
    std::memcpy(&out, p.data(), std::min(p.size(), sizeof(out)));
    init_out_ = out;
    initialized_ = true;
    return out;
}

uint64_t FuseSession::negotiated_flags() const noexcept {
    return init_out_.flags | static_cast<uint64_t>(init_out_.flags2) << 32;
}

uint32_t FuseSession::max_io_bytes() const noexcept {
    uint32_t pages = options_.max_pages;
    if (initialized_) {
        // Without FUSE_MAX_PAGES the kernel's default of 32 pages applies.
        uint32_t neg = (negotiated_flags() & FUSE_MAX_PAGES) != 0 ? init_out_.max_pages : 32;
        pages = std::min(pages, std::max<uint32_t>(neg, 1));
    }
    return pages * kPage;
}

// ---- requests ------------------------------------------------------------------------------

uint32_t FuseSession::segments_for(uint32_t in_cap, uint32_t out_cap) const noexcept {
    const uint32_t seg = options_.segment_size;
    // args part + data part, out header + out payload, and one spare for raw layouts.
    return 1 + chunks(in_cap, seg) + 1 + chunks(out_cap, seg) + 1;
}

Result<FuseRequest*> FuseSession::alloc_request(uint32_t in_capacity, uint32_t out_capacity) {
    if (in_capacity < kInHeaderSize) {
        return make_err(EINVAL);
    }
    std::lock_guard<std::mutex> g(alloc_mu_);
    std::unique_ptr<FuseRequest> r(new FuseRequest());
    r->max_segments_ = segments_for(in_capacity, out_capacity);
    auto in = mem_->allocate(in_capacity, kPage);
    if (!in) {
        return Err{in.error()};
    }
    r->in_gpa_ = *in;
    r->in_cap_ = in_capacity;
    r->in_ = mem_->ptr<uint8_t>(*in, in_capacity);
    if (out_capacity > 0) {
        auto out = mem_->allocate(out_capacity, kPage);
        if (!out) {
            (void)mem_->free(*in);
            return Err{out.error()};
        }
        r->out_gpa_ = *out;
        r->out_cap_ = out_capacity;
        r->out_ = mem_->ptr<uint8_t>(*out, out_capacity);
    }
    if (use_indirect_) {
        const uint64_t bytes = static_cast<uint64_t>(r->max_segments_) * sizeof(VringDesc);
        auto t = mem_->allocate(bytes, 16);
        if (!t) {
            (void)mem_->free(r->in_gpa_);
            if (r->out_ != nullptr) {
                (void)mem_->free(r->out_gpa_);
            }
            return Err{t.error()};
        }
        r->table_gpa_ = *t;
        r->table_ = mem_->ptr<VringDesc>(*t, bytes);
    } else {
        r->descs_.reset(new uint16_t[r->max_segments_]);
    }
    r->uid_ = options_.uid;
    r->gid_ = options_.gid;
    r->pid_ = options_.pid;
    r->begin(0, 0);
    FuseRequest* p = r.get();
    requests_.push_back(std::move(r));
    return p;
}

Status FuseSession::free_request(FuseRequest* request) {
    std::lock_guard<std::mutex> g(alloc_mu_);
    auto it = std::find_if(requests_.begin(), requests_.end(),
                           [&](const auto& r) { return r.get() == request; });
    if (it == requests_.end()) {
        return make_err(EINVAL);
    }
    if (request->in_flight_) {
        return make_err(EBUSY);
    }
    (void)mem_->free(request->in_gpa_);
    if (request->out_ != nullptr) {
        (void)mem_->free(request->out_gpa_);
    }
    if (request->table_ != nullptr) {
        (void)mem_->free(request->table_gpa_);
    }
    for (auto& q : queues_) {
        if (q->sync == request) {
            q->sync = nullptr;
        }
    }
    requests_.erase(it);
    return ok();
}

template <typename Fn>
void FuseSession::for_each_segment(const FuseRequest& r, Fn&& fn) const noexcept {
    const uint32_t seg = options_.segment_size;
    auto split = [&](uint64_t gpa, uint32_t len, bool writable) {
        while (len > 0) {
            uint32_t n = seg == 0 || len < seg ? len : seg;
            fn(gpa, n, writable);
            gpa += n;
            len -= n;
        }
    };
    // Readable: header + arguments in one descriptor, then the data part by segments.
    const uint32_t args_end = r.data_off_ != 0 ? r.data_off_ : r.in_len_;
    if (args_end > 0) {
        fn(r.in_gpa_, args_end, false);
    }
    split(r.in_gpa_ + args_end, r.in_len_ - args_end, false);
    // Writable: the out header alone, then the payload by segments.
    if (r.out_len_ > 0) {
        const uint32_t head = std::min(r.out_len_, kOutHeaderSize);
        fn(r.out_gpa_, head, true);
        split(r.out_gpa_ + head, r.out_len_ - head, true);
    }
}

uint32_t FuseSession::count_segments(const FuseRequest& r) const noexcept {
    uint32_t n = 0;
    for_each_segment(r, [&](uint64_t, uint32_t, bool) { ++n; });
    return n;
}

Status FuseSession::submit(uint16_t queue, FuseRequest& r, uint64_t cookie, bool kick) noexcept {
    if (queue >= queues_.size()) {
        return make_err(EINVAL);
    }
    QueueState& qs = *queues_[queue];
    if (r.in_flight_) {
        return make_err(EBUSY);
    }
    if (!r.raw_ && r.in_len_ < kInHeaderSize) {
        return make_err(EINVAL);
    }
    const uint32_t n = count_segments(r);
    if (n == 0 || n > r.max_segments_) {
        return make_err(EINVAL);
    }
    const uint32_t need = use_indirect_ ? 1 : n;
    if (qs.free_descs.size() < need) {
        return make_err(ENOSPC);
    }

    if (!r.raw_) {
        fuse_in_header& h = r.in_header();
        h.len = r.in_len_;
        h.unique = next_unique_.fetch_add(2, std::memory_order_relaxed);
        r.unique_ = h.unique;
    } else {
        r.unique_ = r.in_len_ >= kInHeaderSize ? r.in_header().unique : 0;
    }
    if (r.out_len_ > 0) {
        std::memset(r.out_, 0, std::min(r.out_len_, kOutHeaderSize));
    }
    r.used_len_ = 0;

    uint16_t head;
    if (use_indirect_) {
        uint32_t i = 0;
        for_each_segment(r, [&](uint64_t gpa, uint32_t len, bool w) {
            const bool last = i + 1 == n;
            r.table_[i] = VringDesc{gpa, len,
                                    static_cast<uint16_t>((w ? frontend::kDescFWrite : 0) |
                                                          (last ? 0 : frontend::kDescFNext)),
                                    static_cast<uint16_t>(last ? 0 : i + 1)};
            ++i;
        });
        head = qs.free_descs.back();
        qs.free_descs.pop_back();
        const auto table_len = static_cast<uint32_t>(n * sizeof(VringDesc));
        qs.vq->write_desc(head, VringDesc{r.table_gpa_, table_len, frontend::kDescFIndirect, 0});
        r.n_descs_ = 0;
    } else {
        for (uint32_t i = 0; i < n; ++i) {
            r.descs_[i] = qs.free_descs.back();
            qs.free_descs.pop_back();
        }
        uint32_t i = 0;
        for_each_segment(r, [&](uint64_t gpa, uint32_t len, bool w) {
            const bool last = i + 1 == n;
            qs.vq->write_desc(r.descs_[i],
                              VringDesc{gpa, len,
                                        static_cast<uint16_t>((w ? frontend::kDescFWrite : 0) |
                                                              (last ? 0 : frontend::kDescFNext)),
                                        last ? uint16_t{0} : r.descs_[i + 1]});
            ++i;
        });
        head = r.descs_[0];
        r.n_descs_ = static_cast<uint16_t>(n);
    }
    qs.by_head[head] = &r;
    r.in_flight_ = true;
    r.queue_ = queue;
    r.head_ = head;
    r.cookie_ = cookie;
    ++qs.in_flight;
    // Release-publishes the head after the descriptor and table stores above.
    qs.vq->publish_raw_head(head);
    if (kick) {
        auto k = qs.vq->kick();
        if (!k) {
            return Err{k.error()};
        }
    }
    return ok();
}

Status FuseSession::kick(uint16_t queue) noexcept {
    if (queue >= queues_.size()) {
        return make_err(EINVAL);
    }
    auto k = queues_[queue]->vq->kick();
    if (!k) {
        return Err{k.error()};
    }
    return ok();
}

size_t FuseSession::finish(QueueState& qs, size_t n, std::span<Completion> out) noexcept {
    for (size_t i = 0; i < n; ++i) {
        const UsedElem& u = qs.used[i];
        FuseRequest* r = u.id < qs.by_head.size() ? qs.by_head[u.id] : nullptr;
        if (r == nullptr || u.unexpected) {
            unexpected_.fetch_add(1, std::memory_order_relaxed);
            out[i] = Completion{nullptr, 0, u.len};
            continue;
        }
        qs.by_head[u.id] = nullptr;
        if (r->n_descs_ == 0) {
            qs.free_descs.push_back(r->head_);
        } else {
            for (uint16_t d = 0; d < r->n_descs_; ++d) {
                qs.free_descs.push_back(r->descs_[d]);
            }
        }
        r->used_len_ = u.len;
        r->in_flight_ = false;
        --qs.in_flight;
        out[i] = Completion{r, r->cookie_, u.len};
    }
    return n;
}

size_t FuseSession::poll(uint16_t queue, std::span<Completion> out) noexcept {
    if (queue >= queues_.size() || out.empty()) {
        return 0;
    }
    QueueState& qs = *queues_[queue];
    const size_t want = std::min(out.size(), qs.used.size());
    return finish(qs, qs.vq->poll_used(std::span<UsedElem>(qs.used.data(), want)), out);
}

Result<size_t> FuseSession::wait(uint16_t queue, std::span<Completion> out,
                                 Millis timeout) noexcept {
    if (queue >= queues_.size() || out.empty()) {
        return make_err(EINVAL);
    }
    QueueState& qs = *queues_[queue];
    const size_t want = std::min(out.size(), qs.used.size());
    auto n = qs.vq->wait_used(std::span<UsedElem>(qs.used.data(), want), timeout);
    if (!n) {
        return Err{n.error()};
    }
    return finish(qs, *n, out);
}

uint32_t FuseSession::in_flight(uint16_t queue) const noexcept {
    return queue < queues_.size() ? queues_[queue]->in_flight : 0;
}

// ---- blocking calls ------------------------------------------------------------------------

Status FuseSession::set_call_queue(uint16_t queue) noexcept {
    if (queue == kHiprioQueue || queue >= queues_.size()) {
        return make_err(EINVAL);
    }
    call_queue_ = queue;
    return ok();
}

Result<FuseRequest*> FuseSession::sync_request(uint16_t queue) {
    if (queue >= queues_.size()) {
        return make_err(EINVAL);
    }
    QueueState& qs = *queues_[queue];
    if (qs.sync == nullptr) {
        // hiprio carries FORGETs only; request queues get room for the largest I/O.
        const uint32_t io = options_.max_pages * kPage;
        const uint32_t in = queue == kHiprioQueue ? kPage : kArgRoom + io;
        const uint32_t out =
            queue == kHiprioQueue ? kPage : kOutHeaderSize + std::max(io, kMinOutRoom);
        auto r = alloc_request(in, out);
        if (!r) {
            return Err{r.error()};
        }
        qs.sync = *r;
    }
    return qs.sync;
}

Status FuseSession::run(uint16_t queue, FuseRequest& r) {
    QueueState& qs = *queues_[queue];
    if (qs.in_flight > 0) {
        return make_err(EBUSY);
    }
    VDH_TRY(submit(queue, r, 0));
    const auto deadline = std::chrono::steady_clock::now() + options_.call_timeout;
    Completion done[8];
    while (r.in_flight()) {
        auto left = std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            return make_err(ETIMEDOUT);
        }
        auto n = wait(queue, done, left);
        if (!n) {
            return Err{n.error()};
        }
    }
    return ok();
}

Status FuseSession::run_ok(uint16_t queue, FuseRequest& r) {
    VDH_TRY(run(queue, r));
    const int e = r.reply_errno();
    if (e != 0) {
        return make_err(e);
    }
    return ok();
}

template <typename T>
Result<T> FuseSession::run_typed(uint16_t queue, FuseRequest& r) {
    VDH_TRY(run_ok(queue, r));
    T out{};
    if (!r.payload_as(&out)) {
        return make_err(EPROTO);
    }
    return out;
}

namespace {
Reply reply_of(const FuseRequest& r) {
    Reply out;
    out.used_len = r.used_len();
    if (r.has_reply()) {
        out.header = r.out_header();
        auto p = r.out_payload();
        out.payload.assign(p.begin(), p.end());
    }
    return out;
}
} // namespace

Result<Reply> FuseSession::call(uint32_t opcode, uint64_t nodeid, std::span<const uint8_t> args,
                                uint32_t out_size) {
    auto sr = sync_request(call_queue_);
    if (!sr) {
        return Err{sr.error()};
    }
    FuseRequest& r = **sr;
    r.begin(opcode, nodeid);
    if (!r.append(args.data(), args.size()) || out_size > r.out_capacity()) {
        return make_err(EINVAL);
    }
    r.set_out_len(out_size);
    VDH_TRY(run(call_queue_, r));
    return reply_of(r);
}

Result<Reply> FuseSession::send_raw(uint16_t queue, std::span<const uint8_t> in_bytes,
                                    uint32_t out_size) {
    auto sr = sync_request(queue);
    if (!sr) {
        return Err{sr.error()};
    }
    FuseRequest& r = **sr;
    r.begin(0, 0);
    if (!r.set_raw(in_bytes) || out_size > r.out_capacity()) {
        return make_err(EINVAL);
    }
    r.set_out_len(out_size);
    VDH_TRY(run(queue, r));
    return reply_of(r);
}

Result<fuse_entry_out> FuseSession::entry_call(uint32_t opcode, uint64_t parent, const void* arg,
                                               size_t arg_len, std::string_view name) {
    auto sr = sync_request(call_queue_);
    if (!sr) {
        return Err{sr.error()};
    }
    FuseRequest& r = **sr;
    r.begin(opcode, parent);
    if (!r.append(arg, arg_len) || !r.append_name(name)) {
        return make_err(EINVAL);
    }
    r.set_out_len(kOutHeaderSize + sizeof(fuse_entry_out));
    return run_typed<fuse_entry_out>(call_queue_, r);
}

Result<fuse_entry_out> FuseSession::lookup(uint64_t parent, std::string_view name) {
    return entry_call(FUSE_LOOKUP, parent, nullptr, 0, name);
}

Result<fuse_entry_out> FuseSession::mkdir(uint64_t parent, std::string_view name, uint32_t mode,
                                          uint32_t umask) {
    fuse_mkdir_in in{};
    in.mode = mode;
    in.umask = umask;
    return entry_call(FUSE_MKDIR, parent, &in, sizeof(in), name);
}

Result<fuse_attr_out> FuseSession::getattr(uint64_t nodeid, const uint64_t* fh) {
    fuse_getattr_in in{};
    if (fh != nullptr) {
        in.getattr_flags = FUSE_GETATTR_FH;
        in.fh = *fh;
    }
    auto sr = sync_request(call_queue_);
    if (!sr) {
        return Err{sr.error()};
    }
    FuseRequest& r = **sr;
    r.begin(FUSE_GETATTR, nodeid);
    r.append(in);
    r.set_out_len(kOutHeaderSize + sizeof(fuse_attr_out));
    return run_typed<fuse_attr_out>(call_queue_, r);
}

Result<fuse_attr_out> FuseSession::setattr_size(uint64_t nodeid, uint64_t size,
                                                const uint64_t* fh) {
    fuse_setattr_in in{};
    in.valid = FATTR_SIZE;
    in.size = size;
    if (fh != nullptr) {
        in.valid |= FATTR_FH;
        in.fh = *fh;
    }
    auto sr = sync_request(call_queue_);
    if (!sr) {
        return Err{sr.error()};
    }
    FuseRequest& r = **sr;
    r.begin(FUSE_SETATTR, nodeid);
    r.append(in);
    r.set_out_len(kOutHeaderSize + sizeof(fuse_attr_out));
    return run_typed<fuse_attr_out>(call_queue_, r);
}

namespace {
fuse_open_in open_in(uint32_t flags) {
    fuse_open_in in{};
    in.flags = flags;
    return in;
}
} // namespace

Result<fuse_open_out> FuseSession::open(uint64_t nodeid, uint32_t flags) {
    auto sr = sync_request(call_queue_);
    if (!sr) {
        return Err{sr.error()};
    }
    FuseRequest& r = **sr;
    r.begin(FUSE_OPEN, nodeid);
    r.append(open_in(flags));
    r.set_out_len(kOutHeaderSize + sizeof(fuse_open_out));
    return run_typed<fuse_open_out>(call_queue_, r);
}

Result<fuse_open_out> FuseSession::opendir(uint64_t nodeid, uint32_t flags) {
    auto sr = sync_request(call_queue_);
    if (!sr) {
        return Err{sr.error()};
    }
    FuseRequest& r = **sr;
    r.begin(FUSE_OPENDIR, nodeid);
    r.append(open_in(flags));
    r.set_out_len(kOutHeaderSize + sizeof(fuse_open_out));
    return run_typed<fuse_open_out>(call_queue_, r);
}

Result<CreateReply> FuseSession::create(uint64_t parent, std::string_view name, uint32_t flags,
                                        uint32_t mode, uint32_t umask) {
    auto sr = sync_request(call_queue_);
    if (!sr) {
        return Err{sr.error()};
    }
    FuseRequest& r = **sr;
    fuse_create_in in{};
    in.flags = flags;
    in.mode = mode;
    in.umask = umask;
    r.begin(FUSE_CREATE, parent);
    if (!r.append(in) || !r.append_name(name)) {
        return make_err(EINVAL);
    }
    r.set_out_len(kOutHeaderSize + sizeof(fuse_entry_out) + sizeof(fuse_open_out));
    VDH_TRY(run_ok(call_queue_, r));
    auto p = r.out_payload();
    if (p.size() < sizeof(fuse_entry_out) + sizeof(fuse_open_out)) {
        return make_err(EPROTO);
    }
    CreateReply out{};
    std::memcpy(&out.entry, p.data(), sizeof(out.entry));
    std::memcpy(&out.open, p.data() + sizeof(out.entry), sizeof(out.open));
    return out;
}

Status FuseSession::unlink(uint64_t parent, std::string_view name) {
    auto sr = sync_request(call_queue_);
    if (!sr) {
        return Err{sr.error()};
    }
    FuseRequest& r = **sr;
    r.begin(FUSE_UNLINK, parent);
    if (!r.append_name(name)) {
        return make_err(EINVAL);
    }
    r.set_out_len(kOutHeaderSize);
    return run_ok(call_queue_, r);
}

Status FuseSession::rmdir(uint64_t parent, std::string_view name) {
    auto sr = sync_request(call_queue_);
    if (!sr) {
        return Err{sr.error()};
    }
    FuseRequest& r = **sr;
    r.begin(FUSE_RMDIR, parent);
    if (!r.append_name(name)) {
        return make_err(EINVAL);
    }
    r.set_out_len(kOutHeaderSize);
    return run_ok(call_queue_, r);
}

Result<size_t> FuseSession::read(uint64_t nodeid, uint64_t fh, uint64_t offset,
                                 std::span<uint8_t> dst) {
    if (dst.size() > max_io_bytes()) {
        return make_err(EINVAL);
    }
    auto sr = sync_request(call_queue_);
    if (!sr) {
        return Err{sr.error()};
    }
    FuseRequest& r = **sr;
    fuse_read_in in{};
    in.fh = fh;
    in.offset = offset;
    in.size = static_cast<uint32_t>(dst.size());
    r.begin(FUSE_READ, nodeid);
    r.append(in);
    r.set_out_len(kOutHeaderSize + in.size);
    VDH_TRY(run_ok(call_queue_, r));
    auto p = r.out_payload();
    if (p.size() > dst.size()) {
        return make_err(EPROTO);
    }
    std::memcpy(dst.data(), p.data(), p.size());
    return p.size();
}

Result<size_t> FuseSession::write(uint64_t nodeid, uint64_t fh, uint64_t offset,
                                  std::span<const uint8_t> src, uint32_t write_flags) {
    if (src.size() > max_io_bytes()) {
        return make_err(EINVAL);
    }
    auto sr = sync_request(call_queue_);
    if (!sr) {
        return Err{sr.error()};
    }
    FuseRequest& r = **sr;
    fuse_write_in in{};
    in.fh = fh;
    in.offset = offset;
    in.size = static_cast<uint32_t>(src.size());
    in.write_flags = write_flags;
    r.begin(FUSE_WRITE, nodeid);
    r.append(in);
    uint8_t* data = r.append_data(src.size());
    if (data == nullptr) {
        return make_err(EINVAL);
    }
    if (!src.empty()) {
        std::memcpy(data, src.data(), src.size());
    }
    r.set_out_len(kOutHeaderSize + sizeof(fuse_write_out));
    auto wo = run_typed<fuse_write_out>(call_queue_, r);
    if (!wo) {
        return Err{wo.error()};
    }
    return static_cast<size_t>(wo->size);
}

namespace {
fuse_release_in release_in(uint64_t fh, uint32_t flags) {
    fuse_release_in in{};
    in.fh = fh;
    in.flags = flags;
    return in;
}
} // namespace

Status FuseSession::release(uint64_t nodeid, uint64_t fh, uint32_t flags) {
    auto sr = sync_request(call_queue_);
    if (!sr) {
        return Err{sr.error()};
    }
    FuseRequest& r = **sr;
    r.begin(FUSE_RELEASE, nodeid);
    r.append(release_in(fh, flags));
    r.set_out_len(kOutHeaderSize);
    return run_ok(call_queue_, r);
}

Status FuseSession::releasedir(uint64_t nodeid, uint64_t fh) {
    auto sr = sync_request(call_queue_);
    if (!sr) {
        return Err{sr.error()};
    }
    FuseRequest& r = **sr;
    r.begin(FUSE_RELEASEDIR, nodeid);
    r.append(release_in(fh, 0));
    r.set_out_len(kOutHeaderSize);
    return run_ok(call_queue_, r);
}

Status FuseSession::flush(uint64_t nodeid, uint64_t fh, uint64_t lock_owner) {
    auto sr = sync_request(call_queue_);
    if (!sr) {
        return Err{sr.error()};
    }
    FuseRequest& r = **sr;
    fuse_flush_in in{};
    in.fh = fh;
    in.lock_owner = lock_owner;
    r.begin(FUSE_FLUSH, nodeid);
    r.append(in);
    r.set_out_len(kOutHeaderSize);
    return run_ok(call_queue_, r);
}

Status FuseSession::fsync(uint64_t nodeid, uint64_t fh, bool datasync) {
    auto sr = sync_request(call_queue_);
    if (!sr) {
        return Err{sr.error()};
    }
    FuseRequest& r = **sr;
    fuse_fsync_in in{};
    in.fh = fh;
    in.fsync_flags = datasync ? FUSE_FSYNC_FDATASYNC : 0;
    r.begin(FUSE_FSYNC, nodeid);
    r.append(in);
    r.set_out_len(kOutHeaderSize);
    return run_ok(call_queue_, r);
}

Result<std::vector<DirEntryPlus>> FuseSession::readdirplus(uint64_t nodeid, uint64_t fh,
                                                           uint64_t offset, uint32_t size) {
    auto sr = sync_request(call_queue_);
    if (!sr) {
        return Err{sr.error()};
    }
    FuseRequest& r = **sr;
    if (size > r.out_capacity() - kOutHeaderSize) {
        return make_err(EINVAL);
    }
    fuse_read_in in{};
    in.fh = fh;
    in.offset = offset;
    in.size = size;
    r.begin(FUSE_READDIRPLUS, nodeid);
    r.append(in);
    r.set_out_len(kOutHeaderSize + size);
    VDH_TRY(run_ok(call_queue_, r));
    auto p = r.out_payload();
    std::vector<DirEntryPlus> out;
    size_t pos = 0;
    while (pos < p.size()) {
        if (p.size() - pos < FUSE_NAME_OFFSET_DIRENTPLUS) {
            return make_err(EPROTO);
        }
        fuse_direntplus d;
        std::memcpy(&d, p.data() + pos, sizeof(d));
        const size_t rec = FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET_DIRENTPLUS + d.dirent.namelen);
        if (d.dirent.namelen == 0 || rec > p.size() - pos) {
            return make_err(EPROTO);
        }
        DirEntryPlus e;
        e.entry = d.entry_out;
        e.ino = d.dirent.ino;
        e.off = d.dirent.off;
        e.type = d.dirent.type;
        e.name.assign(reinterpret_cast<const char*>(p.data() + pos + FUSE_NAME_OFFSET_DIRENTPLUS),
                      d.dirent.namelen);
        out.push_back(std::move(e));
        pos += rec;
    }
    return out;
}

Result<fuse_kstatfs> FuseSession::statfs(uint64_t nodeid) {
    auto sr = sync_request(call_queue_);
    if (!sr) {
        return Err{sr.error()};
    }
    FuseRequest& r = **sr;
    r.begin(FUSE_STATFS, nodeid);
    r.set_out_len(kOutHeaderSize + sizeof(fuse_statfs_out));
    auto o = run_typed<fuse_statfs_out>(call_queue_, r);
    if (!o) {
        return Err{o.error()};
    }
    return o->st;
}

Status FuseSession::forget(uint64_t nodeid, uint64_t nlookup) {
    auto sr = sync_request(kHiprioQueue);
    if (!sr) {
        return Err{sr.error()};
    }
    FuseRequest& r = **sr;
    fuse_forget_in in{};
    in.nlookup = nlookup;
    r.begin(FUSE_FORGET, nodeid);
    r.append(in);
    r.set_out_len(0); // no reply: the kernel sends FORGET without writable buffers
    return run(kHiprioQueue, r);
}

} // namespace vdh::fuse_client

// SPDX-License-Identifier: MIT
// FuseChannel implementation: guest memory sizing, device start, slot and descriptor
// reservation, FUSE_INIT, chain building, completion polling and the FORGET side channel.
#include "bench/fuse_channel.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <thread>

namespace vdh::bench {

using frontend::kDescFIndirect;
using frontend::kDescFNext;
using frontend::kDescFWrite;
using frontend::VringDesc;

namespace {

constexpr uint64_t kForgetBytes = sizeof(fuse_in_header) + sizeof(fuse_forget_in);
constexpr uint32_t kMaxRequestQueues = 64;

uint64_t round_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

uint32_t segments(uint32_t bytes, uint32_t seg) {
    if (bytes == 0) {
        return 0;
    }
    return seg == 0 ? 1 : (bytes + seg - 1) / seg;
}

} // namespace

std::span<const uint8_t> Slot::payload() const noexcept {
    if (!expect_reply || used_len < sizeof(fuse_out_header)) {
        return {};
    }
    uint32_t n = used_len - sizeof(fuse_out_header);
    uint32_t hdr_len = out_header().len;
    if (hdr_len >= sizeof(fuse_out_header)) {
        n = std::min(n, hdr_len - static_cast<uint32_t>(sizeof(fuse_out_header)));
    }
    n = std::min(n, reply_len);
    const uint8_t* p = reply_in_data ? data : page + kSmallReplyOff;
    return {p, n};
}

Result<std::unique_ptr<FuseChannel>> FuseChannel::connect(const ChannelOptions& options,
                                                          std::string* why) {
    std::unique_ptr<FuseChannel> ch(new FuseChannel(options));
    auto st = ch->setup(why);
    if (!st) {
        return Err{st.error()};
    }
    st = ch->init(why);
    if (!st) {
        return Err{st.error()};
    }
    return ch;
}

FuseChannel::~FuseChannel() { close(); }

void FuseChannel::close() noexcept {
    if (device_ && device_->state() == frontend::Device::State::Running) {
        (void)device_->stop();
    }
    if (device_) {
        device_->disconnect();
    }
}

Status FuseChannel::setup(std::string* why) {
    const ChannelOptions& o = options_;
    if (o.request_queues == 0 || o.request_queues > kMaxRequestQueues) {
        *why = "--queues must be 1.." + std::to_string(kMaxRequestQueues);
        return make_err(EINVAL);
    }
    if (o.slots_per_queue == 0 || o.slots_per_queue > o.queue_size) {
        *why = "queue depth must be 1..queue size";
        return make_err(EINVAL);
    }
    uid_ = ::getuid();
    gid_ = ::getgid();
    pid_ = static_cast<uint32_t>(::getpid());

    // Size guest memory for the rings, every slot and the FORGET buffers.
    uint16_t nq = static_cast<uint16_t>(o.request_queues + 1);
    uint64_t qs = o.queue_size;
    uint64_t ring_bytes = round_up(16 * qs, 64) + round_up(6 + 2 * qs, 64) +
                          round_up(6 + 8 * qs, 64) + 4096;
    uint32_t data_cap = static_cast<uint32_t>(round_up(std::max<uint32_t>(o.data_capacity, 4096), 4096));
    uint32_t seg = o.segment_size;
    uint32_t nseg = segments(data_cap, seg);
    uint32_t table_cap = 4 + nseg;
    uint64_t per_slot = Slot::kPageBytes + data_cap + round_up(table_cap * 16ULL, 64) + 4096;
    uint32_t forget_slots = static_cast<uint32_t>(std::min<uint64_t>(qs, 256));
    uint64_t total = nq * ring_bytes + o.request_queues * o.slots_per_queue * per_slot +
                     forget_slots * 128ULL + (2ULL << 20);
    total = round_up(total + total / 8, 2ULL << 20);

    frontend::GuestMemoryOptions mo;
    mo.size = total;
    auto mem = frontend::GuestMemory::create(mo);
    if (!mem) {
        *why = "cannot create guest memory of " + std::to_string(total >> 20) + " MiB";
        return Err{mem.error()};
    }
    mem_ = std::move(*mem);

    frontend::DeviceOptions dopt;
    dopt.socket_path = o.socket_path;
    dopt.num_queues = nq;
    dopt.queue_size = o.queue_size;
    dopt.wanted_features = frontend::kFIndirectDesc | frontend::kFEventIdx;
    dopt.connect_timeout = o.connect_timeout;
    auto dev = frontend::Device::connect(*mem_, dopt);
    if (!dev) {
        *why = "cannot connect to " + o.socket_path + ": " + std::strerror(dev.error());
        return Err{dev.error()};
    }
    device_ = std::move(*dev);
    auto st = device_->start();
    if (!st) {
        *why = std::string("device start failed: ") + std::strerror(st.error());
        return st;
    }
    indirect_ = o.indirect && (device_->features() & frontend::kFIndirectDesc) != 0;
    segment_ = indirect_ ? seg : 0;
    if (indirect_ && 3 + nseg > o.queue_size) {
        *why = "a request needs more descriptors than the queue size; raise --segment-size";
        return make_err(EINVAL);
    }
    if (!indirect_ && o.slots_per_queue * Slot::kMaxDirect > o.queue_size) {
        *why = "without INDIRECT_DESC a queue of " + std::to_string(o.queue_size) +
               " holds at most " + std::to_string(o.queue_size / Slot::kMaxDirect) +
               " requests";
        return make_err(EINVAL);
    }

    for (uint16_t q = 0; q < nq; q++) {
        auto qs_state = std::make_unique<QueueState>();
        frontend::SplitVirtqueue& vq = device_->queue(q);
        qs_state->vq = &vq;
        vq.set_interrupts(!o.poll);
        // The channel owns every descriptor: heads are fixed per slot.
        auto ids = vq.reserve_descs(vq.size());
        if (!ids) {
            *why = "cannot reserve descriptors";
            return Err{ids.error()};
        }
        qs_state->used.resize(vq.size());
        qs_state->by_head.assign(vq.size(), nullptr);
        if (q > 0) {
            qs_state->slots.resize(o.slots_per_queue);
            for (uint32_t i = 0; i < o.slots_per_queue; i++) {
                Slot& s = qs_state->slots[i];
                s.queue = q;
                s.index = i;
                auto page = mem_->allocate(Slot::kPageBytes, 4096);
                auto data = mem_->allocate(data_cap, 4096);
                if (!page || !data) {
                    *why = "guest memory exhausted";
                    return make_err(ENOMEM);
                }
                s.page_gpa = *page;
                s.page = mem_->ptr<uint8_t>(*page, Slot::kPageBytes);
                s.data_gpa = *data;
                s.data = mem_->ptr<uint8_t>(*data, data_cap);
                s.data_cap = data_cap;
                std::memset(s.page, 0, Slot::kPageBytes);
                if (indirect_) {
                    auto table = mem_->allocate(table_cap * sizeof(VringDesc), 64);
                    if (!table) {
                        *why = "guest memory exhausted";
                        return make_err(ENOMEM);
                    }
                    s.table_gpa = *table;
                    s.table = mem_->ptr<VringDesc>(*table, table_cap * sizeof(VringDesc));
                    s.table_cap = table_cap;
                    s.head = static_cast<uint16_t>(i);
                } else {
                    for (uint32_t k = 0; k < Slot::kMaxDirect; k++) {
                        s.direct_ids[k] = static_cast<uint16_t>(i * Slot::kMaxDirect + k);
                    }
                    s.head = s.direct_ids[0];
                }
                qs_state->by_head[s.head] = &s;
            }
        }
        queues_.push_back(std::move(qs_state));
    }

    forget_slots_.resize(forget_slots);
    forget_used_.resize(device_->queue(0).size());
    for (uint32_t i = 0; i < forget_slots; i++) {
        auto buf = mem_->allocate(kForgetBytes, 64);
        if (!buf) {
            *why = "guest memory exhausted";
            return make_err(ENOMEM);
        }
        forget_slots_[i].gpa = *buf;
        forget_slots_[i].buf = mem_->ptr<uint8_t>(*buf, kForgetBytes);
        forget_free_.push_back(static_cast<uint16_t>(forget_slots - 1 - i));
    }
    return ok();
}

Status FuseChannel::init(std::string* why) {
    Slot& s = setup_slot();
    begin(s, FUSE_INIT, 0, sizeof(fuse_init_out));
    fuse_init_in in{};
    in.major = FUSE_KERNEL_VERSION;
    in.minor = 38;
    in.max_readahead = 128 * 1024;
    in.flags = static_cast<uint32_t>(options_.init_flags);
    in.flags2 = static_cast<uint32_t>(options_.init_flags >> 32);
    append(s, &in, sizeof(in));
    auto st = call(s);
    if (!st) {
        *why = std::string("FUSE_INIT got no reply: ") + std::strerror(st.error());
        return st;
    }
    if (s.out_header().error != 0) {
        *why = std::string("FUSE_INIT failed: ") + std::strerror(-s.out_header().error);
        return make_err(-s.out_header().error);
    }
    auto p = s.payload();
    if (p.size() < 8) {
        *why = "FUSE_INIT reply too short";
        return make_err(EPROTO);
    }
    std::memcpy(&init_out_, p.data(), std::min(p.size(), sizeof(init_out_)));
    if (init_out_.major != FUSE_KERNEL_VERSION) {
        *why = "FUSE_INIT: device speaks major " + std::to_string(init_out_.major);
        return make_err(EPROTO);
    }
    uint64_t flags = init_out_.flags;
    if ((flags & FUSE_INIT_EXT) != 0) {
        flags |= static_cast<uint64_t>(init_out_.flags2) << 32;
    }
    uint32_t pages = 32; // the kernel's default without FUSE_MAX_PAGES
    if ((flags & FUSE_MAX_PAGES) != 0 && init_out_.max_pages != 0) {
        pages = init_out_.max_pages;
    }
    max_read_ = pages * 4096;
    max_write_ = std::min(init_out_.max_write, max_read_);
    return ok();
}

void FuseChannel::begin(Slot& s, uint32_t opcode, uint64_t nodeid, uint32_t reply_len) noexcept {
    fuse_in_header& h = s.in_header();
    h = fuse_in_header{};
    h.opcode = opcode;
    h.nodeid = nodeid;
    s.args_len = 0;
    s.write_len = 0;
    s.reply_len = std::min(reply_len, Slot::kSmallReplyMax);
    s.reply_in_data = false;
    s.expect_reply = true;
}

bool FuseChannel::append(Slot& s, const void* p, uint32_t n) noexcept {
    if (s.args_len + n > Slot::kMaxArgs) {
        return false;
    }
    std::memcpy(s.args() + s.args_len, p, n);
    s.args_len += n;
    return true;
}

bool FuseChannel::append_name(Slot& s, std::string_view name) noexcept {
    if (s.args_len + name.size() + 1 > Slot::kMaxArgs) {
        return false;
    }
    std::memcpy(s.args() + s.args_len, name.data(), name.size());
    s.args()[s.args_len + name.size()] = 0;
    s.args_len += static_cast<uint32_t>(name.size() + 1);
    return true;
}

void FuseChannel::reply_to_data(Slot& s, uint32_t n) noexcept {
    s.reply_len = std::min(n, s.data_cap);
    s.reply_in_data = true;
}

void FuseChannel::submit(Slot& s) noexcept {
    QueueState& qs = *queues_[s.queue];
    fuse_in_header& h = s.in_header();
    h.len = static_cast<uint32_t>(sizeof(fuse_in_header)) + s.args_len + s.write_len;
    h.unique = (static_cast<uint64_t>(s.queue) << 48) | qs.next_unique++;
    h.uid = uid_;
    h.gid = gid_;
    h.pid = pid_;
    s.unique = h.unique;
    std::memset(s.page + Slot::kOutHeaderOff, 0, sizeof(fuse_out_header));
    s.used_len = 0;
    s.in_flight = true;

    // Build the chain: readable parts first, then writable ones.
    VringDesc local[Slot::kMaxDirect];
    VringDesc* t = indirect_ ? s.table : local;
    uint32_t n = 0;
    auto add = [&](uint64_t gpa, uint32_t len, uint16_t flags) {
        t[n++] = VringDesc{gpa, len, flags, 0};
    };
    auto add_pages = [&](uint64_t gpa, uint32_t len, uint16_t flags) {
        if (segment_ == 0) {
            add(gpa, len, flags);
            return;
        }
        for (uint32_t off = 0; off < len; off += segment_) {
            add(gpa + off, std::min(segment_, len - off), flags);
        }
    };
    add(s.page_gpa, sizeof(fuse_in_header), 0);
    if (s.args_len > 0) {
        add(s.page_gpa + sizeof(fuse_in_header), s.args_len, 0);
    }
    if (s.write_len > 0) {
        add_pages(s.data_gpa, s.write_len, 0);
    }
    if (s.expect_reply) {
        add(s.page_gpa + Slot::kOutHeaderOff, sizeof(fuse_out_header), kDescFWrite);
        if (s.reply_len > 0) {
            if (s.reply_in_data) {
                add_pages(s.data_gpa, s.reply_len, kDescFWrite);
            } else {
                add(s.page_gpa + Slot::kSmallReplyOff, s.reply_len, kDescFWrite);
            }
        }
    }
    frontend::SplitVirtqueue& vq = *qs.vq;
    if (indirect_) {
        for (uint32_t i = 0; i + 1 < n; i++) {
            t[i].flags |= kDescFNext;
            t[i].next = static_cast<uint16_t>(i + 1);
        }
        vq.write_desc(s.head, VringDesc{s.table_gpa, n * static_cast<uint32_t>(sizeof(VringDesc)),
                                        kDescFIndirect, 0});
    } else {
        for (uint32_t i = 0; i < n; i++) {
            VringDesc d = t[i];
            if (i + 1 < n) {
                d.flags |= kDescFNext;
                d.next = s.direct_ids[i + 1];
            }
            vq.write_desc(s.direct_ids[i], d);
        }
    }
    vq.publish_raw_head(s.head);
}

void FuseChannel::kick(uint16_t q) noexcept { (void)queues_[q]->vq->kick(); }

size_t FuseChannel::poll(uint16_t q, std::span<Slot*> out) noexcept {
    QueueState& qs = *queues_[q];
    size_t want = std::min(out.size(), qs.used.size());
    size_t got = qs.vq->poll_used(std::span<frontend::UsedElem>(qs.used.data(), want));
    size_t n = 0;
    for (size_t i = 0; i < got; i++) {
        const frontend::UsedElem& u = qs.used[i];
        Slot* s = u.id < qs.by_head.size() ? qs.by_head[u.id] : nullptr;
        if (u.unexpected || s == nullptr || !s->in_flight) {
            unexpected_.fetch_add(1, std::memory_order_relaxed);
            continue;
        }
        s->used_len = u.len;
        s->in_flight = false;
        out[n++] = s;
    }
    return n;
}

void FuseChannel::wait_any(std::span<const uint16_t> queues, int timeout_ms) noexcept {
    if (options_.poll) {
        return;
    }
    pollfd fds[kMaxRequestQueues];
    size_t n = 0;
    for (uint16_t q : queues) {
        const frontend::SplitVirtqueue& vq = *queues_[q]->vq;
        // poll() published used_event behind a fence: a completion that raced with it is
        // visible now or will be signalled.
        if (vq.used_idx() != vq.last_used_idx()) {
            return;
        }
        if (n < kMaxRequestQueues) {
            fds[n++] = pollfd{vq.call_fd(), POLLIN, 0};
        }
    }
    int rc = ::poll(fds, n, timeout_ms);
    if (rc <= 0) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if ((fds[i].revents & POLLIN) != 0) {
            uint64_t v;
            (void)!::read(fds[i].fd, &v, sizeof(v));
        }
    }
}

uint64_t FuseChannel::unexpected_completions() const noexcept {
    return unexpected_.load(std::memory_order_relaxed);
}

Status FuseChannel::call(Slot& s, std::chrono::milliseconds timeout) {
    submit(s);
    kick(s.queue);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    Slot* done[16];
    uint32_t spins = 0;
    for (;;) {
        size_t n = poll(s.queue, std::span<Slot*>(done, 16));
        for (size_t i = 0; i < n; i++) {
            if (done[i] != &s) {
                return make_err(EPROTO);
            }
        }
        if (!s.in_flight) {
            return ok();
        }
        if ((++spins & 1023) == 0 && std::chrono::steady_clock::now() > deadline) {
            return make_err(ETIMEDOUT);
        }
        std::this_thread::yield();
    }
}

size_t FuseChannel::reclaim_forgets() noexcept {
    frontend::SplitVirtqueue& vq = *queues_[0]->vq;
    size_t n = vq.poll_used(std::span<frontend::UsedElem>(forget_used_));
    for (size_t i = 0; i < n; i++) {
        uint32_t id = forget_used_[i].id;
        if (forget_used_[i].unexpected || id >= forget_slots_.size() || !forget_slots_[id].busy) {
            unexpected_.fetch_add(1, std::memory_order_relaxed);
            continue;
        }
        forget_slots_[id].busy = false;
        forget_free_.push_back(static_cast<uint16_t>(id));
    }
    return n;
}

Status FuseChannel::forget(uint64_t nodeid, uint64_t nlookup) noexcept {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    std::unique_lock lock(forget_mu_);
    reclaim_forgets();
    while (forget_free_.empty()) {
        lock.unlock();
        if (std::chrono::steady_clock::now() > deadline) {
            return make_err(ETIMEDOUT);
        }
        std::this_thread::yield();
        lock.lock();
        reclaim_forgets();
    }
    uint16_t id = forget_free_.back();
    forget_free_.pop_back();
    ForgetSlot& f = forget_slots_[id];
    f.busy = true;
    fuse_in_header h{};
    h.len = static_cast<uint32_t>(kForgetBytes);
    h.opcode = FUSE_FORGET;
    h.unique = forget_unique_++;
    h.nodeid = nodeid;
    h.uid = uid_;
    h.gid = gid_;
    h.pid = pid_;
    fuse_forget_in fi{};
    fi.nlookup = nlookup;
    std::memcpy(f.buf, &h, sizeof(h));
    std::memcpy(f.buf + sizeof(h), &fi, sizeof(fi));
    frontend::SplitVirtqueue& vq = *queues_[0]->vq;
    vq.write_desc(id, VringDesc{f.gpa, static_cast<uint32_t>(kForgetBytes), 0, 0});
    vq.publish_raw_head(id);
    (void)vq.kick();
    forgets_sent_++;
    return ok();
}

Status FuseChannel::drain_forgets(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        {
            std::lock_guard lock(forget_mu_);
            reclaim_forgets();
            if (forget_free_.size() == forget_slots_.size()) {
                return ok();
            }
        }
        if (std::chrono::steady_clock::now() > deadline) {
            return make_err(ETIMEDOUT);
        }
        std::this_thread::yield();
    }
}

} // namespace vdh::bench

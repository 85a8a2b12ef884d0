// SPDX-License-Identifier: MIT
// BlkChannel implementation: negotiation and GET_CONFIG, guest memory sizing, slot and
// descriptor reservation, chain building and completion polling.
#include "bench/blk_channel.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <thread>

namespace vdh::bench {

using frontend::kDescFIndirect;
using frontend::kDescFNext;
using frontend::kDescFWrite;
using frontend::VringDesc;

namespace {

constexpr uint32_t kMaxQueues = 64;
constexpr uint32_t kSectorBytes = 512;
/// GET_CONFIG reads the config space up to num_queues: every field used here, and a size
/// every device has (qemu-storage-daemon ignores the offset and copies from 0).
constexpr uint32_t kConfigBytes =
    offsetof(virtio_blk_config, num_queues) + sizeof(virtio_blk_config::num_queues);

uint64_t round_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

uint32_t segments(uint32_t bytes, uint32_t seg) {
    if (bytes == 0) {
        return 0;
    }
    return seg == 0 ? 1 : (bytes + seg - 1) / seg;
}

bool has(uint64_t features, unsigned bit) { return (features & (1ULL << bit)) != 0; }

} // namespace

Result<std::unique_ptr<BlkChannel>> BlkChannel::connect(const BlkChannelOptions& options,
                                                        std::string* why) {
    std::unique_ptr<BlkChannel> ch(new BlkChannel(options));
    auto st = ch->setup(why);
    if (!st) {
        return Err{st.error()};
    }
    return ch;
}

BlkChannel::~BlkChannel() { close(); }

void BlkChannel::close() noexcept {
    if (device_ && device_->state() == frontend::Device::State::Running) {
        (void)device_->stop();
    }
    if (device_) {
        device_->disconnect();
    }
}

Status BlkChannel::read_config(std::string* why) {
    if ((device_->protocol_features() & frontend::kPfConfig) == 0) {
        *why = "the backend does not offer the CONFIG protocol feature: no capacity to read";
        return make_err(EOPNOTSUPP);
    }
    auto cfg = device_->get_config(0, kConfigBytes);
    if (!cfg) {
        *why = std::string("GET_CONFIG failed: ") + std::strerror(cfg.error());
        return Err{cfg.error()};
    }
    virtio_blk_config c{};
    std::memcpy(&c, cfg->data(), kConfigBytes);
    uint64_t f = device_->features();
    geo_.capacity_bytes = c.capacity * kSectorBytes;
    geo_.block_size = has(f, VIRTIO_BLK_F_BLK_SIZE) ? c.blk_size : kSectorBytes;
    geo_.seg_max = has(f, VIRTIO_BLK_F_SEG_MAX) ? c.seg_max : 0;
    geo_.size_max = has(f, VIRTIO_BLK_F_SIZE_MAX) ? c.size_max : 0;
    geo_.num_queues = has(f, VIRTIO_BLK_F_MQ) ? c.num_queues : 1;
    geo_.read_only = has(f, VIRTIO_BLK_F_RO);
    geo_.flush = has(f, VIRTIO_BLK_F_FLUSH);
    if (geo_.capacity_bytes == 0) {
        *why = "the device reports a capacity of 0";
        return make_err(EINVAL);
    }
    if (geo_.block_size < kSectorBytes || (geo_.block_size & (geo_.block_size - 1)) != 0) {
        *why = "the device reports a block size of " + std::to_string(geo_.block_size);
        return make_err(EINVAL);
    }
    if (geo_.num_queues < options_.queues) {
        *why = "the device has " + std::to_string(geo_.num_queues) + " request queue(s), " +
               std::to_string(options_.queues) + " asked for";
        return make_err(EINVAL);
    }
    return ok();
}

Status BlkChannel::setup(std::string* why) {
    const BlkChannelOptions& o = options_;
    if (o.queues == 0 || o.queues > kMaxQueues) {
        *why = "--queues must be 1.." + std::to_string(kMaxQueues);
        return make_err(EINVAL);
    }
    if (o.slots_per_queue == 0 || o.slots_per_queue > o.queue_size) {
        *why = "queue depth must be 1..queue size";
        return make_err(EINVAL);
    }

    // Size guest memory for the rings and every slot.
    uint64_t qs = o.queue_size;
    uint64_t ring_bytes = round_up(16 * qs, 64) + round_up(6 + 2 * qs, 64) +
                          round_up(6 + 8 * qs, 64) + 4096;
    uint32_t data_cap =
        static_cast<uint32_t>(round_up(std::max<uint32_t>(o.data_capacity, 4096), 4096));
    uint32_t nseg = segments(data_cap, o.segment_size);
    uint32_t table_cap = 2 + nseg;
    uint64_t per_slot = BlkSlot::kMetaBytes + data_cap + round_up(table_cap * 16ULL, 64) + 4096;
    uint64_t total = o.queues * ring_bytes + o.queues * o.slots_per_queue * per_slot + (2ULL << 20);
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
    dopt.num_queues = o.queues;
    dopt.queue_size = o.queue_size;
    dopt.wanted_features = frontend::kFIndirectDesc | frontend::kFEventIdx | kBlkWantedFeatures;
    dopt.connect_timeout = o.connect_timeout;
    auto dev = frontend::Device::connect(*mem_, dopt);
    if (!dev) {
        *why = "cannot connect to " + o.socket_path + ": " + std::strerror(dev.error());
        return Err{dev.error()};
    }
    device_ = std::move(*dev);
    // QEMU reads the config space before it starts the device (vhost_user_blk_realize).
    VDH_TRY(read_config(why));
    auto st = device_->start();
    if (!st) {
        *why = std::string("device start failed: ") + std::strerror(st.error());
        return st;
    }
    indirect_ = o.indirect && (device_->features() & frontend::kFIndirectDesc) != 0;
    segment_ = indirect_ ? o.segment_size : 0;
    if (geo_.size_max != 0 && segment_ != 0 && segment_ > geo_.size_max) {
        segment_ = geo_.size_max; // the Linux driver splits its segments the same way
    }
    // The largest request: the data buffer, at most seg_max segments of at most size_max.
    uint64_t max_req = data_cap;
    uint32_t seg_bytes = segment_ != 0 ? segment_ : data_cap;
    if (geo_.size_max != 0) {
        seg_bytes = std::min(seg_bytes, geo_.size_max);
        if (segment_ == 0) {
            max_req = std::min<uint64_t>(max_req, geo_.size_max);
        }
    }
    if (geo_.seg_max != 0 && segment_ != 0) {
        max_req = std::min<uint64_t>(max_req, static_cast<uint64_t>(geo_.seg_max) * seg_bytes);
    }
    max_request_ = static_cast<uint32_t>(max_req);
    nseg = segments(data_cap, segment_);
    table_cap = 2 + nseg;
    if (indirect_ && table_cap > o.queue_size) {
        *why = "a request needs more descriptors than the queue size; raise --segment-size";
        return make_err(EINVAL);
    }
    if (!indirect_ && o.slots_per_queue * BlkSlot::kMaxDirect > o.queue_size) {
        *why = "without INDIRECT_DESC a queue of " + std::to_string(o.queue_size) +
               " holds at most " + std::to_string(o.queue_size / BlkSlot::kMaxDirect) +
               " requests";
        return make_err(EINVAL);
    }

    for (uint16_t q = 0; q < o.queues; q++) {
        auto state = std::make_unique<QueueState>();
        frontend::SplitVirtqueue& vq = device_->queue(q);
        state->vq = &vq;
        vq.set_interrupts(!o.poll);
        // The channel owns every descriptor: heads are fixed per slot.
        auto ids = vq.reserve_descs(vq.size());
        if (!ids) {
            *why = "cannot reserve descriptors";
            return Err{ids.error()};
        }
        state->used.resize(vq.size());
        state->by_head.assign(vq.size(), nullptr);
        state->slots.resize(o.slots_per_queue);
        for (uint32_t i = 0; i < o.slots_per_queue; i++) {
            BlkSlot& s = state->slots[i];
            s.queue = q;
            s.index = i;
            auto meta = mem_->allocate(BlkSlot::kMetaBytes, 64);
            auto data = mem_->allocate(data_cap, 4096);
            if (!meta || !data) {
                *why = "guest memory exhausted";
                return make_err(ENOMEM);
            }
            s.meta_gpa = *meta;
            s.meta = mem_->ptr<uint8_t>(*meta, BlkSlot::kMetaBytes);
            std::memset(s.meta, 0, BlkSlot::kMetaBytes);
            s.data_gpa = *data;
            s.data = mem_->ptr<uint8_t>(*data, data_cap);
            s.data_cap = data_cap;
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
                for (uint32_t k = 0; k < BlkSlot::kMaxDirect; k++) {
                    s.direct_ids[k] = static_cast<uint16_t>(i * BlkSlot::kMaxDirect + k);
                }
                s.head = s.direct_ids[0];
            }
            state->by_head[s.head] = &s;
        }
        queues_.push_back(std::move(state));
    }
    return ok();
}

void BlkChannel::prepare(BlkSlot& s, uint32_t type, uint64_t offset, uint32_t len) noexcept {
    s.type = type;
    s.sector = offset / kSectorBytes;
    s.len = std::min(len, s.data_cap);
}

void BlkChannel::submit(BlkSlot& s) noexcept {
    QueueState& qs = *queues_[s.queue];
    virtio_blk_outhdr h{};
    h.type = s.type;
    h.ioprio = 0;
    h.sector = s.sector;
    std::memcpy(s.meta, &h, sizeof(h));
    s.meta[BlkSlot::kStatusOff] = BlkSlot::kStatusUnset;
    s.used_len = 0;
    s.in_flight = true;

    // header (readable), data (readable for OUT, writable for IN), status (writable).
    uint16_t data_flags = s.type == VIRTIO_BLK_T_IN ? kDescFWrite : 0;
    frontend::SplitVirtqueue& vq = *qs.vq;
    if (indirect_) {
        VringDesc* t = s.table;
        uint32_t n = 0;
        t[n++] = VringDesc{s.meta_gpa, static_cast<uint32_t>(sizeof(h)), 0, 0};
        if (s.len > 0) {
            if (segment_ == 0) {
                t[n++] = VringDesc{s.data_gpa, s.len, data_flags, 0};
            } else {
                for (uint32_t off = 0; off < s.len; off += segment_) {
                    t[n++] = VringDesc{s.data_gpa + off, std::min(segment_, s.len - off),
                                       data_flags, 0};
                }
            }
        }
        t[n++] = VringDesc{s.meta_gpa + BlkSlot::kStatusOff, 1, kDescFWrite, 0};
        for (uint32_t i = 0; i + 1 < n; i++) {
            t[i].flags |= kDescFNext;
            t[i].next = static_cast<uint16_t>(i + 1);
        }
        vq.write_desc(s.head, VringDesc{s.table_gpa, n * static_cast<uint32_t>(sizeof(VringDesc)),
                                        kDescFIndirect, 0});
    } else {
        VringDesc d[BlkSlot::kMaxDirect];
        uint32_t n = 0;
        d[n++] = VringDesc{s.meta_gpa, static_cast<uint32_t>(sizeof(h)), 0, 0};
        if (s.len > 0) {
            d[n++] = VringDesc{s.data_gpa, s.len, data_flags, 0};
        }
        d[n++] = VringDesc{s.meta_gpa + BlkSlot::kStatusOff, 1, kDescFWrite, 0};
        for (uint32_t i = 0; i < n; i++) {
            if (i + 1 < n) {
                d[i].flags |= kDescFNext;
                d[i].next = s.direct_ids[i + 1];
            }
            vq.write_desc(s.direct_ids[i], d[i]);
        }
    }
    vq.publish_raw_head(s.head);
}

void BlkChannel::kick(uint16_t q) noexcept { (void)queues_[q]->vq->kick(); }

size_t BlkChannel::poll(uint16_t q, std::span<BlkSlot*> out) noexcept {
    QueueState& qs = *queues_[q];
    size_t want = std::min(out.size(), qs.used.size());
    size_t got = qs.vq->poll_used(std::span<frontend::UsedElem>(qs.used.data(), want));
    size_t n = 0;
    for (size_t i = 0; i < got; i++) {
        const frontend::UsedElem& u = qs.used[i];
        BlkSlot* s = u.id < qs.by_head.size() ? qs.by_head[u.id] : nullptr;
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

void BlkChannel::wait_any(std::span<const uint16_t> queues, int timeout_ms) noexcept {
    if (options_.poll) {
        return;
    }
    pollfd fds[kMaxQueues];
    size_t n = 0;
    for (uint16_t q : queues) {
        const frontend::SplitVirtqueue& vq = *queues_[q]->vq;
        // poll() published used_event behind a fence: a completion that raced with it is
        // visible now or will be signalled.
        if (vq.used_idx() != vq.last_used_idx()) {
            return;
        }
        if (n < kMaxQueues) {
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

uint64_t BlkChannel::unexpected_completions() const noexcept {
    return unexpected_.load(std::memory_order_relaxed);
}

Status BlkChannel::call(BlkSlot& s, std::chrono::milliseconds timeout) {
    submit(s);
    kick(s.queue);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    BlkSlot* done[16];
    uint32_t spins = 0;
    for (;;) {
        size_t n = poll(s.queue, std::span<BlkSlot*>(done, 16));
        for (size_t i = 0; i < n; i++) {
            if (done[i] != &s) {
                return make_err(EPROTO);
            }
        }
        if (!s.in_flight) {
            return s.status() == VIRTIO_BLK_S_OK ? ok() : Status(make_err(EIO));
        }
        if ((++spins & 1023) == 0 && std::chrono::steady_clock::now() > deadline) {
            return make_err(ETIMEDOUT);
        }
        std::this_thread::yield();
    }
}

} // namespace vdh::bench

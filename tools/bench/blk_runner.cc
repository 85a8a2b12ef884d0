// SPDX-License-Identifier: MIT
// Virtio-blk load loop: per-thread workers with one operation per request slot (an IN or
// an OUT, and with --verify an OUT's read-back), status and data checks, latency
// recording; and the pattern preparation of the read area.
#include "bench/blk_runner.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <thread>

#include "bench/pattern.h"
#include "bench/rng.h"

namespace vdh::bench {

namespace {

constexpr int kMaxErrorLogs = 5;
constexpr int64_t kStallNs = 10'000'000'000;
constexpr uint32_t kPrepareChunk = 128 * 1024;

class BlkWorker {
public:
    BlkWorker(BlkChannel& ch, const BlkArea& area, const RunConfig& c, const Timing& timing,
              int id, std::vector<uint16_t> queues, uint64_t ops_target)
        : ch_(ch), area_(area), c_(c), timing_(timing), id_(id), queues_(std::move(queues)),
          ops_target_(ops_target) {
        info_ = &workload_info(c.workload);
        rng_.s = (c.seed + 0x1234567ULL * (id + 1)) | 1;
        ops_.resize(queues_.size() * c.queue_depth);
        blocks_ = area_.area_bytes / info_->io_bytes;
        uint32_t nthreads = std::max<uint32_t>(c.threads, 1);
        if (blocks_ > 0) {
            cursor_ = (blocks_ / nthreads) * static_cast<uint64_t>(id) % blocks_;
        }
        for (size_t qp = 0; qp < queues_.size(); qp++) {
            for (uint32_t i = 0; i < c.queue_depth; i++) {
                ops_[qp * c.queue_depth + i].global =
                    static_cast<uint32_t>(queues_[qp] * c.queue_depth + i);
                if (info_->op == OpKind::Write && !c.verify) {
                    // The payload of every OUT; its bytes do not matter without --verify.
                    BlkSlot& s = ch_.slot(queues_[qp], i);
                    fill_pattern(s.data, 0, info_->io_bytes, 0);
                }
            }
        }
    }

    void run() noexcept {
        run_ops();
        timing_.finished.fetch_add(1, std::memory_order_acq_rel);
        while (!timing_.release.load(std::memory_order_acquire)) {
            std::this_thread::sleep_for(std::chrono::microseconds(20));
        }
    }

    // Results.
    LatencyHistogram hist;
    uint64_t ops = 0, requests = 0, bytes = 0;
    uint64_t err_errno = 0, err_proto = 0, err_verify = 0;
    bool timed_out() const noexcept { return timed_out_; }

private:
    struct Op {
        uint8_t step = 0; ///< 0: the IN or OUT; 1: the read-back of a verified OUT
        int64_t t0 = 0;
        uint64_t offset = 0; ///< byte offset on the disk
        uint64_t stamp = 0;
        uint32_t requests = 0;
        uint64_t bytes_done = 0;
        uint32_t global = 0;       ///< slot index over all queues
        uint64_t cursor_block = 0; ///< --verify sequential writes: next block in the region
    };

    void run_ops() noexcept {
        if (!c_.cpus.empty()) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(c_.cpus[static_cast<size_t>(id_) % c_.cpus.size()], &set);
            (void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
        }
        while (!timing_.go.load(std::memory_order_acquire)) {
            std::this_thread::yield();
        }
        const uint32_t qd = c_.queue_depth;
        int64_t now = now_ns();
        for (size_t qp = 0; qp < queues_.size(); qp++) {
            for (uint32_t i = 0; i < qd; i++) {
                if (!may_start(now)) {
                    break;
                }
                BlkSlot& s = ch_.slot(queues_[qp], i);
                start_op(s, ops_[qp * qd + i], now);
                ch_.submit(s);
                active_++;
            }
            ch_.kick(queues_[qp]);
        }
        BlkSlot* done[256];
        int64_t last_progress = now;
        while (active_ > 0) {
            bool progressed = false;
            for (size_t qp = 0; qp < queues_.size(); qp++) {
                size_t n = ch_.poll(queues_[qp], std::span<BlkSlot*>(done, 256));
                if (n == 0) {
                    continue;
                }
                now = now_ns();
                for (size_t i = 0; i < n; i++) {
                    on_complete(*done[i], ops_[qp * qd + done[i]->index], now);
                }
                ch_.kick(queues_[qp]);
                progressed = true;
            }
            if (progressed) {
                last_progress = now;
                continue;
            }
            ch_.wait_any(queues_, 100);
            if ((++idle_loops_ & 0xfff) == 0 || !ch_.options().poll) {
                if (now_ns() - last_progress > kStallNs) {
                    timed_out_ = true;
                    log_error("no completion for 10 s: the device stopped answering");
                    return;
                }
            }
        }
    }

    bool may_start(int64_t now) const noexcept {
        if (timing_.by_ops) {
            return issued_ < ops_target_;
        }
        return now < timing_.window_end;
    }

    void log_error(const char* msg) noexcept {
        if (logged_ < kMaxErrorLogs) {
            logged_++;
            std::fprintf(stderr, "vdhost-bench: thread %d: %s: %s\n", id_,
                         std::string(info_->name).c_str(), msg);
        }
    }

    uint64_t next_offset(Op& op) noexcept {
        const uint32_t io = info_->io_bytes;
        if (info_->op == OpKind::Write && c_.verify) {
            // Each slot writes only its own region so a read-back sees its own data.
            uint64_t total = static_cast<uint64_t>(c_.queue_depth) * ch_.queues();
            uint64_t region = std::max<uint64_t>(blocks_ / total, 1);
            uint64_t base = (op.global * region) % std::max<uint64_t>(blocks_, 1);
            uint64_t b = info_->sequential ? base + op.cursor_block++ % region
                                           : base + rng_.below(region);
            return area_.write_base() + b * io;
        }
        uint64_t b;
        if (info_->sequential) {
            b = cursor_;
            cursor_ = (cursor_ + 1) % std::max<uint64_t>(blocks_, 1);
        } else {
            b = rng_.below(blocks_);
        }
        uint64_t base = info_->op == OpKind::Write ? area_.write_base() : area_.read_base();
        return base + b * io;
    }

    void start_op(BlkSlot& s, Op& op, int64_t now) noexcept {
        uint32_t global = op.global;
        uint64_t cursor_block = op.cursor_block;
        op = Op{};
        op.global = global;
        op.cursor_block = cursor_block;
        op.t0 = now;
        op.offset = next_offset(op);
        issued_++;
        if (info_->op == OpKind::Write) {
            if (c_.verify) {
                op.stamp = (static_cast<uint64_t>(id_) << 40) ^ (issued_ << 8) ^ 0xA5;
                fill_pattern(s.data, op.offset, info_->io_bytes, op.stamp);
            }
            BlkChannel::prepare(s, VIRTIO_BLK_T_OUT, op.offset, info_->io_bytes);
        } else {
            BlkChannel::prepare(s, VIRTIO_BLK_T_IN, op.offset, info_->io_bytes);
        }
    }

    /// The status byte and the used length of a completed request. False counts an error.
    bool reply_ok(const BlkSlot& s, const char* what) noexcept {
        uint32_t writable = (s.type == VIRTIO_BLK_T_IN ? s.len : 0) + 1;
        if (s.used_len > writable) {
            err_proto++;
            log_error("used length beyond the writable part of the chain");
            return false;
        }
        uint8_t st = s.status();
        if (st == VIRTIO_BLK_S_OK) {
            return true;
        }
        char buf[96];
        if (st == VIRTIO_BLK_S_IOERR || st == VIRTIO_BLK_S_UNSUPP) {
            err_errno++;
            std::snprintf(buf, sizeof(buf), "%s failed: status %s", what,
                          st == VIRTIO_BLK_S_IOERR ? "IOERR" : "UNSUPP");
        } else {
            err_proto++;
            std::snprintf(buf, sizeof(buf), "%s: status byte 0x%02x%s", what, st,
                          st == BlkSlot::kStatusUnset ? " (never written)" : "");
        }
        log_error(buf);
        return false;
    }

    /// Handles the reply in \p s. Returns true when it built the op's next request in
    /// \p s (the read-back of a verified OUT), false when the op is finished.
    bool step(BlkSlot& s, Op& op) noexcept {
        const uint32_t io = info_->io_bytes;
        if (info_->op == OpKind::Read) {
            if (!reply_ok(s, "IN")) {
                return false;
            }
            op_bytes_ = io;
            if (c_.verify && check_pattern(s.data, op.offset, io, 0) != io) {
                err_verify++;
                log_error("IN: data differs from the disk's pattern");
            }
            return false;
        }
        if (op.step == 0) {
            if (!reply_ok(s, "OUT")) {
                return false;
            }
            op_bytes_ = io;
            if (!c_.verify) {
                return false;
            }
            op.step = 1;
            std::memset(s.data, 0, io);
            BlkChannel::prepare(s, VIRTIO_BLK_T_IN, op.offset, io);
            return true;
        }
        if (reply_ok(s, "IN after OUT") && check_pattern(s.data, op.offset, io, op.stamp) != io) {
            err_verify++;
            log_error("IN after OUT: data differs from what was written");
        }
        return false;
    }

    void on_complete(BlkSlot& s, Op& op, int64_t now) noexcept {
        op.requests++;
        op_bytes_ = 0;
        bool more = step(s, op);
        op.bytes_done += op_bytes_;
        if (more) {
            ch_.submit(s);
            return;
        }
        if (timing_.by_ops || (now >= timing_.window_start && now < timing_.window_end)) {
            hist.record(static_cast<uint64_t>(now - op.t0));
            ops++;
            requests += op.requests;
            bytes += op.bytes_done;
        }
        if (may_start(now)) {
            start_op(s, op, now);
            ch_.submit(s);
        } else {
            active_--;
        }
    }

    BlkChannel& ch_;
    const BlkArea& area_;
    const RunConfig& c_;
    const Timing& timing_;
    const WorkloadInfo* info_ = nullptr;
    int id_;
    std::vector<uint16_t> queues_;
    uint64_t ops_target_;
    uint64_t issued_ = 0;
    uint32_t active_ = 0;
    uint64_t idle_loops_ = 0;
    uint32_t op_bytes_ = 0;
    int logged_ = 0;
    bool timed_out_ = false;
    Rng rng_{1};
    std::vector<Op> ops_;
    uint64_t blocks_ = 0;
    uint64_t cursor_ = 0;
};

} // namespace

bool blk_workload(Workload w) noexcept {
    const WorkloadInfo& wi = workload_info(w);
    return (wi.op == OpKind::Read || wi.op == OpKind::Write) && wi.io_bytes > 0;
}

Status prepare_blk(BlkChannel& ch, const BlkArea& area, std::string* why) {
    BlkSlot& s = ch.setup_slot();
    uint32_t chunk = std::min({kPrepareChunk, ch.max_request_bytes(), s.data_cap});
    chunk -= chunk % 4096;
    if (chunk == 0) {
        *why = "the device takes requests too small to prepare the disk";
        return make_err(EINVAL);
    }
    for (uint64_t off = area.read_base(); off < area.read_base() + area.area_bytes; off += chunk) {
        uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(chunk, area.area_bytes - off));
        fill_pattern(s.data, off, n, 0);
        BlkChannel::prepare(s, VIRTIO_BLK_T_OUT, off, n);
        auto st = ch.call(s);
        if (!st) {
            *why = "writing the pattern at offset " + std::to_string(off) + ": " +
                   std::strerror(st.error());
            return st;
        }
    }
    // Read back the first and the last chunk: a device that drops writes fails here.
    for (uint64_t off : {area.read_base(), area.read_base() + area.area_bytes - chunk}) {
        std::memset(s.data, 0, chunk);
        BlkChannel::prepare(s, VIRTIO_BLK_T_IN, off, chunk);
        auto st = ch.call(s);
        if (!st) {
            *why = "reading the pattern back at offset " + std::to_string(off) + ": " +
                   std::strerror(st.error());
            return st;
        }
        if (check_pattern(s.data, off, chunk, 0) != chunk) {
            *why = "the pattern read back at offset " + std::to_string(off) +
                   " differs from what was written";
            return make_err(EIO);
        }
    }
    return ok();
}

Result<RunResult> run_blk(BlkChannel& ch, const BlkArea& area, const RunConfig& config) {
    if (!blk_workload(config.workload) ||
        area.area_bytes < workload_info(config.workload).io_bytes) {
        return make_err(EINVAL);
    }
    uint32_t nthreads = std::clamp<uint32_t>(config.threads, 1, ch.queues());
    std::vector<std::vector<uint16_t>> owned(nthreads);
    for (uint16_t q = 0; q < ch.queues(); q++) {
        owned[q % nthreads].push_back(q);
    }
    Timing timing;
    timing.by_ops = config.ops > 0;
    std::vector<std::unique_ptr<BlkWorker>> workers;
    for (uint32_t i = 0; i < nthreads; i++) {
        uint64_t share = config.ops / nthreads + (i < config.ops % nthreads ? 1 : 0);
        workers.push_back(std::make_unique<BlkWorker>(ch, area, config, timing,
                                                      static_cast<int>(i), owned[i], share));
    }
    std::vector<std::thread> threads;
    for (auto& w : workers) {
        threads.emplace_back([&w] { w->run(); });
    }
    RunResult r;
    uint64_t unexpected0 = ch.unexpected_completions();
    run_window(config, timing, threads, r);
    for (auto& w : workers) {
        r.hist.merge(w->hist);
        r.ops += w->ops;
        r.requests += w->requests;
        r.bytes += w->bytes;
        r.err_errno += w->err_errno;
        r.err_proto += w->err_proto;
        r.err_verify += w->err_verify;
        r.timed_out = r.timed_out || w->timed_out();
    }
    // Used ids that matched no request in flight: a device bug.
    r.err_proto += ch.unexpected_completions() - unexpected0;
    return r;
}

} // namespace vdh::bench

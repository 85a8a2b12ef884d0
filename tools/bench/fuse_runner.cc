// SPDX-License-Identifier: MIT
// FUSE load loop: per-thread workers with one operation state machine per request slot,
// reply checking, latency recording, lookup-count bookkeeping (FORGETs after the run), and
// the blocking setup calls.
#include "bench/fuse_runner.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <thread>

#include "bench/pattern.h"
#include "bench/rng.h"

namespace vdh::bench {

namespace {

/// Lookup counts owed to the device (node id -> count), open addressing, fixed capacity.
class ForgetTable {
public:
    static constexpr size_t kCapacity = size_t{1} << 15;
    ForgetTable() : keys_(kCapacity, 0), counts_(kCapacity, 0) {}
    /// False when the table is too full (the caller forgets at once instead).
    bool add(uint64_t node) noexcept {
        if (used_ * 4 >= kCapacity * 3) {
            return false;
        }
        size_t i = (node * 0x9E3779B97F4A7C15ULL) >> (64 - 15);
        for (;;) {
            if (keys_[i] == node) {
                counts_[i]++;
                return true;
            }
            if (keys_[i] == 0) {
                keys_[i] = node;
                counts_[i] = 1;
                used_++;
                return true;
            }
            i = (i + 1) & (kCapacity - 1);
        }
    }
    template <typename Fn>
    void for_each(Fn&& fn) const {
        for (size_t i = 0; i < kCapacity; i++) {
            if (keys_[i] != 0) {
                fn(keys_[i], counts_[i]);
            }
        }
    }

private:
    std::vector<uint64_t> keys_;
    std::vector<uint64_t> counts_;
    size_t used_ = 0;
};

constexpr int kMaxErrorLogs = 5;
constexpr int64_t kStallNs = 10'000'000'000;

bool is_dot(std::string_view n) { return n == "." || n == ".."; }

class Worker {
public:
    Worker(FuseChannel& ch, const Targets& t, const RunConfig& c, const Timing& timing, int id,
           std::vector<uint16_t> queues, uint64_t ops_target)
        : ch_(ch), t_(t), c_(c), timing_(timing), id_(id), queues_(std::move(queues)),
          ops_target_(ops_target) {
        const WorkloadInfo& wi = workload_info(c.workload);
        info_ = &wi;
        rng_.s = (c.seed + 0x1234567ULL * (id + 1)) | 1;
        uint32_t qd = c.queue_depth;
        ops_.resize(queues_.size() * qd);
        names_.resize(ops_.size());
        if (c.verify) {
            name_nodes_.assign(kListEntries, 0);
            seen_.resize(ops_.size());
        }
        uint64_t rsize = std::min(c.file_bytes, t.read_size);
        uint64_t wsize = std::min(c.file_bytes, t.write_size);
        if (wi.io_bytes != 0) {
            read_blocks_ = rsize / wi.io_bytes;
            write_blocks_ = wsize / wi.io_bytes;
        }
        uint64_t blocks = wi.op == OpKind::Write ? write_blocks_ : read_blocks_;
        uint32_t nthreads = std::max<uint32_t>(c.threads, 1);
        if (blocks > 0) {
            cursor_ = (blocks / nthreads) * static_cast<uint64_t>(id) % blocks;
        }
        for (size_t qp = 0; qp < queues_.size(); qp++) {
            for (uint32_t i = 0; i < qd; i++) {
                size_t k = qp * qd + i;
                Slot& s = ch_.slot(queues_[qp], i);
                char buf[64];
                std::snprintf(buf, sizeof(buf), "cu-%u-%u-%u", static_cast<unsigned>(id_),
                              static_cast<unsigned>(queues_[qp]), i);
                names_[k] = buf;
                ops_[k].global = static_cast<uint32_t>((queues_[qp] - 1) * qd + i);
                ops_[k].cursor_block = 0;
                if (c.verify) {
                    seen_[k].assign((kListEntries + 63) / 64, 0);
                }
                if (wi.op == OpKind::Write && !c.verify) {
                    // The payload of every WRITE; its bytes do not matter without --verify.
                    fill_pattern(s.data, 0, wi.io_bytes, 0);
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
                Slot& s = ch_.slot(queues_[qp], i);
                if (!may_start(now)) {
                    break;
                }
                start_op(s, ops_[qp * qd + i], now);
                ch_.submit(s);
                active_++;
            }
            ch_.kick(queues_[qp]);
        }
        Slot* done[256];
        int64_t last_progress = now;
        while (active_ > 0) {
            bool progressed = false;
            for (size_t qp = 0; qp < queues_.size(); qp++) {
                size_t n = ch_.poll(queues_[qp], std::span<Slot*>(done, 256));
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
                int64_t t = now_ns();
                if (t - last_progress > kStallNs) {
                    timed_out_ = true;
                    log_error("no completion for 10 s: the device stopped answering");
                    return;
                }
            }
        }
    }

    // Results.
    LatencyHistogram hist;
    uint64_t ops = 0, requests = 0, bytes = 0, entries = 0;
    uint64_t err_errno = 0, err_proto = 0, err_verify = 0;
    bool timed_out() const noexcept { return timed_out_; }
    const ForgetTable& forgets() const noexcept { return forgets_; }

private:
    struct Op {
        OpKind kind = OpKind::Getattr;
        uint8_t step = 0;
        bool failed = false;
        int64_t t0 = 0;
        uint64_t offset = 0;
        uint32_t len = 0;
        uint32_t name_idx = 0;
        uint64_t nodeid = 0;
        uint64_t fh = 0;
        uint64_t dir_off = 0;
        uint64_t stamp = 0;
        uint32_t requests = 0;
        uint64_t bytes = 0;
        uint32_t entries = 0;
        uint32_t global = 0;       ///< slot index over all queues
        uint64_t cursor_block = 0; ///< --verify sequential writes: next block in the region
    };

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

    /// Header checks every reply gets: a whole header, our unique, and a length that
    /// matches the used length and fits what we offered. False counts a protocol error.
    bool header_ok(const Slot& s) noexcept {
        const fuse_out_header& h = s.out_header();
        uint32_t max = sizeof(fuse_out_header) + s.reply_len;
        if (s.used_len < sizeof(fuse_out_header) || s.used_len > max) {
            err_proto++;
            log_error("reply length out of range");
            return false;
        }
        if (h.unique != s.unique) {
            err_proto++;
            log_error("reply unique does not match the request");
            return false;
        }
        if (h.len != s.used_len) {
            err_proto++;
            log_error("out_header.len differs from the used length");
            return false;
        }
        if (h.error > 0 || h.error < -4095) {
            err_proto++;
            log_error("out_header.error is not a negative errno");
            return false;
        }
        return true;
    }

    /// header_ok(), error 0 and exactly \p payload bytes (UINT32_MAX: any size).
    bool reply_ok(const Slot& s, uint32_t payload, const char* what) noexcept {
        if (!header_ok(s)) {
            return false;
        }
        if (s.out_header().error != 0) {
            err_errno++;
            char buf[128];
            std::snprintf(buf, sizeof(buf), "%s failed: %s", what,
                          std::strerror(-s.out_header().error));
            log_error(buf);
            return false;
        }
        if (payload != UINT32_MAX && s.payload().size() != payload) {
            err_proto++;
            char buf[128];
            std::snprintf(buf, sizeof(buf), "%s: reply payload %zu bytes, expected %u", what,
                          s.payload().size(), payload);
            log_error(buf);
            return false;
        }
        return true;
    }

    void verify_fail(const char* msg) noexcept {
        err_verify++;
        log_error(msg);
    }

    void owe_forget(uint64_t node) noexcept {
        if (node != 0 && !forgets_.add(node)) {
            (void)ch_.forget(node, 1);
        }
    }

    // ---- request builders -----------------------------------------------------------

    static void build_lookup(Slot& s, uint64_t parent, const char* name) noexcept {
        FuseChannel::begin(s, FUSE_LOOKUP, parent, sizeof(fuse_entry_out));
        FuseChannel::append_name(s, name);
    }
    static void build_release(Slot& s, uint32_t opcode, uint64_t node, uint64_t fh,
                              uint32_t flags) noexcept {
        FuseChannel::begin(s, opcode, node, 0);
        fuse_release_in in{};
        in.fh = fh;
        in.flags = flags;
        FuseChannel::append(s, &in, sizeof(in));
    }
    static void build_read(Slot& s, uint32_t opcode, uint64_t node, uint64_t fh,
                           uint64_t offset, uint32_t len) noexcept {
        FuseChannel::begin(s, opcode, node, 0);
        FuseChannel::reply_to_data(s, len);
        fuse_read_in in{};
        in.fh = fh;
        in.offset = offset;
        in.size = len;
        in.flags = opcode == FUSE_READ ? O_RDONLY : O_RDONLY | O_DIRECTORY;
        FuseChannel::append(s, &in, sizeof(in));
    }
    static void build_write(Slot& s, uint64_t node, uint64_t fh, uint64_t offset,
                            uint32_t len) noexcept {
        FuseChannel::begin(s, FUSE_WRITE, node, sizeof(fuse_write_out));
        fuse_write_in in{};
        in.fh = fh;
        in.offset = offset;
        in.size = len;
        in.flags = O_RDWR;
        FuseChannel::append(s, &in, sizeof(in));
        s.write_len = len;
    }
    static void build_open(Slot& s, uint32_t opcode, uint64_t node, uint32_t flags) noexcept {
        FuseChannel::begin(s, opcode, node, sizeof(fuse_open_out));
        fuse_open_in in{};
        in.flags = flags;
        FuseChannel::append(s, &in, sizeof(in));
    }

    // ---- op state machines ------------------------------------------------------------

    OpKind pick_kind() noexcept {
        if (info_->workload != Workload::MetaMix) {
            return info_->op;
        }
        uint64_t r = rng_.below(100);
        uint32_t acc = 0;
        for (const MixEntry& m : kMetaMix) {
            acc += m.percent;
            if (r < acc) {
                return m.op;
            }
        }
        return OpKind::Getattr;
    }

    uint64_t next_offset(Op& op, bool write) noexcept {
        uint32_t io = info_->io_bytes;
        uint64_t blocks = write ? write_blocks_ : read_blocks_;
        if (write && c_.verify) {
            // Each slot writes only its own region so a read-back sees its own data.
            uint64_t total = static_cast<uint64_t>(c_.queue_depth) * ch_.request_queues();
            uint64_t region = std::max<uint64_t>(blocks / total, 1);
            uint64_t base = (op.global * region) % std::max<uint64_t>(blocks, 1);
            uint64_t b;
            if (info_->sequential) {
                b = base + op.cursor_block++ % region;
            } else {
                b = base + rng_.below(region);
            }
            return b * io;
        }
        if (info_->sequential) {
            uint64_t b = cursor_;
            cursor_ = (cursor_ + 1) % std::max<uint64_t>(blocks, 1);
            return b * io;
        }
        return rng_.below(blocks) * io;
    }

    void start_op(Slot& s, Op& op, int64_t now) noexcept {
        uint32_t global = op.global;
        uint64_t cursor_block = op.cursor_block;
        op = Op{};
        op.global = global;
        op.cursor_block = cursor_block;
        op.t0 = now;
        op.kind = pick_kind();
        issued_++;
        char name[32];
        switch (op.kind) {
        case OpKind::Getattr: {
            FuseChannel::begin(s, FUSE_GETATTR, t_.read_node, sizeof(fuse_attr_out));
            fuse_getattr_in in{};
            FuseChannel::append(s, &in, sizeof(in));
            break;
        }
        case OpKind::LookupHit:
            op.name_idx = static_cast<uint32_t>(rng_.below(kListEntries));
            entry_name(op.name_idx, name);
            build_lookup(s, t_.list_dir, name);
            break;
        case OpKind::LookupMiss:
            std::snprintf(name, sizeof(name), "missing%05u",
                          static_cast<unsigned>(rng_.below(100000)));
            build_lookup(s, t_.list_dir, name);
            break;
        case OpKind::OpenRelease:
            build_open(s, FUSE_OPEN, t_.read_node, O_RDONLY);
            break;
        case OpKind::Read:
            op.offset = next_offset(op, false);
            op.len = info_->io_bytes;
            build_read(s, FUSE_READ, t_.read_node, t_.read_fh, op.offset, op.len);
            break;
        case OpKind::Write:
            op.offset = next_offset(op, true);
            op.len = info_->io_bytes;
            if (c_.verify) {
                op.stamp = (static_cast<uint64_t>(id_) << 40) ^ (issued_ << 8) ^ 0xA5;
                fill_pattern(s.data, op.offset, op.len, op.stamp);
            }
            build_write(s, t_.write_node, t_.write_fh, op.offset, op.len);
            break;
        case OpKind::CreateUnlink: {
            FuseChannel::begin(s, FUSE_CREATE, t_.create_dir,
                               sizeof(fuse_entry_out) + sizeof(fuse_open_out));
            fuse_create_in in{};
            in.flags = O_RDWR | O_CREAT | O_EXCL;
            in.mode = S_IFREG | 0644;
            in.umask = 022;
            FuseChannel::append(s, &in, sizeof(in));
            FuseChannel::append_name(s, names_[static_cast<size_t>(&op - ops_.data())]);
            break;
        }
        case OpKind::ReaddirList:
            build_open(s, FUSE_OPENDIR, t_.list_dir, O_RDONLY | O_DIRECTORY);
            if (c_.verify) {
                auto& bits = seen_[static_cast<size_t>(&op - ops_.data())];
                std::fill(bits.begin(), bits.end(), 0);
            }
            break;
        }
    }

    /// Handles the reply in \p s for \p op's current step. Returns true when it built the
    /// op's next request in \p s (to be submitted), false when the op is finished.
    bool step(Slot& s, Op& op) noexcept {
        switch (op.kind) {
        case OpKind::Getattr: {
            if (!reply_ok(s, sizeof(fuse_attr_out), "GETATTR")) {
                op.failed = true;
                return false;
            }
            if (c_.verify) {
                fuse_attr_out a;
                std::memcpy(&a, s.payload().data(), sizeof(a));
                if (!S_ISREG(a.attr.mode) || a.attr.ino != t_.read_ino ||
                    a.attr.size != t_.read_size) {
                    verify_fail("GETATTR: attributes differ from LOOKUP's");
                }
            }
            return false;
        }
        case OpKind::LookupHit: {
            if (!reply_ok(s, sizeof(fuse_entry_out), "LOOKUP")) {
                op.failed = true;
                return false;
            }
            fuse_entry_out e;
            std::memcpy(&e, s.payload().data(), sizeof(e));
            if (e.nodeid == 0) {
                err_proto++;
                log_error("LOOKUP of an existing name returned node id 0");
                return false;
            }
            owe_forget(e.nodeid);
            if (c_.verify) {
                if (!S_ISREG(e.attr.mode)) {
                    verify_fail("LOOKUP: entry is not a regular file");
                }
                uint64_t& known = name_nodes_[op.name_idx];
                if (known == 0) {
                    known = e.nodeid;
                } else if (known != e.nodeid) {
                    verify_fail("LOOKUP: the same name gave a different node id");
                }
            }
            return false;
        }
        case OpKind::LookupMiss:
            check_miss(s, "LOOKUP (missing)");
            return false;
        case OpKind::OpenRelease:
            if (op.step == 0) {
                if (!reply_ok(s, sizeof(fuse_open_out), "OPEN")) {
                    op.failed = true;
                    return false;
                }
                fuse_open_out o;
                std::memcpy(&o, s.payload().data(), sizeof(o));
                op.fh = o.fh;
                op.step = 1;
                build_release(s, FUSE_RELEASE, t_.read_node, op.fh, O_RDONLY);
                return true;
            }
            if (!reply_ok(s, 0, "RELEASE")) {
                op.failed = true;
            }
            return false;
        case OpKind::Read: {
            // Offsets stay below the file size; only a shrunken file gives a short read.
            uint64_t real = t_.read_size > op.offset ? t_.read_size - op.offset : 0;
            uint32_t expect = static_cast<uint32_t>(std::min<uint64_t>(op.len, real));
            if (!reply_ok(s, expect, "READ")) {
                op.failed = true;
                return false;
            }
            op.bytes += expect;
            if (c_.verify && check_pattern(s.data, op.offset, expect, 0) != expect) {
                verify_fail("READ: data differs from the file's pattern");
            }
            return false;
        }
        case OpKind::Write:
            if (op.step == 0) {
                if (!reply_ok(s, sizeof(fuse_write_out), "WRITE")) {
                    op.failed = true;
                    return false;
                }
                fuse_write_out w;
                std::memcpy(&w, s.payload().data(), sizeof(w));
                if (w.size != op.len) {
                    err_proto++;
                    log_error("WRITE: short write");
                    op.failed = true;
                    return false;
                }
                op.bytes += op.len;
                if (!c_.verify) {
                    return false;
                }
                op.step = 1;
                std::memset(s.data, 0, op.len);
                build_read(s, FUSE_READ, t_.write_node, t_.write_fh, op.offset, op.len);
                return true;
            }
            if (!reply_ok(s, op.len, "READ (write check)")) {
                op.failed = true;
                return false;
            }
            if (check_pattern(s.data, op.offset, op.len, op.stamp) != op.len) {
                verify_fail("WRITE: data read back differs from the data written");
            }
            return false;
        case OpKind::CreateUnlink:
            return step_create(s, op);
        case OpKind::ReaddirList:
            return step_readdir(s, op);
        }
        return false;
    }

    void check_miss(const Slot& s, const char* what) noexcept {
        if (!header_ok(s)) {
            return;
        }
        int32_t e = s.out_header().error;
        if (e == -ENOENT) {
            return;
        }
        if (e == 0 && s.payload().size() == sizeof(fuse_entry_out)) {
            fuse_entry_out ent;
            std::memcpy(&ent, s.payload().data(), sizeof(ent));
            if (ent.nodeid == 0) {
                return; // a negative entry
            }
            owe_forget(ent.nodeid);
        }
        err_errno++;
        char buf[128];
        std::snprintf(buf, sizeof(buf), "%s: expected ENOENT, got %s", what,
                      e == 0 ? "success" : std::strerror(-e));
        log_error(buf);
    }

    bool step_create(Slot& s, Op& op) noexcept {
        const char* name = names_[static_cast<size_t>(&op - ops_.data())].c_str();
        switch (op.step) {
        case 0:
            if (reply_ok(s, sizeof(fuse_entry_out) + sizeof(fuse_open_out), "CREATE")) {
                fuse_entry_out e;
                fuse_open_out o;
                std::memcpy(&e, s.payload().data(), sizeof(e));
                std::memcpy(&o, s.payload().data() + sizeof(e), sizeof(o));
                op.nodeid = e.nodeid;
                op.fh = o.fh;
                if (c_.verify && (!S_ISREG(e.attr.mode) || e.attr.size != 0)) {
                    verify_fail("CREATE: new entry is not an empty regular file");
                }
                op.step = 1;
                build_release(s, FUSE_RELEASE, op.nodeid, op.fh, O_RDWR);
                return true;
            }
            // Remove a leftover (EEXIST) so the next op can create it again.
            op.failed = true;
            op.step = 2;
            FuseChannel::begin(s, FUSE_UNLINK, t_.create_dir, 0);
            FuseChannel::append_name(s, name);
            return true;
        case 1:
            if (!reply_ok(s, 0, "RELEASE")) {
                op.failed = true;
            }
            op.step = 2;
            FuseChannel::begin(s, FUSE_UNLINK, t_.create_dir, 0);
            FuseChannel::append_name(s, name);
            return true;
        case 2:
            if (!op.failed && !reply_ok(s, 0, "UNLINK")) {
                op.failed = true;
            }
            if (c_.verify && !op.failed) {
                op.step = 3;
                build_lookup(s, t_.create_dir, name);
                return true;
            }
            break;
        default:
            check_miss(s, "LOOKUP after UNLINK");
            break;
        }
        if (op.nodeid != 0) {
            (void)ch_.forget(op.nodeid, 1);
        }
        return false;
    }

    bool step_readdir(Slot& s, Op& op) noexcept {
        size_t k = static_cast<size_t>(&op - ops_.data());
        switch (op.step) {
        case 0: {
            if (!reply_ok(s, sizeof(fuse_open_out), "OPENDIR")) {
                op.failed = true;
                return false;
            }
            fuse_open_out o;
            std::memcpy(&o, s.payload().data(), sizeof(o));
            op.fh = o.fh;
            op.step = 1;
            build_read(s, FUSE_READDIRPLUS, t_.list_dir, op.fh, 0, c_.readdir_bytes);
            return true;
        }
        case 1: {
            if (!reply_ok(s, UINT32_MAX, "READDIRPLUS")) {
                op.failed = true;
                op.step = 2;
                build_release(s, FUSE_RELEASEDIR, t_.list_dir, op.fh, O_RDONLY | O_DIRECTORY);
                return true;
            }
            auto p = s.payload();
            op.bytes += p.size();
            size_t pos = 0;
            bool bad = false;
            while (pos < p.size()) {
                if (p.size() - pos < FUSE_NAME_OFFSET_DIRENTPLUS) {
                    bad = true;
                    break;
                }
                fuse_direntplus d;
                std::memcpy(&d, p.data() + pos, sizeof(d));
                size_t rec = FUSE_DIRENTPLUS_SIZE(&d);
                if (d.dirent.namelen == 0 || d.dirent.namelen > 1024 ||
                    rec > p.size() - pos) {
                    bad = true;
                    break;
                }
                std::string_view name(
                    reinterpret_cast<const char*>(p.data() + pos + FUSE_NAME_OFFSET_DIRENTPLUS),
                    d.dirent.namelen);
                op.dir_off = d.dirent.off;
                pos += rec;
                if (is_dot(name)) {
                    continue;
                }
                op.entries++;
                owe_forget(d.entry_out.nodeid);
                if (c_.verify) {
                    int32_t idx = parse_entry_name(name);
                    if (idx < 0 || idx >= static_cast<int32_t>(kListEntries)) {
                        verify_fail("READDIRPLUS: unexpected name in the listing");
                    } else {
                        uint64_t& w = seen_[k][static_cast<size_t>(idx) / 64];
                        uint64_t bit = uint64_t{1} << (idx % 64);
                        if ((w & bit) != 0) {
                            verify_fail("READDIRPLUS: a name was listed twice");
                        }
                        w |= bit;
                    }
                    if (d.entry_out.nodeid == 0 || !S_ISREG(d.entry_out.attr.mode)) {
                        verify_fail("READDIRPLUS: entry without node id or not a regular file");
                    }
                }
            }
            if (bad) {
                err_proto++;
                log_error("READDIRPLUS: malformed record");
                op.failed = true;
            }
            bool end = p.empty() || bad || op.entries > 2 * kListEntries + 16;
            if (!end) {
                build_read(s, FUSE_READDIRPLUS, t_.list_dir, op.fh, op.dir_off,
                           c_.readdir_bytes);
                return true;
            }
            if (c_.verify && !op.failed && op.entries != kListEntries) {
                verify_fail("READDIRPLUS: listing does not hold the 10000 entries");
            }
            op.step = 2;
            build_release(s, FUSE_RELEASEDIR, t_.list_dir, op.fh, O_RDONLY | O_DIRECTORY);
            return true;
        }
        default:
            if (!reply_ok(s, 0, "RELEASEDIR")) {
                op.failed = true;
            }
            return false;
        }
    }

    void on_complete(Slot& s, Op& op, int64_t now) noexcept {
        op.requests++;
        if (step(s, op)) {
            ch_.submit(s);
            return;
        }
        if (timing_.by_ops || (now >= timing_.window_start && now < timing_.window_end)) {
            hist.record(static_cast<uint64_t>(now - op.t0));
            ops++;
            requests += op.requests;
            bytes += op.bytes;
            entries += op.entries;
        }
        if (may_start(now)) {
            start_op(s, op, now);
            ch_.submit(s);
        } else {
            active_--;
        }
    }

    FuseChannel& ch_;
    const Targets& t_;
    const RunConfig& c_;
    const Timing& timing_;
    const WorkloadInfo* info_ = nullptr;
    int id_;
    std::vector<uint16_t> queues_;
    uint64_t ops_target_;
    uint64_t issued_ = 0;
    uint32_t active_ = 0;
    uint64_t idle_loops_ = 0;
    int logged_ = 0;
    bool timed_out_ = false;
    Rng rng_{1};
    std::vector<Op> ops_;
    std::vector<std::string> names_;
    std::vector<uint64_t> name_nodes_;
    std::vector<std::vector<uint64_t>> seen_;
    ForgetTable forgets_;
    uint64_t read_blocks_ = 0, write_blocks_ = 0;
    uint64_t cursor_ = 0;
};

} // namespace

// ---- SetupCalls ---------------------------------------------------------------------------

Status SetupCalls::run(uint32_t expect_payload) {
    Slot& s = ch_.setup_slot();
    VDH_TRY(ch_.call(s));
    const fuse_out_header& h = s.out_header();
    if (s.used_len < sizeof(fuse_out_header) || h.unique != s.unique) {
        return make_err(EPROTO);
    }
    if (h.error != 0) {
        return make_err(-h.error);
    }
    if (expect_payload != UINT32_MAX && s.payload().size() != expect_payload) {
        return make_err(EPROTO);
    }
    return ok();
}

Result<fuse_entry_out> SetupCalls::lookup(uint64_t parent, const char* name) {
    Slot& s = ch_.setup_slot();
    FuseChannel::begin(s, FUSE_LOOKUP, parent, sizeof(fuse_entry_out));
    FuseChannel::append_name(s, name);
    VDH_TRY(run(sizeof(fuse_entry_out)));
    fuse_entry_out e;
    std::memcpy(&e, s.payload().data(), sizeof(e));
    if (e.nodeid == 0) {
        return make_err(ENOENT); // negative entry
    }
    return e;
}

Result<fuse_entry_out> SetupCalls::mkdir(uint64_t parent, const char* name, uint32_t mode) {
    Slot& s = ch_.setup_slot();
    FuseChannel::begin(s, FUSE_MKDIR, parent, sizeof(fuse_entry_out));
    fuse_mkdir_in in{};
    in.mode = S_IFDIR | mode;
    in.umask = 0;
    FuseChannel::append(s, &in, sizeof(in));
    FuseChannel::append_name(s, name);
    VDH_TRY(run(sizeof(fuse_entry_out)));
    fuse_entry_out e;
    std::memcpy(&e, s.payload().data(), sizeof(e));
    return e;
}

Result<fuse_entry_out> SetupCalls::create(uint64_t parent, const char* name, uint32_t flags,
                                          uint64_t* fh) {
    Slot& s = ch_.setup_slot();
    FuseChannel::begin(s, FUSE_CREATE, parent, sizeof(fuse_entry_out) + sizeof(fuse_open_out));
    fuse_create_in in{};
    in.flags = flags | O_CREAT | O_EXCL;
    in.mode = S_IFREG | 0644;
    FuseChannel::append(s, &in, sizeof(in));
    FuseChannel::append_name(s, name);
    VDH_TRY(run(sizeof(fuse_entry_out) + sizeof(fuse_open_out)));
    fuse_entry_out e;
    fuse_open_out o;
    std::memcpy(&e, s.payload().data(), sizeof(e));
    std::memcpy(&o, s.payload().data() + sizeof(e), sizeof(o));
    *fh = o.fh;
    return e;
}

Result<uint64_t> SetupCalls::open(uint64_t node, uint32_t flags) {
    Slot& s = ch_.setup_slot();
    bool dir = (flags & O_DIRECTORY) != 0;
    FuseChannel::begin(s, dir ? FUSE_OPENDIR : FUSE_OPEN, node, sizeof(fuse_open_out));
    fuse_open_in in{};
    in.flags = flags;
    FuseChannel::append(s, &in, sizeof(in));
    VDH_TRY(run(sizeof(fuse_open_out)));
    fuse_open_out o;
    std::memcpy(&o, s.payload().data(), sizeof(o));
    return o.fh;
}

Status SetupCalls::release(uint64_t node, uint64_t fh, bool dir) {
    Slot& s = ch_.setup_slot();
    FuseChannel::begin(s, dir ? FUSE_RELEASEDIR : FUSE_RELEASE, node, 0);
    fuse_release_in in{};
    in.fh = fh;
    FuseChannel::append(s, &in, sizeof(in));
    return run(0);
}

Status SetupCalls::write(uint64_t node, uint64_t fh, uint64_t offset, const uint8_t* src,
                         uint32_t len) {
    Slot& s = ch_.setup_slot();
    if (len > s.data_cap) {
        return make_err(EINVAL);
    }
    FuseChannel::begin(s, FUSE_WRITE, node, sizeof(fuse_write_out));
    fuse_write_in in{};
    in.fh = fh;
    in.offset = offset;
    in.size = len;
    in.flags = O_RDWR;
    FuseChannel::append(s, &in, sizeof(in));
    std::memcpy(s.data, src, len);
    s.write_len = len;
    VDH_TRY(run(sizeof(fuse_write_out)));
    fuse_write_out w;
    std::memcpy(&w, s.payload().data(), sizeof(w));
    return w.size == len ? ok() : Status(make_err(EIO));
}

Status SetupCalls::truncate(uint64_t node, uint64_t fh, uint64_t size) {
    Slot& s = ch_.setup_slot();
    FuseChannel::begin(s, FUSE_SETATTR, node, sizeof(fuse_attr_out));
    fuse_setattr_in in{};
    in.valid = FATTR_SIZE | FATTR_FH;
    in.size = size;
    in.fh = fh;
    FuseChannel::append(s, &in, sizeof(in));
    return run(sizeof(fuse_attr_out));
}

// ---- run_fuse -----------------------------------------------------------------------------

Result<RunResult> run_fuse(FuseChannel& ch, const Targets& targets, const RunConfig& config) {
    uint32_t nthreads = std::clamp<uint32_t>(config.threads, 1, ch.request_queues());
    std::vector<std::vector<uint16_t>> owned(nthreads);
    for (uint16_t q = 1; q <= ch.request_queues(); q++) {
        owned[(q - 1) % nthreads].push_back(q);
    }
    Timing timing;
    timing.by_ops = config.ops > 0;
    std::vector<std::unique_ptr<Worker>> workers;
    for (uint32_t i = 0; i < nthreads; i++) {
        uint64_t share = config.ops / nthreads + (i < config.ops % nthreads ? 1 : 0);
        workers.push_back(std::make_unique<Worker>(ch, targets, config, timing,
                                                   static_cast<int>(i), owned[i], share));
    }
    std::vector<std::thread> threads;
    for (auto& w : workers) {
        threads.emplace_back([&w] { w->run(); });
    }

    RunResult r;
    uint64_t unexpected0 = ch.unexpected_completions();
    run_window(config, timing, threads, r);

    bool timed_out = false;
    for (auto& w : workers) {
        r.hist.merge(w->hist);
        r.ops += w->ops;
        r.requests += w->requests;
        r.bytes += w->bytes;
        r.entries += w->entries;
        r.err_errno += w->err_errno;
        r.err_proto += w->err_proto;
        r.err_verify += w->err_verify;
        timed_out = timed_out || w->timed_out();
    }
    r.timed_out = timed_out;
    // Used ids that matched no request in flight: a device bug.
    r.err_proto += ch.unexpected_completions() - unexpected0;
    if (!timed_out) {
        // Give back every lookup count the run took, as the guest kernel eventually does.
        for (auto& w : workers) {
            w->forgets().for_each([&](uint64_t node, uint64_t n) {
                if (ch.forget(node, n).has_value()) {
                    return;
                }
                r.err_proto++;
            });
        }
        if (!ch.drain_forgets()) {
            r.err_proto++;
        }
    }
    return r;
}

} // namespace vdh::bench

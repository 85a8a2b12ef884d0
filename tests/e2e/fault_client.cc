// SPDX-License-Identifier: MIT
// vdh-fault-client: the frontend side of the fault battery (tests/e2e/fault_*.sh), built on
// tools/fuse_client. Modes:
//   steady     the neighbour: one session kept open, GETATTR / 4 KiB WRITE / FSYNC at
//              queue depth 1 until --stop-file appears; reports ops, errors and the longest
//              gap between two completions (a stall of the poll lcore shows there).
//   hostile    a hostile guest: char device and FIFO opens, the fd budget run dry,
//              oversize WRITE/READ, huge COPY_FILE_RANGE, repeated INIT, looped for
//              --duration seconds; one "PATTERN name errno=E ms=T ..." line per result.
//   disconnect WRITEs in flight on io_uring and a flock SETLKW parked on the blocking pool
//              (on --lock-file, which the host holds locked), then _exit(): the frontend
//              vanishes with both kinds of requests in flight (--hold 1: it stays, with
//              them in flight, until killed).
//   check      connect, INIT, GETATTR the root, WRITE+FSYNC+READ a file: the device works.
// Output: key=value lines on stdout (and --report FILE for steady). Exit 0 unless the
// mode could not run at all (connect failure: 3).
#include <fcntl.h>
#include <linux/fuse.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fuse_client/fuse_session.h"

namespace {

using vdh::fuse_client::Completion;
using vdh::fuse_client::FuseRequest;
using vdh::fuse_client::FuseSession;
using vdh::fuse_client::kRootNodeId;
using vdh::fuse_client::SessionOptions;
using Clock = std::chrono::steady_clock;

struct Cli {
    std::string mode;
    std::string socket;
    std::string stop_file;
    std::string report;
    std::string lock_file = "locked.dat";
    double duration_s = 10;
    uint32_t max_files = 4096;
    uint32_t writes = 32;
    uint32_t timeout_ms = 3000;
    bool hold = false; ///< disconnect: stay connected (until killed) instead of exiting
};

double ms_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::unique_ptr<FuseSession> connect_session(const Cli& cli, uint16_t queue_size = 128,
                                             uint32_t segment_size = 4096) {
    SessionOptions o;
    o.segment_size = segment_size;
    o.socket_path = cli.socket;
    o.queue_size = queue_size;
    o.memory_bytes = 128ULL << 20;
    o.call_timeout = std::chrono::milliseconds(cli.timeout_ms);
    o.connect_timeout = std::chrono::milliseconds(10000);
    auto s = FuseSession::connect(o);
    if (!s) {
        std::printf("connect_errno=%d\n", s.error());
        std::fflush(stdout);
        return nullptr;
    }
    return std::move(*s);
}

/// Opens (creating it when missing) \p name in the root; returns node id and fh.
bool open_file(FuseSession& s, std::string_view name, uint32_t flags, uint64_t* node,
               uint64_t* fh) {
    auto c = s.create(kRootNodeId, name, flags | O_CREAT, 0644);
    if (!c) {
        return false;
    }
    *node = c->entry.nodeid;
    *fh = c->open.fh;
    return true;
}

// ---- steady ----------------------------------------------------------------------------

int run_steady(const Cli& cli) {
    auto s = connect_session(cli);
    if (!s) {
        return 3;
    }
    uint64_t node = 0, fh = 0;
    if (!open_file(*s, "steady.dat", O_RDWR, &node, &fh)) {
        std::printf("setup_failed=1\n");
        return 3;
    }
    std::vector<uint8_t> block(4096);
    uint64_t ops = 0, errors = 0;
    double max_gap_ms = 0;
    int first_errno = 0;
    bool stalled = false;
    auto last = Clock::now();
    auto last_stop_check = last;
    std::string gaps; // "gap UNIX_TIME MS" for every gap over 500 ms
    for (;;) {
        int e = 0;
        const uint64_t i = ops;
        if (i % 4 == 1) {
            std::fill(block.begin(), block.end(), static_cast<uint8_t>(i));
            auto w = s->write(node, fh, (i / 4 % 256) * 4096, block);
            e = w ? (*w == block.size() ? 0 : EIO) : w.error();
        } else if (i % 64 == 3) {
            auto f = s->fsync(node, fh);
            e = f ? 0 : f.error();
        } else {
            auto g = s->getattr(kRootNodeId);
            e = g ? 0 : g.error();
        }
        const auto now = Clock::now();
        const double gap = std::chrono::duration<double, std::milli>(now - last).count();
        max_gap_ms = std::max(max_gap_ms, gap);
        if (gap > 500 && gaps.size() < 4096) {
            timespec ts{};
            clock_gettime(CLOCK_REALTIME, &ts);
            char g[96];
            std::snprintf(g, sizeof g, "gap %lld.%03ld %.1f\n", static_cast<long long>(ts.tv_sec),
                          ts.tv_nsec / 1000000, gap);
            gaps += g;
        }
        last = now;
        ops++;
        if (e != 0) {
            errors++;
            if (first_errno == 0) {
                first_errno = e;
            }
            if (e == ETIMEDOUT || e == EBUSY) {
                stalled = true; // the request stays in flight: this session is done
                break;
            }
        }
        if (now - last_stop_check > std::chrono::milliseconds(20)) {
            last_stop_check = now;
            if (access(cli.stop_file.c_str(), F_OK) == 0) {
                break;
            }
        }
    }
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "ops=%llu\nerrors=%llu\nfirst_errno=%d\nstalled=%d\nmax_gap_ms=%.1f\n",
                  static_cast<unsigned long long>(ops), static_cast<unsigned long long>(errors),
                  first_errno, stalled ? 1 : 0, max_gap_ms);
    std::fputs(buf, stdout);
    std::fputs(gaps.c_str(), stdout);
    if (!cli.report.empty()) {
        FILE* f = std::fopen(cli.report.c_str(), "w");
        if (f != nullptr) {
            std::fputs(buf, f);
            std::fputs(gaps.c_str(), f);
            std::fclose(f);
        }
    }
    if (!stalled) {
        (void)s->release(node, fh);
    }
    return 0;
}

// ---- hostile ---------------------------------------------------------------------------

/// A large request slot for calls beyond what the blocking helpers allow.
struct BigCall {
    FuseSession& s;
    FuseRequest* r = nullptr;
    uint32_t timeout_ms;

    /// Sends r (built by the caller) on queue 1 and waits; the reply's errno, ETIMEDOUT.
    int run() {
        if (!s.submit(1, *r, 7)) {
            return EAGAIN;
        }
        auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
        Completion done[4];
        while (r->in_flight()) {
            auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
            if (left.count() <= 0) {
                return ETIMEDOUT;
            }
            (void)s.wait(1, done, left);
        }
        return r->reply_errno();
    }
};

void report(std::string_view name, int err, double ms, const std::string& extra = {}) {
    std::printf("PATTERN %.*s errno=%d ms=%.1f%s%s\n", static_cast<int>(name.size()), name.data(),
                err, ms, extra.empty() ? "" : " ", extra.c_str());
    std::fflush(stdout);
}

int mknod(FuseSession& s, std::string_view name, uint32_t mode, uint32_t rdev) {
    std::vector<uint8_t> args(sizeof(fuse_mknod_in) + name.size() + 1, 0);
    fuse_mknod_in in{};
    in.mode = mode;
    in.rdev = rdev;
    std::memcpy(args.data(), &in, sizeof in);
    std::memcpy(args.data() + sizeof in, name.data(), name.size());
    auto r =
        s.call(FUSE_MKNOD, kRootNodeId, args, sizeof(fuse_out_header) + sizeof(fuse_entry_out));
    return r ? -r->header.error : r.error();
}

/// Whether a session call failed because the device stopped answering.
bool dead(int e) {
    return e == ETIMEDOUT || e == EBUSY;
}

int run_hostile(const Cli& cli) {
    // One descriptor per part: the oversize requests are small chains, so what refuses
    // them is the FUSE size check, not the chain walker.
    auto s = connect_session(cli, 256, 0);
    if (!s) {
        return 3;
    }
    const uint32_t max_write = s->init_reply().max_write;
    const uint32_t big = std::max<uint32_t>(max_write, 1u << 20) * 2;
    auto slot = s->alloc_request(big + 4096, big + 4096);
    if (!slot) {
        std::printf("alloc_errno=%d\n", slot.error());
        return 3;
    }
    BigCall bc{*s, *slot, cli.timeout_ms};
    std::printf("max_write=%u oversize=%u\n", max_write, big);
    auto t0 = Clock::now();

    // A host character device (1:5, /dev/zero): MKNOD is allowed, opening it is not.
    // READ returning bytes from an empty file means the host device was opened.
    {
        auto t = Clock::now();
        int e = mknod(*s, "chrdev", S_IFCHR | 0600, makedev(1, 5));
        report("mknod_chr", e, ms_since(t));
        t = Clock::now();
        auto c = s->create(kRootNodeId, "chrdev", O_RDWR | O_CREAT, 0600);
        long got = -1;
        if (c) {
            std::vector<uint8_t> buf(4096);
            auto r = s->read(c->entry.nodeid, c->open.fh, 0, buf);
            got = r ? static_cast<long>(*r) : -static_cast<long>(r.error());
            (void)s->release(c->entry.nodeid, c->open.fh);
        }
        report("create_chr", c ? 0 : c.error(), ms_since(t), "read=" + std::to_string(got));
        if (!c && dead(c.error())) {
            return 0;
        }
    }

    // The fd budget run dry: CREATE and keep open until the share refuses.
    {
        auto t = Clock::now();
        uint32_t n = 0;
        int e = 0;
        std::vector<std::pair<uint64_t, uint64_t>> held; // node id, fh
        for (; n < cli.max_files; n++) {
            auto c = s->create(kRootNodeId, "fd" + std::to_string(n), O_RDWR | O_CREAT, 0600);
            if (!c) {
                e = c.error();
                break;
            }
            held.emplace_back(c->entry.nodeid, c->open.fh);
        }
        report("fd_exhaust", e, ms_since(t), "opened=" + std::to_string(n));
        if (dead(e)) {
            return 0;
        }
        // Give the budget back (RELEASE and FORGET), so the looped patterns can open files.
        for (auto [node, fh] : held) {
            (void)s->release(node, fh);
            (void)s->forget(node, 1);
        }
        t = Clock::now();
        auto c = s->create(kRootNodeId, "fd-after", O_RDWR | O_CREAT, 0600);
        if (c) {
            (void)s->release(c->entry.nodeid, c->open.fh);
        }
        report("fd_budget_returned", c ? 0 : c.error(), ms_since(t));
    }

    // Looped: oversize WRITE and READ, a huge COPY_FILE_RANGE, a repeated INIT (which may
    // end the session's state, so everything is looked up again each round); the FIFO
    // open once, half-way through.
    bool fifo_done = false;
    uint32_t round = 0;
    while (ms_since(t0) < cli.duration_s * 1000) {
        round++;
        uint64_t src = 0, sfh = 0, dst = 0, dfh = 0;
        auto t = Clock::now();
        auto ls = s->lookup(kRootNodeId, "big.dat");
        if (!ls) {
            report("lookup_big", ls.error(), ms_since(t));
            if (dead(ls.error())) {
                return 0;
            }
            break;
        }
        src = ls->nodeid;
        auto o = s->open(src, O_RDONLY);
        if (!o) {
            report("open_big", o.error(), ms_since(t));
            break;
        }
        sfh = o->fh;
        if (!open_file(*s, "copy.dat", O_RDWR, &dst, &dfh)) {
            report("create_copy", -1, ms_since(t));
            break;
        }

        // WRITE twice the negotiated max_write.
        t = Clock::now();
        bc.r->begin(FUSE_WRITE, dst);
        fuse_write_in wi{};
        wi.fh = dfh;
        wi.size = big;
        bc.r->append(wi);
        uint8_t* d = bc.r->append_data(big);
        if (d != nullptr) {
            std::memset(d, 'x', big);
        }
        bc.r->set_out_len(sizeof(fuse_out_header) + sizeof(fuse_write_out));
        int e = bc.run();
        fuse_write_out wo{};
        bc.r->payload_as(&wo);
        if (round == 1 || e == ETIMEDOUT) {
            report("oversize_write", e, ms_since(t), "written=" + std::to_string(e ? 0 : wo.size));
        }
        if (dead(e)) {
            return 0;
        }

        // READ twice max_write from a large file, with a buffer that large.
        t = Clock::now();
        bc.r->begin(FUSE_READ, src);
        fuse_read_in ri{};
        ri.fh = sfh;
        ri.size = big;
        bc.r->append(ri);
        bc.r->set_out_len(sizeof(fuse_out_header) + big);
        e = bc.run();
        if (round == 1 || e == ETIMEDOUT) {
            report("oversize_read", e, ms_since(t),
                   "read=" + std::to_string(e ? 0 : bc.r->out_payload().size()));
        }
        if (dead(e)) {
            return 0;
        }

        // COPY_FILE_RANGE of 4 GiB (the source is much smaller: it stops at EOF).
        t = Clock::now();
        fuse_copy_file_range_in ci{};
        ci.fh_in = sfh;
        ci.nodeid_out = dst;
        ci.fh_out = dfh;
        ci.len = 4ULL << 30;
        auto cr =
            s->call(FUSE_COPY_FILE_RANGE, src, {reinterpret_cast<const uint8_t*>(&ci), sizeof ci},
                    sizeof(fuse_out_header) + sizeof(fuse_write_out));
        e = cr ? -cr->header.error : cr.error();
        if (round == 1 || dead(e)) {
            uint32_t copied = 0;
            if (cr && cr->payload.size() >= sizeof(fuse_write_out)) {
                std::memcpy(&copied, cr->payload.data(), sizeof copied);
            }
            report("huge_copy_file_range", e, ms_since(t), "copied=" + std::to_string(copied));
        }
        if (dead(e)) {
            return 0;
        }
        (void)s->release(src, sfh);
        (void)s->release(dst, dfh);

        // A FIFO opened for reading with no writer: must not block anything.
        if (!fifo_done && ms_since(t0) > cli.duration_s * 500) {
            fifo_done = true;
            t = Clock::now();
            int me = mknod(*s, "fifo", S_IFIFO | 0600, 0);
            report("mknod_fifo", me, ms_since(t));
            t = Clock::now();
            auto c = s->create(kRootNodeId, "fifo", O_RDONLY | O_CREAT, 0600);
            if (c) {
                (void)s->release(c->entry.nodeid, c->open.fh);
            }
            report("create_fifo_rdonly", c ? 0 : c.error(), ms_since(t));
            if (!c && dead(c.error())) {
                return 0;
            }
        }

        // INIT again on the live session.
        t = Clock::now();
        auto in = s->init();
        e = in ? 0 : in.error();
        if (round == 1 || dead(e)) {
            report("repeated_init", e, ms_since(t));
        }
        if (dead(e)) {
            return 0;
        }
    }
    auto t = Clock::now();
    auto g = s->getattr(kRootNodeId);
    report("final_getattr", g ? 0 : g.error(), ms_since(t), "rounds=" + std::to_string(round));
    return 0;
}

// ---- disconnect ------------------------------------------------------------------------

int run_disconnect(const Cli& cli) {
    auto s = connect_session(cli, 256);
    if (!s) {
        return 3;
    }
    uint64_t lnode = 0, lfh = 0, wnode = 0, wfh = 0;
    auto ll = s->lookup(kRootNodeId, cli.lock_file);
    if (!ll) {
        std::printf("lookup_lock_errno=%d\n", ll.error());
        return 3;
    }
    lnode = ll->nodeid;
    auto lo = s->open(lnode, O_RDWR);
    if (!lo || !open_file(*s, "inflight.dat", O_RDWR, &wnode, &wfh)) {
        std::printf("open_errno=1\n");
        return 3;
    }
    lfh = lo->fh;

    // The flock SETLKW waits on the blocking pool: the host holds the lock.
    auto lk = s->alloc_request(4096, 4096);
    if (!lk) {
        return 3;
    }
    (*lk)->begin(FUSE_SETLKW, lnode);
    fuse_lk_in li{};
    li.fh = lfh;
    li.owner = 0x1234;
    li.lk.type = F_WRLCK;
    li.lk.end = UINT64_MAX;
    li.lk.pid = 1;
    li.lk_flags = FUSE_LK_FLOCK;
    (*lk)->append(li);
    if (!s->submit(1, **lk, 1)) {
        std::printf("submit_lock_failed=1\n");
        return 3;
    }
    // Give the lock request a head start so it is parked on the pool before the writes.
    usleep(200 * 1000);

    // WRITEs of 1 MiB each, all in flight at once (io_uring).
    const uint32_t len = 1u << 20;
    std::vector<FuseRequest*> w;
    for (uint32_t i = 0; i < cli.writes; i++) {
        auto r = s->alloc_request(len + 4096, 4096);
        if (!r) {
            break;
        }
        (*r)->begin(FUSE_WRITE, wnode);
        fuse_write_in wi{};
        wi.fh = wfh;
        wi.offset = static_cast<uint64_t>(i) * len;
        wi.size = len;
        (*r)->append(wi);
        uint8_t* d = (*r)->append_data(len);
        std::memset(d, static_cast<int>('a' + i % 26), len);
        (*r)->set_out_len(sizeof(fuse_out_header) + sizeof(fuse_write_out));
        w.push_back(*r);
    }
    for (size_t i = 0; i < w.size(); i++) {
        if (!s->submit(1, *w[i], 100 + i, false)) {
            break;
        }
    }
    (void)s->kick(1);
    // Leave once the first WRITE completes: the rest (and the lock) are still in flight.
    Completion done[64];
    size_t completed = 0;
    auto t = Clock::now();
    while (completed == 0 && ms_since(t) < cli.timeout_ms) {
        auto n = s->wait(1, done, std::chrono::milliseconds(100));
        if (n) {
            completed += *n;
        }
    }
    std::printf("writes=%zu completed_before_exit=%zu in_flight=%u lock_in_flight=%d\n", w.size(),
                completed, s->in_flight(1), (*lk)->in_flight() ? 1 : 0);
    std::fflush(stdout);
    while (cli.hold) {
        pause();
    }
    _exit(0); // no RELEASE, no FORGET, no orderly disconnect
}

// ---- check -----------------------------------------------------------------------------

int run_check(const Cli& cli) {
    auto s = connect_session(cli);
    if (!s) {
        return 3;
    }
    auto g = s->getattr(kRootNodeId);
    uint64_t node = 0, fh = 0;
    int e = g ? 0 : g.error();
    if (e == 0 && !open_file(*s, "check.dat", O_RDWR, &node, &fh)) {
        e = EIO;
    }
    if (e == 0) {
        std::vector<uint8_t> data(65536, 'c'), back(65536);
        auto w = s->write(node, fh, 0, data);
        auto f = s->fsync(node, fh);
        auto r = s->read(node, fh, 0, back);
        if (!w || !f || !r || *r != data.size() || back != data) {
            e = EIO;
        }
        (void)s->release(node, fh);
    }
    std::printf("check_errno=%d\n", e);
    return 0;
}

int usage() {
    std::fprintf(stderr, "usage: vdh-fault-client steady|hostile|disconnect|check --socket PATH\n"
                         "  [--stop-file F] [--report F] [--duration S] [--max-files N]\n"
                         "  [--lock-file NAME] [--writes N] [--hold 0|1] [--timeout-ms MS]\n");
    return 2;
}

} // namespace

int main(int argc, char** argv) {
    Cli cli;
    if (argc < 2) {
        return usage();
    }
    cli.mode = argv[1];
    for (int i = 2; i < argc; i++) {
        std::string_view a = argv[i];
        if (i + 1 >= argc) {
            return usage();
        }
        const char* v = argv[++i];
        if (a == "--socket") {
            cli.socket = v;
        } else if (a == "--stop-file") {
            cli.stop_file = v;
        } else if (a == "--report") {
            cli.report = v;
        } else if (a == "--lock-file") {
            cli.lock_file = v;
        } else if (a == "--duration") {
            cli.duration_s = std::atof(v);
        } else if (a == "--max-files") {
            cli.max_files = static_cast<uint32_t>(std::strtoul(v, nullptr, 10));
        } else if (a == "--writes") {
            cli.writes = static_cast<uint32_t>(std::strtoul(v, nullptr, 10));
        } else if (a == "--hold") {
            cli.hold = std::string_view(v) == "1";
        } else if (a == "--timeout-ms") {
            cli.timeout_ms = static_cast<uint32_t>(std::strtoul(v, nullptr, 10));
        } else {
            return usage();
        }
    }
    if (cli.socket.empty()) {
        return usage();
    }
    if (cli.mode == "steady") {
        return cli.stop_file.empty() ? usage() : run_steady(cli);
    }
    if (cli.mode == "hostile") {
        return run_hostile(cli);
    }
    if (cli.mode == "disconnect") {
        return run_disconnect(cli);
    }
    if (cli.mode == "check") {
        return run_check(cli);
    }
    return usage();
}

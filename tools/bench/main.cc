// SPDX-License-Identifier: MIT
// vdhost-bench: a vhost-user-fs and vhost-user-blk load generator. Connects to any
// vhost-user-fs socket (vdhost, the C or Rust virtiofsd) as QEMU and a Linux guest would,
// prepares its files in the share, and runs FUSE workloads at a fixed queue depth; or runs
// the same system calls directly on the host (--raw) as the baseline. With --blk it is a
// virtio-blk guest instead (vdhost's virtioblk, qemu-storage-daemon) running IN/OUT
// workloads. Given several sockets, it holds one connection to each and alternates short
// runs between them (--reps). Prints a table and appends CSV/JSON rows.
#include <sys/types.h>

#include <boost/program_options.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "bench/blk_channel.h"
#include "bench/blk_runner.h"
#include "bench/fuse_channel.h"
#include "bench/fuse_runner.h"
#include "bench/prepare.h"
#include "bench/raw_runner.h"
#include "bench/report.h"
#include "bench/workload.h"

namespace po = boost::program_options;
using namespace vdh::bench;

namespace {

struct Cli {
    std::string socket;
    std::string workloads; ///< empty: getattr (FUSE) or read-4k-rand (--blk)
    std::string depths = "1";
    uint32_t queues = 1;
    uint32_t threads = 1;
    uint32_t queue_size = 0; ///< 0: the mode's default (1024 FUSE, 128 blk)
    double duration = 5;
    uint64_t ops = 0;
    double warmup = -1;
    bool poll = false;
    bool verify = false;
    bool no_indirect = false;
    uint32_t segment_size = 4096;
    uint64_t file_size_mib = 64;
    uint32_t readdir_bytes = 4096;
    std::string share_dir;
    bool raw = false;
    bool with_raw = false;
    bool blk = false;
    bool prepare_only = false;
    bool no_prepare = false;
    std::string backend_pids;
    std::string labels;
    int rep = 0;
    int reps = 1;
    std::string json;
    std::string csv;
    std::string cpus;
    std::string init_flags;
    uint64_t seed = 1;
    uint32_t connect_timeout_ms = 10000;
};

std::vector<std::string> split(const std::string& s) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ',')) {
        if (!item.empty()) {
            out.push_back(item);
        }
    }
    return out;
}

bool parse_u32_list(const std::string& s, std::vector<uint32_t>& out) {
    for (const std::string& item : split(s)) {
        char* end = nullptr;
        unsigned long v = std::strtoul(item.c_str(), &end, 10);
        if (end == item.c_str() || *end != 0 || v == 0 || v > 32768) {
            return false;
        }
        out.push_back(static_cast<uint32_t>(v));
    }
    return !out.empty();
}

/// One backend of a run: a socket, its label and process, and (once connected) the
/// channel and the files found through it.
struct Endpoint {
    std::string socket;
    std::string label;
    pid_t pid = 0;
    std::unique_ptr<FuseChannel> chan;
    std::unique_ptr<BlkChannel> blk; ///< --blk
    Targets targets;
    bool raw = false; ///< the raw baseline on --share-dir (--with-raw): no socket
};

int fail(const std::string& msg) {
    std::fprintf(stderr, "vdhost-bench: %s\n", msg.c_str());
    return 2;
}

void emit(const Cli& cli, const RunResult& r) {
    print_table_row(r);
    if (!cli.csv.empty() && !append_csv(cli.csv, r)) {
        std::fprintf(stderr, "vdhost-bench: cannot append to %s\n", cli.csv.c_str());
    }
    if (!cli.json.empty() && !append_json(cli.json, r)) {
        std::fprintf(stderr, "vdhost-bench: cannot append to %s\n", cli.json.c_str());
    }
}

/// One endpoint per socket of --socket; labels (default \p label, numbered when there are
/// several sockets) and backend pids pair with the sockets in order. False with \p why.
bool parse_endpoints(const Cli& cli, const std::string& label, std::vector<Endpoint>& eps,
                     std::string* why) {
    std::vector<std::string> sockets = split(cli.socket);
    std::vector<std::string> labels = split(cli.labels);
    std::vector<std::string> pids = split(cli.backend_pids);
    if (labels.size() > 1 && labels.size() != sockets.size()) {
        *why = "--label: give one label, or one per socket";
        return false;
    }
    if (!pids.empty() && pids.size() != sockets.size()) {
        *why = "--backend-pid: give one pid per socket";
        return false;
    }
    eps.resize(sockets.size());
    for (size_t i = 0; i < sockets.size(); i++) {
        eps[i].socket = sockets[i];
        if (labels.empty()) {
            eps[i].label = sockets.size() == 1 ? label : label + std::to_string(i + 1);
        } else {
            eps[i].label = labels.size() == 1 && sockets.size() > 1
                               ? labels[0] + std::to_string(i + 1)
                               : labels[labels.size() == 1 ? 0 : i];
        }
        if (!pids.empty()) {
            char* end = nullptr;
            long v = std::strtol(pids[i].c_str(), &end, 10);
            if (end == pids[i].c_str() || *end != 0 || v < 0) {
                *why = "--backend-pid: '" + pids[i] + "' is not a pid";
                return false;
            }
            eps[i].pid = static_cast<pid_t>(v);
        }
    }
    return true;
}

/// --blk: connects to every socket as a virtio-blk guest, prepares the read area through
/// the first (unless --no-prepare) and alternates the runs between them as the FUSE mode
/// does.
int run_blk_mode(const Cli& cli, const std::vector<Workload>& workloads,
                 const std::vector<uint32_t>& depths, const RunConfig& base) {
    std::string why;
    if (cli.raw || cli.with_raw || !cli.share_dir.empty()) {
        return fail("--blk has no raw baseline and no share (--raw, --with-raw, --share-dir)");
    }
    for (Workload w : workloads) {
        if (!blk_workload(w)) {
            return fail("--blk runs the read and write workloads only, not '" +
                        std::string(workload_info(w).name) + "'");
        }
    }
    std::vector<Endpoint> eps;
    if (!parse_endpoints(cli, "blk", eps, &why)) {
        return fail(why);
    }
    BlkChannelOptions co;
    co.queues = static_cast<uint16_t>(cli.queues);
    co.queue_size = static_cast<uint16_t>(cli.queue_size == 0 ? 128 : cli.queue_size);
    co.indirect = !cli.no_indirect;
    co.segment_size = cli.segment_size;
    co.poll = cli.poll;
    co.slots_per_queue = *std::max_element(depths.begin(), depths.end());
    co.data_capacity = 128 * 1024;
    for (Workload w : workloads) {
        co.data_capacity = std::max(co.data_capacity, workload_info(w).io_bytes);
    }
    co.connect_timeout = std::chrono::milliseconds(cli.connect_timeout_ms);
    BlkArea area;
    area.area_bytes = base.file_bytes;
    for (Endpoint& ep : eps) {
        co.socket_path = ep.socket;
        auto ch = BlkChannel::connect(co, &why);
        if (!ch) {
            return fail(ep.label + ": " + why);
        }
        ep.blk = std::move(*ch);
        const BlkGeometry& g = ep.blk->geometry();
        std::fprintf(stderr,
                     "vdhost-bench: %s: virtio-blk, %llu bytes, block size %u, seg_max %u, "
                     "size_max %u, %u queue(s)%s%s, largest request %u, %s descriptors, "
                     "event_idx %s\n",
                     ep.socket.c_str(), static_cast<unsigned long long>(g.capacity_bytes),
                     g.block_size, g.seg_max, g.size_max, g.num_queues,
                     g.read_only ? ", read-only" : "", g.flush ? ", flush" : "",
                     ep.blk->max_request_bytes(), ep.blk->indirect() ? "indirect" : "direct",
                     (ep.blk->features() & vdh::frontend::kFEventIdx) ? "on" : "off");
        if (g.capacity_bytes < 2 * area.area_bytes) {
            return fail(ep.label + ": the disk holds " + std::to_string(g.capacity_bytes) +
                        " bytes; --blk needs twice --file-size-mib (a read and a write area)");
        }
        for (Workload w : workloads) {
            const WorkloadInfo& wi = workload_info(w);
            if (wi.io_bytes > ep.blk->max_request_bytes() || wi.io_bytes % g.block_size != 0) {
                return fail(ep.label + ": " + std::string(wi.name) +
                            ": the device takes requests of at most " +
                            std::to_string(ep.blk->max_request_bytes()) +
                            " bytes, in blocks of " + std::to_string(g.block_size));
            }
            if (wi.op == OpKind::Write && g.read_only) {
                return fail(ep.label + ": " + std::string(wi.name) + ": the disk is read-only");
            }
            uint64_t slots = static_cast<uint64_t>(co.slots_per_queue) * cli.queues;
            if (wi.op == OpKind::Write && cli.verify && area.area_bytes / wi.io_bytes < slots) {
                return fail(std::string(wi.name) +
                            " --verify: the write area has fewer blocks than requests in "
                            "flight; raise --file-size-mib");
            }
        }
    }
    // Every endpoint is expected to serve the same disk: it is prepared through the first.
    if (!cli.no_prepare) {
        auto st = prepare_blk(*eps[0].blk, area, &why);
        if (!st) {
            return fail(eps[0].label + ": preparing the disk: " + why);
        }
    }
    if (cli.prepare_only) {
        for (Endpoint& ep : eps) {
            ep.blk->close();
        }
        return 0;
    }

    print_table_header();
    uint64_t total_errors = 0;
    // Repetition outermost, endpoints rotated per repetition: see run().
    const size_t n = eps.size();
    for (int rep = 0; rep < cli.reps; rep++) {
        for (Workload w : workloads) {
            for (uint32_t qd : depths) {
                for (size_t k = 0; k < n; k++) {
                    Endpoint& ep = eps[(k + static_cast<size_t>(rep)) % n];
                    RunConfig c = base;
                    c.workload = w;
                    c.queue_depth = qd;
                    c.backend_pid = ep.pid;
                    auto r = run_blk(*ep.blk, area, c);
                    if (!r) {
                        return fail(ep.label +
                                    ": run failed: " + std::string(std::strerror(r.error())));
                    }
                    const WorkloadInfo& wi = workload_info(w);
                    r->label = ep.label;
                    r->workload = std::string(wi.name);
                    r->io_bytes = wi.io_bytes;
                    r->queue_depth = qd;
                    r->poll = cli.poll;
                    r->verify = cli.verify;
                    r->duration_req_s = cli.ops > 0 ? 0 : cli.duration;
                    r->ops_req = cli.ops;
                    r->rep = cli.rep + rep;
                    r->mode = "blk";
                    r->target = ep.socket;
                    r->queues = cli.queues;
                    r->threads = std::min(cli.threads, cli.queues);
                    r->queue_size = co.queue_size;
                    r->indirect = ep.blk->indirect();
                    r->segment_size = ep.blk->indirect() ? cli.segment_size : 0;
                    emit(cli, *r);
                    total_errors += r->errors();
                    if (r->timed_out) {
                        return fail(ep.label + ": the device stopped answering; giving up");
                    }
                }
            }
        }
    }
    for (Endpoint& ep : eps) {
        ep.blk->close();
    }
    return total_errors == 0 ? 0 : 1;
}

int run(const Cli& cli) {
    std::vector<Workload> workloads;
    std::string names = cli.workloads;
    if (names.empty()) {
        names = cli.blk ? "read-4k-rand" : "getattr";
    }
    for (const std::string& name : split(names)) {
        if (name == "all") {
            for (int i = 0; i < kNumWorkloads; i++) {
                auto w = static_cast<Workload>(i);
                // --blk: the 1 MiB ones need more descriptors than QEMU's 128-entry queue
                // (one per page); they run when named, with a larger --segment-size.
                if (!cli.blk || (blk_workload(w) && workload_info(w).io_bytes <= 128 * 1024)) {
                    workloads.push_back(w);
                }
            }
            continue;
        }
        auto w = parse_workload(name);
        if (!w) {
            return fail("unknown workload '" + name + "' (see --list-workloads)");
        }
        workloads.push_back(*w);
    }
    std::vector<uint32_t> depths;
    if (!parse_u32_list(cli.depths, depths)) {
        return fail("--queue-depth: expected a comma-separated list of positive integers");
    }
    std::vector<int> cpus;
    for (const std::string& c : split(cli.cpus)) {
        cpus.push_back(std::atoi(c.c_str()));
    }
    uint64_t init_flags = kDefaultInitFlags;
    if (!cli.init_flags.empty()) {
        init_flags = std::strtoull(cli.init_flags.c_str(), nullptr, 0);
    }
    const uint64_t file_bytes = cli.file_size_mib << 20;
    if (file_bytes < (1u << 20)) {
        return fail("--file-size-mib must be at least 1");
    }
    if ((cli.raw || cli.with_raw) && cli.share_dir.empty()) {
        return fail(std::string(cli.raw ? "--raw" : "--with-raw") + " needs --share-dir");
    }
    if (!cli.raw && cli.socket.empty() && !(cli.prepare_only && !cli.share_dir.empty())) {
        return fail("--socket is required (or --raw --share-dir DIR)");
    }
    if (cli.threads == 0 || cli.queues == 0 || cli.threads > cli.queues) {
        return fail("--threads must be 1..--queues");
    }
    if (cli.reps < 1) {
        return fail("--reps must be at least 1");
    }

    RunConfig base;
    base.threads = cli.threads;
    base.duration_s = cli.duration;
    base.ops = cli.ops;
    base.warmup_s = cli.warmup >= 0 ? cli.warmup : (cli.ops > 0 ? 0.0 : 0.2);
    base.verify = cli.verify;
    base.readdir_bytes = cli.readdir_bytes;
    base.file_bytes = file_bytes;
    base.cpus = cpus;
    base.seed = cli.seed;
    if (cli.blk) {
        return run_blk_mode(cli, workloads, depths, base);
    }

    std::string why;
    if (!cli.share_dir.empty() && !cli.no_prepare) {
        auto st = prepare_host(cli.share_dir, file_bytes, &why);
        if (!st) {
            return fail("preparing " + cli.share_dir + ": " + why);
        }
    }
    if (cli.prepare_only && (cli.raw || cli.socket.empty())) {
        return 0;
    }

    uint64_t total_errors = 0;
    print_table_header();

    auto fill = [&](RunResult& r, const RunConfig& c) {
        const WorkloadInfo& wi = workload_info(c.workload);
        r.label = cli.raw ? (cli.labels.empty() ? "raw" : cli.labels) : "fuse";
        r.workload = std::string(wi.name);
        r.io_bytes = wi.io_bytes;
        r.threads = c.threads;
        r.queue_depth = c.queue_depth;
        r.poll = cli.poll;
        r.verify = cli.verify;
        r.duration_req_s = cli.ops > 0 ? 0 : cli.duration;
        r.ops_req = cli.ops;
        r.rep = cli.rep;
    };

    if (cli.raw) {
        for (int rep = 0; rep < cli.reps; rep++) {
            for (Workload w : workloads) {
                RunConfig c = base;
                c.workload = w;
                c.threads = 1;
                c.queue_depth = 1;
                auto r = run_raw(cli.share_dir, c, &why);
                if (!r) {
                    return fail("raw " + std::string(workload_info(w).name) + ": " + why);
                }
                fill(*r, c);
                r->rep = cli.rep + rep;
                r->mode = "raw";
                r->target = cli.share_dir;
                r->queues = 0;
                emit(cli, *r);
                total_errors += r->errors();
            }
        }
        return total_errors == 0 ? 0 : 1;
    }

    std::vector<Endpoint> eps;
    if (!parse_endpoints(cli, "fuse", eps, &why)) {
        return fail(why);
    }

    ChannelOptions co;
    co.request_queues = static_cast<uint16_t>(cli.queues);
    co.queue_size = static_cast<uint16_t>(cli.queue_size == 0 ? 1024 : cli.queue_size);
    co.indirect = !cli.no_indirect;
    co.segment_size = cli.segment_size;
    co.poll = cli.poll;
    co.slots_per_queue = *std::max_element(depths.begin(), depths.end());
    uint32_t data_cap = std::max<uint32_t>(cli.readdir_bytes, 128 * 1024);
    for (Workload w : workloads) {
        data_cap = std::max(data_cap, workload_info(w).io_bytes);
    }
    co.data_capacity = data_cap;
    co.init_flags = init_flags;
    co.connect_timeout = std::chrono::milliseconds(cli.connect_timeout_ms);
    for (Endpoint& ep : eps) {
        co.socket_path = ep.socket;
        auto ch = FuseChannel::connect(co, &why);
        if (!ch) {
            return fail(ep.label + ": " + why);
        }
        ep.chan = std::move(*ch);
        const fuse_init_out& io = ep.chan->init_reply();
        std::fprintf(stderr,
                     "vdhost-bench: %s: FUSE %u.%u, max_write %u, max_pages %u, max READ %u, "
                     "max WRITE %u, %s descriptors, event_idx %s\n",
                     ep.socket.c_str(), io.major, io.minor, io.max_write, io.max_pages,
                     ep.chan->max_read(), ep.chan->max_write(),
                     ep.chan->indirect() ? "indirect" : "direct",
                     (ep.chan->features() & vdh::frontend::kFEventIdx) ? "on" : "off");
    }

    // Every endpoint is expected to serve the same share: it is prepared through the first.
    if (cli.share_dir.empty() && !cli.no_prepare) {
        auto st = prepare_fuse(*eps[0].chan, file_bytes, &why);
        if (!st) {
            return fail("preparing the share over FUSE: " + why);
        }
    }
    if (cli.prepare_only) {
        for (Endpoint& ep : eps) {
            ep.chan->close();
        }
        return 0;
    }
    for (Endpoint& ep : eps) {
        FuseChannel& chan = *ep.chan;
        auto targets = find_targets(chan, &why);
        if (!targets) {
            return fail(ep.label + ": " + why);
        }
        ep.targets = *targets;
        for (Workload w : workloads) {
            const WorkloadInfo& wi = workload_info(w);
            if (wi.op == OpKind::Read && wi.io_bytes > chan.max_read()) {
                return fail(ep.label + ": " + std::string(wi.name) +
                            ": the device allows READs of at most " +
                            std::to_string(chan.max_read()) + " bytes");
            }
            if (wi.op == OpKind::Write && wi.io_bytes > chan.max_write()) {
                return fail(ep.label + ": " + std::string(wi.name) +
                            ": the device allows WRITEs of at most " +
                            std::to_string(chan.max_write()) + " bytes");
            }
            if (wi.io_bytes > 0 && std::min(file_bytes, targets->read_size) < wi.io_bytes) {
                return fail(std::string(wi.name) + ": bench.dat is too small");
            }
            // --verify writes give every slot its own blocks, so a read-back sees its own
            // data.
            uint64_t slots = static_cast<uint64_t>(co.slots_per_queue) * cli.queues;
            if (wi.op == OpKind::Write && cli.verify &&
                std::min(file_bytes, targets->write_size) / wi.io_bytes < slots) {
                return fail(std::string(wi.name) +
                            " --verify: bench-wr.dat has fewer blocks than requests in flight; "
                            "raise --file-size-mib");
            }
        }
    }

    if (cli.with_raw) {
        Endpoint raw;
        raw.label = "raw";
        raw.socket = cli.share_dir;
        raw.raw = true;
        eps.push_back(std::move(raw));
    }

    // Repetition outermost, so a workload's runs on one backend spread over the whole
    // invocation; within a repetition each (workload, depth) runs on every endpoint back to
    // back, the endpoints' order rotated by one per repetition so none always runs first.
    // The raw baseline has no queue depth: it takes its turn at the first depth only.
    const size_t n = eps.size();
    for (int rep = 0; rep < cli.reps; rep++) {
        for (Workload w : workloads) {
            for (uint32_t qd : depths) {
                for (size_t k = 0; k < n; k++) {
                    Endpoint& ep = eps[(k + static_cast<size_t>(rep)) % n];
                    RunConfig c = base;
                    c.workload = w;
                    c.queue_depth = qd;
                    c.backend_pid = ep.pid;
                    if (ep.raw) {
                        if (qd != depths.front()) {
                            continue;
                        }
                        c.threads = 1;
                        c.queue_depth = 1;
                        auto r = run_raw(cli.share_dir, c, &why);
                        if (!r) {
                            return fail("raw " + std::string(workload_info(w).name) + ": " +
                                        why);
                        }
                        fill(*r, c);
                        r->label = ep.label;
                        r->rep = cli.rep + rep;
                        r->mode = "raw";
                        r->target = cli.share_dir;
                        r->queues = 0;
                        emit(cli, *r);
                        total_errors += r->errors();
                        continue;
                    }
                    auto r = run_fuse(*ep.chan, ep.targets, c);
                    if (!r) {
                        return fail(ep.label +
                                    ": run failed: " + std::string(std::strerror(r.error())));
                    }
                    fill(*r, c);
                    r->label = ep.label;
                    r->rep = cli.rep + rep;
                    r->mode = "fuse";
                    r->target = ep.socket;
                    r->queues = cli.queues;
                    r->threads = std::min(cli.threads, cli.queues);
                    r->queue_size = co.queue_size;
                    r->indirect = ep.chan->indirect();
                    r->segment_size = ep.chan->indirect() ? cli.segment_size : 0;
                    emit(cli, *r);
                    total_errors += r->errors();
                    if (r->timed_out) {
                        return fail(ep.label + ": the device stopped answering; giving up");
                    }
                }
            }
        }
    }
    for (Endpoint& ep : eps) {
        if (ep.chan) {
            release_targets(*ep.chan, ep.targets);
            ep.chan->close();
        }
    }
    return total_errors == 0 ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
    Cli cli;
    po::options_description desc(
        "vdhost-bench: vhost-user-fs and vhost-user-blk load generator\n"
        "Usage: vdhost-bench --socket PATH [--workload LIST] [--queue-depth LIST] ...\n"
        "       vdhost-bench --blk --socket PATH [--workload LIST] [--queue-depth LIST] ...\n"
        "       vdhost-bench --raw --share-dir DIR [--workload LIST] ...\nOptions");
    desc.add_options()
        ("help,h", "show this help and exit")
        ("list-workloads", "print the workload names and exit")
        ("socket,s", po::value(&cli.socket), "vhost-user-fs socket (vhost-user-blk with --blk) to connect to; several, comma-separated: one connection to each, runs alternate between them")
        ("workload,w", po::value(&cli.workloads), "comma-separated workloads, or 'all' (default getattr; with --blk read-4k-rand, and 'all' the reads and writes of up to 128 KiB)")
        ("queue-depth,d", po::value(&cli.depths), "comma-separated queue depths per request queue (default 1); each is one run")
        ("queues,q", po::value(&cli.queues), "request queues (default 1; hiprio is extra)")
        ("threads,t", po::value(&cli.threads), "frontend threads; thread i drives queues i, i+T, ... (default 1)")
        ("queue-size", po::value(&cli.queue_size), "virtqueue size (default 1024; with --blk 128, as QEMU's vhost-user-blk-pci)")
        ("duration", po::value(&cli.duration), "seconds measured per run (default 5)")
        ("ops", po::value(&cli.ops), "run this many ops instead of a duration")
        ("warmup", po::value(&cli.warmup), "seconds run before measuring (default 0.2; 0 with --ops)")
        ("poll", po::bool_switch(&cli.poll), "busy-poll the used rings instead of waiting on call eventfds")
        ("verify", po::bool_switch(&cli.verify), "also check data and attributes (writes are read back)")
        ("no-indirect", po::bool_switch(&cli.no_indirect), "use direct descriptor chains")
        ("segment-size", po::value(&cli.segment_size), "bytes per data descriptor (default 4096, a page; 0: one per part)")
        ("file-size-mib", po::value(&cli.file_size_mib), "size of bench.dat and bench-wr.dat (default 64); with --blk of the read area and of the write area after it")
        ("readdir-bytes", po::value(&cli.readdir_bytes), "READDIRPLUS / getdents64 buffer (default 4096, as Linux 6.1)")
        ("share-dir", po::value(&cli.share_dir), "the share's host directory: prepare files there directly (and --raw)")
        ("raw", po::bool_switch(&cli.raw), "run the raw host-syscall baseline on --share-dir")
        ("blk", po::bool_switch(&cli.blk), "the sockets are vhost-user-blk: be a virtio-blk guest (read-*/write-* workloads; reads from the first --file-size-mib of the disk, writes to the next; the disk is prepared through the first socket unless --no-prepare)")
        ("with-raw", po::bool_switch(&cli.with_raw), "alternate the raw baseline on --share-dir (label raw, depth 1) with the sockets")
        ("prepare-only", po::bool_switch(&cli.prepare_only), "prepare the share (with --blk the disk's read area) and exit")
        ("no-prepare", po::bool_switch(&cli.no_prepare), "do not create the benchmark files (they must exist)")
        ("backend-pid", po::value(&cli.backend_pids), "report this process's CPU time per op (comma-separated: one per socket)")
        ("label", po::value(&cli.labels), "label of the rows (e.g. vdhost, virtiofsd; comma-separated: one per socket)")
        ("rep", po::value(&cli.rep), "repetition number recorded in the rows (the first, with --reps)")
        ("reps", po::value(&cli.reps), "repeat every workload and depth this many times, alternating between the sockets (default 1)")
        ("json", po::value(&cli.json), "append one JSON object per run to FILE")
        ("csv", po::value(&cli.csv), "append one CSV row per run to FILE")
        ("cpus", po::value(&cli.cpus), "comma-separated CPUs to pin frontend threads to")
        ("init-flags", po::value(&cli.init_flags), "FUSE_INIT flags to offer (hex, 64-bit)")
        ("seed", po::value(&cli.seed), "random seed (default 1)")
        ("connect-timeout-ms", po::value(&cli.connect_timeout_ms), "how long to retry connecting (default 10000)");
    po::variables_map vm;
    try {
        po::store(po::parse_command_line(argc, argv, desc), vm);
        po::notify(vm);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "vdhost-bench: %s\n", e.what());
        return 2;
    }
    if (vm.count("help")) {
        std::cout << desc << "\n";
        return 0;
    }
    if (vm.count("list-workloads")) {
        for (int i = 0; i < kNumWorkloads; i++) {
            std::cout << workload_info(static_cast<Workload>(i)).name << "\n";
        }
        return 0;
    }
    try {
        return run(cli);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "vdhost-bench: %s\n", e.what());
        return 2;
    }
}

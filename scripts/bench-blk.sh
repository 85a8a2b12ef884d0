#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The virtio-blk section of scripts/bench.sh (which runs it after the virtio-fs sections;
# it also runs on its own): vdhost's virtioblk plugin (one poll lcore) against
# qemu-storage-daemon's vhost-user-blk export, with tools/bench/vdhost-bench --blk as the
# guest. Both serve the SAME disk file with the same O_DIRECT setting (default: page cache
# on both, --direct: O_DIRECT on both); qemu-storage-daemon uses aio=io_uring. One
# vdhost-bench process holds a connection to each and alternates short runs: per
# repetition, each workload and queue depth runs on both back to back, their order rotated
# each repetition. Each ratio vdhost/qsd is the median of the per-repetition ratios, with
# its min and max. Next to ops/s: each backend's CPU time per operation (all its threads)
# and how long each waited for a CPU.
# Null mode (the transport ceiling), read-4k-rand: vdhost has no null blk backend and
# refuses char devices such as /dev/null, so vdhost serves the same file, whose read area
# is in the page cache (io_uring completes those reads inline on the poll lcore; they never
# reach the disk), against qemu-storage-daemon's null-co driver, which completes without
# touching data or the page cache: qsd's own ceiling, so the ratio is conservative. (Not
# tmpfs: io_uring hands every tmpfs read to an io-wq worker here.)
# Pinning: the load generator on CPU 0; vdhost's poll lcore on the last CPU; every thread
# of qemu-storage-daemon on that same CPU (taskset at start; --peer-cpus changes it).
# Writes bench-results/blk-latest.{csv,json} and blk-latest-summary.txt.
# Runs never overlap: it waits for any other scripts/bench.sh (flock on
# /tmp/vdhost-bench.lock, or $VDH_BENCH_LOCK) unless bench.sh itself started it.
#
# Usage: scripts/bench-blk.sh [--quick | --full] [--direct] [--build-dir DIR] [--out DIR]
#                             [--reps N] [--duration SEC] [--warmup SEC] [--workloads LIST]
#                             [--depths LIST] [--peer-cpus LIST|all] [--irq] [--keep]
#   --quick  (default) 8 reps x 0.25 s per run (+0.1 s warm-up), QD 1 and 32, 4 workloads,
#            plus the null mode: about 1.2 minutes on a 2-core machine once built
#   --full   10 reps x 2 s (+0.25 s warm-up), QD 1, 8, 32, 128 (about 25 minutes)
#   --direct O_DIRECT on both backends (cache.direct=on / direct: true)
#   --irq    the guest waits on the call eventfds (as a halted vCPU waits for its interrupt)
#            instead of busy-polling the used rings: CPU 0 is then free between completions
#            for other threads, such as vdhost's io_uring workers (punted writes)
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
mode=quick direct=0 keep=0 poll=--poll
build_dir="$REPO/build"
out="$REPO/bench-results"
reps="" duration="" warmup="" workloads="" depths="" peer_cpus=""
QSD="${VDH_QSD:-/usr/bin/qemu-storage-daemon}"

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) mode=quick ;;
    --full) mode=full ;;
    --direct) direct=1 ;;
    --irq) poll="" ;;
    --build-dir) build_dir="$(realpath -m "$2")"; shift ;;
    --out) out="$(realpath -m "$2")"; shift ;;
    --reps) reps="$2"; shift ;;
    --duration) duration="$2"; shift ;;
    --warmup) warmup="$2"; shift ;;
    --workloads) workloads="$2"; shift ;;
    --depths) depths="$2"; shift ;;
    --peer-cpus) peer_cpus="$2"; shift ;;
    --keep) keep=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bench-blk.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
if [ "$mode" = quick ]; then
    : "${reps:=8}" "${duration:=0.25}" "${warmup:=0.1}" "${depths:=1,32}"
else
    : "${reps:=10}" "${duration:=2}" "${warmup:=0.25}" "${depths:=1,8,32,128}"
fi
: "${workloads:=read-4k-rand,write-4k-rand,read-128k-seq,write-128k-seq}"
null_workloads="read-4k-rand"
area_mib=64 # read area [0, 64 MiB), write area [64, 128 MiB)

log() { printf 'bench-blk: %s\n' "$*" >&2; }
die() { printf 'bench-blk: %s\n' "$*" >&2; exit 1; }
command -v python3 >/dev/null || die "python3 is needed (scripts/setup.sh)"
[ -x "$QSD" ] || die "$QSD not found (Debian: qemu-system-common)"
qsd_version="$("$QSD" --version | head -n 1)"

. "$(dirname "$0")/bench-lib.sh"
log "building vdhost, the virtioblk plugin and vdhost-bench in $build_dir"
bench_build "$build_dir" host/vdhost plugins/virtioblk/vdh-virtioblk.so tools/bench/vdhost-bench
bench_lock # (bench.sh holds it when it runs this script)
bench_cpus "$peer_cpus"
bench_workdir vdh-bench-blk
mkdir -p "$out"
csv="$work/runs.csv"
failures=0
start_time=$(date +%s)
bench_busy_probe

disk="$work/disk.img"
disk_mib=$((2 * area_mib))
truncate -s "${disk_mib}M" "$disk"
if [ "$direct" -eq 1 ]; then qsd_direct=on vd_direct=true; else qsd_direct=off vd_direct=false; fi

start_vdhost() { # NAME FILE DIRECT -> sets vd_pid, vd_sock
    local name="$1"
    cat >"$work/$name.yaml" <<YAML
host:
  poll_lcores: [$lcore]
devices:
  - name: blk0
    type: virtioblk
    socket: $work/$name.sock
    lcore: $lcore
    config:
      path: $2
      direct: $3
YAML
    "$VDHOST" --config "$work/$name.yaml" --plugin-dir "$PLUGINS" >"$work/$name.log" 2>&1 9>&- &
    vd_pid=$!
    pids+=("$vd_pid")
    vd_sock="$work/$name.sock"
    wait_socket "$vd_sock" "$vd_pid" || { cat "$work/$name.log" >&2; die "vdhost ($name) did not start"; }
}

start_qsd() { # NAME BLOCKDEV -> sets qsd_pid, qsd_sock; every thread on $peer_cpus
    local name="$1"
    qsd_sock="$work/$name.sock"
    "${peer_pin[@]}" "$QSD" --blockdev "$2" \
        --export "type=vhost-user-blk,id=e,node-name=f,addr.type=unix,addr.path=$qsd_sock,writable=on,num-queues=1" \
        >"$work/$name.log" 2>&1 9>&- &
    qsd_pid=$!
    pids+=("$qsd_pid")
    wait_socket "$qsd_sock" "$qsd_pid" || { cat "$work/$name.log" >&2; die "qemu-storage-daemon ($name) did not start"; }
}

# bench LABELS SOCKETS PIDS ARGS...: one vdhost-bench --blk process alternating between the
# sockets for $reps repetitions; rows appended to $csv.
bench() {
    local labels="$1" socks="$2" bpids="$3" rc=0
    shift 3
    "${BENCH_RUN[@]}" --blk --socket "$socks" --no-prepare ${poll:+"$poll"} --cpus "$bench_cpu" \
        --file-size-mib "$area_mib" --duration "$duration" --warmup "$warmup" --reps "$reps" \
        --rep 1 --backend-pid "$bpids" --label "$labels" --csv "$csv" "$@" \
        >>"$work/bench.out" 2>>"$work/bench.err" || rc=$?
    if [ "$rc" -ne 0 ]; then
        failures=$((failures + 1))
        log "run failed ($labels: $*): rc=$rc; see below"
        tail -n 5 "$work/bench.err" >&2
    fi
}

# ---- vdhost vs qemu-storage-daemon on the same file -------------------------------------
start_qsd qsd "driver=file,node-name=f,filename=$disk,cache.direct=$qsd_direct,aio=io_uring"
main_qsd=$qsd_pid main_qsd_sock=$qsd_sock
log "preparing the disk ($disk_mib MiB, pattern over the first $area_mib MiB) through qemu-storage-daemon"
"$BENCH" --blk --socket "$qsd_sock" --prepare-only --file-size-mib "$area_mib" \
    >/dev/null 2>>"$work/bench.err" || die "preparing the disk failed: $(tail -n 3 "$work/bench.err")"
start_vdhost vdhost "$disk" "$vd_direct"
main_vd=$vd_pid
IFS=, read -r -a wl <<<"$workloads"
log "${#wl[@]} workloads x QD $depths x $reps reps, ${duration}s per run (+${warmup}s warm-up)," \
    "alternating vdhost,qsd; O_DIRECT $vd_direct; qsd on CPU(s) $peer_cpus"
bench vdhost,qsd "$vd_sock,$main_qsd_sock" "$main_vd,$main_qsd" --workload "$workloads" \
    --queue-depth "$depths"
stop_pid "$main_qsd"

# ---- null mode: vdhost (page-cached reads) vs qsd null-co --------------------------------
if [ "$direct" -eq 1 ]; then # the null mode reads from the page cache
    stop_pid "$main_vd"
    start_vdhost vdhost-pc "$disk" false
    main_vd=$vd_pid
fi
cat "$disk" >/dev/null # the read area in the page cache, whatever the runs before did
start_qsd qsd-null "driver=null-co,node-name=f,size=$((disk_mib << 20))"
null_qsd=$qsd_pid
log "null mode: $null_workloads, vdhost (reads from the page cache) vs qsd null-co, $reps reps"
bench vdhost-pc,qsd-null "$vd_sock,$qsd_sock" "$main_vd,$null_qsd" --workload "$null_workloads" \
    --queue-depth "$depths"
stop_pid "$main_vd"
stop_pid "$null_qsd"
elapsed=$(( $(date +%s) - start_time ))
load_end="$(cut -d' ' -f1-3 /proc/loadavg)"
log "load average at the end: $load_end"
[ -s "$csv" ] || die "no results (every run failed)"
cp "$csv" "$out/blk-latest.csv"

# ---- report ------------------------------------------------------------------------------
guest_wait=$([ -n "$poll" ] && echo "--poll (busy-polls the used rings)" || echo "--irq (waits on the call eventfds)")
python3 - "$csv" "$out" "$mode" "$reps" "$duration" "$warmup" "$depths" "$vd_direct" \
    "$peer_cpus" "$lcore" "$bench_cpu" "$load_start" "$load_end" "$busy_before" "$elapsed" \
    "$failures" "$qsd_version" "$guest_wait" <<'PY'
import csv, json, os, statistics, subprocess, sys
from collections import defaultdict

(csv_path, out, mode, reps, duration, warmup, depths, direct, peer_cpus, lcore, bench_cpu,
 load_start, load_end, busy_before, elapsed, failures, qsd_version, guest_wait) = sys.argv[1:]
rows = list(csv.DictReader(open(csv_path)))
num = lambda r, k: float(r[k])
for r in rows:
    for who in ("backend", "client"):
        w = num(r, who + "_wait_s")
        r[who + "_wait_pct"] = str(w / num(r, "elapsed_s") * 100 if w >= 0 else -1)
groups = defaultdict(list)
for r in rows:
    groups[(r["label"], r["workload"], int(r["queue_depth"]))].append(r)
metrics = ["ops_s", "mb_s", "lat_p50_us", "lat_p99_us", "backend_cpu_us_per_op",
           "client_cpu_us_per_op", "backend_wait_pct", "client_wait_pct"]
def stat(rs, k, fn):
    vals = [num(r, k) for r in rs]
    if k.startswith("backend_") or k.endswith("_wait_pct"):
        vals = [v for v in vals if v >= 0]
    return fn(vals) if vals else -1.0
med, by_rep = {}, {}
for key, rs in groups.items():
    m = {k: stat(rs, k, statistics.median) for k in metrics}
    m["min"] = {k: stat(rs, k, min) for k in metrics}
    m["max"] = {k: stat(rs, k, max) for k in metrics}
    m["runs"] = len(rs)
    m["errors"] = sum(int(r["err_errno"]) + int(r["err_proto"]) + int(r["err_verify"]) +
                      int(r["timed_out"]) for r in rs)
    med[key] = m
    by_rep[key] = {int(r["rep"]): r for r in rs}

def paired(a, b, metric):
    """Median, min and max of a/b over the reps both have (each pair ran back to back)."""
    ra, rb = by_rep.get(a, {}), by_rep.get(b, {})
    rs = [num(ra[i], metric) / num(rb[i], metric) for i in sorted(ra)
          if i in rb and num(rb[i], metric) > 0 and num(ra[i], metric) > 0]
    if not rs:
        return None, None
    return statistics.median(rs), [min(rs), max(rs)]

def f(v, fmt="{:.0f}"):
    return "-" if v is None else fmt.format(v)
def spread_pct(m, k):
    if m is None or m[k] <= 0:
        return "-"
    return f"-{(m[k] - m['min'][k]) / m[k] * 100:.0f}/+{(m['max'][k] - m[k]) / m[k] * 100:.0f}%"
def with_range(v, sp, fmt="{:.2f}"):
    return "-" if v is None else f"{fmt.format(v)} [{fmt.format(sp[0])}-{fmt.format(sp[1])}]"
def cpu_cell(m):
    k = "backend_cpu_us_per_op"
    if m is None or m[k] < 0:
        return "-"
    g = lambda v: f"{v:.0f}" if v >= 100 else (f"{v:.1f}" if v >= 10 else f"{v:.2f}")
    return f"{g(m[k])} [{g(m['min'][k])}-{g(m['max'][k])}]"

def compare(a, b, pairs_of):
    out_rows = []
    for (w, qd) in pairs_of:
        ma, mb = med.get((a, w, qd)), med.get((b, w, qd))
        if ma is None or mb is None:
            continue
        r, sp = paired((a, w, qd), (b, w, qd), "ops_s")
        c, csp = paired((a, w, qd), (b, w, qd), "backend_cpu_us_per_op")
        out_rows.append({"workload": w, "queue_depth": qd, a: ma, b: mb, "ratio": r,
                         "ratio_spread": sp, "cpu_ratio": c, "cpu_ratio_spread": csp})
    return out_rows

order = []
for r in rows:
    k = (r["workload"], int(r["queue_depth"]))
    if k not in order:
        order.append(k)
main = compare("vdhost", "qsd", order)
null = compare("vdhost-pc", "qsd-null", order)

n_reps = max((m["runs"] for m in med.values()), default=0)
lines = [f"virtio-blk: vdhost (virtioblk plugin, one poll lcore on CPU {lcore}) vs {qsd_version} "
         f"(aio=io_uring, CPU(s) {peer_cpus}); same file, O_DIRECT {direct}; "
         f"load generator on CPU {bench_cpu}, {guest_wait}",
         f"load average: {load_start} at the start, {load_end} at the end ({os.cpu_count()} "
         f"CPUs); CPUs {busy_before}% busy in the second before", ""]
def table(title, a, b, rs):
    lines.append(title)
    lines.append(f"{'workload':<16}{'qd':>4}{a:>13}{'spread':>11}{b:>13}{'spread':>11}"
                 f"{'ratio [min-max]':>21}{a[:6] + '_cpu':>18}{b[:6] + '_cpu':>18}"
                 f"{'cpu ratio':>21}")
    for s in rs:
        ma, mb = s[a], s[b]
        lines.append(f"{s['workload']:<16}{s['queue_depth']:>4}{f(ma['ops_s']):>13}"
                     f"{spread_pct(ma, 'ops_s'):>11}{f(mb['ops_s']):>13}{spread_pct(mb, 'ops_s'):>11}"
                     f"{with_range(s['ratio'], s['ratio_spread']):>21}{cpu_cell(ma):>18}"
                     f"{cpu_cell(mb):>18}{with_range(s['cpu_ratio'], s['cpu_ratio_spread']):>21}")
    lines.append("")
table(f"ops/s: median of {n_reps} reps of {duration} s (min and max as % of it); ratio = "
      "vdhost/qsd, median [min-max] of the per-rep ratios; cpu = backend CPU us per op "
      "(all threads; vdhost's poll lcore spins, so it counts the whole core)",
      "vdhost", "qsd", main)
table("null mode (transport ceiling): vdhost, reads from the page cache, vs qsd null-co",
      "vdhost-pc", "qsd-null", null)
lines.append("latency p50/p99 us (medians): " + "; ".join(
    f"{s['workload']} QD{s['queue_depth']} vdhost {s['vdhost']['lat_p50_us']:.1f}/"
    f"{s['vdhost']['lat_p99_us']:.0f} qsd {s['qsd']['lat_p50_us']:.1f}/{s['qsd']['lat_p99_us']:.0f}"
    for s in main))
def wait_stats(label, who):
    vals = [num(r, who + "_wait_pct") for r in rows
            if r["label"] == label and num(r, who + "_wait_pct") >= 0]
    return {"median": statistics.median(vals), "max": max(vals)} if vals else None
cpu_wait = {l: wait_stats(l, "backend") for l in ("vdhost", "qsd")}
cpu_wait["load_generator"] = wait_stats("vdhost", "client")
lines.append("time runnable but waiting for a CPU, % of each run (median [max]): " +
             ", ".join(f"{l} {v['median']:.1f} [{v['max']:.0f}]" for l, v in cpu_wait.items() if v))
busy = [l for l, v in cpu_wait.items() if v and v["median"] > 5]
if busy:
    lines.append(f"  warning: other tasks took the CPUs of {', '.join(busy)} more than 5% of the "
                 "time (median): the machine was not idle, expect ratios that do not repeat")

targets = []
def target(name, s, limit):
    v = s["ratio"] if s else None
    targets.append({"target": name, "value": v, "limit": limit,
                    "met": None if v is None else v >= limit})
for w, limit in (("read-4k-rand", 2.0), ("write-4k-rand", 1.0), ("write-128k-seq", 1.0)):
    for qd in (1, 32):
        s = next((s for s in main if s["workload"] == w and s["queue_depth"] == qd), None)
        target(f"{w} QD{qd} ops/s >= {limit:g}x qemu-storage-daemon", s, limit)
lines.append("")
lines.append("targets:")
for t in targets:
    state = "not measured" if t["met"] is None else ("MET" if t["met"] else "NOT MET")
    lines.append(f"  [{state}] {t['target']}: {f(t['value'], '{:.2f}')}x")
errs = sum(m["errors"] for m in med.values())
lines.append(f"errors in replies: {errs}; failed runs: {failures}; total time {elapsed} s")
text = "\n".join(lines)
print(text)
open(os.path.join(out, "blk-latest-summary.txt"), "w").write(text + "\n")
doc = {
    "generated": subprocess.run(["date", "-u", "+%Y-%m-%dT%H:%M:%SZ"], capture_output=True,
                                text=True).stdout.strip(),
    "mode": mode, "reps": int(reps), "duration_s": float(duration), "warmup_s": float(warmup),
    "depths": depths, "o_direct": direct == "true", "qsd": qsd_version,
    "machine": {"cpus": os.cpu_count()},
    "load_average": {"start": load_start, "end": load_end},
    "cpu_busy_pct_before": int(busy_before), "cpu_wait_pct": cpu_wait,
    "setup": {"vdhost": f"virtioblk, one poll lcore (CPU {lcore}), direct: {direct}",
              "qsd": f"file, aio=io_uring, cache.direct={'on' if direct == 'true' else 'off'}, "
                     f"num-queues=1, CPU(s) {peer_cpus}",
              "null": "vdhost on the same file, reads from the page cache, vs qsd null-co",
              "load_generator": f"vdhost-bench --blk on CPU {bench_cpu}, {guest_wait}",
              "ratios": "median, min and max of the per-rep ratios vdhost/peer"},
    "summary": main, "null": null, "targets": targets,
    "errors": errs, "failed_runs": int(failures), "elapsed_s": int(elapsed), "runs": rows,
}
json.dump(doc, open(os.path.join(out, "blk-latest.json"), "w"), indent=1)
PY
log "results: $out/blk-latest.csv, $out/blk-latest.json, $out/blk-latest-summary.txt"
[ "$failures" -eq 0 ]

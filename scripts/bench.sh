#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Benchmarks vdhost (one poll lcore) against the C virtiofsd (QEMU 7.2's) and the Rust
# virtiofsd (Debian 13's, run from the cache of scripts/rust-virtiofsd.sh, which
# scripts/setup.sh fills) with tools/bench/vdhost-bench, plus vdhost's null backend (the
# transport ceiling) and the raw host-syscall baseline. One vdhost-bench process holds a
# connection to every backend and alternates short runs between them and the raw baseline:
# per repetition, every workload and queue depth runs on each backend back to back (raw at
# the first depth only; their order rotated each repetition), so a change in the machine's
# load falls on all of them alike. Each ratio vdhost/peer (and vdhost/raw) is the median of
# the per-repetition ratios, printed with its min and max. Next to ops/s it reports each
# backend's CPU time per operation (all its threads), the fairer comparison on a small
# machine, and how long the backends and the load generator waited for a CPU (a busy
# machine; it warns above 5%).
# Pinning: the load generator on CPU 0; vdhost's poll lcore on the last CPU; every thread
# of the C and Rust virtiofsd on that same CPU (taskset; --peer-cpus changes it), so no
# backend serves requests on the load generator's CPU. vdhost's io_uring workers (punted
# I/O only) run off its poll CPU by design, i.e. on CPU 0 of a 2-CPU machine; their CPU
# time is counted in vdhost's.
# Prints tables of medians with spreads, writes bench-results/latest.{csv,json}, a text
# summary and PNG plots (gnuplot), and measures vdhost's idle CPU and RSS after the load.
# The Rust virtiofsd is included whenever it is available; the run says which, at its start
# and in the summary: "rust-virtiofsd: included (virtiofsd 1.13.x)" or
# "rust-virtiofsd: not available (<reason>; run scripts/rust-virtiofsd.sh)".
# Then the virtio-blk section, scripts/bench-blk.sh (see its header): vdhost's virtioblk
# plugin against qemu-storage-daemon's vhost-user-blk export on the same file, 4 KiB random
# and 128 KiB sequential reads and writes at the same depths, and its null mode; results in
# bench-results/blk-latest.{csv,json} and blk-latest-summary.txt (about 1.5 minutes in
# quick mode). --no-blk leaves it out, --blk-only runs only it (--direct: O_DIRECT on both).
# scripts/bench-compare.py A.json B.json compares the ratios of two runs (their latest.json).
# Runs never overlap: a second bench.sh waits for the first (flock on /tmp/vdhost-bench.lock,
# or $VDH_BENCH_LOCK).
#
# Usage: scripts/bench.sh [--quick | --full] [--rust-virtiofsd PATH | --no-rust-virtiofsd]
#                         [--fetch-peers] [--build-dir DIR] [--out DIR] [--reps N]
#                         [--duration SEC] [--warmup SEC] [--workloads LIST] [--depths LIST]
#                         [--peer-cpus LIST|all] [--keep] [--no-blk | --blk-only] [--direct] [--irq]
#   --quick  (default) 8 reps x 0.25 s per run (+0.1 s warm-up), QD 1 and 32, 7 workloads:
#            about 3 minutes on a 2-core machine once built, with the Rust virtiofsd
#   --full   10 reps x 2 s (+0.25 s warm-up), QD 1, 8, 32, 128, all 13 workloads (about
#            65 minutes with the Rust virtiofsd)
#   --rust-virtiofsd PATH  this Rust virtiofsd instead of the cached one
#   --no-rust-virtiofsd    leave the Rust virtiofsd out
#   --fetch-peers          fetch the Rust virtiofsd first if the cache lacks it (network)
#   --peer-cpus LIST       CPUs of the virtiofsd processes (taskset list; default: vdhost's
#                          poll CPU; 'all' leaves them unpinned)
#   --no-blk               leave the virtio-blk section (scripts/bench-blk.sh) out
#   --blk-only             run only the virtio-blk section (no virtiofsd needed)
#   --direct               virtio-blk section: O_DIRECT on both backends
#   --irq                  virtio-blk section: the guest waits on interrupts, not polling
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
mode=quick
rust=""
rust_mode=auto
fetch_peers=0
build_dir="$REPO/build"
out="$REPO/bench-results"
reps="" duration="" warmup="" workloads="" depths="" peer_cpus="" keep=0
blk=auto blk_args=()
VIRTIOFSD="${VDH_VIRTIOFSD:-/usr/lib/qemu/virtiofsd}"

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) mode=quick ;;
    --full) mode=full ;;
    --rust-virtiofsd) rust="$2"; rust_mode=path; shift ;;
    --no-rust-virtiofsd) rust=""; rust_mode=none ;;
    --fetch-peers) fetch_peers=1 ;;
    --build-dir) build_dir="$(realpath -m "$2")"; shift ;;
    --out) out="$(realpath -m "$2")"; shift ;;
    --reps) reps="$2"; shift ;;
    --duration) duration="$2"; shift ;;
    --warmup) warmup="$2"; shift ;;
    --peer-cpus) peer_cpus="$2"; shift ;;
    --workloads) workloads="$2"; shift ;;
    --depths) depths="$2"; shift ;;
    --keep) keep=1 ;;
    --no-blk) blk=none ;;
    --blk-only) blk=only ;;
    --direct) blk_args+=(--direct) ;;
    --irq) blk_args+=(--irq) ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bench.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

if [ "$mode" = quick ]; then
    : "${reps:=8}" "${duration:=0.25}" "${warmup:=0.1}" "${depths:=1,32}"
    : "${workloads:=getattr,lookup-hit,lookup-miss,read-4k-rand,write-4k-rand,read-1m-seq,meta-mix}"
    null_workloads="getattr,read-4k-rand"
    mq_workloads="read-4k-rand"
    mq_depths="32"
else
    : "${reps:=10}" "${duration:=2}" "${warmup:=0.25}" "${depths:=1,8,32,128}"
    : "${workloads:=getattr,lookup-hit,lookup-miss,open-release,read-4k-rand,write-4k-rand,read-128k-seq,read-1m-seq,write-128k-seq,write-1m-seq,create-unlink,readdirplus-10k,meta-mix}"
    null_workloads="getattr,lookup-hit,lookup-miss,open-release,read-4k-rand,read-1m-seq,meta-mix"
    mq_workloads="getattr,lookup-hit,read-4k-rand"
    mq_depths="32,128"
fi
file_mib=64
blk_args+=(--"$mode" --build-dir "$build_dir" --out "$out" --reps "$reps" --duration "$duration"
    --warmup "$warmup" --depths "$depths")
[ -z "$peer_cpus" ] || blk_args+=(--peer-cpus "$peer_cpus")
[ "$keep" -eq 0 ] || blk_args+=(--keep)
if [ "$blk" = only ]; then
    exec bash "$REPO/scripts/bench-blk.sh" "${blk_args[@]}"
fi

log() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }
command -v python3 >/dev/null || die "python3 is needed (scripts/setup.sh)"
[ -x "$VIRTIOFSD" ] || die "$VIRTIOFSD not found (qemu-system-x86 7.x ships it)"

# ---- the Rust virtiofsd: given, cached (or fetched with --fetch-peers), or left out -------
case "$rust_mode" in
path)
    [ -x "$rust" ] || die "--rust-virtiofsd $rust is not executable"
    ;;
auto)
    fetch_args=(--check)
    [ "$fetch_peers" -eq 0 ] || fetch_args=()
    err="$(mktemp /tmp/vdh-bench-rust.XXXXXX)"
    rc=0
    rust="$(bash "$REPO/scripts/rust-virtiofsd.sh" "${fetch_args[@]}" 2>"$err")" || rc=$?
    [ "$fetch_peers" -eq 0 ] || cat "$err" >&2
    if [ "$rc" -ne 0 ] || [ -z "$rust" ]; then
        rust=""
        rust_reason="$(tail -n 1 "$err" | sed 's/^rust-virtiofsd: //'); run scripts/rust-virtiofsd.sh"
    fi
    rm -f "$err"
    ;;
none) rust_reason="left out with --no-rust-virtiofsd" ;;
esac
if [ -n "$rust" ]; then
    rust_version="$("$rust" --version 2>&1 | head -n 1)" || die "$rust --version failed: $rust_version"
    rust_status="included ($rust_version)"
else
    rust_status="not available ($rust_reason)"
fi
log "rust-virtiofsd: $rust_status${rust:+ - $rust}"

. "$REPO/scripts/bench-lib.sh"
log "building vdhost, the virtiofs plugin and vdhost-bench in $build_dir"
bench_build "$build_dir" host/vdhost plugins/virtiofs/vdh-virtiofs.so tools/bench/vdhost-bench
bench_lock
# CPUs: vdhost's poll lcore on the last CPU, the load generator on CPU 0, the peers on the
# poll lcore's CPU (so each backend serves from one CPU and none from the generator's).
bench_cpus "$peer_cpus"
bench_workdir vdh-bench
share="$work/share"
mkdir -p "$share" "$work/nullshare" "$out"
csv="$work/runs.csv"
failures=0
start_time=$(date +%s)
bench_busy_probe

log "preparing $share (${file_mib} MiB files, 10000-entry directory)"
"$BENCH" --share-dir "$share" --prepare-only --file-size-mib "$file_mib" >/dev/null

start_vdhost() { # NAME BACKEND -> sets vd_pid, vd_sock
    local name="$1" backend="$2" dir="$share"
    [ "$backend" = null ] && dir="$work/nullshare"
    cat >"$work/$name.yaml" <<YAML
host:
  poll_lcores: [$lcore]
devices:
  - name: fs0
    type: virtiofs
    socket: $work/$name.sock
    lcore: $lcore
    config:
      shared_dir: $dir
      cache: auto
      backend: $backend
YAML
    "$VDHOST" --config "$work/$name.yaml" --plugin-dir "$PLUGINS" >"$work/$name.log" 2>&1 9>&- &
    vd_pid=$!
    pids+=("$vd_pid")
    vd_sock="$work/$name.sock"
    wait_socket "$vd_sock" "$vd_pid" || { cat "$work/$name.log" >&2; die "vdhost ($name) did not start"; }
}

# bench LABELS SOCKETS PIDS ARGS...: one vdhost-bench process, alternating between the
# sockets (comma-separated, with their labels and pids) for $reps repetitions; rows
# appended to $csv. RUN_DURATION / RUN_WARMUP / RUN_REPS override the mode's values.
bench() {
    local labels="$1" socks="$2" bpids="$3" rc=0
    shift 3
    "${BENCH_RUN[@]}" --socket "$socks" --no-prepare --poll --cpus "$bench_cpu" \
        --file-size-mib "$file_mib" --duration "${RUN_DURATION:-$duration}" \
        --warmup "${RUN_WARMUP:-$warmup}" --reps "${RUN_REPS:-$reps}" --rep 1 \
        --backend-pid "$bpids" --label "$labels" --csv "$csv" "$@" \
        >>"$work/bench.out" 2>>"$work/bench.err" || rc=$?
    if [ "$rc" -ne 0 ]; then
        failures=$((failures + 1))
        log "run failed ($labels: $*): rc=$rc; see below"
        tail -n 5 "$work/bench.err" >&2
    fi
}

# start_peer LABEL: a fresh virtiofsd (C or Rust) pinned to $peer_cpus; it serves one
# connection and exits when the frontend disconnects. Sets peer_pid, peer_sock.
start_peer() {
    local label="$1"
    peer_sock="$work/$label.sock"
    rm -f "$peer_sock"
    if [ "$label" = virtiofsd ]; then
        "${peer_pin[@]}" "$VIRTIOFSD" --socket-path="$peer_sock" -o source="$share" -o cache=auto \
            >>"$work/$label.log" 2>&1 9>&- &
    else
        "${peer_pin[@]}" "$rust" --socket-path="$peer_sock" --shared-dir="$share" --cache=auto \
            >>"$work/$label.log" 2>&1 9>&- &
    fi
    peer_pid=$!
    pids+=("$peer_pid")
    if ! wait_socket "$peer_sock" "$peer_pid"; then
        tail -n 5 "$work/$label.log" >&2
        die "$label did not start"
    fi
}

# ---- vdhost vs peers, alternating --------------------------------------------------------
start_vdhost vdhost passthrough
vdhost_pid=$vd_pid
labels=vdhost socks=$vd_sock bpids=$vd_pid peer_pids=()
for p in virtiofsd ${rust:+rust-virtiofsd}; do
    start_peer "$p"
    labels+=",$p" socks+=",$peer_sock" bpids+=",$peer_pid"
    peer_pids+=("$peer_pid")
done
IFS=, read -r -a wl <<<"$workloads"
log "mode $mode: ${#wl[@]} workloads x QD $depths x $reps reps, ${duration}s per run" \
    "(+${warmup}s warm-up), alternating $labels,raw; peers on CPU(s) $peer_cpus"
bench "$labels" "$socks" "$bpids" --workload "$workloads" --queue-depth "$depths" \
    --with-raw --share-dir "$share"
for p in "${peer_pids[@]}"; do
    # They exit when the frontend disconnects; make sure.
    for ((i = 0; i < 30; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    stop_pid "$p"
done

# ---- null backend ceiling ----------------------------------------------------------------
stop_pid "$vdhost_pid"
start_vdhost null null
null_pid=$vd_pid
log "null backend: $reps reps"
bench null "$vd_sock" "$null_pid" --workload "$null_workloads" --queue-depth "$depths"
stop_pid "$null_pid"

# ---- vdhost with two request queues (vdhost only: virtiofsd serves one) ------------------
start_vdhost vdhost passthrough
vdhost_pid=$vd_pid
log "vdhost with 2 request queues: $reps reps"
bench vdhost "$vd_sock" "$vdhost_pid" --queues 2 --workload "$mq_workloads" \
    --queue-depth "$mq_depths"
# Every workload once more at QD32, sampling vdhost's memory in the middle: RssAnon +
# RssFile is its own memory, RssShmem the guest memory (memfd) it has mapped.
RUN_DURATION=0.3 RUN_WARMUP=0 RUN_REPS=1 bench vdhost-rss "$vd_sock" "$vdhost_pid" \
    --workload "$workloads" --queue-depth 32 &
rss_job=$!
sleep 1
load_rss=$(awk '/^(VmRSS|RssAnon|RssFile|RssShmem):/ {printf "%s %s ", $1, $2}' /proc/"$vdhost_pid"/status)
wait "$rss_job" || true

# ---- idle CPU and RSS after the load -----------------------------------------------------
cpu_ns() { # PID: on-CPU nanoseconds of all its threads
    cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f\n", s}'
}
t_stop=$(date +%s.%N)
c0=$(cpu_ns "$vdhost_pid")
sleep 1
c1=$(cpu_ns "$vdhost_pid")
sleep 2
c2=$(cpu_ns "$vdhost_pid")
idle_first_s=$(python3 -c "print(($c1-$c0)/1e9/1.0*100)")
idle_pct=$(python3 -c "print(($c2-$c1)/1e9/2.0*100)")
rss_kib=$(awk '/^VmRSS:/ {print $2}' /proc/"$vdhost_pid"/status)
hwm_kib=$(awk '/^VmHWM:/ {print $2}' /proc/"$vdhost_pid"/status)
stop_pid "$vdhost_pid"
elapsed=$(( $(date +%s) - start_time ))
log "vdhost memory under load (KiB): $load_rss"
log "load stopped at $t_stop; vdhost CPU: ${idle_first_s}% in the first second, ${idle_pct}% over the next 2 s; VmRSS ${rss_kib} KiB (peak ${hwm_kib} KiB)"

# ---- report ------------------------------------------------------------------------------
load_end="$(cut -d' ' -f1-3 /proc/loadavg)"
log "load average at the end: $load_end"
cp "$csv" "$out/latest.csv"
python3 - "$csv" "$out" "$work" "$mode" "$idle_pct" "$idle_first_s" "$rss_kib" "$hwm_kib" \
    "$elapsed" "$failures" "$reps" "$duration" "$warmup" "$depths" "$load_rss" "$rust_status" \
    "$rust" "$peer_cpus" "$lcore" "$bench_cpu" "$load_start" "$load_end" "$busy_before" <<'PY'
import csv, json, os, platform, statistics, subprocess, sys
from collections import defaultdict

(csv_path, out, work, mode, idle_pct, idle_first, rss_kib, hwm_kib, elapsed, failures,
 reps, duration, warmup, depths, load_rss, rust_status, rust_path, peer_cpus, lcore,
 bench_cpu, load_start, load_end, busy_before) = sys.argv[1:]
lr = load_rss.split()
load_mem = {lr[i].rstrip(":"): int(lr[i + 1]) / 1024 for i in range(0, len(lr) - 1, 2)}
rows = list(csv.DictReader(open(csv_path)))
num = lambda r, k: float(r[k])
# Time runnable but not running (another task had the CPU), as % of the run.
for r in rows:
    for who in ("backend", "client"):
        w = num(r, who + "_wait_s")
        r[who + "_wait_pct"] = str(w / num(r, "elapsed_s") * 100 if w >= 0 else -1)
groups = defaultdict(list)
for r in rows:
    if r["label"] == "vdhost-rss":
        continue
    groups[(r["label"], r["workload"], int(r["queues"]), int(r["queue_depth"]))].append(r)

# Per (backend, workload, queues, depth): the median of each metric over the reps, and its
# min and max (the spread); by_rep keeps each rep's row for the paired ratios.
metrics = ["ops_s", "req_s", "mb_s", "lat_p50_us", "lat_p99_us", "lat_p999_us", "lat_mean_us",
           "backend_cpu_us_per_op", "client_cpu_us_per_op", "backend_wait_pct",
           "client_wait_pct"]
med = {}
by_rep = {}
# A negative CPU or wait figure is "not measured" (no backend pid, or a run without a
# completed op): left out of that metric's statistics, -1 if no run has it.
def stat(rs, k, fn):
    vals = [num(r, k) for r in rs]
    if k.startswith("backend_") or k.endswith("_wait_pct"):
        vals = [v for v in vals if v >= 0]
    return fn(vals) if vals else -1.0
for key, rs in groups.items():
    m = {k: stat(rs, k, statistics.median) for k in metrics}
    m["min"] = {k: stat(rs, k, min) for k in metrics}
    m["max"] = {k: stat(rs, k, max) for k in metrics}
    m["runs"] = len(rs)
    m["errors"] = sum(int(r["err_errno"]) + int(r["err_proto"]) + int(r["err_verify"]) +
                      int(r["timed_out"]) for r in rs)
    med[key] = m
    by_rep[key] = {int(r["rep"]): r for r in rs}

def key_of(label, w, qd, q=1):
    return (label, w, 0 if label == "raw" else q, 1 if label == "raw" else qd)

def get(label, w, qd, q=1):
    return med.get(key_of(label, w, qd, q))

def paired(a, b, metric):
    """Median, min and max of a/b over the reps both have: each rep of a ran right
    next to the same rep of b, so a change in the machine's load cancels out."""
    ra, rb = by_rep.get(a, {}), by_rep.get(b, {})
    rs = [num(ra[i], metric) / num(rb[i], metric) for i in sorted(ra)
          if i in rb and num(rb[i], metric) > 0 and num(ra[i], metric) > 0]
    if not rs:
        return None, None
    return statistics.median(rs), [min(rs), max(rs)]

workloads = []
for r in rows:
    if r["workload"] not in workloads and r["label"] != "vdhost-rss":
        workloads.append(r["workload"])
qds = sorted({int(r["queue_depth"]) for r in rows if r["label"] == "vdhost" and r["queues"] == "1"})
peers = [p for p in ("virtiofsd", "rust-virtiofsd") if any(k[0] == p for k in med)]

summary = []
for w in workloads:
    for qd in qds:
        v = get("vdhost", w, qd)
        if v is None:
            continue
        s = {"workload": w, "queue_depth": qd, "vdhost": v}
        for p in peers:
            s[p] = get(p, w, qd)
            r, sp = paired(key_of("vdhost", w, qd), key_of(p, w, qd), "ops_s")
            s["ratio_" + p], s["ratio_" + p + "_spread"] = r, sp
            r, sp = paired(key_of("vdhost", w, qd), key_of(p, w, qd), "backend_cpu_us_per_op")
            s["cpu_ratio_" + p], s["cpu_ratio_" + p + "_spread"] = r, sp
        s["null"] = get("null", w, qd)
        raw = get("raw", w, 1)
        s["raw"] = raw
        # The raw baseline takes its turn among the backends at QD1 in every rep.
        s["ratio_raw"], s["ratio_raw_spread"] = paired(key_of("vdhost", w, qd),
                                                       key_of("raw", w, 1), "ops_s")
        if raw:
            s["overhead_p50_us"] = v["lat_p50_us"] - raw["lat_p50_us"]
            s["overhead_mean_us"] = v["lat_mean_us"] - raw["lat_mean_us"]
        summary.append(s)
mq = [{"workload": k[1], "queues": k[2], "queue_depth": k[3], **m}
      for k, m in sorted(med.items()) if k[0] == "vdhost" and k[2] > 1]

def f(v, fmt="{:.0f}"):
    return "-" if v is None else fmt.format(v)

def spread_pct(m, k):
    """'-3/+2%': min and max over the reps, from the median."""
    if m is None or m[k] <= 0:
        return "-"
    return (f"-{(m[k] - m['min'][k]) / m[k] * 100:.0f}/"
            f"+{(m['max'][k] - m[k]) / m[k] * 100:.0f}%")

def with_range(v, sp, fmt="{:.2f}"):
    """'1.40 [1.31-1.52]': a median and its min and max."""
    if v is None:
        return "-"
    return f"{fmt.format(v)} [{fmt.format(sp[0])}-{fmt.format(sp[1])}]"

def cpu_cell(m):
    k = "backend_cpu_us_per_op"
    if m is None or m[k] < 0:
        return "-"
    g = lambda v: f"{v:.0f}" if v >= 100 else (f"{v:.1f}" if v >= 10 else f"{v:.2f}")
    return f"{g(m[k])} [{g(m['min'][k])}-{g(m['max'][k])}]"

# Column names: the ops/s column and the prefix of the p99 and cpu columns.
col = {"virtiofsd": "virtiofsd", "rust-virtiofsd": "rust-vfsd"}
short = {"virtiofsd": "virti", "rust-virtiofsd": "rust"}
n_reps = max((m["runs"] for k, m in med.items() if k[0] == "vdhost"), default=0)
lines = [f"rust-virtiofsd: {rust_status}",
         f"load average: {load_start} at the start, {load_end} at the end "
         f"({os.cpu_count()} CPUs); CPUs {busy_before}% busy in the second before", ""]

lines.append(f"ops/s: median of {n_reps} reps of {duration} s, min and max as % of it; "
             "ratio = vdhost/peer, median [min-max] of the per-rep ratios")
hdr = f"{'workload':<16}{'qd':>4}{'vdhost':>10}{'spread':>11}"
for p in peers:
    hdr += f"{col[p]:>10}{'spread':>11}{'ratio [min-max]':>21}"
lines.append(hdr)
for s in summary:
    v = s["vdhost"]
    line = f"{s['workload']:<16}{s['queue_depth']:>4}"
    line += f"{f(v['ops_s']):>10}{spread_pct(v, 'ops_s'):>11}"
    for p in peers:
        pm = s.get(p)
        line += f"{f(pm['ops_s'] if pm else None):>10}{spread_pct(pm, 'ops_s'):>11}"
        line += f"{with_range(s['ratio_' + p], s['ratio_' + p + '_spread']):>21}"
    lines.append(line)

lines.append("")
lines.append("backend CPU us per op (all threads of the backend process): median [min-max]; "
             "cpu ratio = vdhost/peer (below 1: vdhost spends less CPU per op)")
hdr = f"{'workload':<16}{'qd':>4}{'vd_cpu':>21}"
for p in peers:
    hdr += f"{(short[p] + '_cpu'):>21}{'cpu ratio':>21}"
lines.append(hdr)
for s in summary:
    line = f"{s['workload']:<16}{s['queue_depth']:>4}{cpu_cell(s['vdhost']):>21}"
    for p in peers:
        line += f"{cpu_cell(s.get(p)):>21}"
        line += f"{with_range(s['cpu_ratio_' + p], s['cpu_ratio_' + p + '_spread']):>21}"
    lines.append(line)

# How much the machine's other tasks got in the way, over the head-to-head runs.
def wait_stats(labels, who):
    vals = [num(r, who + "_wait_pct") for r in rows if r["label"] in labels and
            int(r["queues"]) == 1 and num(r, who + "_wait_pct") >= 0]
    if not vals:
        return None
    return {"median": statistics.median(vals), "max": max(vals)}
cpu_wait = {l: wait_stats([l], "backend") for l in ["vdhost"] + peers}
cpu_wait["load_generator"] = wait_stats(["vdhost"] + peers, "client")
lines.append("")
lines.append("time runnable but waiting for a CPU (other tasks had it), % of each run, all "
             "threads: median [max]")
lines.append("  " + ", ".join(f"{l} {v['median']:.1f} [{v['max']:.0f}]"
                              for l, v in cpu_wait.items() if v))
busy = [l for l, v in cpu_wait.items() if v and v["median"] > 5]
if busy:
    lines.append(f"  warning: other tasks took the CPUs of {', '.join(busy)} more than 5% of the "
                 "time (median): the machine was not idle, expect ratios that do not repeat")

lines.append("")
lines.append("latency and baselines (medians; vd/raw [min-max]; ovh_us = vdhost p50 - raw p50 "
             "at QD1; p99 in us)")
hdr = f"{'workload':<16}{'qd':>4}{'null':>10}{'raw':>10}{'vd/raw [min-max]':>20}"
hdr += f"{'ovh_us':>8}{'vd_p99':>9}"
for p in peers:
    hdr += f"{(short[p] + '_p99'):>10}"
lines.append(hdr)
for s in summary:
    v, n, raw = s["vdhost"], s["null"], s["raw"]
    qd1 = s["queue_depth"] == 1
    line = f"{s['workload']:<16}{s['queue_depth']:>4}{f(n['ops_s'] if n else None):>10}"
    line += f"{f(raw['ops_s'] if raw and qd1 else None):>10}"
    line += f"{(with_range(s.get('ratio_raw'), s.get('ratio_raw_spread')) if qd1 else '-'):>20}"
    line += f"{f(s.get('overhead_p50_us') if qd1 else None, '{:.2f}'):>8}"
    line += f"{f(v['lat_p99_us'], '{:.1f}'):>9}"
    for p in peers:
        pm = s.get(p)
        line += f"{f(pm['lat_p99_us'] if pm else None, '{:.1f}'):>10}"
    lines.append(line)
if mq:
    lines.append("")
    lines.append("vdhost with more request queues (one poll lcore)")
    for m in mq:
        lines.append(f"{m['workload']:<16} queues {m['queues']} qd {m['queue_depth']:>4}: "
                     f"{m['ops_s']:.0f} ops/s ({spread_pct(m, 'ops_s')}), "
                     f"p99 {m['lat_p99_us']:.1f} us")
lines.append("")
lines.append(f"MB/s medians: " + ", ".join(
    f"{s['workload']} QD{s['queue_depth']} vdhost {s['vdhost']['mb_s']:.0f}"
    + (f" raw {s['raw']['mb_s']:.0f}" if s['raw'] else "")
    for s in summary if s["vdhost"]["mb_s"] > 0))

# Targets.
def best(label, w, key="ops_s"):
    vals = [m[key] for k, m in med.items() if k[0] == label and k[1] == w and k[2] <= 1]
    return max(vals) if vals else None

targets = []
def target(name, value, limit, ok, unit=""):
    targets.append({"target": name, "value": value, "limit": limit,
                    "met": bool(ok) if value is not None else None, "unit": unit})
for w in ("getattr", "lookup-hit", "read-4k-rand"):
    s = next((s for s in summary if s["workload"] == w and s["queue_depth"] == 32), None)
    r = s.get("ratio_virtiofsd") if s else None
    target(f"{w} QD32 ops/s >= 2x C virtiofsd", r, 2.0, r is not None and r >= 2.0, "x")
for w in ("getattr", "read-4k-rand"):
    s = next((s for s in summary if s["workload"] == w and s["queue_depth"] == 1), None)
    o = s.get("overhead_p50_us") if s else None
    target(f"{w} QD1 overhead over raw <= 2 us (p50)", o, 2.0, o is not None and o <= 2.0, "us")
raw1m = get("raw", "read-1m-seq", 1)
vd1m = best("vdhost", "read-1m-seq", "mb_s")
pct = vd1m / raw1m["mb_s"] * 100 if raw1m and vd1m and raw1m["mb_s"] > 0 else None
target("read-1m-seq >= 80% of raw pread throughput (best QD)", pct, 80, pct is not None and pct >= 80, "%")
nulls = [m["req_s"] for k, m in med.items() if k[0] == "null"]
nb = max(nulls) if nulls else None
target("null backend >= 1,000,000 req/s", nb, 1e6, nb is not None and nb >= 1e6, "req/s")
ip = float(idle_pct)
target("vdhost idle CPU < 1% (from 1 s after the load, over 2 s)", ip, 1.0, ip < 1.0, "%")
rss = int(rss_kib) / 1024
own = load_mem.get("RssAnon", 0) + load_mem.get("RssFile", 0)
target("vdhost RSS < 64 MiB (one share, idle after the load)", rss, 64, rss < 64, "MiB")
target("vdhost own RSS < 64 MiB under load (RssAnon+RssFile)", own, 64, own < 64, "MiB")
lines.append("")
lines.append("targets:")
for t in targets:
    v = t["value"]
    vs = "-" if v is None else (f"{v:,.0f}" if t["unit"] == "req/s" else f"{v:.2f}")
    state = "not measured" if t["met"] is None else ("MET" if t["met"] else "NOT MET")
    lines.append(f"  [{state}] {t['target']}: {vs} {t['unit']}")
lines.append(f"vdhost idle CPU: {float(idle_first):.2f}% in the first second after the load, "
             f"{ip:.2f}% over the next 2 s; VmRSS {rss:.1f} MiB idle after the load, VmHWM "
             f"{int(hwm_kib)/1024:.1f} MiB; under load: " +
             ", ".join(f"{k} {v:.1f} MiB" for k, v in load_mem.items()) +
             " (RssShmem = guest memory mapped from the frontend)")
errs = sum(m["errors"] for m in med.values())
lines.append(f"errors in replies: {errs}; failed runs: {failures}; total time {elapsed} s")
text = "\n".join(lines)
print(text)
open(os.path.join(out, "latest-summary.txt"), "w").write(text + "\n")

def cpu_model():
    try:
        for l in open("/proc/cpuinfo"):
            if l.startswith("model name"):
                return l.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()

pin = "unpinned" if peer_cpus == "all" else f"pinned to CPU {peer_cpus} (taskset)"
doc = {
    "generated": subprocess.run(["date", "-u", "+%Y-%m-%dT%H:%M:%SZ"], capture_output=True,
                                text=True).stdout.strip(),
    "mode": mode, "reps": int(reps), "duration_s": float(duration), "warmup_s": float(warmup),
    "depths": depths,
    "machine": {"cpus": os.cpu_count(), "cpu_model": cpu_model(), "kernel": platform.release()},
    "load_average": {"start": load_start, "end": load_end},
    "cpu_busy_pct_before": int(busy_before),
    "cpu_wait_pct": cpu_wait,
    "setup": {"vdhost": f"one poll lcore (CPU {lcore}), cache: auto",
              "load_generator": f"CPU {bench_cpu}, --poll",
              "alternation": "one connection per backend; per rep, each workload and depth "
                             "runs on every backend back to back (raw at the first depth), "
                             "order rotated per rep",
              "virtiofsd": f"/usr/lib/qemu/virtiofsd -o cache=auto, 1 request queue, {pin}",
              "rust-virtiofsd": (f"{rust_path} --cache=auto, 1 request queue, {pin}; "
                                 if rust_path else "") + rust_status,
              "ratios": "vdhost/peer: median, min and max of the per-rep ratios "
                        "(ratio_<peer>: ops/s, cpu_ratio_<peer>: backend CPU us per op; "
                        "ratio_raw: vdhost/raw ops/s)"},
    "summary": summary, "multi_queue": mq, "targets": targets,
    "vdhost_idle_cpu_pct": ip, "vdhost_cpu_first_second_pct": float(idle_first),
    "vdhost_rss_mib": rss, "vdhost_hwm_mib": int(hwm_kib) / 1024,
    "vdhost_memory_under_load_mib": load_mem,
    "errors": errs, "failed_runs": int(failures), "elapsed_s": int(elapsed), "runs": rows,
}
json.dump(doc, open(os.path.join(out, "latest.json"), "w"), indent=1)

# Plot data: one file per chart (each value with its min and max), then gnuplot.
labels = ["vdhost"] + peers + ["null"]
def dat(name, header, data):
    with open(os.path.join(work, name), "w") as fh:
        fh.write("# " + " ".join(header) + "\n")
        for row in data:
            fh.write(" ".join(str(x) for x in row) + "\n")
def triple(m, metric):
    if m is None or m[metric] <= 0:
        return ["NaN"] * 3
    return [m[metric], m["min"][metric], m["max"][metric]]
charts = []
chart_metrics = (("ops_s", "ops/s"), ("lat_p99_us", "p99 latency (us)"),
                 ("backend_cpu_us_per_op", "backend CPU us per op"))
for qd in qds:
    for metric, title in chart_metrics:
        cols = labels + (["raw"] if qd == 1 and metric != "backend_cpu_us_per_op" else [])
        data = []
        for w in workloads:
            vals = []
            for l in cols:
                vals += triple(get(l, w, qd), metric)
            data.append([w] + vals)
        fn = f"by_workload_{metric}_qd{qd}"
        dat(fn + ".dat", ["workload"] + cols, data)
        charts.append((fn, f"{title} by workload, queue depth {qd} (bars: min-max over reps)",
                       cols, "hist"))
    # vdhost/peer ratios of ops/s and of CPU per op, with their spreads.
    cols, data = [], []
    for p in peers:
        cols += [f"ops/s vs {p}", f"cpu/op vs {p}"]
    for w in workloads:
        s = next((s for s in summary if s["workload"] == w and s["queue_depth"] == qd), None)
        vals = []
        for p in peers:
            for k in ("ratio_", "cpu_ratio_"):
                r = s.get(k + p) if s else None
                vals += ["NaN"] * 3 if r is None else [r] + s[k + p + "_spread"]
        data.append([w] + vals)
    if peers:
        fn = f"ratio_qd{qd}"
        dat(fn + ".dat", ["workload"] + cols, data)
        charts.append((fn, f"vdhost/peer by workload, queue depth {qd}: ops/s (above 1: "
                       f"vdhost faster), CPU per op (below 1: vdhost cheaper)", cols, "hist"))
for w in ("getattr", "lookup-hit", "read-4k-rand"):
    if w not in workloads:
        continue
    for metric, title in chart_metrics:
        data = []
        for qd in qds:
            vals = []
            for l in labels:
                vals += triple(get(l, w, qd), metric)
            data.append([qd] + vals)
        fn = f"by_qd_{metric}_{w}"
        dat(fn + ".dat", ["qd"] + labels, data)
        charts.append((fn, f"{w}: {title} by queue depth", labels, "lines"))
gp = ["set terminal pngcairo size 1000,560 noenhanced font ',10'", "set grid ytics",
      "set key top left", "set logscale y"]
for fn, title, cols, kind in charts:
    gp.append(f"set output '{os.path.join(out, fn + '.png')}'")
    gp.append(f"set title '{title}'")
    src = os.path.join(work, fn + ".dat")
    if kind == "hist":
        gp += ["set style data histograms", "set style histogram errorbars gap 1 lw 1",
               "set style fill solid 0.8 border -1", "set xtics rotate by -30 scale 0",
               "unset logscale x", "set xlabel ''"]
        plots = [f"'{src}' using {3 * i + 2}:{3 * i + 3}:{3 * i + 4}:xtic(1) title '{c}'"
                 for i, c in enumerate(cols)]
        if fn.startswith("ratio_"):
            plots.append("1 with lines lc rgb 'black' notitle")
    else:
        gp += ["set style data yerrorlines", "set logscale x 2", "set xtics norotate",
               "set xlabel 'queue depth'"]
        plots = [f"'{src}' using 1:{3 * i + 2}:{3 * i + 3}:{3 * i + 4} title '{c}'"
                 for i, c in enumerate(cols)]
    gp.append("plot " + ", ".join(plots))
open(os.path.join(work, "plots.gp"), "w").write("\n".join(gp) + "\n")
PY
if command -v gnuplot >/dev/null; then
    rm -f "$out"/by_*.png "$out"/ratio_*.png
    if gnuplot "$work/plots.gp" 2>"$work/gnuplot.err"; then
        log "plots: $(cd "$out" && ls by_*.png ratio_*.png | tr '\n' ' ')"
    else
        log "gnuplot failed:"; head -n 5 "$work/gnuplot.err" >&2
    fi
else
    log "gnuplot not installed (scripts/setup.sh installs gnuplot-nox): no plots"
fi
log "results: $out/latest.csv, $out/latest.json, $out/latest-summary.txt"

# ---- virtio-blk: vdhost vs qemu-storage-daemon (under this script's lock) ----------------
if [ "$blk" = auto ]; then
    if [ -x "${VDH_QSD:-/usr/bin/qemu-storage-daemon}" ]; then
        VDH_BENCH_LOCKED=1 bash "$REPO/scripts/bench-blk.sh" "${blk_args[@]}" 9>&- ||
            failures=$((failures + 1))
    else
        log "virtio-blk section skipped: qemu-storage-daemon not installed (qemu-system-common)"
    fi
fi
[ "$failures" -eq 0 ]

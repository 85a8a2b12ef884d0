#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# What telemetry costs the hot path, measured in one run (issue 9): three vdhost processes
# serve the same share, alternated by one vdhost-bench process exactly as scripts/bench.sh
# alternates vdhost and its peers:
#   timing     the default: every request timed into the latency histograms
#   timing-b   the same again, an A/A control: how far two identical backends differ here
#   no-timing  `request_timing: false`: no TSC read per request, histograms empty
# (Every other counter is a plain store on a line only its poll lcore writes, and the
# lcores' busy/idle time reuses the TSC read each loop pass already made; only the request
# timing is per-request work that telemetry added, so it is what can be switched off.)
# Per workload and depth it prints ops/s medians with spreads, the ratio timing/no-timing
# (median [min-max] of the per-repetition ratios; below 1 = timing costs throughput), the
# A/A ratio timing/timing-b, and backend CPU us per op. Verdict per row: "within noise"
# when timing/no-timing is within the A/A ratio's [min-max] or within 3% of 1.
# After the load it checks that the no-timing backend's histograms stayed empty and the
# timing backends timed every request (their Prometheus endpoints), so the A/B is one.
# Results: OUT/telemetry-ab.{csv,json,txt}. Exit 1 if a run or the histogram check failed
# (a row outside the noise is reported, not an error: this is a measurement).
#
# Usage: scripts/bench-telemetry.sh [--build-dir DIR] [--out DIR] [--reps N] [--duration S]
#                                   [--warmup S] [--workloads LIST] [--depths LIST] [--keep]
#   defaults: 10 reps x 0.25 s (+0.1 s warm-up), QD 1 and 32,
#             getattr,lookup-hit,read-4k-rand,write-4k-rand (about 2 minutes)
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
build_dir="$REPO/build"
out="$REPO/bench-results"
reps=10 duration=0.25 warmup=0.1 depths=1,32 keep=0
workloads=getattr,lookup-hit,read-4k-rand,write-4k-rand

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
    --build-dir) build_dir="$(realpath -m "$2")"; shift ;;
    --out) out="$(realpath -m "$2")"; shift ;;
    --reps) reps="$2"; shift ;;
    --duration) duration="$2"; shift ;;
    --warmup) warmup="$2"; shift ;;
    --workloads) workloads="$2"; shift ;;
    --depths) depths="$2"; shift ;;
    --keep) keep=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bench-telemetry.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

log() { printf 'bench-telemetry: %s\n' "$*" >&2; }
die() { printf 'bench-telemetry: %s\n' "$*" >&2; exit 1; }

. "$REPO/scripts/bench-lib.sh"
bench_build "$build_dir" host/vdhost plugins/virtiofs/vdh-virtiofs.so tools/bench/vdhost-bench
bench_lock
# CPUs as in bench.sh: the three poll lcores on the last CPU (only the one being measured
# is busy; the others sleep on their kick eventfds), the load generator on CPU 0.
bench_cpus
bench_workdir vdh-bench-telemetry
share="$work/share"
mkdir -p "$share" "$out"
csv="$work/runs.csv"

start_vdhost() { # LABEL TIMING -> appends to labels, socks, bpids
    local name="$1" timing="$2"
    cat >"$work/$name.yaml" <<YAML
host:
  poll_lcores: [$lcore]
  metrics:
    listen: "unix:$work/$name.metrics/metrics.sock"
devices:
  - name: fs0
    type: virtiofs
    socket: $work/$name.sock
    lcore: $lcore
    config:
      shared_dir: $share
      cache: auto
      request_timing: $timing
YAML
    "$VDHOST" --config "$work/$name.yaml" --plugin-dir "$PLUGINS" >"$work/$name.log" 2>&1 9>&- &
    local pid=$!
    pids+=("$pid")
    wait_socket "$work/$name.sock" "$pid" || { cat "$work/$name.log" >&2; die "vdhost ($name) did not start"; }
    labels+="${labels:+,}$name" socks+="${socks:+,}$work/$name.sock" bpids+="${bpids:+,}$pid"
}

log "preparing the share"
"$BENCH" --prepare-only --share-dir "$share" --file-size-mib 64 >/dev/null
labels="" socks="" bpids=""
start_vdhost timing true
start_vdhost timing-b true
start_vdhost no-timing false
log "$reps reps x ${duration}s (+${warmup}s warm-up), QD $depths, $workloads; alternating $labels"
rc=0
"${BENCH_RUN[@]}" --socket "$socks" --no-prepare --poll --cpus "$bench_cpu" \
    --file-size-mib 64 --duration "$duration" --warmup "$warmup" --reps "$reps" --rep 1 \
    --backend-pid "$bpids" --label "$labels" --csv "$csv" --workload "$workloads" \
    --queue-depth "$depths" >"$work/bench.out" 2>"$work/bench.err" || rc=$?
if [ "$rc" -ne 0 ]; then
    tail -n 5 "$work/bench.err" >&2
    die "vdhost-bench failed (rc $rc)"
fi

# The A/B is only one if the switch did what it says: each backend's Prometheus metrics
# after the load (requests counted by all; timed only where timing is on).
for name in timing timing-b no-timing; do
    curl -sf --max-time 5 --unix-socket "$work/$name.metrics/metrics.sock" \
        http://localhost/metrics >"$work/$name.metrics.txt" ||
        die "GET /metrics ($name) failed"
done

python3 - "$csv" "$work" "$out" "$reps" "$duration" "$warmup" <<'PY'
import csv, json, os, re, shutil, statistics, sys

path, work, out, reps, duration, warmup = sys.argv[1:7]
rows = list(csv.DictReader(open(path)))
runs = {}  # (label, workload, qd) -> {rep: row}
for r in rows:
    runs.setdefault((r["label"], r["workload"], int(r["queue_depth"])), {})[int(r["rep"])] = r
keys = sorted({(w, qd) for (_, w, qd) in runs}, key=lambda k: (k[1], k[0]))
labels = ("timing", "timing-b", "no-timing")
errors = sum(int(r["err_errno"]) + int(r["err_proto"]) + int(r["timed_out"]) for r in rows)


def med_spread(vals):
    m = statistics.median(vals)
    return m, (min(vals) / m - 1) * 100 if m else 0, (max(vals) / m - 1) * 100 if m else 0


def ratios(a, b, w, qd, field="ops_s"):
    ra, rb = runs.get((a, w, qd), {}), runs.get((b, w, qd), {})
    v = [float(ra[k][field]) / float(rb[k][field])
         for k in sorted(ra) if k in rb and float(rb[k][field]) > 0]
    return (statistics.median(v), min(v), max(v)) if v else None


result = {"method": "three vdhost processes on one CPU, one vdhost-bench alternating them "
                    "per repetition; ratios are medians [min-max] of per-rep ratios",
          "reps": int(reps), "duration_s": float(duration), "warmup_s": float(warmup),
          "rows": [], "errors": errors}
lines = ["ops/s: median of reps, spread = min/max in % of it; ab = timing/no-timing, "
         "aa = timing/timing-b (median [min-max] of per-rep ratios; below 1: the first is slower)",
         f"{'workload':15} {'qd':>3} {'timing':>9} {'spread':>9} {'no-timing':>9} {'spread':>9} "
         f"{'ab ratio [min-max]':>20} {'aa ratio [min-max]':>20} {'cpu us/op t/nt':>15}  verdict"]
outside = 0
for w, qd in keys:
    med = {}
    for l in labels:
        vals = [float(r["ops_s"]) for r in runs.get((l, w, qd), {}).values()]
        med[l] = med_spread(vals) if vals else (0, 0, 0)
    ab, aa = ratios("timing", "no-timing", w, qd), ratios("timing", "timing-b", w, qd)
    cpu = {l: statistics.median([float(r["backend_cpu_us_per_op"])
                                 for r in runs.get((l, w, qd), {}).values()] or [0])
           for l in labels}
    within = ab is not None and aa is not None and (
        aa[1] <= ab[0] <= aa[2] or abs(ab[0] - 1) <= 0.03)
    outside += not within
    fmt = lambda r: f"{r[0]:.3f} [{r[1]:.2f}-{r[2]:.2f}]" if r else "-"
    lines.append(f"{w:15} {qd:3d} {med['timing'][0]:9.0f} {med['timing'][1]:+4.0f}/{med['timing'][2]:+.0f}% "
                 f"{med['no-timing'][0]:9.0f} {med['no-timing'][1]:+4.0f}/{med['no-timing'][2]:+.0f}% "
                 f"{fmt(ab):>20} {fmt(aa):>20} {cpu['timing']:7.2f}/{cpu['no-timing']:<7.2f} "
                 f"{'within noise' if within else 'OUTSIDE noise'}")
    result["rows"].append({"workload": w, "queue_depth": qd,
                           **{f"ops_s_{l}": med[l][0] for l in labels},
                           **{f"cpu_us_per_op_{l}": cpu[l] for l in labels},
                           "ratio_timing_no_timing": ab, "ratio_timing_timing_b": aa,
                           "within_noise": within})

# Histogram check: requests counted by every backend, timed only where timing is on.
def metric_sum(name, family):
    total = 0.0
    for line in open(os.path.join(work, f"{name}.metrics.txt")):
        m = re.match(r"^(\w+)(\{[^}]*\})? (\S+)$", line.strip())
        if m and m.group(1) == family:
            total += float(m.group(3))
    return total


checks = []
for name in labels:
    timed = metric_sum(name, "vdhost_fuse_request_duration_seconds_count")
    counted = metric_sum(name, "vdhost_fuse_requests_total")
    ok = counted > 0 and (timed >= counted * 0.99 if name != "no-timing" else timed == 0)
    checks.append((name, timed, counted, ok))
    result[f"timed_requests_{name}"] = timed
    result[f"requests_{name}"] = counted
lines.append("")
for name, timed, counted, ok in checks:
    lines.append(f"histogram check: {name}: {timed:.0f} of {counted:.0f} requests timed "
                 f"({'expected: all' if name != 'no-timing' else 'expected: none'}): "
                 f"{'ok' if ok else 'FAILED'}")
lines.append(f"rows outside the noise: {outside} of {len(keys)}; bench errors: {errors}")
result["rows_outside_noise"] = outside
result["histogram_check_ok"] = all(c[-1] for c in checks)
text = "\n".join(lines)
print(text)
open(os.path.join(out, "telemetry-ab.txt"), "w").write(text + "\n")
json.dump(result, open(os.path.join(out, "telemetry-ab.json"), "w"), indent=1)
shutil.move(path, os.path.join(out, "telemetry-ab.csv"))  # /tmp may be another filesystem
sys.exit(0 if result["histogram_check_ok"] and errors == 0 and keys else 1)
PY

#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# scripts/bench-telemetry.sh, briefly (2 reps of 0.1 s): three vdhost processes, one with
# request_timing off, alternated by vdhost-bench; its result files, its ratios, and its
# check that only the no-timing backend left its latency histograms empty. No timing
# assertions. TAP output.
# Usage: bench_telemetry_test.sh BUILD_DIR
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
BUILD="$(realpath "$1")"
tmp="$(mktemp -d /tmp/vdh-bench-telemetry-test.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
echo "1..5"
n=0
tap() { # DESCRIPTION RC
    n=$((n + 1))
    if [ "$2" -eq 0 ]; then echo "ok $n - $1"; else echo "not ok $n - $1 (rc=$2)"; fi
}
rc=0
bash "$here/../../scripts/bench-telemetry.sh" --build-dir "$BUILD" --out "$tmp/out" --reps 2 \
    --duration 0.1 --warmup 0.05 --workloads getattr,read-4k-rand --depths 1 \
    >"$tmp/stdout" 2>"$tmp/stderr" || rc=$?
sed 's/^/# /' "$tmp/stdout"
[ "$rc" -eq 0 ] || sed 's/^/# /' "$tmp/stderr" | tail -n 20
tap "bench-telemetry.sh exits 0" "$rc"
for f in telemetry-ab.txt telemetry-ab.json telemetry-ab.csv; do
    [ -s "$tmp/out/$f" ] || { tap "result files written" 1; f=; break; }
done
[ -z "${f:-}" ] || tap "result files written" 0
python3 - "$tmp/out/telemetry-ab.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
rows = {(x["workload"], x["queue_depth"]): x for x in r["rows"]}
ok = set(rows) == {("getattr", 1), ("read-4k-rand", 1)} and all(
    x["ratio_timing_no_timing"] and 0.2 < x["ratio_timing_no_timing"][0] < 5 and
    x["ratio_timing_timing_b"] and x["ops_s_no-timing"] > 0 for x in rows.values())
sys.exit(0 if ok else 1)
PY
tap "a row per workload with ops/s and both ratios" $?
python3 - "$tmp/out/telemetry-ab.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ok = (r["histogram_check_ok"] and r["timed_requests_no-timing"] == 0 and
      r["requests_no-timing"] > 1000 and r["timed_requests_timing"] >= r["requests_timing"] * 0.99
      and r["requests_timing"] > 1000)
sys.exit(0 if ok else 1)
PY
tap "request_timing: false leaves the histograms empty; the timing backends time every request" $?
grep -q "^histogram check: no-timing: 0 of [1-9][0-9]* requests timed (expected: none): ok" \
    "$tmp/out/telemetry-ab.txt"
tap "the summary reports the histogram check" $?

#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Counts what one FUSE request costs inside vdhost: runs vdhost (one poll lcore, passthrough
# backend, no sandbox or seccomp so valgrind works) under callgrind with collection only
# inside FuseDispatcher::handle and complete_io, drives it with vdhost-bench for a short
# run, and prints instructions and locked instructions per request
# (scripts/callgrind_request_cost.py). Counts, not time: usable on a busy 2-core machine.
#
# Usage: scripts/profile_request_cost.sh BUILD_DIR OUT_DIR WORKLOAD QUEUE_DEPTH SECONDS
#   e.g. scripts/profile_request_cost.sh build /tmp/prof getattr 32 3
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
build="$(realpath "$1")" out="$2" wl="$3" qd="$4" dur="$5"
command -v valgrind >/dev/null || { echo "valgrind is needed" >&2; exit 1; }
mkdir -p "$out"
work=$(mktemp -d /tmp/vdh-prof.XXXXXX)
trap 'rm -rf "$work"' EXIT
share="$work/share"
mkdir -p "$share"
"$build/tools/bench/vdhost-bench" --share-dir "$share" --prepare-only --file-size-mib 8 >/dev/null
cat >"$work/c.yaml" <<YAML
host:
  poll_lcores: [1]
  sandbox: none
  seccomp: none
devices:
  - name: fs0
    type: virtiofs
    socket: $work/s.sock
    lcore: 1
    config:
      shared_dir: $share
      cache: auto
      backend: passthrough
YAML
valgrind --tool=callgrind --dump-instr=yes --collect-atstart=no \
    --toggle-collect='*FuseDispatcher::handle*' --toggle-collect='*FuseDispatcher::complete_io*' \
    --toggle-collect='*FuseDispatcher::complete_on_lcore*' \
    --callgrind-out-file="$out/callgrind.out" \
    "$build/host/vdhost" --config "$work/c.yaml" --plugin-dir "$build/plugins" >"$out/vdhost.log" 2>&1 &
vd=$!
for _ in $(seq 1 600); do [ -S "$work/s.sock" ] && break; sleep 0.1; done
"$build/tools/bench/vdhost-bench" --socket "$work/s.sock" --no-prepare --poll --cpus 0 \
    --file-size-mib 8 --duration "$dur" --warmup 0.5 --workload "$wl" --queue-depth "$qd" \
    >"$out/bench.out" 2>&1 || echo "vdhost-bench failed: see $out/bench.out" >&2
kill -TERM "$vd"
wait "$vd" || true
tail -n 1 "$out/bench.out"
python3 "$REPO/scripts/callgrind_request_cost.py" "$out/callgrind.out" \
    "$build/plugins/virtiofs/vdh-virtiofs.so"

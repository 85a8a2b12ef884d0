#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# vdhost-bench --blk correctness against qemu-storage-daemon's vhost-user-blk export (the
# peer of scripts/bench.sh): negotiation with GET_CONFIG, the pattern written through the
# device and found in the file on the host at the right offsets, every blk workload briefly
# with --verify (every status checked, reads checked against the pattern, writes read back)
# at queue depths 1 and 32, alternating between two exports of the same file. Then vdhost's
# virtioblk on the same file, as scripts/bench-blk.sh runs them: the pattern qsd wrote read
# through vdhost, writes verified, two request queues on two threads, vdhost and qsd
# alternating. Last, a file changed behind the devices that --verify must reject. No
# timing assertions. TAP output.
# Usage: bench_blk.sh VDHOST_BENCH VDHOST PLUGIN_DIR
set -uo pipefail
. "$(dirname "$0")/../../e2e/lib.sh"
trap e2e_cleanup EXIT
BENCH="$1"
VDHOST="$2"
PLUGIN_DIR="$3"
QSD="${VDH_QSD:-/usr/bin/qemu-storage-daemon}"

if [ ! -x "$QSD" ]; then
    echo "1..0 # SKIP $QSD not installed (Debian: qemu-system-common)"
    exit 0
fi
echo "1..13"
n=0
tap() { # DESCRIPTION RC
    n=$((n + 1))
    if [ "$2" -eq 0 ]; then echo "ok $n - $1"; else echo "not ok $n - $1 (rc=$2)"; fi
}

e2e_mktemp_dir tmp
mib=8 # read area [0, 8 MiB), write area [8, 16 MiB)
truncate -s 32M "$tmp/disk.img"
"$QSD" --blockdev "driver=file,node-name=f,filename=$tmp/disk.img,cache.direct=off,aio=io_uring" \
    --export "type=vhost-user-blk,id=e0,node-name=f,addr.type=unix,addr.path=$tmp/q0.sock,writable=on,num-queues=1" \
    --export "type=vhost-user-blk,id=e1,node-name=f,addr.type=unix,addr.path=$tmp/q1.sock,writable=on,num-queues=1" \
    >"$tmp/qsd.log" 2>&1 &
qpid=$!
e2e_track_pid "$qpid"
if ! e2e_wait_socket "$tmp/q0.sock" 20 || ! e2e_wait_socket "$tmp/q1.sock" 20; then
    sed 's/^/# /' "$tmp/qsd.log"
    exit 1
fi

# bench ARGS...: vdhost-bench --blk on export 0; its output as TAP comments on failure.
bench() {
    local rc=0
    "$BENCH" --blk --socket "$tmp/q0.sock" --file-size-mib "$mib" "$@" >"$tmp/out.log" 2>&1 || rc=$?
    [ "$rc" -eq 0 ] || sed 's/^/# /' "$tmp/out.log"
    return "$rc"
}

rc=0; bench --prepare-only || rc=$?
if [ "$rc" -eq 0 ] && ! grep -q "virtio-blk, 33554432 bytes, block size 512" "$tmp/out.log"; then
    sed 's/^/# /' "$tmp/out.log"; rc=99
fi
tap "connected with GET_CONFIG (32 MiB disk, 512-byte blocks) and prepared the read area" "$rc"

# The pattern (bench/pattern.h, stamp 0) must be in the file where the device was told to
# write it: the first and the last 4 KiB of the read area, and nothing in the write area.
rc=0
python3 - "$tmp/disk.img" "$mib" <<'PY' || rc=$?
import struct, sys
M = (1 << 64) - 1
def word(off):
    x = off ^ 0x5BD1E995A5A5A5A5
    x ^= x >> 33
    x = (x * 0xFF51AFD7ED558CCD) & M
    return x ^ (x >> 33)
path, mib = sys.argv[1], int(sys.argv[2])
area = mib << 20
with open(path, "rb") as f:
    for off in (0, area - 4096):
        f.seek(off)
        got = f.read(4096)
        want = b"".join(struct.pack("<Q", word(off + i)) for i in range(0, 4096, 8))
        if got != want:
            print(f"# pattern missing at offset {off}")
            sys.exit(1)
    f.seek(area)
    if f.read(area).count(0) != area:
        print("# the write area was written by the preparation")
        sys.exit(1)
PY
tap "the host file holds the pattern at the offsets the device was given" "$rc"

for w in read-4k-rand read-128k-seq write-4k-rand write-128k-seq; do
    rc=0; bench --no-prepare --verify --workload "$w" --queue-depth 1,32 --ops 200 || rc=$?
    tap "$w --verify at queue depth 1 and 32: every status and all data checked" "$rc"
done

# Both exports, alternating per repetition, polled like scripts/bench.sh runs them.
rc=0
"$BENCH" --blk --socket "$tmp/q0.sock,$tmp/q1.sock" --label a,b --file-size-mib "$mib" \
    --no-prepare --verify --poll --workload read-4k-rand,write-4k-rand --queue-depth 1,32 \
    --ops 200 --reps 2 --csv "$tmp/alt.csv" >"$tmp/alt.log" 2>&1 || rc=$?
if [ "$rc" -eq 0 ] && ! python3 -c "
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
order = [r['label'] for r in rows]
ok = len(rows) == 16 and order[:2] == ['a', 'b'] and order[8:10] == ['b', 'a'] and \
    all(int(r['ops']) == 200 and r['mode'] == 'blk' for r in rows)
sys.exit(0 if ok else 1)" "$tmp/alt.csv"; then
    rc=98
fi
[ "$rc" -eq 0 ] || sed 's/^/# /' "$tmp/alt.log"
tap "two exports alternating per repetition (--reps 2, --poll), 200 ops per run" "$rc"

# vdhost's virtioblk on the same file (page cache, as qsd), two request queues.
cpu=$(( $(nproc) - 1 ))
cat >"$tmp/vdhost.yaml" <<YAML
host:
  poll_lcores: [$cpu]
devices:
  - name: blk0
    type: virtioblk
    socket: $tmp/vd.sock
    lcore: $cpu
    config:
      path: $tmp/disk.img
      direct: false
      num_queues: 2
YAML
"$VDHOST" --config "$tmp/vdhost.yaml" --plugin-dir "$PLUGIN_DIR" >"$tmp/vdhost.log" 2>&1 &
vpid=$!
e2e_track_pid "$vpid"
if ! e2e_wait_socket "$tmp/vd.sock" 20; then
    sed 's/^/# /' "$tmp/vdhost.log"
    exit 1
fi
vbench() {
    local rc=0
    "$BENCH" --blk --socket "$tmp/vd.sock" --file-size-mib "$mib" --no-prepare "$@" \
        >"$tmp/out.log" 2>&1 || rc=$?
    [ "$rc" -eq 0 ] || sed 's/^/# /' "$tmp/out.log"
    return "$rc"
}
rc=0; vbench --verify --workload read-4k-rand,read-128k-seq --queue-depth 1,32 --ops 200 || rc=$?
tap "vdhost: the pattern qemu-storage-daemon wrote, read back through vdhost at QD1 and 32" "$rc"
rc=0; vbench --verify --workload write-4k-rand,write-128k-seq --queue-depth 1,32 --ops 200 || rc=$?
tap "vdhost: write-4k-rand and write-128k-seq --verify at QD1 and 32" "$rc"
rc=0; vbench --verify --queues 2 --threads 2 --workload read-4k-rand,write-4k-rand \
    --queue-depth 8 --ops 200 || rc=$?
tap "vdhost: two request queues on two threads, --verify" "$rc"
rc=0
"$BENCH" --blk --socket "$tmp/vd.sock,$tmp/q0.sock" --label vdhost,qsd --file-size-mib "$mib" \
    --no-prepare --verify --poll --workload read-4k-rand,write-4k-rand --queue-depth 1,32 \
    --ops 200 --reps 2 --backend-pid "$vpid,$qpid" >"$tmp/vq.log" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || sed 's/^/# /' "$tmp/vq.log"
tap "vdhost and qemu-storage-daemon alternating on the same file, --verify" "$rc"

# Zero the read area behind the device: --verify must notice (exit 1, one error per op).
dd if=/dev/zero of="$tmp/disk.img" bs=1M count="$mib" conv=notrunc status=none
rc=0
"$BENCH" --blk --socket "$tmp/q0.sock" --file-size-mib "$mib" --no-prepare --verify \
    --workload read-4k-rand --ops 50 --csv "$tmp/bad.csv" >"$tmp/bad.log" 2>&1 || rc=$?
bad=1
if [ "$rc" -eq 1 ] && grep -q "data differs" "$tmp/bad.log" &&
    python3 -c "import csv,sys; r=next(csv.DictReader(open(sys.argv[1]))); sys.exit(0 if int(r['err_verify'])==50 else 1)" "$tmp/bad.csv"; then
    bad=0
else
    sed 's/^/# /' "$tmp/bad.log"
fi
tap "--verify reports a disk whose data was changed behind the device (rc=$rc)" "$bad"

kill -0 "$qpid" 2>/dev/null && kill -0 "$vpid" 2>/dev/null
tap "qemu-storage-daemon and vdhost still running after all runs" "$?"
exit 0

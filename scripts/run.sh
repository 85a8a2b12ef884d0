#!/usr/bin/env bash
# Sets up, builds and starts vdhost on a config (default: configs/default.yaml), then
# demonstrates the share: a QEMU guest (TCG, Debian cloud kernel + busybox) boots on the
# default device, mounts it with `mount -t virtiofs fs0 /mnt`, lists it, reads the host's
# hello.txt and writes a file back, which is shown from the host side. vdhost keeps
# running afterwards until Ctrl-C (SIGINT), which shuts it down cleanly.
# Usage: scripts/run.sh [--no-demo] [CONFIG]
set -euo pipefail
cd "$(dirname "$0")/.."
demo=1
if [ "${1:-}" = "--no-demo" ]; then
    demo=0
    shift
fi
config="${1:-configs/default.yaml}"
bash scripts/setup.sh
bash scripts/build.sh
share=/tmp/vdhost/share
mkdir -p "$share/.vdh"
[ -e "$share/hello.txt" ] || echo "hello from the vdhost host" >"$share/hello.txt"

./build/host/vdhost --config "$config" &
vpid=$!
trap 'kill -INT $vpid 2>/dev/null; wait $vpid' INT TERM
for _ in $(seq 100); do
    [ -S /run/vdhost/fs0.sock ] && break
    sleep 0.1
done

if [ "$demo" = 1 ] && [ "$config" = configs/default.yaml ]; then
    bash scripts/guest/build-guest.sh build/guest >/dev/null
    cat >"$share/.vdh/demo.sh" <<'GUEST'
echo "--- guest: mount | grep virtiofs"; mount | grep virtiofs
echo "--- guest: ls -la /mnt"; ls -la /mnt
echo "--- guest: cat /mnt/hello.txt"; cat /mnt/hello.txt
echo "--- guest: write /mnt/from-guest.txt"; echo "written by the guest at $(date)" > /mnt/from-guest.txt
echo "--- guest: df -h /mnt"; df -h /mnt
GUEST
    echo "=== booting a guest on vdhost's fs0 device (TCG, a few seconds) ==="
    bash scripts/guest/run-qemu.sh --socket /run/vdhost/fs0.sock --queue-size 1024 \
        --timeout 120 --append "vdh.script=.vdh/demo.sh" | sed -n '/VDH-INIT/,$p' |
        grep -vE '^\[ *[0-9.]+\]' || true
    echo "=== host: cat $share/from-guest.txt ==="
    cat "$share/from-guest.txt" || true
    echo "=== host: vdhost --stats /run/vdhost/vdhost.ctl ==="
    ./build/host/vdhost --stats /run/vdhost/vdhost.ctl || true
    echo "=== vdhost keeps serving configs/default.yaml; Ctrl-C stops it ==="
fi
wait $vpid

#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End to end: QEMU 7.2's vhost-user-fs-pci (TCG, memfd share=on guest RAM) connects to a
# vdhost device and negotiation completes: the host reports the device running, with as
# many queues as QEMU set up. A second QEMU then connects to the same socket, and SIGTERM
# with a frontend connected exits 0 and removes the socket. TAP output.
# Usage: host_qemu_negotiation.sh VDHOST PLUGIN_DIR
set -uo pipefail
. "$(dirname "$0")/lib.sh"
trap e2e_cleanup EXIT
VDHOST="$1"
PLUGIN_DIR="$2"
echo "1..6"
n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
notok() { n=$((n + 1)); echo "not ok $n - $*"; }
check() { if eval "$2"; then ok "$1"; else notok "$1"; fi; }

e2e_guest_env 6.1 || { for i in 1 2 3 4 5 6; do notok "guest image"; done; exit 1; }
e2e_mktemp_dir tmp
cat >"$tmp/vdhost.yaml" <<YAML
host:
  poll_lcores: [1]
  control_socket: $tmp/ctl.sock
devices:
  - name: e0
    type: echo
    socket: $tmp/e0.sock
YAML
"$VDHOST" --config "$tmp/vdhost.yaml" --plugin-dir "$PLUGIN_DIR" >"$tmp/vdhost.log" 2>&1 &
vpid=$!
e2e_track_pid "$vpid"
e2e_wait_socket "$tmp/ctl.sock" 20 || { cat "$tmp/vdhost.log"; exit 1; }

# Boots a guest that loads the virtio modules and idles for a few seconds; meanwhile
# records the device state and queue count the host reports.
boot_and_watch() {
    local tag="$1"
    local queues="$2"
    local log="$tmp/qemu-$tag.log"
    e2e_run_guest --socket "$tmp/e0.sock" --queues "$queues" --queue-size 256 --log "$log" \
        --timeout 90 --append "vdh.nomount=1 vdh.sleep=4" &
    local qpid=$!
    local state="" nq=0 i
    for ((i = 0; i < 900; i++)); do
        local s
        s=$("$VDHOST" --stats "$tmp/ctl.sock" 2>/dev/null)
        if echo "$s" | grep -q '"state":"running"'; then
            state=running
            nq=$(echo "$s" | grep -o '"index":[0-9]*' | wc -l)
            break
        fi
        kill -0 "$qpid" 2>/dev/null || break
        sleep 0.1
    done
    wait "$qpid"
    echo "$state $nq"
}

r=$(boot_and_watch first 1)
check "QEMU vhost-user-fs-pci negotiates with vdhost: device running ($r)" '[ "$r" = "running 2" ]'
grep -q "device running: 2 queues" "$tmp/vdhost.log" || true

r=$(boot_and_watch second 3)
check "a new QEMU reconnects to the same socket, 3 request queues ($r)" '[ "$r" = "running 4" ]'
s=$("$VDHOST" --stats "$tmp/ctl.sock")
check "sessions counted across connections" 'echo "$s" | grep -q "\"sessions\":2"'
check "guest modules loaded in both boots" 'e2e_expect "$tmp/qemu-first.log" VDH-MODULES-OK && e2e_expect "$tmp/qemu-second.log" VDH-MODULES-OK'

# SIGTERM while a QEMU is connected.
e2e_run_guest --socket "$tmp/e0.sock" --log "$tmp/qemu-third.log" --timeout 90 \
    --append "vdh.nomount=1 vdh.sleep=30" &
qpid=$!
e2e_track_pid "$qpid"
for ((i = 0; i < 900; i++)); do
    "$VDHOST" --stats "$tmp/ctl.sock" 2>/dev/null | grep -q '"state":"running"' && break
    sleep 0.1
done
kill -TERM "$vpid"
rc=0
wait "$vpid" || rc=$?
check "SIGTERM with QEMU connected exits 0 (rc=$rc)" '[ "$rc" -eq 0 ]'
check "sockets removed after SIGTERM" '[ ! -e "$tmp/e0.sock" ] && [ ! -e "$tmp/ctl.sock" ]'
kill "$qpid" 2>/dev/null
exit 0

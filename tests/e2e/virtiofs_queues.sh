#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End to end: a Linux 6.12 guest (which spreads virtiofs requests over several request
# queues) with 2 vCPUs mounts a vdhost share over QEMU's vhost-user-fs-pci with PACKED
# rings and 2 request queues served by two different poll lcores. Parallel readers in the
# guest; checks data integrity against the host and that both request queues, on both
# lcores, carried requests. Then the same on a 6.1 guest with split rings. TAP output.
# Usage: virtiofs_queues.sh VDHOST PLUGIN_DIR
set -uo pipefail
. "$(dirname "$0")/lib.sh"
trap e2e_cleanup EXIT
VDHOST="$1"
PLUGIN_DIR="$2"
echo "1..9"
n=0
check() { n=$((n + 1)); if eval "$2"; then echo "ok $n - $1"; else echo "not ok $n - $1"; fi; }

tmp=$(mktemp -d /tmp/vdh-e2e.XXXXXX)
E2E_TMPDIRS+=("$tmp")
mkdir -p "$tmp/share/.vdh"
head -c 3000000 /dev/urandom >"$tmp/share/data.bin"
host_md5=$(md5sum <"$tmp/share/data.bin" | cut -d' ' -f1)
cat >"$tmp/share/.vdh/run.sh" <<'GUEST'
for i in 1 2 3 4 5 6 7 8; do
    (md5sum /mnt/data.bin | cut -d' ' -f1 > /tmp/md5.$i; cat /mnt/data.bin > /dev/null) &
done
wait
sort -u /tmp/md5.* | sed 's/^/GUEST-MD5 /'
dd if=/dev/urandom of=/mnt/guest.bin bs=64k count=40 2>/dev/null
md5sum /mnt/guest.bin | cut -d' ' -f1 | sed 's/^/GUEST-WROTE /'
GUEST
cat >"$tmp/vdhost.yaml" <<YAML
host:
  poll_lcores: [0, 1]
  control_socket: $tmp/ctl.sock
devices:
  - name: fs0
    type: virtiofs
    socket: $tmp/fs0.sock
    lcore: [1, 0]
    config:
      shared_dir: $tmp/share
YAML
"$VDHOST" --config "$tmp/vdhost.yaml" --plugin-dir "$PLUGIN_DIR" >"$tmp/vdhost.log" 2>&1 &
vpid=$!
e2e_track_pid "$vpid"
e2e_wait_socket "$tmp/ctl.sock" 20 || { cat "$tmp/vdhost.log" >&2; exit 1; }

queue_field() { # QUEUE FIELD
    "$VDHOST" --stats "$tmp/ctl.sock" | python3 -c "
import json, sys
d = json.load(sys.stdin)['devices'][0]['queues']
print(d[$1]['$2'] if len(d) > $1 else -1)"
}

if e2e_guest_env 6.12 >/dev/null 2>&1; then
    e2e_run_guest --socket "$tmp/fs0.sock" --queues 2 --queue-size 1024 --smp 2 \
        --fs-opts packed=on --log "$tmp/q612.log" --timeout 240 \
        --append "vdh.script=.vdh/run.sh"
    rc=$?
    check "6.12 guest, packed ring, 2 request queues: script ran (qemu rc=$rc)" \
        'e2e_expect "$tmp/q612.log" "VDH-SCRIPT-EXIT 0" && e2e_expect "$tmp/q612.log" VDH-UMOUNT-OK'
    check "8 parallel guest readers all read the host's bytes" \
        '[ "$(grep -c GUEST-MD5 "$tmp/q612.log")" = 1 ] && e2e_expect "$tmp/q612.log" "GUEST-MD5 $host_md5"'
    check "the guest's writes reached the host intact" \
        'e2e_expect "$tmp/q612.log" "GUEST-WROTE $(md5sum <"$tmp/share/guest.bin" | cut -d" " -f1)"'
    check "packed ring negotiated" 'grep -q "packed ring" "$tmp/vdhost.log"'
    r1=$(queue_field 1 requests); r2=$(queue_field 2 requests)
    c1=$(queue_field 1 cpu); c2=$(queue_field 2 cpu)
    check "both request queues carried requests (q1=$r1 q2=$r2)" '[ "$r1" -gt 0 ] && [ "$r2" -gt 0 ]'
    check "request queues served by different poll lcores (cpu $c1, cpu $c2)" '[ "$c1" != "$c2" ]'
else
    for t in 1 2 3 4 5 6; do check "6.12 guest image" false; done
fi

rm -f "$tmp/share/guest.bin"
e2e_guest_env 6.1 >/dev/null 2>&1
e2e_run_guest --socket "$tmp/fs0.sock" --queues 1 --queue-size 1024 --log "$tmp/q61.log" \
    --timeout 240 --append "vdh.script=.vdh/run.sh"
check "6.1 guest, split ring: parallel readers read the host's bytes" \
    'e2e_expect "$tmp/q61.log" "VDH-SCRIPT-EXIT 0" && e2e_expect "$tmp/q61.log" "GUEST-MD5 $host_md5"'
check "6.1 guest writes reached the host intact" \
    'e2e_expect "$tmp/q61.log" "GUEST-WROTE $(md5sum <"$tmp/share/guest.bin" | cut -d" " -f1)"'
s=$("$VDHOST" --stats "$tmp/ctl.sock")
check "no malformed chains or broken queues" \
    '! echo "$s" | grep -qE "\"(bad_chains|broken)\":[1-9]"'
exit 0

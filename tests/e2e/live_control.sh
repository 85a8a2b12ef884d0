#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Live add, remove and reload with a QEMU guest attached to another device (issue 9): the
# guest sees no error and its I/O continues. One vdhost (default sandbox namespace and
# seccomp kill) serves fs0, with a control socket and a share root. Guest A on fs0 runs a
# write/read/verify loop on its share for the whole test; its iteration count (a file on
# the share) is sampled by the host every 100 ms. Meanwhile:
#   add      vdhostctl add fs1 (a share below host.share_roots); guest B boots on it,
#            mounts it and writes a file the host checks, then keeps writing
#   remove   vdhostctl remove fs1 with guest B attached and writing: fs1's socket goes,
#            vdhostctl list no longer shows it, vdhost stays healthy (B is then killed)
#   reload   vdhostctl reload with a YAML that adds fs2
#   sighup   SIGHUP with the original YAML: fs2 is removed
#   refused  a reload that would change fs0 (queue_size_max) is refused with its reason
# Guest A's count must increase during every step, with no gap above VDH_LIVE_MAX_GAP_MS,
# its loop must report no error and no stall, and vdhost must exit 0 on SIGTERM. TAP.
# Usage: live_control.sh VDHOST VDHOSTCTL PLUGIN_DIR    (E2E_KEEP_TMP=1 keeps the work dir)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/lib.sh"
trap 'kill_session "${BPID:-}"; kill_session "${APID:-}"; e2e_cleanup' EXIT

[ $# -eq 3 ] || { sed -n '17p' "$0" >&2; exit 2; }
VDHOST="$(realpath "$1")"
CTL="$(realpath "$2")"
PLUGIN_DIR="$(realpath "$3")"
MAX_GAP_MS="${VDH_LIVE_MAX_GAP_MS:-5000}"

finish() { tap_finish; }
bail() { tap_bail "$1" "$W/vdhost.log"; }

[ "$(id -u)" -eq 0 ] || e2e_skip "needs root (vdhost's sandbox mounts)"
e2e_require_cmd qemu-system-x86_64 python3 setsid
e2e_guest_env 6.1 || { notok "guest image"; finish; }

W=""
e2e_mktemp_dir W
chmod 0755 "$W"
# run/: the socket directory (control socket and every device's); vdhost creates it 0700.
# roots/: host.share_roots; fs1 and fs2 share directories below it.
mkdir -p "$W/share0" "$W/roots/vm1" "$W/roots/vm2"

# ---- guest scripts -------------------------------------------------------------------------
# Guest A: the loop. Each iteration writes a file whose content depends on the iteration,
# reads it back and compares, appends to and truncates a log, renames, lists and removes;
# then publishes its count in "progress" (write + rename, so the host never reads half a
# number). Errors go to the console (VDH-LOOP-ERROR) and, when the share still works, to
# errors.log. A watchdog on the guest's own tmpfs prints VDH-LOOP-STALL when an iteration
# takes longer than 5 s. The loop ends when the host creates "stop".
cat >"$W/share0/loop.sh" <<'SH'
now_cs() { read -r up _ </proc/uptime; echo "${up%.*}${up#*.}"; }
err() { echo "VDH-LOOP-ERROR iter=$i $*"; echo "iter=$i $*" >>errors.log; }
mkdir -p work || echo "VDH-LOOP-ERROR mkdir work"
rm -f work/* errors.log progress stop
now_cs >/tmp/last
( cd / && while [ ! -e /tmp/done ]; do
      sleep 1
      last=$(cat /tmp/last); t=$(now_cs)
      [ $((t - last)) -le 500 ] || echo "VDH-LOOP-STALL iteration running for $((t - last))0 ms"
  done ) &
watchdog=$!
i=0 maxcs=0
while [ ! -e stop ]; do
    i=$((i + 1))
    t0=$(now_cs)
    f=work/f$((i % 4))
    line="iteration $i $(printf '%0128d' "$i")"
    { echo "$line"; echo "$line"; } >"$f.tmp" || err "write $f.tmp"
    mv "$f.tmp" "$f" || err "rename $f"
    [ "$(head -n 1 "$f")" = "$line" ] || err "read back $f"
    [ "$(wc -l <"$f")" -eq 2 ] || err "line count $f"
    echo "$i" >>work/log || err "append log"
    [ "$(tail -n 1 work/log)" = "$i" ] || err "read log"
    [ $((i % 50)) -ne 0 ] || : >work/log || err "truncate log"
    ls work >/dev/null || err "readdir"
    rm -f work/f$(((i + 2) % 4)) || err "unlink"
    echo "$i" >progress.tmp && mv progress.tmp progress || err "progress"
    t=$(now_cs)
    echo "$t" >/tmp/last
    [ $((t - t0)) -le "$maxcs" ] || maxcs=$((t - t0))
done
: >/tmp/done
wait "$watchdog"
echo "VDH-LOOP-DONE iterations=$i longest_iteration_ms=$((maxcs * 10))"
echo "$i $((maxcs * 10))" >done
sync
SH
# Guest B: writes the file the host checks, then keeps doing I/O until fs1 goes away.
cat >"$W/roots/vm1/b.sh" <<'SH'
echo "written by guest B in boot $(cat /proc/sys/kernel/random/boot_id)" >b-was-here.txt
sync
echo "VDH-B-WROTE"
j=0
while :; do
    j=$((j + 1))
    echo "$j" >b-loop.tmp && mv b-loop.tmp b-loop || { echo "VDH-B-IO-ERROR $j"; sleep 1; }
done
SH

# ---- vdhost ----------------------------------------------------------------------------------
dev_yaml() { # NAME SHARE [EXTRA_LINE]
    printf '  - name: %s\n    type: virtiofs\n    socket: %s\n    lcore: 1\n' "$1" "$W/run/$1.sock"
    [ -z "${3:-}" ] || printf '    %s\n' "$3"
    printf '    config:\n      shared_dir: %s\n      fd_limit: 4096\n' "$2"
}
host_yaml() {
    printf 'host:\n  poll_lcores: [1]\n  control_socket: %s\n  share_roots: [%s]\ndevices:\n' \
        "$W/run/ctl.sock" "$W/roots"
}
# vdhost.yaml lies outside every directory vdhost's sandbox holds, as the service's
# /etc/vdhost/vdhost.yaml does: reload and SIGHUP must still read it.
{ host_yaml; dev_yaml fs0 "$W/share0"; } >"$W/base.yaml"
cp "$W/base.yaml" "$W/vdhost.yaml"
"$VDHOST" --config "$W/vdhost.yaml" --plugin-dir "$PLUGIN_DIR" >"$W/vdhost.log" 2>&1 &
VPID=$!
e2e_track_pid "$VPID"
e2e_wait_socket "$W/run/fs0.sock" 20 && e2e_wait_socket "$W/run/ctl.sock" 5 ||
    bail "vdhost started with fs0 and its control socket"
grep -aE 'sandbox|seccomp' "$W/vdhost.log" | head -n 3 | diag
ctl() { "$CTL" --socket "$W/run/ctl.sock" "$@"; }

# ---- guest A and the host's sampler ---------------------------------------------------------
# kill_session PID: ends a guest started by run_guest: every process of its session (the
# script, timeout, which moves to its own process group, and QEMU), TERM then KILL.
kill_session() {
    local sid="$1" pids
    [ -n "$sid" ] || return 0
    pids="$(pgrep -s "$sid" | tr '\n' ' ')"
    [ -z "$pids" ] || kill -TERM $pids 2>/dev/null
    for _ in $(seq 30); do
        [ -n "$(pgrep -s "$sid")" ] || break
        sleep 0.1
    done
    pids="$(pgrep -s "$sid" | tr '\n' ' ')"
    [ -z "$pids" ] || kill -KILL $pids 2>/dev/null
    wait "$sid" 2>/dev/null
    return 0
}
# run_guest NAME SOCKET TAG SCRIPT: boots a guest in its own session (so that its whole
# process group can be killed) and sets GPID.
run_guest() {
    setsid "$E2E_REPO/scripts/guest/run-qemu.sh" --kernel-env "$E2E_GUEST_ENV" --socket "$2" \
        --tag "$3" --timeout 300 --log "$W/$1.console" --append "vdh.script=$4" &
    GPID=$!
    e2e_track_pid "$GPID"
}
run_guest a "$W/run/fs0.sock" fs0 loop.sh
APID=$GPID
progress() { cat "$W/share0/progress" 2>/dev/null || echo 0; }
for _ in $(seq 600); do
    [ "$(progress)" -ge 5 ] && break
    kill -0 "$APID" 2>/dev/null || break
    sleep 0.1
done
[ "$(progress)" -ge 5 ] || { diag <"$W/a.console"; bail "guest A booted and its loop runs"; }
ok "guest A booted on fs0 and its I/O loop runs (count $(progress) at t=${SECONDS}s)"
# The sampler: "UNIX_TIME COUNT" every 100 ms until told to stop.
(
    while [ ! -e "$W/sampler.stop" ]; do
        echo "$(date +%s.%N) $(cat "$W/share0/progress" 2>/dev/null)"
        sleep 0.1
    done
) >"$W/samples" &
SAMPLER=$!
e2e_track_pid "$SAMPLER"
: >"$W/steps"
# step_begin NAME / step_end: bracket a step in the samples. step_end waits (at most 20 s)
# until guest A's count has gone past its value at the end of the step, so every step's
# window holds progress made after the step's change too.
step_begin() {
    STEP="$1"
    STEP_T0="$(date +%s.%N)"
    STEP_C0="$(progress)"
}
step_end() {
    local c1 i
    c1="$(progress)"
    for ((i = 0; i < 200; i++)); do
        [ "$(progress)" -gt "$c1" ] && break
        sleep 0.1
    done
    echo "$STEP $STEP_T0 $(date +%s.%N) $STEP_C0 $(progress)" >>"$W/steps"
    check "step $STEP: guest A's count went on ($STEP_C0 -> $(progress))" \
        "[ $(progress) -gt $c1 ] && [ $c1 -ge $STEP_C0 ]"
}
alive() { check "vdhost still runs after step $STEP" "kill -0 $VPID 2>/dev/null"; }
listed() { ctl list 2>&1 | awk 'NR > 1 { print $1 }' | tr '\n' ' '; }

# ---- step 1: add fs1 from flags; guest B boots on it ----------------------------------------
step_begin add
out="$(ctl add --name fs1 --type virtiofs --socket-path "$W/run/fs1.sock" --lcore 1 \
    --set "shared_dir=$W/roots/vm1" --set fd_limit=4096 2>&1)"
rc=$?
check "vdhostctl add fs1 (share below a share root): exit 0, 'added' (got $rc: $out)" \
    '[ $rc -eq 0 ] && [ "$out" = added ]'
e2e_wait_socket "$W/run/fs1.sock" 5 || bail "fs1's socket appeared"
ctl list | diag
run_guest b "$W/run/fs1.sock" fs1 b.sh
BPID=$GPID
for _ in $(seq 600); do
    grep -q 'written by guest B' "$W/roots/vm1/b-was-here.txt" 2>/dev/null && break
    kill -0 "$BPID" 2>/dev/null || break
    sleep 0.1
done
check "guest B mounted fs1 and wrote the file the host reads" \
    "grep -q 'written by guest B in boot' '$W/roots/vm1/b-was-here.txt'"
check "vdhostctl list shows fs1 with a guest" \
    "ctl list | grep -Eq '^fs1 +virtiofs +running +yes +1 +control '"
step_end
alive

# ---- step 2: remove fs1 while guest B is attached and writing --------------------------------
b0="$(cat "$W/roots/vm1/b-loop" 2>/dev/null || echo 0)"
for _ in $(seq 100); do
    [ "$(cat "$W/roots/vm1/b-loop" 2>/dev/null || echo 0)" -gt "$b0" ] && break
    sleep 0.1
done
step_begin remove
echo "# guest B's loop count before the removal: $(cat "$W/roots/vm1/b-loop" 2>/dev/null)"
out="$(ctl remove fs1 2>&1)"
rc=$?
check "vdhostctl remove fs1 with guest B attached: exit 0 (got $rc: $out)" \
    '[ $rc -eq 0 ] && [ "$out" = "removed fs1" ]'
check "fs1's socket is gone" "[ ! -e '$W/run/fs1.sock' ]"
# Guest B is still attached: the share is revoked, listed as removed until B goes.
state_of() { ctl list 2>&1 | awk -v n="$1" '$1 == n { print $3 }'; }
check "vdhostctl list shows fs1 as removed while guest B is attached (got: $(state_of fs1))" \
    "[ '$(state_of fs1)' = 'removed' ]"
b1="$(cat "$W/roots/vm1/b-loop" 2>/dev/null)"
sleep 1
check "nothing serves guest B any more (its count stays at $b1)" \
    "[ '$(cat "$W/roots/vm1/b-loop" 2>/dev/null)' = '$b1' ]"
# (That its requests then fail with EIO rather than hang is checked request by request in
# tests/host/vdhost_runtime_test.cc: the guest console is not captured while it runs.)
check "vdhost revoked fs1 rather than cutting guest B off" \
    "grep -q 'fs1: share revoked' '$W/vdhost.log'"
step_end
alive
kill_session "$BPID"
BPID=""
echo "# guest B's QEMU after the removal (errors expected):"
grep -aiE 'vhost|error|fail' "$W/b.console" | head -n 5 | diag
check "vdhost still runs after guest B's QEMU is gone" "kill -0 $VPID 2>/dev/null"
for _ in $(seq 50); do [ "$(listed)" = 'fs0 ' ] && break; sleep 0.1; done
check "once guest B is gone fs1 is freed: vdhostctl list shows fs0 alone (shows: $(listed))" \
    "[ '$(listed)' = 'fs0 ' ]"

# ---- step 3: reload with a YAML that adds fs2 -----------------------------------------------
step_begin reload-add
{ host_yaml; dev_yaml fs0 "$W/share0"; dev_yaml fs2 "$W/roots/vm2"; } >"$W/vdhost.yaml"
out="$(ctl reload 2>&1)"
rc=$?
echo "$out" | diag
check "vdhostctl reload adds fs2: exit 0, 'added: fs2' (got $rc)" \
    '[ $rc -eq 0 ] && grep -q "^added: fs2$" <<<"$out"'
check "fs2's socket exists" "e2e_wait_socket '$W/run/fs2.sock' 5"
check "vdhostctl list shows fs0 and fs2 (shows: $(listed))" "[ '$(listed)' = 'fs0 fs2 ' ]"
step_end
alive

# ---- step 4: SIGHUP with the original YAML removes fs2 --------------------------------------
step_begin sighup-remove
cp "$W/base.yaml" "$W/vdhost.yaml"
kill -HUP "$VPID"
for _ in $(seq 100); do [ -e "$W/run/fs2.sock" ] || break; sleep 0.1; done
check "SIGHUP: fs2's socket is gone" "[ ! -e '$W/run/fs2.sock' ]"
check "SIGHUP: vdhostctl list shows fs0 alone (shows: $(listed))" "[ '$(listed)' = 'fs0 ' ]"
grep -a 'reload:' "$W/vdhost.log" | tail -n 1 | diag
check "SIGHUP: vdhost logged the reload (1 removed)" \
    "grep -aq 'reload: 0 added, 1 removed' '$W/vdhost.log'"
step_end
alive

# ---- step 5: a reload that would change fs0 is refused, fs0 keeps serving --------------------
step_begin reload-refused
{ host_yaml; dev_yaml fs0 "$W/share0" "queue_size_max: 512"; } >"$W/vdhost.yaml"
out="$(ctl reload 2>&1)"
rc=$?
echo "$out" | diag
check "reload changing fs0's queue_size_max: exit 2, refused with its reason (got $rc)" \
    '[ $rc -eq 2 ] && grep -q "^refused: fs0: changed while a guest is connected" <<<"$out"'
check "fs0 still runs with its guest" \
    "ctl list | grep -Eq '^fs0 +virtiofs +running +yes '"
cp "$W/base.yaml" "$W/vdhost.yaml"
out="$(ctl reload 2>&1)"
rc=$?
check "reload with the original YAML again: exit 0, nothing changed (got $rc: $(tr '\n' ' ' <<<"$out"))" \
    '[ $rc -eq 0 ] && grep -q "^unchanged: 1$" <<<"$out" && ! grep -q "^refused:" <<<"$out"'
step_end
alive

# ---- the end: guest A stops its loop; its record ---------------------------------------------
: >"$W/share0/stop"
for _ in $(seq 300); do kill -0 "$APID" 2>/dev/null || break; sleep 0.1; done
: >"$W/sampler.stop"
wait "$SAMPLER" 2>/dev/null
check "guest A's QEMU ended by itself after the loop" "! kill -0 $APID 2>/dev/null"
wait "$APID" 2>/dev/null
arc=$?
check "guest A's QEMU exited 0 (got $arc)" "[ $arc -eq 0 ]"
grep -aE 'VDH-LOOP|VDH-SCRIPT-EXIT|VDH-UMOUNT' "$W/a.console" | diag
check "guest A's loop finished: VDH-LOOP-DONE, script exit 0, unmounted" \
    "e2e_expect '$W/a.console' 'VDH-LOOP-DONE' && e2e_expect '$W/a.console' 'VDH-SCRIPT-EXIT 0' && e2e_expect '$W/a.console' 'VDH-UMOUNT-OK'"
check "guest A's loop saw no error and no stall (console)" \
    "e2e_expect_not '$W/a.console' 'VDH-LOOP-ERROR|VDH-LOOP-STALL|Call Trace|BUG:|I/O error'"
check "guest A's loop saw no error (errors.log on the share is absent)" \
    "[ ! -e '$W/share0/errors.log' ]"
# Per step: count at begin and end, and the longest time (host clock) the count stood still.
python3 - "$W/samples" "$W/steps" "$MAX_GAP_MS" >"$W/report" <<'PY'
import sys
samples = []
for line in open(sys.argv[1]):
    p = line.split()
    if len(p) == 2 and p[1].isdigit():
        samples.append((float(p[0]), int(p[1])))
limit = float(sys.argv[3])
def longest_gap(t0, t1):
    gap, since, last = 0.0, None, None
    for t, c in samples:
        if t < t0 or t > t1:
            continue
        if c != last:
            last, since = c, t
        gap = max(gap, (t - since) * 1000)
    return gap
bad = 0
for line in open(sys.argv[2]):
    name, t0, t1, c0, c1 = line.split()
    g = longest_gap(float(t0), float(t1))
    bad += g > limit
    print(f"step {name}: {float(t1) - float(t0):.1f} s, count {c0} -> {c1}, "
          f"longest stand-still {g:.0f} ms")
g = longest_gap(samples[0][0], samples[-1][0]) if samples else 1e9
bad += g > limit
print(f"whole run: {len(samples)} samples, count {samples[0][1] if samples else '?'} -> "
      f"{samples[-1][1] if samples else '?'}, longest stand-still {g:.0f} ms")
sys.exit(1 if bad else 0)
PY
grc=$?
diag <"$W/report"
check "guest A's count never stood still longer than $MAX_GAP_MS ms (host samples)" "[ $grc -eq 0 ]"

# ---- SIGTERM --------------------------------------------------------------------------------
kill -TERM "$VPID"
t0=$SECONDS
wait "$VPID"
vrc=$?
echo "# vdhost exited after $((SECONDS - t0)) s"
check "vdhost exited 0 on SIGTERM (got $vrc)" "[ $vrc -eq 0 ]"
check "vdhost removed fs0's and the control socket" \
    "[ ! -e '$W/run/fs0.sock' ] && [ ! -e '$W/run/ctl.sock' ]"
grep -aiE ' err| warn|refused' "$W/vdhost.log" | head -n 20 | diag
echo "# total ${SECONDS}s"
finish

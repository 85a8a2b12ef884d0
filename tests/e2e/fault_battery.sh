#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Fault battery (issue 7): one vdhost with two virtio-fs devices on the SAME poll lcore.
# Device fs0 takes the fault; device fs1 (the neighbour, vdh-fault-client steady) serves
# a WRITE/FSYNC/GETATTR loop all along. Every scenario asserts that the neighbour kept
# serving (no error, no gap above VDH_FAULT_MAX_GAP_MS), that vdhost's fd count returns to
# its baseline after the fault, and that data fsynced before the fault is intact on the
# host. TAP output.
#
# Usage: fault_battery.sh SCENARIO VDHOST PLUGIN_DIR FAULT_CLIENT [VDHOST_BENCH]
#   reset       a 6.1 guest hard-resets (sysrq b) during a large write, three times in a
#               row; each boot mounts again and continues (boot counter on the share)
#   qemu-kill   QEMU is SIGKILLed mid-write; a new QEMU on the same socket mounts and works
#   disconnect  a frontend exits with WRITEs in flight on io_uring and a flock SETLKW parked
#               on the blocking pool (the host holds the lock)
#   sigterm     SIGTERM to vdhost with a guest mid-write 
#               and the neighbour attached, and a third frontend with WRITEs and a SETLKW
#               (on the blocking pool) in flight: exit 0 within 5 s, sockets removed
#   hostile     a hostile frontend on fs0 runs the issue's patterns while vdhost-bench
#               measures fs1's GETATTR p99; it must stay within 2x of fs1's solo p99
# Environment: VDH_FAULT_MAX_GAP_MS (default 2000), VDH_FAULT_P99_RATIO (default 2),
#   E2E_KEEP_TMP=1 keeps the work dir.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/lib.sh"
trap 'fb_unblock; e2e_cleanup' EXIT

usage() { sed -n '10,22p' "$0" | sed 's/^# \{0,1\}//'; }
[ $# -ge 4 ] || { usage >&2; exit 2; }
SCENARIO="$1"
VDHOST="$(realpath "$2")"
PLUGIN_DIR="$(realpath "$3")"
FAULT_CLIENT="$(realpath "$4")"
BENCH="${5:+$(realpath "$5")}"
MAX_GAP_MS="${VDH_FAULT_MAX_GAP_MS:-2000}"
P99_RATIO="${VDH_FAULT_P99_RATIO:-2}"

# --- TAP ----------------------------------------------------------------------------------
n=0
nfail=0
ok() { n=$((n + 1)); echo "ok $n - $*"; echo "# t=${SECONDS}s"; }
notok() { n=$((n + 1)); nfail=$((nfail + 1)); echo "not ok $n - $*"; echo "# t=${SECONDS}s"; }
# skip DESC REASON: a check not asserted here, reported as TAP SKIP.
skip() { n=$((n + 1)); echo "ok $n - $1 # SKIP $2"; echo "# t=${SECONDS}s"; }
diag() { sed 's/^/# /'; }
# check DESC CMD...: ok if CMD succeeds.
check() {
    local desc="$1"
    shift
    if "$@"; then ok "$desc"; else notok "$desc"; fi
}
# check_sh DESC 'SHELL EXPRESSION': ok if the expression (eval'd) succeeds.
check_sh() {
    if eval "$2"; then ok "$1"; else notok "$1"; fi
}
# check_eq DESC ACTUAL WANTED
check_eq() {
    if [ "$2" = "$3" ]; then ok "$1"; else notok "$1"; echo "#   got '$2', want '$3'"; fi
}
finish() {
    echo "1..$n"
    [ "$nfail" -eq 0 ] || echo "# $nfail failed"
    exit $((nfail > 0))
}

[ "$(id -u)" -eq 0 ] || e2e_skip "needs root (MKNOD, chown in the share)"
[ -x "$FAULT_CLIENT" ] || { echo "not executable: $FAULT_CLIENT" >&2; exit 2; }
e2e_require_cmd md5sum python3 taskset timeout

W=""
e2e_mktemp_dir W
chmod 0755 "$W"
mkdir -p "$W/share0/.vdh" "$W/share1" "$W/share2"
: >"$W/events"
VPID=""
NPID=""
BASE_FDS=""
FB_UNBLOCK_FIFO=""

# fb_unblock: a reader stuck in open() of the hostile FIFO (a poll lcore on a build
# without containment) is released by opening the FIFO for writing from the host.
fb_unblock() {
    if [ -n "$FB_UNBLOCK_FIFO" ] && [ -p "$FB_UNBLOCK_FIFO" ]; then
        timeout 1 sh -c ": >'$FB_UNBLOCK_FIFO'" 2>/dev/null || true
    fi
}

# fb_start_vdhost [FS0_EXTRA_CONFIG_LINE...]: vdhost with fs0 and fs1, both on poll lcore 1.
fb_start_vdhost() {
    local extra="" l
    # Each share's fd budget is reserved from RLIMIT_NOFILE: keep them small enough that
    # three shares fit any sane hard limit.
    case " $* " in *" fd_limit:"*) ;; *) set -- "$@" "fd_limit: 4096" ;; esac
    for l in "$@"; do
        extra+="      $l"$'\n'
    done
    cat >"$W/vdhost.yaml" <<YAML
host:
  poll_lcores: [1]
  control_socket: $W/ctl.sock
devices:
  - name: fs0
    type: virtiofs
    socket: $W/fs0.sock
    lcore: 1
    config:
      shared_dir: $W/share0
${extra}  - name: fs1
    type: virtiofs
    socket: $W/fs1.sock
    lcore: 1
    config:
      shared_dir: $W/share1
      fd_limit: 4096
YAML
    if [ -n "${FB_THIRD_DEVICE:-}" ]; then
        cat >>"$W/vdhost.yaml" <<YAML
  - name: fs2
    type: virtiofs
    socket: $W/fs2.sock
    lcore: 1
    config:
      shared_dir: $W/share2
      fd_limit: 4096
YAML
    fi
    "$VDHOST" --config "$W/vdhost.yaml" --plugin-dir "$PLUGIN_DIR" >"$W/vdhost.log" 2>&1 &
    VPID=$!
    e2e_track_pid "$VPID"
    if ! e2e_wait_socket "$W/fs0.sock" 20 || ! e2e_wait_socket "$W/fs1.sock" 5; then
        diag <"$W/vdhost.log"
        notok "vdhost started"
        finish
    fi
}

# fb_start_neighbour: the steady client on fs1; waits until it serves, then records
# vdhost's fd count as BASE_FDS (the neighbour's own fds included: they stay constant).
fb_start_neighbour() {
    rm -f "$W/stop" "$W/steady.out"
    "$FAULT_CLIENT" steady --socket "$W/fs1.sock" --stop-file "$W/stop" \
        --report "$W/steady.out" --timeout-ms 10000 >"$W/steady.log" 2>&1 &
    NPID=$!
    e2e_track_pid "$NPID"
    local i
    for ((i = 0; i < 100; i++)); do
        [ -s "$W/share1/steady.dat" ] && break
        sleep 0.1
    done
    sleep 1
    BASE_FDS="$(e2e_fd_count "$VPID")"
    echo "# vdhost fd baseline (fs0 idle, neighbour attached): $BASE_FDS"
}

# fb_stop_neighbour: stops the steady client and checks it served without a stall.
fb_stop_neighbour() {
    : >"$W/stop"
    local i
    for ((i = 0; i < 100; i++)); do
        kill -0 "$NPID" 2>/dev/null || break
        sleep 0.1
    done
    e2e_stop_pid "$NPID" 1
    local ops errors gap stalled
    ops="$(sed -n 's/^ops=//p' "$W/steady.out" 2>/dev/null)"
    errors="$(sed -n 's/^errors=//p' "$W/steady.out" 2>/dev/null)"
    stalled="$(sed -n 's/^stalled=//p' "$W/steady.out" 2>/dev/null)"
    gap="$(sed -n 's/^max_gap_ms=//p' "$W/steady.out" 2>/dev/null)"
    echo "# neighbour: ops=${ops:-?} errors=${errors:-?} stalled=${stalled:-?} max_gap_ms=${gap:-?}"
    echo "# neighbour's gaps over 500 ms (ending at unix time, length):"
    grep '^gap ' "$W/steady.out" | head -n 20 | diag
    diag <"$W/events"
    check_sh "neighbour fs1 (same lcore) served all along: ops>0, no error, no stall" \
        "[ '${ops:-0}' -gt 0 ] && [ '${errors:-1}' = 0 ] && [ '${stalled:-1}' = 0 ]"
    check "neighbour's longest gap between completions ${gap:-?} ms <= $MAX_GAP_MS ms" \
        python3 -c "import sys; sys.exit(0 if float('${gap:-1e9}') <= $MAX_GAP_MS else 1)"
}

# fb_event TEXT: notes a fault's time, shown next to the neighbour's gaps.
fb_event() { echo "event $(date +%s.%N) $*" >>"$W/events"; }

# fb_check_fds WHEN [TIMEOUT]: vdhost's fd count is back to BASE_FDS within TIMEOUT s. No
# baseline (vdhost gone when it was taken) fails: an empty count must not match it.
fb_check_fds() {
    local got
    got="$(e2e_wait_fd_count "$VPID" "$BASE_FDS" "${2:-5}")"
    check_eq "vdhost fd count back to baseline $1" "$got" "${BASE_FDS:-(no baseline)}"
}

# fb_check_alive: vdhost still runs.
fb_check_alive() {
    check "vdhost still running" kill -0 "$VPID"
}

fb_md5() {
    if [ -f "$1" ]; then md5sum <"$1" | cut -d' ' -f1; else echo "missing:$1"; fi
}

# fb_check_fsynced LOG: every "FB-FSYNCED TAG NAME MD5" the guest printed matches the host.
fb_check_fsynced() {
    local log="$1" tag name md5 _ nchk=0
    while read -r _ tag name md5; do
        nchk=$((nchk + 1))
        check_eq "data fsynced before the fault intact on the host ($tag: $name)" \
            "$(fb_md5 "$W/share0/$name")" "$md5"
    done < <(grep -a '^FB-FSYNCED ' "$log")
    [ "$nchk" -gt 0 ] || notok "the guest reported fsynced data (none in $log)"
}

# fb_guest_boot LOG TIMEOUT SCRIPT [run-qemu args...]: boots the 6.1 guest on fs0 in the
# background (QEMU's pid in $W/qemu.pid); sets QPID to the wrapper's pid.
fb_guest_boot() {
    local log="$1" timeout="$2" script="$3"
    shift 3
    rm -f "$W/qemu.pid"
    fb_event "QEMU started ($script)"
    e2e_run_guest --socket "$W/fs0.sock" --log "$log" --timeout "$timeout" \
        --append "vdh.script=.vdh/$script" "$@" -- -pidfile "$W/qemu.pid" &
    QPID=$!
    e2e_track_pid "$QPID"
}

# fb_wait_for COND TIMEOUT: polls the shell condition COND every 0.1 s.
fb_wait_for() {
    local cond="$1" timeout="$2" i
    for ((i = 0; i < timeout * 10; i++)); do
        eval "$cond" && return 0
        sleep 0.1
    done
    return 1
}

# fb_guest_signals NAME: waits (up to 120 s) until the guest has made .vdh/NAME on the share
# or QEMU has ended; true if the file is there. (The serial log is written through a pipe
# and flushed late: the guest signals through the share.)
fb_guest_signals() {
    fb_wait_for "[ -e '$W/share0/.vdh/$1' ] || ! kill -0 $QPID 2>/dev/null" 120
    [ -e "$W/share0/.vdh/$1" ]
}

# fb_guest_log_tail LOG: the guest's last output lines (no kernel messages) as diagnostics.
fb_guest_log_tail() {
    grep -av '^\[' "$1" | tail -n 15 | diag
}

# fb_check_underway LOG: the guest fsynced keep.1 and started the large write big.1.
fb_check_underway() {
    local desc="guest fsynced its data and started a large write"
    if fb_guest_signals underway.big.1; then
        ok "$desc"
    else
        notok "$desc"
        fb_guest_log_tail "$1"
    fi
}

# fb_hold_lock FILE: a host process takes flock(FILE, LOCK_EX) and keeps it (pid in
# LOCK_PID); returns once the lock is held.
fb_hold_lock() {
    rm -f "$W/locked"
    python3 -c 'import fcntl, sys, time
f = open(sys.argv[1], "r+")
fcntl.flock(f, fcntl.LOCK_EX)
open(sys.argv[2], "w").close()
time.sleep(300)' "$1" "$W/locked" &
    LOCK_PID=$!
    e2e_track_pid "$LOCK_PID"
    fb_wait_for "[ -e '$W/locked' ]" 20 || notok "the host took the lock on $1"
}

fb_size() { stat -c %s "$1" 2>/dev/null || echo 0; }

# Guest script pieces. keep(): writes NAME with 1 MiB of random data, fsyncs it and reports.
GUEST_COMMON='
keep() {
    dd if=/dev/urandom of="$1" bs=64k count=16 conv=fsync 2>/dev/null || echo "FB-ERROR write $1"
    echo "FB-FSYNCED $2 $1 $(md5sum <"$1" | cut -d" " -f1)"
}
# bigwrite NAME: a large write left running; returns once it is under way.
bigwrite() {
    dd if=/dev/zero of="$1" bs=1M count=3000 2>/dev/null &
    while [ "$(stat -c %s "$1" 2>/dev/null || echo 0)" -lt 4194304 ]; do sleep 0.1; done
    echo "FB-BIG-UNDERWAY $1"
    : >".vdh/underway.$1"
}
'

# ==========================================================================================
scenario_reset() {
    e2e_guest_env 6.1 >/dev/null 2>&1 || { notok "6.1 guest image"; finish; }
    echo 0 >"$W/share0/.vdh/boot"
    cat >"$W/share0/.vdh/run.sh" <<GUEST
$GUEST_COMMON
boot=\$((\$(cat .vdh/boot) + 1))
echo "\$boot" | dd of=.vdh/boot conv=fsync 2>/dev/null
echo "FB-BOOT \$boot"
: >.vdh/ready.\$boot
while [ ! -e .vdh/go.\$boot ]; do sleep 0.2; done
for f in keep.*; do [ -e "\$f" ] && echo "FB-READBACK \$f \$(md5sum <"\$f" | cut -d' ' -f1)"; done
if [ "\$boot" -le 3 ]; then
    keep keep.\$boot boot\$boot
    bigwrite big.\$boot
    echo "FB-RESET \$boot"
    echo b >/proc/sysrq-trigger
    sleep 10
fi
rm -f big.*
echo FB-DONE
GUEST
    fb_start_vdhost "cache: auto"
    fb_start_neighbour
    local log="$W/reset.log" b
    fb_guest_boot "$log" 300 run.sh --reboot
    local fds=()
    for b in 1 2 3 4; do
        if ! fb_guest_signals "ready.$b"; then
            notok "boot $b mounted the share and ran its script"
            echo "# guest log tail:"
            fb_guest_log_tail "$log"
            break
        fi
        ok "boot $b mounted the share and ran its script"
        # The same lookups happened before this point in every boot: equal fd counts mean
        # the previous boot's session left nothing behind.
        sleep 0.5
        fds+=("$(e2e_fd_count "$VPID")")
        : >"$W/share0/.vdh/go.$b"
        fb_event "boot $b mounted"
    done
    wait "$QPID"
    local rc=$?
    echo "# qemu rc=$rc; vdhost fds at each boot's mount: ${fds[*]}"
    check_sh "guest finished after 3 resets (FB-DONE, clean unmount)" \
        "e2e_expect '$log' '^FB-DONE' && e2e_expect '$log' '^VDH-UMOUNT-OK'"
    check_eq "three resets happened mid-write" "$(grep -ac '^FB-RESET ' "$log")" 3
    # distinct counts : counts measured (an empty one: vdhost was gone).
    local distinct measured
    distinct="$(printf '%s\n' "${fds[@]}" | sort -u | wc -l)"
    measured="$(printf '%s\n' "${fds[@]}" | grep -cE '^[0-9]+$')"
    check_eq "vdhost's fd count at each boot's mount point is the same (no session left over)" \
        "$distinct:$measured" "1:4"
    fb_check_fsynced "$log"
    local f md5
    for f in keep.1 keep.2 keep.3; do
        md5="$(grep -a "^FB-READBACK $f " "$log" | tail -n 1 | cut -d' ' -f3)"
        check_eq "last boot read $f back as the host has it" "$md5" "$(fb_md5 "$W/share0/$f")"
    done
    fb_check_fds "after the guest powered off"
    fb_check_alive
    fb_stop_neighbour
}

# ==========================================================================================
scenario_qemu_kill() {
    e2e_guest_env 6.1 >/dev/null 2>&1 || { notok "6.1 guest image"; finish; }
    cat >"$W/share0/.vdh/run1.sh" <<GUEST
$GUEST_COMMON
keep keep.1 run1
bigwrite big.1
sleep 600
GUEST
    cat >"$W/share0/.vdh/run2.sh" <<'GUEST'
echo "FB-READBACK keep.1 $(md5sum <keep.1 | cut -d' ' -f1)"
ls big.1 >/dev/null && rm -f big.1 && echo FB-REMOVED-BIG
dd if=/dev/urandom of=keep.2 bs=64k count=16 conv=fsync 2>/dev/null
echo "FB-FSYNCED run2 keep.2 $(md5sum <keep.2 | cut -d' ' -f1)"
GUEST
    fb_start_vdhost
    fb_start_neighbour
    local log1="$W/kill1.log" log2="$W/kill2.log"
    fb_guest_boot "$log1" 300 run1.sh
    fb_check_underway "$log1"
    local s0 s1
    s0="$(fb_size "$W/share0/big.1")"
    sleep 0.5
    s1="$(fb_size "$W/share0/big.1")"
    echo "# big.1 on the host: $s0 -> $s1 bytes in 0.5 s"
    check "WRITEs were flowing when QEMU was killed" [ "$s1" -gt "$s0" ]
    fb_event "SIGKILL QEMU"
    kill -KILL "$(cat "$W/qemu.pid" 2>/dev/null)" 2>/dev/null
    wait "$QPID" 2>/dev/null
    fb_check_fds "after QEMU was SIGKILLed"
    fb_check_alive
    fb_guest_boot "$log2" 240 run2.sh
    wait "$QPID"
    local rc=$?
    check_sh "a new QEMU on the same socket mounted the share and ran (rc $rc)" \
        "e2e_expect '$log2' '^VDH-SCRIPT-EXIT 0' && e2e_expect '$log2' '^FB-REMOVED-BIG'"
    check_eq "the new guest read the data fsynced before the kill" \
        "$(grep -a '^FB-READBACK keep.1 ' "$log2" | cut -d' ' -f3)" "$(fb_md5 "$W/share0/keep.1")"
    fb_check_fsynced "$log1"
    fb_check_fsynced "$log2"
    fb_check_fds "after the second QEMU powered off"
    fb_stop_neighbour
}

# ==========================================================================================
scenario_disconnect() {
    head -c 1048576 /dev/urandom >"$W/share0/keep.0"
    sync "$W/share0/keep.0"
    local want
    want="$(fb_md5 "$W/share0/keep.0")"
    : >"$W/share0/locked.dat"
    fb_start_vdhost
    fb_start_neighbour
    # The host holds the flock the guest's SETLKW waits for.
    fb_hold_lock "$W/share0/locked.dat"
    local lpid=$LOCK_PID
    local round out
    for round in 1 2; do
        fb_event "disconnect $round"
        out="$("$FAULT_CLIENT" disconnect --socket "$W/fs0.sock" --writes 48 --timeout-ms 5000 2>&1)"
        echo "$out" | diag
        check "[$round] frontend left with WRITEs and a SETLKW in flight" \
            grep -Eq 'in_flight=([2-9]|[1-9][0-9]+) lock_in_flight=1' <<<"$out"
        fb_check_fds "[$round] after the disconnect (the host still holds the lock)"
        fb_check_alive
        fb_event "check $round"
        out="$("$FAULT_CLIENT" check --socket "$W/fs0.sock" --timeout-ms 5000 2>&1)"
        check_eq "[$round] a new frontend on the same socket works" "$out" "check_errno=0"
        fb_check_fds "[$round] after the checking frontend left"
    done
    e2e_stop_pid "$lpid" 1
    check_eq "file written and synced before the disconnects intact" \
        "$(fb_md5 "$W/share0/keep.0")" "$want"
    fb_check_fds "after the host released the lock"
    fb_stop_neighbour
}

# ==========================================================================================
scenario_sigterm() {
    e2e_guest_env 6.1 >/dev/null 2>&1 || { notok "6.1 guest image"; finish; }
    cat >"$W/share0/.vdh/run1.sh" <<GUEST
$GUEST_COMMON
keep keep.1 run1
bigwrite big.1
sleep 600
GUEST
    : >"$W/share2/locked.dat"
    FB_THIRD_DEVICE=1 fb_start_vdhost
    fb_start_neighbour
    # A third frontend (fs2, same lcore) keeps WRITEs and a SETLKW (parked on the blocking
    # pool: the host holds the flock) in flight through the shutdown.
    fb_hold_lock "$W/share2/locked.dat"
    "$FAULT_CLIENT" disconnect --hold 1 --socket "$W/fs2.sock" --writes 48 \
        >"$W/hold.out" 2>&1 &
    local hold=$!
    e2e_track_pid "$hold"
    fb_wait_for "grep -q lock_in_flight '$W/hold.out'" 30
    diag <"$W/hold.out"
    check "fs2's frontend has WRITEs and a SETLKW in flight" \
        grep -Eq 'in_flight=([2-9]|[1-9][0-9]+) lock_in_flight=1' "$W/hold.out"
    local log="$W/term.log"
    fb_guest_boot "$log" 300 run1.sh
    fb_check_underway "$log"
    local t0 t1 rc=0 i
    t0=$(date +%s.%N)
    fb_event "SIGTERM vdhost"
    kill -TERM "$VPID"
    for ((i = 0; i < 100; i++)); do
        kill -0 "$VPID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$VPID" 2>/dev/null; then
        rc=timeout
        kill -KILL "$VPID"
    fi
    t1=$(date +%s.%N)
    [ "$rc" = timeout ] || { wait "$VPID"; rc=$?; }
    local secs
    secs="$(python3 -c "print(f'{$t1 - $t0:.2f}')")"
    echo "# vdhost exited after ${secs} s with status $rc"
    grep -aiE 'shutting down|teardown|deadline|broken' "$W/vdhost.log" | tail -n 10 | diag
    check_eq "vdhost exited with status 0 on SIGTERM" "$rc" 0
    check "vdhost exited within 5 s (${secs} s)" python3 -c "import sys; sys.exit(0 if $secs <= 5 else 1)"
    check_sh "vhost-user sockets removed" \
        "[ ! -e '$W/fs0.sock' ] && [ ! -e '$W/fs1.sock' ] && [ ! -e '$W/fs2.sock' ]"
    kill -KILL "$(cat "$W/qemu.pid" 2>/dev/null)" 2>/dev/null
    wait "$QPID" 2>/dev/null
    fb_check_fsynced "$log"
    : >"$W/stop"
    e2e_stop_pid "$NPID" 2
}

# ==========================================================================================
# bench_field JSON FIELD: FIELD of every run in JSON, space-separated.
bench_field() {
    python3 -c "
import json, sys
rows = [json.loads(l) for l in open('$1') if l.strip()]
print(' '.join(str(r.get('$2', '')) for r in rows))"
}

scenario_hostile() {
    [ -n "$BENCH" ] && [ -x "$BENCH" ] || { notok "vdhost-bench given"; finish; }
    head -c $((16 << 20)) /dev/urandom >"$W/share0/big.dat"
    "$BENCH" --prepare-only --share-dir "$W/share1" --file-size-mib 4 >/dev/null 2>&1 ||
        { notok "bench files prepared"; finish; }
    fb_start_vdhost "fd_limit: 256"
    # Here vdhost-bench is the neighbour on fs1 (the steady client would add its own noise
    # to the p99 measured).
    sleep 0.5
    BASE_FDS="$(e2e_fd_count "$VPID")"
    echo "# vdhost fd baseline (no frontend attached): $BASE_FDS"
    FB_UNBLOCK_FIFO="$W/share0/fifo"
    local dur=4
    local bench_args=(--socket "$W/fs1.sock" --no-prepare --workload getattr --queue-depth 1
                      --duration "$dur" --warmup 0.5 --cpus 0 --connect-timeout-ms 5000)
    # Two rounds of (solo, attacked), alternated, so machine noise shows as spread; the
    # check compares the means. The hostile output of round 1 is checked pattern by pattern.
    local r solo_rc=0 attack_rc=0 rc hpid
    # The hostile frontend runs at the lowest priority on a CPU of its own where there is
    # one (>= 4 CPUs: CPU 2). With 2 CPUs it shares the poll lcore's CPU 1, never the
    # neighbour's: two tenants' clients on one CPU would measure the kernel's CPU sharing
    # between them (the neighbour waits for the attacker's time slice), not vdhost. The
    # poll lcore busy-polls under this load, so the attacker gets the leftover of CPU 1.
    HOSTILE_CPU=1
    [ "$(nproc)" -ge 4 ] && HOSTILE_CPU=2
    for r in 1 2; do
        "$BENCH" "${bench_args[@]}" --label solo --rep "$r" --json "$W/solo.json" \
            >"$W/solo.txt" 2>&1 || solo_rc=$?
        taskset -c "$HOSTILE_CPU" nice -n 19 "$FAULT_CLIENT" hostile --socket "$W/fs0.sock" \
            --duration $((dur + 3)) --max-files 2000 --timeout-ms 3000 >"$W/hostile.$r.out" 2>&1 &
        hpid=$!
        e2e_track_pid "$hpid"
        fb_wait_for "grep -q '^PATTERN fd_budget_returned' '$W/hostile.$r.out' || ! kill -0 $hpid 2>/dev/null" 30
        rc=0
        "$BENCH" "${bench_args[@]}" --label attack --rep "$r" --json "$W/attack.json" \
            >"$W/attack.txt" 2>&1 || rc=$?
        [ "$rc" = 0 ] || { attack_rc=$rc; tail -n 2 "$W/attack.txt" | diag; }
        fb_wait_for "! kill -0 $hpid 2>/dev/null" 20 || { fb_unblock; e2e_stop_pid "$hpid" 1; }
        fb_unblock
    done
    cp "$W/hostile.1.out" "$W/hostile.out"
    diag <"$W/hostile.out"
    local p_solo p_attack
    p_solo="$(bench_field "$W/solo.json" lat_p99_us 2>/dev/null)"
    p_attack="$(bench_field "$W/attack.json" lat_p99_us 2>/dev/null)"
    echo "# fs1 GETATTR QD1 p99 per round: solo ${p_solo:-?} us, with fs0 hostile ${p_attack:-?} us (bench rc $solo_rc/$attack_rc)"
    check_eq "bench runs on fs1 completed without errors (solo, attacked)" "$solo_rc/$attack_rc" "0/0"
    local p99_desc="fs1 mean p99 with a hostile fs0 on the same lcore within ${P99_RATIO}x of solo (${p_solo:-?} -> ${p_attack:-?} us)"
    check "$p99_desc" \
        python3 -c "
import sys
s = [float(x) for x in '${p_solo}'.split()]
a = [float(x) for x in '${p_attack}'.split()]
ok = $attack_rc == 0 and len(s) == 2 and len(a) == 2 and sum(a) / 2 <= $P99_RATIO * sum(s) / 2
sys.exit(0 if ok else 1)"
    # The attack was real: each round of hostile patterns (a fresh lookup/open/create, an
    # oversize WRITE and READ, a 4 MiB COPY_FILE_RANGE on the blocking pool, RELEASEs, a
    # new INIT) ran at least 50 times a second while the neighbour was measured.
    local rounds r1 r2
    rounds() { grep -a '^PATTERN final_getattr ' "$1" | sed -n 's/.*rounds=\([0-9]*\).*/\1/p'; }
    r1="$(rounds "$W/hostile.1.out")"
    r2="$(rounds "$W/hostile.2.out")"
    check_sh "the hostile frontend ran >= $((50 * (dur + 3))) pattern rounds in each attack (${r1:-?} ${r2:-?})" \
        "[ '${r1:-0}' -ge $((50 * (dur + 3))) ] && [ '${r2:-0}' -ge $((50 * (dur + 3))) ]"

    # pat NAME: sets P_LINE, P_ERRNO, P_MS and P_EXTRA from the first "PATTERN NAME" line.
    pat() {
        P_LINE="$(grep -a "^PATTERN $1 " "$W/hostile.out" | head -n 1)"
        P_ERRNO="$(sed -n 's/.* errno=\(-\{0,1\}[0-9]*\) .*/\1/p' <<<"$P_LINE")"
        P_MS="$(sed -n 's/.* ms=\([0-9]*\).*/\1/p' <<<"$P_LINE")"
        P_EXTRA="$(sed -n 's/.* ms=[0-9.]* *//p' <<<"$P_LINE")"
        P_ERRNO="${P_ERRNO:-missing}"
        P_MS="${P_MS:-999999}"
    }
    pat create_chr
    check_sh "CREATE on a host char device node opens no host device (${P_LINE:-missing})" \
        "[ '$P_ERRNO' != missing ] && { [ '$P_ERRNO' != 0 ] || [ '$P_EXTRA' = read=0 ]; }"
    pat fd_exhaust
    check_sh "keeping files open ends at the share's fd budget with ENFILE/EMFILE (${P_LINE:-missing})" \
        "[ '$P_ERRNO' = 23 ] || [ '$P_ERRNO' = 24 ]"
    pat fd_budget_returned
    check_eq "after RELEASE and FORGET the share's budget serves opens again (${P_LINE:-missing})" \
        "$P_ERRNO" 0
    pat oversize_write
    check_eq "WRITE of twice max_write refused with EINVAL (${P_LINE:-missing})" "$P_ERRNO" 22
    pat oversize_read
    check_eq "READ of twice max_write refused with EINVAL (${P_LINE:-missing})" "$P_ERRNO" 22
    pat huge_copy_file_range
    check_sh "4 GiB COPY_FILE_RANGE answered within the call timeout (${P_LINE:-missing})" \
        "[ '$P_ERRNO' != missing ] && [ '$P_ERRNO' != 110 ] && [ '$P_ERRNO' != 16 ]"
    pat create_fifo_rdonly
    check_sh "CREATE O_RDONLY of a FIFO fails at once (${P_LINE:-missing})" \
        "[ '$P_ERRNO' != missing ] && [ '$P_ERRNO' != 0 ] && [ '$P_ERRNO' != 110 ] && [ '$P_MS' -lt 1000 ]"
    pat repeated_init
    check_sh "repeated INIT answered (${P_LINE:-missing})" \
        "[ '$P_ERRNO' != missing ] && [ '$P_ERRNO' != 110 ] && [ '$P_ERRNO' != 16 ]"
    pat final_getattr
    check_eq "the hostile session is still answered at the end (${P_LINE:-missing})" "$P_ERRNO" 0
    local lmax
    lmax="$(bench_field "$W/attack.json" lat_max_us 2>/dev/null)"
    check "fs1's slowest GETATTR while attacked (${lmax:-?} us) <= $MAX_GAP_MS ms" \
        python3 -c "
import sys
m = [float(x) for x in '${lmax}'.split()]
sys.exit(0 if $attack_rc == 0 and m and max(m) <= $MAX_GAP_MS * 1000 else 1)"
    fb_check_fds "after the hostile frontend and the bench left"
    fb_check_alive
}

case "$SCENARIO" in
    reset) scenario_reset ;;
    qemu-kill) scenario_qemu_kill ;;
    disconnect) scenario_disconnect ;;
    sigterm) scenario_sigterm ;;
    hostile) scenario_hostile ;;
    *) usage >&2; exit 2 ;;
esac
finish

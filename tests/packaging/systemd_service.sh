#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# vdhost's shipped systemd unit under a real systemd. `meson install --no-rebuild` puts the
# build into a destdir; systemd-nspawn boots the host's own systemd (--volatile=yes: /usr
# from the host, everything else a fresh tmpfs) with the installed prefix, the installed
# unit, a test config (two virtio-fs devices and a control socket under /run/vdhost) and
# a oneshot checker unit bound in. The checker (the boot's only target) runs the checks
# inside, writes its results to a bound directory and powers the container off; this side
# prints them as TAP:
#   install  meson install works without a rebuild and installs the unit as configured
#   boot     the container booted, ran the checker and shut down in time
#   start    `systemctl start vdhost` returns (Type=notify: after READY=1) and it is active
#   sockets  every vhost-user socket and the control socket exist when start returned;
#            /run/vdhost (RuntimeDirectory) is 0700
#   journal  vdhost's lines are in the journal with priorities (-p notice / -p err)
#   sandbox  NoNewPrivs, seccomp filter on every thread, own mount namespace, cut CapBnd
#   control  vdhostctl list and vdhost --stats answer on the control socket
#   reload   `systemctl reload` (SIGHUP) applies an added device, same MainPID, still active
#   stop     `systemctl stop` ends in TimeoutStopSec with exit 0 / Result=success, no sockets
#   errprio  a start with a bad key fails and its error is in the journal at -p err
# Usage: systemd_service.sh BUILD_DIR    (VDH_KEEP_TMP=1 keeps the work dir)
set -uo pipefail

[ $# -eq 1 ] || { sed -n '21p' "$0" >&2; exit 2; }
if [ "$(id -u)" -ne 0 ]; then
    echo "1..0 # SKIP needs root (systemd-nspawn)"
    exit 0
fi
if ! command -v systemd-nspawn >/dev/null 2>&1; then
    echo "1..0 # SKIP systemd-nspawn not installed"
    exit 0
fi
BUILD="$(realpath "$1")"

BOOT_TIMEOUT=75 # whole container life, seconds (the checker itself gives up at 60)
MACHINE="vdh-systemd-$$"
W=""
NSPAWN_PID=""

# shellcheck disable=SC2317 # called from the EXIT trap
kill_container() {
    [ -n "$NSPAWN_PID" ] || return 0
    # NSPAWN_PID is timeout(1); its child unshare(1); its child systemd-nspawn, the init of
    # a PID namespace holding the whole container: SIGKILL to it and the kernel kills
    # everything in there; then each parent reaps its child and exits.
    local u n i
    u="$(pgrep -P "$NSPAWN_PID" 2>/dev/null)"
    [ -z "$u" ] || n="$(pgrep -P "$u" 2>/dev/null)"
    # shellcheck disable=SC2086 # $n: zero or one pid
    [ -z "${n:-}" ] || kill -KILL $n 2>/dev/null
    for ((i = 0; i < 30; i++)); do
        kill -0 "$NSPAWN_PID" 2>/dev/null || break
        sleep 0.1
    done
    # shellcheck disable=SC2086 # $u: zero or one pid
    kill -KILL $u "$NSPAWN_PID" 2>/dev/null
    wait "$NSPAWN_PID" 2>/dev/null
    NSPAWN_PID=""
}
# shellcheck disable=SC2317
cleanup() {
    kill_container
    rmdir "/run/systemd/nspawn/propagate/$MACHINE" 2>/dev/null
    if [ -n "$W" ] && [ -z "${VDH_KEEP_TMP:-}" ]; then
        rm -rf "$W"
    elif [ -n "$W" ]; then
        echo "# work dir kept: $W"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# ---- TAP: every check has a fixed number; the plan comes first ----------------------------
DESC=(
    ""
    "meson install --no-rebuild into a destdir installs vdhost, vdhostctl, the plugins and the unit"
    "the container boots the host's systemd, runs the checker and powers off"
    "systemctl start vdhost returns success and vdhost is active (Type=notify)"
    "every vhost-user socket and the control socket exist when start returned; /run/vdhost is 0700"
    "the journal has vdhost's lines with priorities (ready line at -p notice, nothing at -p err)"
    "the sandbox is on: NoNewPrivs, seccomp on every thread, own mount namespace, cut CapBnd"
    "vdhostctl list and vdhost --stats answer on the control socket and list the devices"
    "systemctl reload applies the YAML (device added), same MainPID, still active"
    "systemctl stop ends within TimeoutStopSec, exit 0 and Result=success, sockets gone"
    "a start with a bad YAML key fails and its error is in the journal at -p err"
)
NCHECKS=$((${#DESC[@]} - 1))
nfail=0
echo "1..$NCHECKS"
ok() { echo "ok $1 - ${DESC[$1]}${2:+ $2}"; }
notok() {
    nfail=$((nfail + 1))
    echo "not ok $1 - ${DESC[$1]}${2:+ $2}"
}
diag() { sed 's/^/# /'; }
# Every check after $1 fails with reason $2 (a step they depend on failed).
fail_rest() {
    local i
    for ((i = $1 + 1; i <= NCHECKS; i++)); do
        notok "$i" "# $2"
    done
    echo "# $nfail failed"
    exit 1
}

W="$(mktemp -d /tmp/vdh-systemd.XXXXXX)"
chmod 0755 "$W"

# ---- 1: install ----------------------------------------------------------------------------
if ! command -v meson >/dev/null 2>&1; then
    notok 1 "# meson not found"
    fail_rest 1 "no install"
fi
meson install -C "$BUILD" --no-rebuild --destdir "$W/dest" >"$W/install.log" 2>&1
rc=$?
unit_src="$(find "$W/dest" -path '*/systemd/system/vdhost.service' 2>/dev/null | head -n 1)"
exec_start=""
[ -z "$unit_src" ] || exec_start="$(sed -n 's/^ExecStart=//p' "$unit_src")"
VDHOST_BIN="${exec_start%% *}"
CONFIG_PATH="$(sed -n 's/.*--config \([^ ]*\).*/\1/p' <<<"$exec_start")"
PREFIX="${VDHOST_BIN%/bin/vdhost}"
why=""
if [ $rc -ne 0 ]; then
    why="meson install failed (exit $rc)"
elif [ -z "$unit_src" ]; then
    why="no vdhost.service installed (-Dsystemd_unit_dir=no?)"
elif ! cmp -s "$unit_src" "$BUILD/packaging/systemd/vdhost.service"; then
    why="installed unit differs from $BUILD/packaging/systemd/vdhost.service"
elif [ -z "$CONFIG_PATH" ] || [ "$PREFIX" = "$VDHOST_BIN" ] || [ "$PREFIX" = /usr ] ||
    [ -z "$PREFIX" ]; then
    why="cannot use ExecStart=$exec_start (prefix ${PREFIX:-?}: only a prefix other than / and /usr can be bound)"
elif [ ! -x "$W/dest$VDHOST_BIN" ] || [ ! -x "$W/dest$PREFIX/bin/vdhostctl" ] ||
    [ -z "$(find "$W/dest$PREFIX" -name vdh-virtiofs.so)" ]; then
    why="vdhost, vdhostctl or vdh-virtiofs.so missing under $W/dest$PREFIX"
elif [ -z "$(find "$W/dest$PREFIX" -name vdh-echo.so)" ]; then
    why="vdh-echo.so (used by the reload check) missing under $W/dest$PREFIX"
fi
if [ -n "$why" ]; then
    notok 1 "# $why"
    tail -n 20 "$W/install.log" | diag
    fail_rest 1 "no install"
fi
ok 1
echo "# unit: ${unit_src#"$W/dest"}; ExecStart=$exec_start"

# ---- the container's files -----------------------------------------------------------------
# $W/etc: the config's directory (writable: the reload check edits the YAML).
# $W/share0, $W/share1: the shares, at /srv/vdh/share0|1 inside.
# $W/test: the checker (read-only); $W/out: its results (writable).
mkdir -p "$W/etc" "$W/share0" "$W/share1" "$W/test" "$W/out"
CONFIG_DIR="${CONFIG_PATH%/*}"
CONFIG_NAME="${CONFIG_PATH##*/}"
RUNDIR=/run/vdhost
cat >"$W/etc/$CONFIG_NAME" <<EOF
# systemd_service.sh: two virtio-fs devices and a control socket in the unit's
# RuntimeDirectory. Default sandbox (namespace) and seccomp (kill). fd_limit: both shares'
# fd budgets fit in any RLIMIT_NOFILE the unit may get (LimitNOFILE=65536, or less where
# systemd cannot raise the hard limit, as in a container without CAP_SYS_RESOURCE).
host:
  poll_lcores: [1]
  log_level: info
  control_socket: $RUNDIR/vdhost.ctl

devices:
  - name: fs0
    type: virtiofs
    socket: $RUNDIR/fs0.sock
    lcore: 1
    config:
      shared_dir: /srv/vdh/share0
      tag: fs0
      fd_limit: 4096
  - name: fs1
    type: virtiofs
    socket: $RUNDIR/fs1.sock
    lcore: 1
    config:
      shared_dir: /srv/vdh/share1
      tag: fs1
      fd_limit: 4096
EOF
# What the reload check appends: one echo device (no share, so no new sandbox directory).
cat >"$W/test/reload-add.yaml" <<EOF
  - name: echo0
    type: echo
    socket: $RUNDIR/echo0.sock
    lcore: 1
EOF
cat >"$W/test/params.sh" <<EOF
CONFIG_PATH='$CONFIG_PATH'
VDHOST='$VDHOST_BIN'
VDHOSTCTL='$PREFIX/bin/vdhostctl'
RUNDIR='$RUNDIR'
CTL_SOCK='$RUNDIR/vdhost.ctl'
SOCKETS=('$RUNDIR/fs0.sock' '$RUNDIR/fs1.sock')
DEVICES=(fs0 fs1)
EOF

cat >"$W/test/vdh-check.service" <<'EOF'
[Unit]
Description=vdhost systemd_service.sh checker
[Service]
Type=oneshot
ExecStart=/bin/bash /vdh-test/check.sh
# Runs after ExecStart however it ended (also after TimeoutStartSec killed it).
ExecStopPost=/bin/systemctl --no-block poweroff
TimeoutStartSec=60
StandardOutput=journal+console
EOF

cat >"$W/test/check.sh" <<'CHECKER'
# The checker, run by vdh-check.service inside the container. Each check writes
# "N ok|fail" to /vdh-out/results and its diagnostics to /vdh-out/diag.N.
. /vdh-test/params.sh
OUT=/vdh-out
exec 2>>"$OUT/checker.log"
set -x
result() { echo "$1 $2" >>"$OUT/results"; }
diag() { local n=$1; shift; printf '%s\n' "$@" >>"$OUT/diag.$n"; }
diag_cmd() { local n=$1; shift; { echo "\$ $*"; "$@" 2>&1; } >>"$OUT/diag.$n"; }
unit_state() {
    diag_cmd "$1" systemctl status vdhost --no-pager -l -n 0
    diag_cmd "$1" journalctl -u vdhost -o short-monotonic --no-pager -n 25
}
prop() { systemctl show vdhost -p "$1" --value; }
journal_has() { # PATTERN [journalctl args]: waits up to 3 s for a line (0.5 s when vdhost
    local pat=$1 wait_ms=3000 t_end # is not running: a failing run stays well in time)
    shift
    [ "$(systemctl is-active vdhost)" = active ] || [ "$pat" = '^host: stopped$' ] ||
        wait_ms=500
    t_end=$(($(date +%s%N) / 1000000 + wait_ms))
    while :; do
        journalctl --sync 2>/dev/null
        journalctl -u vdhost -o cat --no-pager "$@" | grep -Eq -- "$pat" && return 0
        [ $(($(date +%s%N) / 1000000)) -lt $t_end ] || return 1
        sleep 0.1
    done
}
READY_RE='^host: vdhost .+ ready: 2 devices on 1 poll lcore$'

{ echo "\$ systemd-analyze verify vdhost.service"
  systemd-analyze verify vdhost.service 2>&1; echo "(exit $?)"; } >"$OUT/verify.txt"

# ---- 3: start ----
t0=$(date +%s%N)
timeout 25 systemctl start vdhost
rc=$?
# ---- 4 is sampled right now: start has returned ----
sock_report=()
sock_ok=1
for s in "${SOCKETS[@]}" "$CTL_SOCK"; do
    if [ -S "$s" ]; then sock_report+=("socket: $s"); else sock_report+=("MISSING: $s"); sock_ok=0; fi
done
rundir_mode="$(stat -c '%a %U:%G %F' "$RUNDIR" 2>&1)"
t1=$(date +%s%N)
show="$(systemctl show vdhost -p ActiveState,SubState,MainPID,StatusText,NRestarts,Type,FragmentPath)"
active="$(systemctl is-active vdhost)"
diag 3 "systemctl start: exit $rc after $(((t1 - t0) / 1000000)) ms; is-active: $active" "$show"
if [ $rc -eq 0 ] && [ "$active" = active ] && grep -qx 'Type=notify' <<<"$show" &&
    grep -qx 'NRestarts=0' <<<"$show" && grep -qx 'StatusText=serving 2 device(s)' <<<"$show"; then
    result 3 ok
else
    result 3 fail
    unit_state 3
fi
MAINPID="$(prop MainPID)"

diag 4 "${sock_report[@]}" "$RUNDIR: $rundir_mode"
if [ $sock_ok -eq 1 ] && [ "$rundir_mode" = "700 root:root directory" ]; then
    result 4 ok
else
    result 4 fail
    diag_cmd 4 ls -la "$RUNDIR"
fi

# ---- 5: journal with priorities ----
j_ok=1
journal_has "$READY_RE" || { j_ok=0; diag 5 "no ready line in journalctl -u vdhost -o cat"; }
journal_has "$READY_RE" -p notice || { j_ok=0; diag 5 "no ready line at -p notice"; }
# An info line of vdhost's: present, but filtered out by -p notice.
if ! journal_has '^host: sandbox: namespace' ; then
    j_ok=0; diag 5 "no 'sandbox: namespace' (info) line"
elif journalctl -u vdhost -p notice -o cat --no-pager | grep -q '^host: sandbox:'; then
    j_ok=0; diag 5 "the info line 'sandbox: ...' shows at -p notice: priorities not parsed"
fi
errs="$(journalctl -u vdhost -p err -o cat --no-pager | head -n 12)"
[ -z "$errs" ] || { j_ok=0; diag 5 "journalctl -u vdhost -p err:" "$errs"; }
raw="$(journalctl -u vdhost -o cat --no-pager | grep -E '^<[0-7]>')"
[ -z "$raw" ] || { j_ok=0; diag 5 "lines with a literal <N> prefix:" "$raw"; }
diag 5 "$(journalctl -u vdhost -p notice -o cat --no-pager | head -n 12 | sed 's/^/-p notice: /')"
if [ $j_ok -eq 1 ]; then result 5 ok; else result 5 fail; unit_state 5; fi

# ---- 6: sandbox ----
s_ok=1
if [ -z "$MAINPID" ] || [ "$MAINPID" = 0 ] || [ ! -d "/proc/$MAINPID" ]; then
    s_ok=0; diag 6 "no main process (MainPID=$MAINPID)"
else
    st="$(grep -E '^(NoNewPrivs|Seccomp|CapBnd|CapEff|CapPrm):' "/proc/$MAINPID/status")"
    diag 6 "$st"
    grep -qP '^NoNewPrivs:\t1$' <<<"$st" || { s_ok=0; diag 6 "NoNewPrivs is not 1"; }
    grep -qP '^Seccomp:\t2$' <<<"$st" || { s_ok=0; diag 6 "Seccomp is not 2 (filter)"; }
    # bounding set: exactly what sandbox.cc keeps (CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER
    # FSETID SETGID SETUID MKNOD LEASE SETFCAP)
    grep -qP '^CapBnd:\t00000000980000df$' <<<"$st" ||
        { s_ok=0; diag 6 "CapBnd is not 00000000980000df (the passthrough's capabilities)"; }
    nthreads=0
    for t in /proc/"$MAINPID"/task/*; do
        nthreads=$((nthreads + 1))
        grep -qP '^Seccomp:\t2$' "$t/status" ||
            { s_ok=0; diag 6 "thread ${t##*/} ($(cat "$t/comm")): no seccomp filter"; }
    done
    ns_v="$(readlink "/proc/$MAINPID/ns/mnt")"
    ns_1="$(readlink /proc/1/ns/mnt)"
    diag 6 "threads: $nthreads; mnt ns: vdhost $ns_v, PID 1 $ns_1"
    [ -n "$ns_v" ] && [ "$ns_v" != "$ns_1" ] || { s_ok=0; diag 6 "vdhost shares PID 1's mount namespace"; }
fi
if [ $s_ok -eq 1 ]; then result 6 ok; else result 6 fail; unit_state 6; fi

# ---- 7: control socket ----
c_ok=1
list="$(timeout 10 "$VDHOSTCTL" --socket "$CTL_SOCK" list 2>&1)"; lrc=$?
stats="$(timeout 10 "$VDHOST" --stats "$CTL_SOCK" 2>&1)"; src=$?
diag 7 "\$ vdhostctl --socket $CTL_SOCK list (exit $lrc)" "$list" \
    "\$ vdhost --stats $CTL_SOCK (exit $src)" "$(head -n 30 <<<"$stats")"
[ $lrc -eq 0 ] && [ $src -eq 0 ] || c_ok=0
for d in "${DEVICES[@]}"; do
    grep -qw -- "$d" <<<"$list" || { c_ok=0; diag 7 "vdhostctl list lacks $d"; }
    grep -qw -- "$d" <<<"$stats" || { c_ok=0; diag 7 "vdhost --stats lacks $d"; }
done
if [ $c_ok -eq 1 ]; then result 7 ok; else result 7 fail; fi

# ---- 8: reload (SIGHUP) with one device added to the YAML ----
r_ok=1
cat /vdh-test/reload-add.yaml >>"$CONFIG_PATH"
timeout 15 systemctl reload vdhost; rrc=$?
journal_has "^host: SIGHUP: reloading $CONFIG_PATH\$" ||
    { r_ok=0; diag 8 "no 'SIGHUP: reloading' line"; }
journal_has '^host: reload: 1 added, 0 removed' ||
    { r_ok=0; diag 8 "no 'reload: 1 added, 0 removed' line"; }
for ((i = 0; i < 50; i++)); do [ -S "$RUNDIR/echo0.sock" ] && break; sleep 0.1; done
[ -S "$RUNDIR/echo0.sock" ] || { r_ok=0; diag 8 "$RUNDIR/echo0.sock missing after the reload"; }
list="$(timeout 10 "$VDHOSTCTL" --socket "$CTL_SOCK" list 2>&1)"
grep -qw echo0 <<<"$list" || { r_ok=0; diag 8 "vdhostctl list lacks echo0:" "$list"; }
pid2="$(prop MainPID)"
active="$(systemctl is-active vdhost)"
diag 8 "systemctl reload: exit $rrc; is-active: $active; MainPID $MAINPID -> $pid2; NRestarts=$(prop NRestarts)"
diag 8 "$(journalctl -u vdhost -o cat --no-pager | grep -E '^host: (SIGHUP|reload)' | sed 's/^/journal: /')"
[ $rrc -eq 0 ] && [ "$active" = active ] && [ "$pid2" = "$MAINPID" ] && [ "$pid2" != 0 ] || r_ok=0
if [ $r_ok -eq 1 ]; then result 8 ok; else result 8 fail; unit_state 8; fi
SOCKETS+=("$RUNDIR/echo0.sock")

# ---- 9: stop ----
p_ok=1
limit="$(prop TimeoutStopUSec)"
t0=$(date +%s%N)
timeout 40 systemctl stop vdhost; prc=$?
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
show="$(systemctl show vdhost -p ActiveState,Result,ExecMainCode,ExecMainStatus,MainPID)"
diag 9 "systemctl stop: exit $prc after $ms ms (TimeoutStopUSec=$limit)" "$show"
[ $prc -eq 0 ] && [ $ms -lt 30000 ] || p_ok=0
for want in ActiveState=inactive Result=success ExecMainCode=1 ExecMainStatus=0; do
    grep -qx "$want" <<<"$show" || { p_ok=0; diag 9 "expected $want"; }
done
journal_has '^host: stopped$' || { p_ok=0; diag 9 "no 'stopped' line from vdhost"; }
for s in "${SOCKETS[@]}" "$CTL_SOCK"; do
    [ ! -e "$s" ] || { p_ok=0; diag 9 "still there: $s"; }
done
[ ! -e "$RUNDIR" ] || diag 9 "$RUNDIR still exists"
if [ $p_ok -eq 1 ]; then result 9 ok; else result 9 fail; unit_state 9; fi

# ---- 10: a start-up error (bad key) reaches the journal as an error ----
b_ok=1
cp "$CONFIG_PATH" "$OUT/good.yaml"
sed -i 's/^  log_level: info$/  log_level: info\n  poll_lcore: [1]/' "$CONFIG_PATH"
timeout 15 systemctl start vdhost; brc=$?
[ $brc -ne 0 ] || { b_ok=0; diag 10 "systemctl start succeeded with an unknown key in the YAML"; }
bad_re='host\.poll_lcore: unknown key'
journal_has "$bad_re" || { b_ok=0; diag 10 "the 'unknown key' error is not in the journal"; }
journal_has "$bad_re" -p err ||
    { b_ok=0; diag 10 "the 'unknown key' error is not at -p err; its PRIORITY:" \
        "$(journalctl -u vdhost -o export --no-pager | grep -E '^(PRIORITY|MESSAGE)=' |
            grep -B1 -E 'unknown key' | head -n 2)"; }
timeout 15 systemctl stop vdhost
cp "$OUT/good.yaml" "$CONFIG_PATH"
if [ $b_ok -eq 1 ]; then result 10 ok; else result 10 fail; fi
echo done >"$OUT/done"
CHECKER

# ---- 2: boot the container; it runs the checker and powers off -----------------------------
start=$(date +%s)
timeout -k 3 "$BOOT_TIMEOUT" unshare --pid --fork --kill-child --mount-proc \
    systemd-nspawn --register=no --keep-unit --quiet -D / --volatile=yes -M "$MACHINE" \
    --console=read-only \
    --bind-ro="$W/dest$PREFIX:$PREFIX" \
    --bind-ro="$unit_src:/etc/systemd/system/vdhost.service" \
    --bind="$W/etc:$CONFIG_DIR" \
    --bind="$W/share0:/srv/vdh/share0" \
    --bind="$W/share1:/srv/vdh/share1" \
    --bind-ro="$W/test:/vdh-test" \
    --bind-ro="$W/test/vdh-check.service:/etc/systemd/system/vdh-check.service" \
    --bind="$W/out:/vdh-out" \
    --boot systemd.unit=vdh-check.service systemd.firstboot=off \
    </dev/null >"$W/console.log" 2>&1 &
NSPAWN_PID=$!
wait "$NSPAWN_PID"
nrc=$?
NSPAWN_PID=""
elapsed=$(($(date +%s) - start))

if [ -f "$W/out/done" ] && [ $nrc -eq 0 ]; then
    ok 2 "(${elapsed} s)"
else
    notok 2 "# nspawn exit $nrc after ${elapsed} s$([ $nrc -eq 124 ] && echo ' (timed out)')$([ -f "$W/out/done" ] || echo ', checker did not finish')"
    tail -n 40 "$W/console.log" | diag
    [ ! -f "$W/out/checker.log" ] || tail -n 20 "$W/out/checker.log" | diag
fi
[ ! -f "$W/out/verify.txt" ] || diag <"$W/out/verify.txt"

for ((i = 3; i <= NCHECKS; i++)); do
    st="$(awk -v n="$i" '$1 == n { print $2 }' "$W/out/results" 2>/dev/null | tail -n 1)"
    case "$st" in
        ok)
            ok "$i"
            # what was measured, for the log (the control check's stats are long)
            [ "$i" -eq 7 ] || [ ! -f "$W/out/diag.$i" ] || diag <"$W/out/diag.$i"
            ;;
        fail)
            notok "$i"
            [ ! -f "$W/out/diag.$i" ] || diag <"$W/out/diag.$i"
            ;;
        *)
            notok "$i" "# no result from the container"
            [ ! -f "$W/out/diag.$i" ] || diag <"$W/out/diag.$i"
            ;;
    esac
done
[ $nfail -eq 0 ] || echo "# $nfail failed"
exit $((nfail > 0))

# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# Helpers for end-to-end tests that boot the busybox test guest (built by
# scripts/guest/build-guest.sh) under QEMU/TCG against a vhost-user-fs backend.
# Source it from bash:  . "$(dirname "$0")/lib.sh"; trap e2e_cleanup EXIT
# Exit code 77 (e2e_skip) means "skipped" to meson test.

if [ -n "${E2E_LIB_SOURCED:-}" ]; then
    return 0
fi
E2E_LIB_SOURCED=1

E2E_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
E2E_GUEST_DIR="${VDH_GUEST_DIR:-$E2E_REPO/build/guest}"
E2E_VIRTIOFSD="${VDH_VIRTIOFSD:-/usr/lib/qemu/virtiofsd}"
E2E_PIDS=()
E2E_TMPDIRS=()
E2E_VIRTIOFSD_PID=""

e2e_log() { echo "e2e: $*" >&2; }

# TAP, the report of a script whose plan comes last: ok/notok DESC, check DESC 'EXPR' (ok
# when the eval'd expression succeeds), diag (stdin as comments), tap_finish (the plan, and
# exit 1 when a check failed), tap_bail DESC LOG (a step the rest depends on failed: the
# log's tail, then tap_finish).
tap_n=0
tap_nfail=0
ok() { tap_n=$((tap_n + 1)); echo "ok $tap_n - $*"; }
notok() { tap_n=$((tap_n + 1)); tap_nfail=$((tap_nfail + 1)); echo "not ok $tap_n - $*"; }
diag() { sed 's/^/# /'; }
check() { if eval "$2"; then ok "$1"; else notok "$1"; fi; }
tap_finish() {
    echo "1..$tap_n"
    [ "$tap_nfail" -eq 0 ] || echo "# $tap_nfail failed"
    exit $((tap_nfail > 0))
}
tap_bail() {
    notok "$1"
    [ -f "$2" ] && tail -n 30 "$2" | diag
    tap_finish
}

# e2e_fail MSG...: print and exit 1.
e2e_fail() {
    echo "E2E FAIL: $*" >&2
    exit 1
}

# e2e_skip MSG...: print and exit 77 (meson's "skipped").
e2e_skip() {
    echo "E2E SKIP: $*" >&2
    exit 77
}

# e2e_require_cmd CMD...: skip the test if a command is missing.
e2e_require_cmd() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || e2e_skip "'$c' not installed"
    done
}

# e2e_track_pid PID: kill PID in e2e_cleanup.
e2e_track_pid() {
    E2E_PIDS+=("$1")
}

# e2e_mktemp_dir VAR: create a fresh temp dir, store its path in VAR and
# remove it in e2e_cleanup. (Not "$(...)": a subshell could not record it.)
# Short path on purpose: unix socket paths are limited to 107 bytes.
e2e_mktemp_dir() {
    local __e2e_dir
    __e2e_dir="$(mktemp -d "${TMPDIR:-/tmp}/vdh-e2e.XXXXXX")" || return 1
    E2E_TMPDIRS+=("$__e2e_dir")
    printf -v "${1:?e2e_mktemp_dir needs a variable name}" '%s' "$__e2e_dir"
}

# e2e_guest_env [6.1|6.12]: build the guest if needed (idempotent) and export
# KERNEL, INITRD, KVER and E2E_GUEST_ENV. Default kernel: $VDH_GUEST_KERNEL or 6.1.
# Guest dir: $VDH_GUEST_DIR or <repo>/build/guest. Returns non-zero on failure.
e2e_guest_env() {
    local flavor="${1:-${VDH_GUEST_KERNEL:-6.1}}"
    local env_file="$E2E_GUEST_DIR/guest-$flavor.env"
    # scripts/test.sh builds both images before the suites and says so with
    # VDH_GUEST_PREBUILT=1: then the up-to-date check (package lookups, 3 to 15 s per test
    # on a loaded machine) is skipped as long as the image it built is there.
    if [ "${VDH_GUEST_PREBUILT:-0}" = 1 ] && [ -f "$env_file" ] &&
        (. "$env_file" && [ -f "$KERNEL" ] && [ -f "$INITRD" ]); then
        :
    elif ! "$E2E_REPO/scripts/guest/build-guest.sh" --kernel "$flavor" "$E2E_GUEST_DIR"; then
        echo "E2E: building the $flavor guest failed" >&2
        return 1
    fi
    # shellcheck disable=SC1090
    . "$env_file" || return 1
    export KERNEL INITRD KVER
    export E2E_GUEST_ENV="$env_file"
}

# e2e_run_guest [run-qemu.sh args...]: boot the guest; returns QEMU's status
# (124 on timeout). Adds --kernel-env $E2E_GUEST_ENV unless given.
# Example: e2e_run_guest --socket "$sock" --log "$log" --timeout 60 \
#              --append "vdh.script=.vdh/run.sh"
e2e_run_guest() {
    local a have_env=0
    for a in "$@"; do
        [ "$a" != "--kernel-env" ] || have_env=1
    done
    if [ "$have_env" -eq 0 ] && [ -n "${E2E_GUEST_ENV:-}" ]; then
        set -- --kernel-env "$E2E_GUEST_ENV" "$@"
    fi
    local rc=0
    "$E2E_REPO/scripts/guest/run-qemu.sh" "$@" || rc=$?
    return "$rc"
}

# e2e_expect LOG PATTERN: succeed if the extended regex PATTERN occurs in LOG;
# otherwise print what was missing and the tail of the log, and return 1.
e2e_expect() {
    local log="$1" pattern="$2"
    if [ ! -f "$log" ]; then
        echo "E2E FAIL: log '$log' does not exist (expected /$pattern/)" >&2
        return 1
    fi
    if tr -d '\r' <"$log" | grep -Eq -- "$pattern"; then
        return 0
    fi
    {
        echo "E2E FAIL: expected /$pattern/ in $log; last 30 lines:"
        tail -n 30 "$log" | sed 's/^/  | /'
    } >&2
    return 1
}

# e2e_expect_not LOG PATTERN: the opposite of e2e_expect.
e2e_expect_not() {
    local log="$1" pattern="$2"
    if [ -f "$log" ] && tr -d '\r' <"$log" | grep -Eq -- "$pattern"; then
        {
            echo "E2E FAIL: unexpected /$pattern/ in $log:"
            tr -d '\r' <"$log" | grep -En -- "$pattern" | head -n 10 | sed 's/^/  | /'
        } >&2
        return 1
    fi
    return 0
}

# e2e_wait_socket PATH [TIMEOUT_SEC=10]: wait until PATH is a unix socket.
e2e_wait_socket() {
    local path="$1" timeout="${2:-10}" i
    for ((i = 0; i < timeout * 10; i++)); do
        [ -S "$path" ] && return 0
        sleep 0.1
    done
    echo "E2E FAIL: socket $path did not appear within ${timeout}s" >&2
    return 1
}

# e2e_start_virtiofsd SOCKET SHARED_DIR [extra virtiofsd args...]
# Starts the reference C virtiofsd in the background (log: SOCKET.log), sets
# E2E_VIRTIOFSD_PID, tracks it for cleanup and waits for the socket.
# NOTE: it serves exactly ONE frontend connection and exits when QEMU goes
# away; start a fresh one for every guest boot. Needs root.
e2e_start_virtiofsd() {
    local sock="$1" dir="$2"
    shift 2
    [ -x "$E2E_VIRTIOFSD" ] || { echo "E2E: $E2E_VIRTIOFSD not found" >&2; return 1; }
    rm -f "$sock"
    "$E2E_VIRTIOFSD" --socket-path="$sock" -o source="$dir" -o cache=auto "$@" \
        >"$sock.log" 2>&1 &
    E2E_VIRTIOFSD_PID=$!
    e2e_track_pid "$E2E_VIRTIOFSD_PID"
    if ! e2e_wait_socket "$sock" 10; then
        echo "E2E: virtiofsd log:" >&2
        sed 's/^/  | /' "$sock.log" >&2
        return 1
    fi
}

# e2e_stop_pid PID [GRACE_SEC=3]: TERM, then KILL after the grace period.
e2e_stop_pid() {
    local pid="$1" grace="${2:-3}" i
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# e2e_cleanup: kill tracked background pids, remove tracked temp dirs.
# Use as: trap e2e_cleanup EXIT
e2e_cleanup() {
    local rc=$? p d
    for p in "${E2E_PIDS[@]}"; do
        e2e_stop_pid "$p"
    done
    E2E_PIDS=()
    if [ -z "${E2E_KEEP_TMP:-}" ]; then
        for d in "${E2E_TMPDIRS[@]}"; do
            rm -rf "$d"
        done
    else
        e2e_log "keeping ${E2E_TMPDIRS[*]}"
    fi
    E2E_TMPDIRS=()
    return "$rc"
}

# e2e_fd_count PID: number of open fds of PID (from /proc/PID/fd); empty if PID is gone.
e2e_fd_count() {
    [ -d "/proc/$1/fd" ] || return 1
    find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l
}

# e2e_wait_fd_count PID WANT [TIMEOUT_SEC=5]: wait until PID has WANT open fds; prints the
# last count seen. Returns 1 on timeout.
e2e_wait_fd_count() {
    local pid="$1" want="$2" timeout="${3:-5}" c="" end
    end=$((SECONDS + timeout))
    while :; do
        c="$(e2e_fd_count "$pid")" || break
        [ "$c" = "$want" ] && { echo "$c"; return 0; }
        [ "$SECONDS" -lt "$end" ] || break
        sleep 0.1
    done
    echo "$c"
    return 1
}

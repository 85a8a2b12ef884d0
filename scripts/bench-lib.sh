# SPDX-License-Identifier: MIT
# What the benchmark scripts share (sourced by bench.sh, bench-blk.sh, bench-telemetry.sh):
# building the binaries, the one-benchmark-at-a-time lock, CPU placement, the work
# directory with its process cleanup, the machine-busy probe, and waiting for and stopping
# backends. The sourcing script defines log() and die() first, and sets `keep` (0 or 1).

# bench_build BUILD_DIR TARGET...: configures BUILD_DIR once, builds the targets; sets
# VDHOST, BENCH and PLUGINS.
bench_build() {
    local dir="$1"
    shift
    if [ ! -f "$dir/build.ninja" ]; then
        log "configuring $dir"
        meson setup "$dir" >/dev/null
    fi
    ninja -C "$dir" -j2 "$@" >/dev/null
    VDHOST="$dir/host/vdhost"
    BENCH="$dir/tools/bench/vdhost-bench"
    PLUGINS="$dir/plugins"
}

# bench_lock: one benchmark at a time on this machine, from any checkout (two would compete
# for the same CPUs): flock on fd 9. A script run by one that holds it (VDH_BENCH_LOCKED=1)
# does not take it again.
bench_lock() {
    [ -z "${VDH_BENCH_LOCKED:-}" ] || return 0
    exec 9>"${VDH_BENCH_LOCK:-/tmp/vdhost-bench.lock}"
    if ! flock -n 9; then
        log "another benchmark is running; waiting for it to finish"
        flock 9
    fi
}

# bench_cpus [PEER_CPUS]: vdhost's poll lcore on the last CPU, the load generator on CPU 0,
# the peers on PEER_CPUS (default: the poll lcore's CPU; 'all': unpinned). Sets ncpu, lcore,
# bench_cpu, peer_cpus, peer_pin and BENCH_RUN (the load generator, pinned; needs BENCH).
bench_cpus() {
    ncpu=$(nproc)
    lcore=$((ncpu - 1))
    bench_cpu=0
    [ "$ncpu" -ge 2 ] || log "warning: one CPU only; the load generator shares it with the poll lcore"
    peer_cpus="${1:-$lcore}"
    peer_pin=(taskset -c "$peer_cpus")
    [ "$peer_cpus" != all ] || peer_pin=()
    [ "$peer_cpus" = all ] || taskset -c "$peer_cpus" true 2>/dev/null ||
        die "--peer-cpus $peer_cpus: not a CPU list taskset accepts"
    # The load generator's threads are pinned by --cpus; taskset pins its main thread too.
    BENCH_RUN=(taskset -c "$bench_cpu" "$BENCH")
}

# bench_workdir PREFIX: a fresh work directory (sets work) and an EXIT trap that stops every
# pid in the pids array and removes the directory (kept with keep=1).
bench_workdir() {
    work="$(mktemp -d "/tmp/$1.XXXXXX")"
    pids=()
    trap bench_cleanup EXIT
}
bench_cleanup() {
    local p
    for p in "${pids[@]}"; do
        if kill -0 "$p" 2>/dev/null; then
            kill -TERM "$p" 2>/dev/null || true
            wait "$p" 2>/dev/null || true
        fi
    done
    if [ "${keep:-0}" -eq 1 ]; then log "kept $work"; else rm -rf "$work"; fi
}

# bench_busy_probe: how busy the machine is before the run (the load average still counts a
# run that just ended, so also the CPUs' busy share over one second). Sets load_start and
# busy_before; warns above 10%.
bench_busy_probe() {
    load_start="$(cut -d' ' -f1-3 /proc/loadavg)"
    busy_before=$({ head -n 1 /proc/stat; sleep 1; head -n 1 /proc/stat; } | awk '
        { idle = $5 + $6; tot = 0; for (i = 2; i <= 9; i++) tot += $i }
        NR == 1 { i0 = idle; t0 = tot }
        NR == 2 { printf "%.0f\n", (tot > t0) ? 100 * (1 - (idle - i0) / (tot - t0)) : 0 }')
    log "load average at the start: $load_start ($(nproc) CPUs);" \
        "CPUs ${busy_before}% busy over the last second"
    [ "$busy_before" -le 10 ] ||
        log "warning: the machine is busy; other tasks will compete with the backends"
}

# wait_socket PATH PID: until PATH is a socket (0), or PID exited / 10 s passed (1).
wait_socket() {
    local i
    for ((i = 0; i < 200; i++)); do
        [ -S "$1" ] && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# stop_pid PID: SIGTERM, 5 s, then SIGKILL; reaps it.
stop_pid() {
    local i
    kill -TERM "$1" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) in build-fuzz with clang, ASan and UBSan, and
# runs each for a bounded time on a scratch copy of its committed seed corpus (the repo is
# never modified). A run fails when the fuzzer reports a crash, a sanitizer finding, a leak,
# a timeout or an out-of-memory. Results go to build-fuzz/fuzz-logs/testlog.json (one JSON
# line per target, read by scripts/test-summary.py), logs and any crashing input to
# build-fuzz/fuzz-logs/.
#
# Usage: scripts/fuzz.sh [-t SECONDS_PER_TARGET] [-j PARALLEL_RUNS] [target...]
#   targets: config fuse_dispatcher share_profile virtqueue (default: all)
#   Reproduce a finding: build-fuzz/tests/fuzz/<target>_fuzz <crash file>
set -uo pipefail
cd "$(dirname "$0")/.."

seconds=45
jobs=2
while getopts "t:j:" o; do
    case "$o" in
    t) seconds="$OPTARG" ;;
    j) jobs="$OPTARG" ;;
    *) echo "usage: $0 [-t seconds] [-j parallel] [target...]" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(config fuse_dispatcher share_profile virtqueue)
fi

# Largest input per target: the FUSE sequences and rings need room, YAML files less.
declare -A max_len=([config]=4096 [share_profile]=2048 [fuse_dispatcher]=8192 [virtqueue]=8192)

dir=build-fuzz
logs="$dir/fuzz-logs"
results="$logs/testlog.json"
mkdir -p "$logs"
: >"$results"

record() { # name result seconds log
    printf '{"name": "fuzz_%s", "result": "%s", "duration": %s, "log": "%s"}\n' \
        "$1" "$2" "$3" "$4" >>"$results"
}

if [ ! -f "$dir/build.ninja" ]; then
    if ! CC=clang CXX=clang++ meson setup "$dir" -Dfuzz=true -Db_sanitize=address,undefined \
        -Db_lundef=false >"$logs/setup.log" 2>&1; then
        cat "$logs/setup.log"
        echo "fuzz: meson setup failed"
        for t in "${targets[@]}"; do record "$t" FAIL 0 "$logs/setup.log"; done
        exit 1
    fi
fi
build_targets=()
for t in "${targets[@]}"; do
    build_targets+=("tests/fuzz/${t}_fuzz")
done
if ! ninja -C "$dir" -j"$(nproc)" "${build_targets[@]}" >"$logs/build.log" 2>&1; then
    tail -50 "$logs/build.log"
    echo "fuzz: build failed"
    for t in "${targets[@]}"; do record "$t" FAIL 0 "$logs/build.log"; done
    exit 1
fi

# UBSan findings stop the run (also compiled in with -fno-sanitize-recover).
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export ASAN_OPTIONS="detect_leaks=1"

run_one() { # target
    local t="$1"
    local scratch
    scratch="$(mktemp -d "$dir/fuzz-run.$t.XXXXXX")"
    mkdir -p "$scratch/corpus" "$scratch/tmp"
    cp tests/fuzz/corpus/"$t"/* "$scratch/corpus/"
    local log="$logs/$t.log"
    local start=$SECONDS
    # -timeout: one input taking this long is a finding (a hang; generous, so that a busy
    # machine does not fail the run; the FUSE target also flags single requests that block,
    # see fuse_dispatcher_fuzz.cc); -rss_limit_mb: so is memory growth past it. New inputs
    # go to the scratch corpus only.
    VDH_FUZZ_TMPDIR="$(realpath "$scratch/tmp")" "$dir/tests/fuzz/${t}_fuzz" \
        -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 -max_len="${max_len[$t]}" \
        -print_final_stats=1 -artifact_prefix="$logs/$t-" "$scratch/corpus" >"$log" 2>&1
    local rc=$?
    local took=$((SECONDS - start))
    local execs
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
    rm -rf "$scratch"
    if [ $rc -eq 0 ]; then
        echo "fuzz: $t: OK (${took} s, ${execs:-?} inputs)"
        record "$t" OK "$took" "$log"
    else
        echo "fuzz: $t: FAILED (exit $rc after ${took} s), log $log:"
        grep -E "ERROR:|SUMMARY:|fuzz check failed|Test unit written|runtime error" "$log" | head -20
        record "$t" FAIL "$took" "$log"
    fi
}

rm -f "$logs"/*-crash-* "$logs"/*-leak-* "$logs"/*-timeout-* "$logs"/*-oom-*
running=0
for t in "${targets[@]}"; do
    if [ ! -d "tests/fuzz/corpus/$t" ]; then
        echo "fuzz: unknown target $t"
        record "$t" FAIL 0 ""
        continue
    fi
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
done
wait
! grep -q '"result": "FAIL"' "$results"

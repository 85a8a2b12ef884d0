#!/usr/bin/env bash
# Sets up, builds and runs every test suite (unit, integration, end-to-end with QEMU
# guests), then the unit and integration suites again under ASan+UBSan
# (scripts/sanitize.sh, build-asan) and a bounded run of each libFuzzer target
# (scripts/fuzz.sh, build-fuzz), and prints the plain closing line "N passed, N failed" over
# all of them as the last line. Exits non-zero if anything failed.
# Arguments go to the main `meson test` only. VDH_SKIP_SANITIZE=1 / VDH_SKIP_FUZZ=1 leave
# out a stage (for quick local runs; README's test command runs everything).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }
# The sanitizer tree compiles at the lowest priority from here on, beside the main build,
# the guest images and the main suites: it takes only the CPU time they leave idle (the
# build's serial steps; most tests wait on guests and sockets), so it does not disturb
# them; its stage then finishes the build and runs the suites.
prebuild=""
if [ "${VDH_SKIP_SANITIZE:-0}" != 1 ]; then
    mkdir -p build-asan
    nice -n 19 bash scripts/sanitize.sh --build-only >build-asan/prebuild.log 2>&1 &
    prebuild=$!
fi
if ! bash scripts/build.sh; then
    echo "build failed"
    echo "0 passed, 1 failed"
    exit 1
fi
# Guest images for the end-to-end suites (cached in build/guest).
# When both are built, the e2e tests skip their own up-to-date check (tests/e2e/lib.sh).
if [ -x scripts/guest/build-guest.sh ]; then
    guests_ok=1
    bash scripts/guest/build-guest.sh --kernel 6.1 build/guest || { guests_ok=0; echo "6.1 guest image build failed: e2e tests will fail"; }
    bash scripts/guest/build-guest.sh --kernel 6.12 build/guest || { guests_ok=0; echo "6.12 guest image build failed: e2e tests will fail"; }
    [ "$guests_ok" = 1 ] && export VDH_GUEST_PREBUILT=1
fi

timings=()
stage() { # name command...: runs a stage, keeps its time and exit status
    local name="$1"
    shift
    local start=$SECONDS
    "$@"
    local rc=$?
    timings+=("$name: $((SECONDS - start)) s")
    return $rc
}

rc=0
# No stale results: a run that fails before its tests leaves none (a failure to the summary).
rm -f build/meson-logs/testlog*.json build/meson-logs/testlog*.junit.xml
# Suite 'timing' (tests that assert latencies and rates) is left out here and runs once the
# prebuild is over, alone: on 2 CPUs even a nice-19 compiler delays a woken task by up to a
# scheduler tick (4 ms), which is what such a test would then measure.
stage "main suites" meson test -C build --print-errorlogs --num-processes 1 --no-suite timing "$@" || rc=1
sources=(build/meson-logs)
# (A failed prebuild is repeated and reported by the sanitizer stage's own build.)
[ -z "$prebuild" ] || stage "asan+ubsan prebuild (rest)" wait "$prebuild" || true
if [ $# -eq 0 ]; then
    stage "timing suite, machine otherwise idle" meson test -C build --print-errorlogs \
        --num-processes 1 --suite timing --logbase testlog-timing || rc=1
    sources+=(build/meson-logs/testlog-timing.json)
fi
if [ "${VDH_SKIP_SANITIZE:-0}" != 1 ]; then
    stage "asan+ubsan build and suites" bash scripts/sanitize.sh || rc=1
    sources+=(asan=build-asan/meson-logs asan=build-asan/meson-logs/sanitizer-reports.json)
fi
if [ "${VDH_SKIP_FUZZ:-0}" != 1 ]; then
    stage "fuzz build and runs" bash scripts/fuzz.sh || rc=1
    sources+=(fuzz=build-fuzz/fuzz-logs/testlog.json)
fi
for t in "${timings[@]}"; do
    echo "time: $t"
done
python3 scripts/test-summary.py "${sources[@]}" || rc=1
exit $rc

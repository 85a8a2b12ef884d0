#!/usr/bin/env bash
# Builds everything in build-asan with gcc, AddressSanitizer (with LeakSanitizer) and
# UndefinedBehaviorSanitizer, and runs the `unit` and `integration` suites there (not e2e).
# The integration suites start the sanitized vdhost, so its findings count too: every
# sanitizer report of any process goes to build-asan/meson-logs/sanitizer.<pid> and a
# report file fails the stage (as the test "sanitizer_reports" in
# build-asan/meson-logs/sanitizer-reports.json), even when the test that started the
# process passed. Results: build-asan/meson-logs/testlog.json (scripts/test-summary.py).
#
# Usage: scripts/sanitize.sh [--build-only | meson test arguments]
#   --build-only  configures and builds build-asan, runs nothing (scripts/test.sh builds it
#                 this way at the lowest priority while the main suites run)
set -uo pipefail
cd "$(dirname "$0")/.."
build_only=0
if [ "${1:-}" = --build-only ]; then
    build_only=1
    shift
fi

dir=build-asan
logs="$dir/meson-logs"
# No stale results: a stage that fails before its tests leaves none (a failure to the
# summary).
rm -f "$logs/testlog.json" "$logs/testlog.junit.xml" "$logs/sanitizer-reports.json"
if [ ! -f "$dir/build.ninja" ]; then
    # -fno-sanitize-recover: a UBSan finding aborts the process like an ASan one. -O1, as
    # the sanitizers' documentation suggests: half the compile time of -O2 here (52 s
    # against 28 s for config_test.cc), which keeps README's test command within its time.
    meson setup "$dir" -Db_sanitize=address,undefined -Db_lundef=false -Doptimization=1 \
        -Dcpp_args=-fno-sanitize-recover=undefined || exit 1
fi
ninja -C "$dir" -j"$(nproc)" || exit 1
[ "$build_only" = 0 ] || exit 0

mkdir -p "$logs"
rm -f "$logs"/sanitizer.*
reports="$(realpath "$logs")/sanitizer"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:log_path=$reports:log_exe_name=1"
# LeakSanitizer suppressions: narrow, each entry explained in the file.
if [ -f scripts/lsan.supp ]; then
    export LSAN_OPTIONS="suppressions=$(realpath scripts/lsan.supp):print_suppressions=0"
fi
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$reports:log_exe_name=1"

meson test -C "$dir" --print-errorlogs --suite unit --suite integration "$@"
rc=$?

# Reports of processes whose test passed anyway (a vdhost that crashed on its way out).
found=("$logs"/sanitizer.*)
summary="$logs/sanitizer-reports.json"
if [ -e "${found[0]}" ]; then
    echo "sanitize: ${#found[@]} sanitizer report(s):"
    for f in "${found[@]}"; do
        echo "---- $f"
        head -60 "$f"
    done
    echo '{"name": "sanitizer_reports", "result": "FAIL"}' >"$summary"
    exit 1
fi
echo '{"name": "sanitizer_reports", "result": "OK"}' >"$summary"
exit $rc

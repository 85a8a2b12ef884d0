#!/usr/bin/env bash
# Sets up, builds and runs every test suite (unit, integration, end-to-end with QEMU
# guests), then prints the plain closing line "N passed, N failed" over all suites.
# Exits non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }
if ! bash scripts/build.sh; then
    echo "build failed"
    echo "0 passed, 1 failed"
    exit 1
fi
# Guest images for the end-to-end suites (cached in build/guest).
if [ -x scripts/guest/build-guest.sh ]; then
    bash scripts/guest/build-guest.sh --kernel 6.1 build/guest || echo "6.1 guest image build failed: e2e tests will fail"
    bash scripts/guest/build-guest.sh --kernel 6.12 build/guest || echo "6.12 guest image build failed: e2e tests will fail"
fi
meson test -C build --print-errorlogs --num-processes 1 "$@"
rc=$?
python3 scripts/test-summary.py build/meson-logs/testlog.json
sum=$?
if [ $rc -ne 0 ] || [ $sum -ne 0 ]; then
    exit 1
fi
exit 0

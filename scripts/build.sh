#!/usr/bin/env bash
# Configures (once) and builds vdhost, its plugins, tools and tests in ./build.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f build/build.ninja ]; then
    meson setup build
fi
ninja -C build -j"$(nproc)"

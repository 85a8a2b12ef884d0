#!/usr/bin/env bash
# Sets up, builds and starts vdhost on a config (default: configs/default.yaml) in the
# foreground. Creates the default share directory with a hello.txt. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
config="${1:-configs/default.yaml}"
bash scripts/setup.sh
bash scripts/build.sh
mkdir -p /tmp/vdhost/share
[ -e /tmp/vdhost/share/hello.txt ] || echo "hello from the vdhost host" > /tmp/vdhost/share/hello.txt
exec ./build/host/vdhost --config "$config"

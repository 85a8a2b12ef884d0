#!/usr/bin/env bash
# Installs every Debian package vdhost needs to build, run and test.
# Non-interactive and idempotent: packages already present are skipped, so
# re-running is cheap. Guest-kernel packages are *downloaded* (not installed)
# by scripts/guest/build-guest.sh; this script only installs host tools. Then it fetches
# the Rust virtiofsd that scripts/bench.sh compares against (scripts/rust-virtiofsd.sh:
# Debian 13's package into the user's cache, nothing installed system-wide); that step is
# best effort, so where Debian 13 cannot be reached setup still succeeds and the benchmarks
# run without the Rust virtiofsd and say so. VDH_NO_RUST_VIRTIOFSD=1 skips it.
set -euo pipefail

packages=(
    build-essential
    pkg-config
    meson
    ninja-build
    python3
    libdpdk-dev
    dpdk-dev          # dpdk-telemetry.py (DPDK telemetry client; tests query vdhost with it)
    libyaml-cpp-dev
    libboost-program-options-dev
    libgtest-dev
    libgmock-dev
    libfuse3-dev
    liburing-dev
    libbsd-dev
    libnuma-dev
    qemu-system-x86
    busybox-static
    cpio
    gzip
    xz-utils
    acl
    attr
    xfsprogs
    gnuplot-nox
    clang
    libclang-rt-14-dev
    llvm
    libvirt-daemon-system
    libvirt-clients
)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "setup: all ${#packages[@]} packages present"
else
    if [ "$(id -u)" -ne 0 ]; then
        SUDO=sudo
    else
        SUDO=
    fi
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The Rust virtiofsd for scripts/bench.sh (no network once it is cached).
if [ "${VDH_NO_RUST_VIRTIOFSD:-0}" != 1 ]; then
    if rust="$(bash "$(dirname "$0")/rust-virtiofsd.sh")"; then
        echo "setup: rust-virtiofsd: $rust"
    else
        echo "setup: rust-virtiofsd not fetched (see above); scripts/bench.sh runs without it"
    fi
fi

#!/usr/bin/env bash
# Installs every Debian package vdhost needs to build, run and test.
# Non-interactive and idempotent: packages already present are skipped, so
# re-running is cheap. Guest-kernel packages are *downloaded* (not installed)
# by scripts/guest/build-guest.sh; this script only installs host tools.
set -euo pipefail

packages=(
    build-essential
    pkg-config
    meson
    ninja-build
    python3
    libdpdk-dev
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
    attr
    gnuplot-nox
    clang
    libclang-rt-14-dev
    llvm
)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "setup: all ${#packages[@]} packages present"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi

echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"

#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Boots the test guest from build-guest.sh under QEMU (TCG only; KVM is unusable
# on these machines) with one or two vhost-user-fs-pci devices whose backends
# listen on the given sockets. Exits with QEMU's status, 124 on timeout, 3 if
# the guest kernel panicked (QEMU itself exits 0 then).
#
# Usage: run-qemu.sh --socket PATH [--tag fs0] [--queues 1] [--queue-size 1024]
#          [--mem 512M] [--smp 1] [--cpu qemu64,-cx16] [--kernel-env FILE]
#          [--append 'extra cmdline']
#          [--timeout 120] [--log FILE] [--fs-socket2 PATH --tag2 TAG2]
#          [--fs-opts 'packed=on,...'] [--reboot] [--print-cmd] [--raw] [-- extra qemu args...]
# Output has CRs stripped unless --raw; --print-cmd only prints the command. --reboot lets a
# guest reset (sysrq b, reboot -f) restart the guest instead of ending QEMU.
# Kernel/initrd: --kernel-env FILE, else $KERNEL/$INITRD from the environment,
# else <repo>/build/guest/guest-6.1.env.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$script_dir/../.." && pwd)"

socket=""
tag=fs0
queues=1
queue_size=1024
mem=512M
smp=1
# QEMU 7.2 TCG + the 6.12 guest: with CX16, 13 of 37 boots double-faulted right
# after SLUB's "cmpxchg16b %gs:(...)" (guest EFLAGS corrupt). Hiding CX16 makes
# the kernel take its non-cmpxchg16b paths: 0 failures in 40 (6.12) + 20 (6.1).
cpu="qemu64,-cx16"
kernel_env=""
extra_append=""
timeout_s=120
log_file=""
socket2=""
tag2=fs1
print_cmd=0
raw=0
reboot=0
extra_qemu=()

usage() { sed -n '8,18p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "run-qemu: $*" >&2; exit 2; }
need() { if [ $# -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value"; fi; }

while [ $# -gt 0 ]; do
    case "$1" in
        --socket) need "$@"; socket="$2"; shift ;;
        --tag) need "$@"; tag="$2"; shift ;;
        --queues) need "$@"; queues="$2"; shift ;;
        --queue-size) need "$@"; queue_size="$2"; shift ;;
        --mem) need "$@"; mem="$2"; shift ;;
        --smp) need "$@"; smp="$2"; shift ;;
        --cpu) need "$@"; cpu="$2"; shift ;;
        --kernel-env) need "$@"; kernel_env="$2"; shift ;;
        --append) [ $# -ge 2 ] || die "--append needs a value"; extra_append="$extra_append $2"; shift ;;
        --timeout) need "$@"; timeout_s="$2"; shift ;;
        --log) need "$@"; log_file="$2"; shift ;;
        --fs-socket2) need "$@"; socket2="$2"; shift ;;
        --tag2) need "$@"; tag2="$2"; shift ;;
        --fs-opts) need "$@"; fs_opts=",$2"; shift ;;
        --reboot) reboot=1 ;;
        --print-cmd) print_cmd=1 ;;
        --raw) raw=1 ;;
        -h|--help) usage; exit 0 ;;
        --) shift; extra_qemu=("$@"); break ;;
        *) usage >&2; die "unknown argument '$1'" ;;
    esac
    shift
done

[ -n "$socket" ] || { usage >&2; die "--socket is required"; }
[[ "$queues" =~ ^[0-9]+$ ]] || die "--queues must be a number"
[[ "$queue_size" =~ ^[0-9]+$ ]] || die "--queue-size must be a number"
[[ "$smp" =~ ^[0-9]+$ ]] || die "--smp must be a number"
[[ "$timeout_s" =~ ^[0-9]+$ ]] || die "--timeout must be whole seconds"

if [ -n "$kernel_env" ]; then
    [ -f "$kernel_env" ] || die "no such kernel env file: $kernel_env"
    # shellcheck disable=SC1090
    . "$kernel_env"
elif [ -z "${KERNEL:-}" ] || [ -z "${INITRD:-}" ]; then
    default_env="$repo_root/build/guest/guest-6.1.env"
    [ -f "$default_env" ] || die "no guest: run scripts/guest/build-guest.sh or pass --kernel-env"
    # shellcheck disable=SC1090
    . "$default_env"
fi
[ -f "$KERNEL" ] || die "kernel not found: $KERNEL"
[ -f "$INITRD" ] || die "initrd not found: $INITRD"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not installed"

cmdline="console=ttyS0 panic=-1 loglevel=4 edd=off vdh.tag=$tag${extra_append}"

# shellcheck disable=SC2054  # commas are QEMU option syntax
cmd=(qemu-system-x86_64
    -accel tcg
    -nographic
    -cpu "$cpu" -m "$mem" -smp "$smp"
    -object "memory-backend-memfd,id=mem,size=$mem,share=on"
    -numa node,memdev=mem
    -chardev "socket,id=char0,path=$socket"
    -device "vhost-user-fs-pci,chardev=char0,tag=$tag,num-request-queues=$queues,queue-size=$queue_size${fs_opts:-}"
)
[ "$reboot" -eq 1 ] || cmd+=(-no-reboot)
if [ -n "$socket2" ]; then
    cmd+=(-chardev "socket,id=char1,path=$socket2"
          -device "vhost-user-fs-pci,chardev=char1,tag=$tag2,num-request-queues=$queues,queue-size=$queue_size${fs_opts:-}")
fi
cmd+=(-kernel "$KERNEL" -initrd "$INITRD" -append "$cmdline")
cmd+=("${extra_qemu[@]}")

if [ "$print_cmd" -eq 1 ]; then
    printf '%q ' timeout -k 5 "$timeout_s" "${cmd[@]}"
    echo
    exit 0
fi

# stdin from /dev/null: the serial/monitor mux must never read a terminal.
# The guest tty writes CRLF; strip CR so tests can anchor patterns with '$'.
filter() {
    if [ "$raw" -eq 1 ]; then cat; else tr -d '\r'; fi
}
set +e
if [ -n "$log_file" ]; then
    timeout -k 5 "$timeout_s" "${cmd[@]}" </dev/null 2>&1 | filter >"$log_file"
    rc="${PIPESTATUS[0]}"
    scan="$log_file"
else
    scan="$(mktemp "${TMPDIR:-/tmp}/run-qemu.XXXXXX")"
    trap 'rm -f "$scan"' EXIT
    timeout -k 5 "$timeout_s" "${cmd[@]}" </dev/null 2>&1 | filter | tee "$scan"
    rc="${PIPESTATUS[0]}"
fi
set -e

note() {
    echo "run-qemu: $*" >&2
    [ -z "$log_file" ] || echo "run-qemu: $*" >>"$log_file"
}
if [ "$rc" -eq 124 ]; then
    note "timed out after ${timeout_s}s"
elif [ "$rc" -eq 0 ] && grep -q 'Kernel panic - not syncing' "$scan"; then
    # panic=-1 + -no-reboot makes QEMU exit 0; do not let that pass.
    note "guest kernel panicked (exit 3)"
    rc=3
fi
exit "$rc"

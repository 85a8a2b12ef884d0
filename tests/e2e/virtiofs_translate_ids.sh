#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End to end: uid/gid translation (issue 10). One guest boot (Linux 6.12 by default) on a
# vdhost share that squashes every guest uid and gid to an unprivileged host id
# (translate_uid/translate_gid: squash-guest:0:65534:4294967295). The guest's root makes a
# setuid-root program and a guest user a file (guest_workload.sh's squash section, gated by
# SQUASH_ID in .vdh/config); the host must see both owned by 65534, so no setuid-root file
# exists on the host. TAP output.
# Usage: virtiofs_translate_ids.sh VDHOST_BIN PLUGIN_DIR
#        virtiofs_translate_ids.sh --rust-virtiofsd VIRTIOFSD_BIN
#          (the same checks against the Rust virtiofsd's --translate-uid/--translate-gid,
#          e.g. the wrapper scripts/rust-virtiofsd.sh prints; not part of the test suite)
# Environment: VDH_GUEST_KERNEL=6.1|6.12 (default 6.12), VDH_GUEST_DIR (lib.sh).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/lib.sh"
trap e2e_cleanup EXIT

[ $# -ge 2 ] || { sed -n '9,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
RUST=""
if [ "$1" = --rust-virtiofsd ]; then
    RUST="$(realpath "$2")"
    backend="Rust virtiofsd"
else
    VDHOST="$(realpath "$1")"
    PLUGIN_DIR="$(realpath "$2")"
    backend=vdhost
fi
SQUASH_ID=65534

[ "$(id -u)" -eq 0 ] || e2e_skip "needs root (vdhost switches to the squashed credentials)"
e2e_require_cmd qemu-system-x86_64 stat
kernel="${VDH_GUEST_KERNEL:-6.12}"
e2e_guest_env "$kernel" >/dev/null || tap_bail "guest image ($kernel)" /dev/null

dir=""
e2e_mktemp_dir dir
share="$dir/share"
mkdir -p "$share/.vdh"
# The squashed guest root is $SQUASH_ID on the host: it owns the share's root.
chown "$SQUASH_ID:$SQUASH_ID" "$share"
chmod 0755 "$share"
cp "$here/guest_workload.sh" "$share/.vdh/run.sh"
printf 'CACHE=auto\nSQUASH_ID=%s\n' "$SQUASH_ID" >"$share/.vdh/config"
cat >"$dir/vdhost.yaml" <<YAML
host:
  poll_lcores: [1]
  control_socket: $dir/ctl.sock
devices:
  - name: fs0
    type: virtiofs
    socket: $dir/fs.sock
    config:
      shared_dir: $share
      translate_uid: ["squash-guest:0:$SQUASH_ID:4294967295"]
      translate_gid: ["squash-guest:0:$SQUASH_ID:4294967295"]
YAML
if [ -n "$RUST" ]; then
    "$RUST" --socket-path "$dir/fs.sock" --shared-dir "$share" --sandbox none \
        --translate-uid "squash-guest:0:$SQUASH_ID:4294967295" \
        --translate-gid "squash-guest:0:$SQUASH_ID:4294967295" >"$dir/vdhost.log" 2>&1 &
else
    "$VDHOST" --config "$dir/vdhost.yaml" --plugin-dir "$PLUGIN_DIR" >"$dir/vdhost.log" 2>&1 &
fi
vpid=$!
e2e_track_pid "$vpid"
e2e_wait_socket "$dir/fs.sock" 20 || tap_bail "$backend started with the squash rules" "$dir/vdhost.log"
ok "$backend started with the squash rules"

log="$dir/qemu.log"
t0=$(date +%s)
rc=0
e2e_run_guest --socket "$dir/fs.sock" --log "$log" --timeout 240 \
    --append "vdh.script=.vdh/run.sh" || rc=$?
echo "# guest ran $(($(date +%s) - t0)) s (qemu rc $rc, kernel $KVER)"

check "guest booted and mounted the share" '[ "$(grep -ac "^VDH-MOUNT-OK" "$log")" = 1 ]'
nchecks=0
while IFS= read -r line; do
    read -r _ name status rest <<<"$line"
    nchecks=$((nchecks + 1))
    case "$status" in
        PASS) ok "guest: $name" ;;
        *) notok "guest: $name"; echo "#   $rest" ;;
    esac
done < <(grep -a '^CHECK ' "$log")
check "guest ran the squash section's 4 checks (ran $nchecks)" '[ "$nchecks" = 4 ]'
check "guest script exited 0" 'e2e_expect "$log" "^VDH-SCRIPT-EXIT 0"'
check "guest unmounted cleanly" 'e2e_expect "$log" "^VDH-UMOUNT-OK"'

# The host's view: everything the guest made belongs to the squash target.
k="$share/keep"
suid="$(stat -c %u:%g:%a "$k/suid" 2>&1)"
check "host: the guest root's setuid program is $SQUASH_ID's ($suid)" \
    '[ "$suid" = "$SQUASH_ID:$SQUASH_ID:4755" ]'
check "host: no setuid-root file in the share" \
    '[ -z "$(find "$share" -xdev -user 0 -perm -4000 -print)" ]'
check "host: the guest user's file is $SQUASH_ID's" \
    '[ "$(stat -c %u:%g "$k/pub/userfile" 2>&1):$(cat "$k/pub/userfile" 2>&1)" = "$SQUASH_ID:$SQUASH_ID:by-user" ]'
check "host: nothing in the share is owned by anyone but root (.vdh) or $SQUASH_ID" \
    '[ -z "$(find "$share" -xdev ! -user "$SQUASH_ID" ! -path "$share/.vdh*" -print)" ]'

if [ -z "$RUST" ]; then
    src=0
    if kill -0 "$vpid" 2>/dev/null; then
        kill -TERM "$vpid"
        wait "$vpid" || src=$?
    else
        src=dead
    fi
    check "vdhost exits 0 on SIGTERM after the guest" '[ "$src" = 0 ]'
fi
[ "$tap_nfail" -eq 0 ] || tail -n 20 "$dir/vdhost.log" | diag
tap_finish

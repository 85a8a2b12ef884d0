#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End to end with libvirt, vdhost as an external daemon (issue 9): vdhost runs on its own
# (default sandbox and seccomp) with a control socket and a share root; `vdhostctl add`
# creates a virtio-fs device whose socket QEMU (user libvirt-qemu, group kvm) can reach
# (socket_group kvm, mode 0660, in a 0710 root:kvm directory). A domain whose <filesystem>
# names that socket (<source socket='...'/>) is started with virsh: the guest mounts the
# share, reads a host file and writes one the host checks; virsh destroy ends QEMU with
# the session up; a second start must be served by the same device; then vdhostctl remove.
# Uses the running libvirtd or starts its own (libvirt_lib.sh); skips (exit 77) without
# root, libvirtd or virsh. TAP output.
# Usage: libvirt_external.sh VDHOST VDHOSTCTL PLUGIN_DIR   (E2E_KEEP_TMP=1 keeps the dir)
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/libvirt_lib.sh"
trap 'lv_destroy; "${V[@]}" undefine "$DOM" >/dev/null 2>&1; e2e_cleanup' EXIT
[ $# -eq 3 ] || { sed -n '12p' "$0" >&2; exit 2; }
VDHOST="$(realpath "$1")"
CTL="$(realpath "$2")"
PLUGIN_DIR="$(realpath "$3")"

finish() { tap_finish; }
bail() { tap_bail "$1" "$tmp/vdhost.log"; }

lv_require
getent group kvm >/dev/null || e2e_skip "no group kvm (QEMU's group under libvirt)"
e2e_mktemp_dir tmp
lv_stage_guest "$tmp" || bail "guest image"
# The socket directory: root-owned, not group-writable (vdhost checks that), traversable by
# QEMU's group. The control socket in it stays 0600.
mkdir -m 0710 "$tmp/run"
chgrp kvm "$tmp/run"
mkdir -p "$tmp/roots/vm1" "$tmp/base"
echo "hello from the host $$" >"$tmp/roots/vm1/hello.txt"
cat >"$tmp/roots/vm1/run.sh" <<'SH'
cat hello.txt
echo "written by the guest in boot $(cat /proc/sys/kernel/random/boot_id)" >guest-was-here.txt
sync
echo "VDH-GUEST-WROTE"
sleep 600
SH

# vdhost's config needs one device: "base" (no guest uses it).
cat >"$tmp/vdhost.yaml" <<YAML
host:
  poll_lcores: [1]
  control_socket: $tmp/run/ctl.sock
  share_roots: [$tmp/roots]
devices:
  - name: base
    type: virtiofs
    socket: $tmp/run/base.sock
    lcore: 1
    config:
      shared_dir: $tmp/base
      fd_limit: 1024
YAML
"$VDHOST" --config "$tmp/vdhost.yaml" --plugin-dir "$PLUGIN_DIR" >"$tmp/vdhost.log" 2>&1 &
VPID=$!
e2e_track_pid "$VPID"
e2e_wait_socket "$tmp/run/ctl.sock" 20 || bail "vdhost started with its control socket"
ctl() { "$CTL" --socket "$tmp/run/ctl.sock" "$@"; }

# ---- vdhostctl add: the share of the domain -------------------------------------------------
SOCK="$tmp/run/vm1.sock"
# The gid, not the name: vdhost parses an added device inside its sandbox, where there is
# no /etc/group ("socket_group: unknown group" for a name).
KVM_GID="$(getent group kvm | cut -d: -f3)"
cat >"$tmp/vm1.yaml" <<YAML
name: vm1
type: virtiofs
socket: $SOCK
socket_mode: "0660"
socket_group: $KVM_GID
lcore: 1
config:
  shared_dir: $tmp/roots/vm1
  fd_limit: 1024
YAML
out="$(ctl add "$tmp/vm1.yaml" 2>&1)"
rc=$?
check "vdhostctl add vm1 (a share below host.share_roots): exit 0, 'added' (got $rc: $out)" \
    '[ $rc -eq 0 ] && [ "$out" = added ]'
e2e_wait_socket "$SOCK" 5 || bail "vm1's socket appeared"
check "vm1's socket is 0660 root:kvm (got $(stat -c '%a %U:%G' "$SOCK"))" \
    '[ "$(stat -c "%a %U:%G" "$SOCK")" = "660 root:kvm" ]'

lv_domain_xml "$tmp" vm1 run.sh "    <filesystem type='mount'>
      <driver type='virtiofs' queue='1024'/>
      <source socket='$SOCK'/>
      <target dir='vm1'/>
    </filesystem>" >"$tmp/dom.xml"
out="$("${V[@]}" define "$tmp/dom.xml" 2>&1)"
check "virsh define: a domain whose <filesystem> is <source socket='$SOCK'/> ($out)" \
    '"${V[@]}" dominfo "$DOM" >/dev/null 2>&1'

# boot ROUND: virsh start, the guest mounts and writes, virsh destroy with the session up.
boot() {
    local round="$1" i
    rm -f "$tmp/roots/vm1/guest-was-here.txt" "$tmp/console.log"
    if ! "${V[@]}" start "$DOM" >"$tmp/start-$round.log" 2>&1; then
        notok "round $round: virsh start: $(tr '\n' ' ' <"$tmp/start-$round.log")"
        ls -l /var/log/libvirt/qemu/"$DOM".log >/dev/null 2>&1 &&
            tail -n 10 /var/log/libvirt/qemu/"$DOM".log | diag
        return 1
    fi
    ok "round $round: virsh start"
    for ((i = 0; i < 900; i++)); do
        grep -q 'written by the guest' "$tmp/roots/vm1/guest-was-here.txt" 2>/dev/null && break
        "${V[@]}" domstate "$DOM" 2>/dev/null | grep -q running || break
        sleep 0.2
    done
    sleep 0.5
    cp "$tmp/console.log" "$tmp/console-$round.log" 2>/dev/null
    check "round $round: the guest mounted the share and read the host's file" \
        "e2e_expect '$tmp/console.log' 'VDH-MOUNT-OK' && e2e_expect '$tmp/console.log' 'hello from the host $$'"
    check "round $round: the host sees the file the guest wrote" \
        "grep -q 'written by the guest in boot' '$tmp/roots/vm1/guest-was-here.txt'"
    cp "$tmp/roots/vm1/guest-was-here.txt" "$tmp/written-$round" 2>/dev/null
    ctl list | diag
    check "round $round: vdhostctl list shows vm1 with a guest" \
        "ctl list | grep -Eq '^vm1 +virtiofs +running +yes +1 +control '"
    "${V[@]}" destroy "$DOM" >/dev/null 2>&1
    for ((i = 0; i < 50; i++)); do
        ctl list | grep -Eq '^vm1 +virtiofs +[a-z]+ +no ' && break
        sleep 0.1
    done
    check "round $round: after virsh destroy vm1 has no guest and still listens" \
        "ctl list | grep -Eq '^vm1 +virtiofs +[a-z]+ +no ' && [ -S '$SOCK' ]"
    check "round $round: vdhost still runs" "kill -0 $VPID 2>/dev/null"
}
boot 1
boot 2
check "the two rounds were two boots (different boot ids in the written file)" \
    "[ -s '$tmp/written-1' ] && [ -s '$tmp/written-2' ] && ! cmp -s '$tmp/written-1' '$tmp/written-2'"

# ---- vdhostctl remove -----------------------------------------------------------------------
out="$(ctl remove vm1 2>&1)"
rc=$?
check "vdhostctl remove vm1: exit 0 (got $rc: $out)" '[ $rc -eq 0 ] && [ "$out" = "removed vm1" ]'
check "vm1's socket is gone" "[ ! -e '$SOCK' ]"
check "vdhostctl list no longer shows vm1" "! ctl list | grep -q '^vm1 '"
kill -TERM "$VPID"
wait "$VPID"
vrc=$?
check "vdhost exited 0 on SIGTERM (got $vrc)" "[ $vrc -eq 0 ]"
grep -aiE ' err| warn' "$tmp/vdhost.log" | head -n 10 | diag
finish

#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End to end with libvirt: Debian 12's libvirtd (9.0) starts a TCG guest whose
# <filesystem> device names vdhost-virtiofsd as its virtiofsd (<binary path=...>). libvirt
# runs --print-capabilities, creates and listens on the vhost-user socket, starts the
# program with --fd=N, then QEMU; the guest mounts the share, reads a host file and writes
# one the host checks. virsh destroy must end vdhost; a second start must work again.
# Uses the running libvirtd, or starts virtlogd and libvirtd by hand (PID 1 need not be
# systemd); Debian's stock /etc/libvirt/qemu.conf works, nothing there is changed. Skips
# (exit 77) without root or without libvirtd/virsh (apt-get install libvirt-daemon-system
# libvirt-clients). TAP output.
# Usage: libvirt_managed.sh VDHOST_VIRTIOFSD
set -uo pipefail
. "$(dirname "$0")/lib.sh"
trap 'cleanup_domain; e2e_cleanup' EXIT
COMPAT="$(realpath "$1")"
[ "$(id -u)" -eq 0 ] || e2e_skip "needs root (libvirtd's system instance)"
e2e_require_cmd libvirtd virsh virtlogd qemu-system-x86_64
V=(virsh -q -c qemu:///system)
DOM="vdh-e2e-$$"
cleanup_domain() { "${V[@]}" destroy "$DOM" >/dev/null 2>&1 || true; }

echo "1..11"
n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
notok() { n=$((n + 1)); echo "not ok $n - $*"; }
check() { if eval "$2"; then ok "$1"; else notok "$1"; fi; }

# ---- libvirtd: the running one, else our own (virtlogd first: QEMU's log goes through it)
if ! "${V[@]}" version >/dev/null 2>&1; then
    if ! pgrep -x virtlogd >/dev/null; then
        virtlogd >/dev/null 2>&1 &
        e2e_track_pid $!
    fi
    libvirtd >/dev/null 2>&1 &
    e2e_track_pid $!
    for _ in $(seq 100); do "${V[@]}" version >/dev/null 2>&1 && break; sleep 0.2; done
    "${V[@]}" version >/dev/null 2>&1 ||
        e2e_skip "libvirtd does not answer on qemu:///system: $("${V[@]}" version 2>&1 | head -1)"
fi
echo "# $("${V[@]}" version 2>&1 | tr '\n' ' ')"

e2e_guest_env 6.12 || { notok "guest image"; exit 1; }
e2e_mktemp_dir tmp
chmod 0755 "$tmp" # QEMU runs as libvirt-qemu: it reads the kernel and initrd from here
cp "$KERNEL" "$tmp/vmlinuz" && cp "$INITRD" "$tmp/initrd" && chmod 0644 "$tmp/vmlinuz" "$tmp/initrd"
mkdir "$tmp/share"
echo "hello from the host $$" >"$tmp/share/hello.txt"
cat >"$tmp/share/run.sh" <<'SH'
cat hello.txt
echo "written by the guest in boot $(cat /proc/sys/kernel/random/boot_id)" >guest-was-here.txt
sync
SH
# The binary libvirt runs: a wrapper that records the command line, then vdhost-virtiofsd.
cat >"$tmp/virtiofsd" <<SH
#!/bin/sh
echo "\$*" >>"$tmp/argv.log"
exec "$COMPAT" "\$@"
SH
chmod 0755 "$tmp/virtiofsd"

cat >"$tmp/dom.xml" <<XML
<domain type='qemu'>
  <name>$DOM</name>
  <memory unit='MiB'>512</memory>
  <vcpu>1</vcpu>
  <!-- As scripts/guest/run-qemu.sh: qemu64 without cmpxchg16b (else the guest kernel
       sometimes dies at boot under TCG) -->
  <cpu mode='custom' match='exact' check='none'>
    <model fallback='forbid'>qemu64</model>
    <feature policy='disable' name='cx16'/>
  </cpu>
  <memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$tmp/vmlinuz</kernel>
    <initrd>$tmp/initrd</initrd>
    <cmdline>console=ttyS0 panic=-1 loglevel=4 edd=off vdh.tag=fs0 vdh.script=run.sh</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>$(command -v qemu-system-x86_64)</emulator>
    <filesystem type='mount' accessmode='passthrough'>
      <driver type='virtiofs' queue='1024'/>
      <binary path='$tmp/virtiofsd' xattr='on'><cache mode='always'/></binary>
      <source dir='$tmp/share'/>
      <target dir='fs0'/>
    </filesystem>
    <serial type='file'><source path='$tmp/console.log'/><target port='0'/></serial>
    <video><model type='none'/></video>
    <memballoon model='none'/>
  </devices>
</domain>
XML

# boot ROUND: virsh create (transient domain), wait for the guest's script, check.
boot() {
    local round="$1" i
    rm -f "$tmp/share/guest-was-here.txt" "$tmp/console.log"
    if ! "${V[@]}" create "$tmp/dom.xml" >"$tmp/create-$round.log" 2>&1; then
        notok "round $round: virsh create: $(tr '\n' ' ' <"$tmp/create-$round.log")"
        return 1
    fi
    ok "round $round: virsh create started the domain with vdhost-virtiofsd"
    # libvirt's pid file of the virtiofsd it started (vdhost after the exec).
    local pid
    pid="$(cat /run/libvirt/qemu/*-"$DOM"-fs0-fs.pid 2>/dev/null | head -1)"
    for ((i = 0; i < 900; i++)); do
        grep -q "VDH-POWEROFF" "$tmp/console.log" 2>/dev/null && break
        sleep 0.2
    done
    cp "$tmp/console.log" "$tmp/console-$round.log" 2>/dev/null
    check "round $round: the guest mounted the share and read the host's file" \
        "e2e_expect '$tmp/console.log' 'VDH-MOUNT-OK' && e2e_expect '$tmp/console.log' 'hello from the host $$' && e2e_expect '$tmp/console.log' 'VDH-SCRIPT-EXIT 0'"
    check "round $round: the host sees the file the guest wrote" \
        "grep -q 'written by the guest in boot' '$tmp/share/guest-was-here.txt'"
    local vlog
    vlog="$(ls -t /var/log/libvirt/qemu/"$DOM"-fs0-virtiofsd.log 2>/dev/null | head -1)"
    [ -z "$vlog" ] || tail -n 20 "$vlog" | sed 's/^/# virtiofsd: /'
    check "round $round: libvirt's virtiofsd pid ${pid:-?} is vdhost" \
        "[ -n '$pid' ] && grep -q 'vdhost --config /proc/self/fd/' <(tr '\\0' ' ' </proc/$pid/cmdline)"
    "${V[@]}" destroy "$DOM" >/dev/null 2>&1
    for ((i = 0; i < 50; i++)); do
        [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    check "round $round: virsh destroy ended vdhost (pid ${pid:-none found})" \
        "[ -n '$pid' ] && ! kill -0 '$pid' 2>/dev/null"
}
boot 1
echo "# libvirt ran: $(head -n 3 "$tmp/argv.log" | tr '\n' '|')"
check "libvirt passed an inherited socket (--fd) and the share" \
    "grep -q -- '--fd=[0-9]* .*source=$tmp/share' '$tmp/argv.log'"
boot 2
exit 0

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
. "$(dirname "$0")/libvirt_lib.sh"
trap 'lv_destroy; e2e_cleanup' EXIT
COMPAT="$(realpath "$1")"

# ---- libvirtd: the running one, else our own (virtlogd first: QEMU's log goes through it)
lv_require
echo "1..11"
e2e_mktemp_dir tmp
lv_stage_guest "$tmp" || { notok "guest image"; exit 1; }
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

lv_domain_xml "$tmp" fs0 run.sh "    <filesystem type='mount' accessmode='passthrough'>
      <driver type='virtiofs' queue='1024'/>
      <binary path='$tmp/virtiofsd' xattr='on'><cache mode='always'/></binary>
      <source dir='$tmp/share'/>
      <target dir='fs0'/>
    </filesystem>" >"$tmp/dom.xml"

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
    lv_wait_poweroff "$tmp/console.log"
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

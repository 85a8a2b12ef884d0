# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# Helpers shared by the libvirt end-to-end tests (libvirt_managed.sh, libvirt_external.sh):
# reach libvirtd's system instance (or start virtlogd and libvirtd by hand: PID 1 need not
# be systemd), stage the guest's kernel and initrd where QEMU (user libvirt-qemu) can read
# them, and write a TCG domain around a <filesystem> element.
# Source it after lib.sh; it sets V (the virsh command) and DOM (a per-run domain name).

V=(virsh -q -c qemu:///system)
DOM="vdh-e2e-$$"

# lv_destroy: destroys the domain if it runs (for the EXIT trap).
lv_destroy() { "${V[@]}" destroy "$DOM" >/dev/null 2>&1 || true; }

# lv_require: skips (exit 77) without root, the libvirt tools, or a libvirtd that answers.
lv_require() {
    [ "$(id -u)" -eq 0 ] || e2e_skip "needs root (libvirtd's system instance)"
    e2e_require_cmd libvirtd virsh virtlogd qemu-system-x86_64
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
}

# lv_stage_guest DIR: the 6.12 guest's kernel and initrd as DIR/vmlinuz and DIR/initrd,
# DIR made 0755 (QEMU runs as libvirt-qemu and reads them from there).
lv_stage_guest() {
    local d="$1"
    e2e_guest_env 6.12 || return 1
    chmod 0755 "$d"
    cp "$KERNEL" "$d/vmlinuz" && cp "$INITRD" "$d/initrd" &&
        chmod 0644 "$d/vmlinuz" "$d/initrd"
}

# lv_domain_xml DIR TAG SCRIPT FILESYSTEM_XML: a domain with the guest of DIR, the console
# in DIR/console.log, booting with vdh.tag=TAG vdh.script=SCRIPT, and the <filesystem>.
lv_domain_xml() {
    local d="$1" tag="$2" script="$3" fs="$4"
    cat <<XML
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
    <kernel>$d/vmlinuz</kernel>
    <initrd>$d/initrd</initrd>
    <cmdline>console=ttyS0 panic=-1 loglevel=4 edd=off vdh.tag=$tag vdh.script=$script</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>$(command -v qemu-system-x86_64)</emulator>
$fs
    <serial type='file'><source path='$d/console.log'/><target port='0'/></serial>
    <video><model type='none'/></video>
    <memballoon model='none'/>
  </devices>
</domain>
XML
}

# lv_wait_poweroff CONSOLE [TIMEOUT_SEC=180]: waits until the guest's init printed
# VDH-POWEROFF.
lv_wait_poweroff() {
    local i
    for ((i = 0; i < ${2:-180} * 5; i++)); do
        grep -q "VDH-POWEROFF" "$1" 2>/dev/null && return 0
        sleep 0.2
    done
    return 1
}

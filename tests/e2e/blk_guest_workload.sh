# SPDX-License-Identifier: MIT
# shellcheck shell=sh
# Block workload run INSIDE the busybox e2e guest (copied by virtioblk_guest.sh to
# SHARE/.vdh/run.sh, run as root with cwd = the virtio-fs mount). Two vhost-user-blk disks,
# told apart by size: RW gets a fresh ext2 (busybox mke2fs), files with sha256 sums, a
# copy to and from the virtio-fs share, I/O on both devices at once, unmount, a remount
# that reads everything back through the device, fstrim; RO (the host's ext2 image, a
# read-only device) mounts -o ro, reads, and refuses every write. Leaves keep/ for the host:
# blk.sha256 (sums of the files on RW), fs.sha256 (sums of files in the share).
# Prints "CHECK <name> PASS|FAIL <details>"; exits 0 iff no CHECK failed.
# .vdh/config sets RW_SECTORS RO_SECTORS (512-byte sectors), RW_BLOCK_SIZE (the RW disk's
# logical block size), RW_WRITE_CACHE (its queue/write_cache), RW_SERIAL RO_SERIAL (empty: not checked), FROMFS_SHA (of .vdh/fromfs.bin), RO_FILE RO_FILE_SHA (a file on RO).
M="${VDH_MNT:-/mnt}"
V="$M/.vdh"
K="$M/keep"
B=/blk
R=/blkro
RW_SERIAL=""
RO_SERIAL=""
# shellcheck disable=SC1091
. "$V/config"

fails=0
pass() { echo "CHECK $1 PASS"; }
fail() {
    n="$1"
    shift
    echo "CHECK $n FAIL $*"
    fails=$((fails + 1))
}
# expect NAME ACTUAL WANTED
expect() {
    if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "got '$2' want '$3'"; fi
}
# status NAME CMD...: a check that CMD succeeds (its output's tail on failure).
status() {
    n="$1"
    shift
    if _o="$("$@" 2>&1)"; then pass "$n"; else fail "$n" "$(echo "$_o" | tail -n 2)"; fi
}
# refused NAME CMD...: a check that CMD fails.
refused() {
    n="$1"
    shift
    if _o="$("$@" 2>&1)"; then fail "$n" "succeeded"; else pass "$n"; fi
}
sha() { sha256sum "$1" | cut -d' ' -f1; }
# find_disk SECTORS: the /dev/vdX of that size.
find_disk() {
    for s in /sys/block/vd*; do
        [ "$(cat "$s/size" 2>/dev/null)" = "$1" ] && { echo "/dev/${s##*/}"; return 0; }
    done
    return 1
}
finish() {
    echo "BLK-WORKLOAD-END fails=$fails"
    exit $((fails > 0))
}

mkdir -p "$K" "$B" "$R"
rw="$(find_disk "$RW_SECTORS")"
ro="$(find_disk "$RO_SECTORS")"
expect disk_rw_present "${rw:+yes}" yes
expect disk_ro_present "${ro:+yes}" yes
if [ -z "$rw" ] || [ -z "$ro" ]; then
    ls -l /sys/block
    finish
fi
rwn="${rw#/dev/}"
ron="${ro#/dev/}"
[ -z "$RW_SERIAL" ] || expect disk_rw_serial "$(cat "/sys/block/$rwn/serial")" "$RW_SERIAL"
[ -z "$RO_SERIAL" ] || expect disk_ro_serial "$(cat "/sys/block/$ron/serial")" "$RO_SERIAL"
expect disk_rw_writable "$(cat "/sys/block/$rwn/ro")" 0
expect disk_ro_readonly "$(cat "/sys/block/$ron/ro")" 1
expect disk_rw_block_size "$(cat "/sys/block/$rwn/queue/logical_block_size")" "$RW_BLOCK_SIZE"
# vdhost: VIRTIO_BLK_F_FLUSH without CONFIG_WCE, so the guest keeps a write cache and sends
# FLUSH on sync ("write back"); qemu-storage-daemon reports wce=0 ("write through").
expect disk_rw_write_cache "$(cat "/sys/block/$rwn/queue/write_cache")" "$RW_WRITE_CACHE"

# --- RW: a new file system, files, both devices at once -------------------------------------
status rw_mke2fs mke2fs -F -b 4096 -L vdhblk "$rw"
status rw_mount mount -t ext2 "$rw" "$B" || finish
echo "written by the guest on a vhost-user-blk disk" >"$B/hello.txt"
dd if=/dev/urandom of="$B/a.bin" bs=4096 count=1 2>/dev/null
dd if=/dev/urandom of="$B/b.bin" bs=64k count=48 2>/dev/null
mkdir "$B/dir"
i=0
while [ $i -lt 40 ]; do
    dd if=/dev/urandom of="$B/dir/f$i" bs=$((100 + i * 37)) count=1 2>/dev/null
    i=$((i + 1))
done
status rw_copy_from_share cp "$V/fromfs.bin" "$B/fromfs.bin"
# The block disk and the share, written at the same time (one poll lcore serves both).
dd if=/dev/urandom of="$B/par.bin" bs=64k count=32 conv=fsync 2>/dev/null &
p1=$!
dd if=/dev/urandom of="$K/par.bin" bs=64k count=32 conv=fsync 2>/dev/null &
p2=$!
wait $p1
r1=$?
wait $p2
r2=$?
expect parallel_writes_blk_and_share "$r1 $r2" "0 0"
dd if=/dev/urandom of="$B/trim.bin" bs=64k count=64 conv=fsync 2>/dev/null
(cd "$B" && sha256sum hello.txt a.bin b.bin fromfs.bin par.bin dir/*) >/tmp/blk.sha256
cp /tmp/blk.sha256 "$K/blk.sha256"
expect rw_fromfs_sum "$(sha "$B/fromfs.bin")" "$FROMFS_SHA"
status blk_to_share_copy cp "$B/b.bin" "$K/b-from-blk.bin"
(cd "$K" && sha256sum par.bin b-from-blk.bin) >"$K/fs.sha256"
sync
status rw_umount umount "$B"

# --- RW again: every byte read back through the device, then a trim ------------------------
sync
echo 3 >/proc/sys/vm/drop_caches
status rw_remount mount -t ext2 "$rw" "$B" || finish
status rw_readback_sums sh -c "cd '$B' && sha256sum -c /tmp/blk.sha256"
rm "$B/trim.bin"
sync
status rw_fstrim fstrim "$B"
status rw_final_umount umount "$B"
sync

# --- RO: the host's image reads, every write is refused -----------------------------------
status ro_mount_ro mount -t ext2 -o ro "$ro" "$R"
expect ro_file_sum "$(sha "$R/$RO_FILE" 2>&1)" "$RO_FILE_SHA"
refused ro_create_refused sh -c "echo x >'$R/new.txt'"
status ro_umount umount "$R"
refused ro_raw_write_refused dd if=/dev/zero of="$ro" bs=4096 count=1 conv=fsync
# Mounting without -o ro: refused, or (busybox retries) read-only and still no writes.
if mount -t ext2 "$ro" "$R" 2>/dev/null; then
    refused ro_rw_mount_stays_readonly sh -c "echo x >'$R/new.txt'"
    umount "$R"
else
    pass ro_rw_mount_stays_readonly
fi
finish

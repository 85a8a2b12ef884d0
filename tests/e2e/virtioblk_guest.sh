#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End to end (issue 11): one 6.1 guest with two vhost-user-blk-pci disks and a virtio-fs
# share, all three from ONE vdhost process on ONE poll lcore. In the guest
# (blk_guest_workload.sh): a busybox ext2 on the writable disk, files with sums, copies
# between the disk and the share, parallel writes to both, unmount, remount and read back,
# fstrim; the read-only disk (a host-made ext2 image) mounts -o ro and refuses writes. The
# host then checks the disk image with e2fsck -fn and reads every file back with debugfs
# (no mount, no loop device), checks the share's copies, that the read-only image is
# unchanged, and from vdhost's stats that one lcore carried requests of all three devices,
# none failed, and blk0 served FLUSH, DISCARD and GET_ID.
# TAP output. One guest boot.
# Usage: virtioblk_guest.sh vdhost VDHOST_BIN PLUGIN_DIR
#        virtioblk_guest.sh qsd   (the same guest against qemu-storage-daemon's
#          vhost-user-blk exports and the C virtiofsd; not part of the test suite)
# Environment: VDH_GUEST_KERNEL=6.1|6.12 (default 6.1), VDH_GUEST_DIR (lib.sh).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/lib.sh"
trap e2e_cleanup EXIT

mode="${1:-}"
case "$mode" in
    vdhost)
        [ $# -ge 3 ] || { sed -n '13,16p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
        VDHOST="$(realpath "$2")"
        PLUGIN_DIR="$(realpath "$3")"
        ;;
    qsd) e2e_require_cmd qemu-storage-daemon ;;
    *) sed -n '13,16p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac

[ "$(id -u)" -eq 0 ] || e2e_skip "needs root (vdhost's sandbox)"
e2e_require_cmd qemu-system-x86_64 debugfs e2fsck mke2fs sha256sum truncate
kernel="${VDH_GUEST_KERNEL:-6.1}"
e2e_guest_env "$kernel" >/dev/null || tap_bail "guest image ($kernel)" /dev/null
case " ${GUEST_MODULES:-} " in
    *" virtio_blk "*) ;;
    *) grep -q '^GUEST_MODULES=.*virtio_blk' "$E2E_GUEST_ENV" ||
        tap_bail "guest image loads virtio_blk" "$E2E_GUEST_ENV" ;;
esac

dir=""
e2e_mktemp_dir dir
share="$dir/share"
mkdir -p "$share/.vdh" "$dir/rosrc" "$dir/out"
cp "$here/blk_guest_workload.sh" "$share/.vdh/run.sh"
head -c 300000 /dev/urandom >"$share/.vdh/fromfs.bin"
rw_img="$dir/rw.img"
ro_img="$dir/ro.img"
truncate -s 32M "$rw_img"
head -c 200000 /dev/urandom >"$dir/rosrc/data.bin"
mke2fs -q -F -t ext2 -b 1024 -d "$dir/rosrc" "$ro_img" 8M >"$dir/mke2fs.log" 2>&1 ||
    tap_bail "host: mke2fs -d made the read-only image" "$dir/mke2fs.log"
sha_of() { sha256sum "$1" | cut -d' ' -f1; }
ro_img_sha="$(sha_of "$ro_img")"
serial_rw="" serial_ro="" write_cache="write through"
[ "$mode" = vdhost ] && serial_rw=blk0 serial_ro=blkro write_cache="write back"
cat >"$share/.vdh/config" <<EOF
RW_SECTORS=$(($(stat -c %s "$rw_img") / 512))
RO_SECTORS=$(($(stat -c %s "$ro_img") / 512))
RW_BLOCK_SIZE=4096
RW_WRITE_CACHE="$write_cache"
RW_SERIAL=$serial_rw
RO_SERIAL=$serial_ro
FROMFS_SHA=$(sha_of "$share/.vdh/fromfs.bin")
RO_FILE=data.bin
RO_FILE_SHA=$(sha_of "$dir/rosrc/data.bin")
EOF

blog="$dir/backend.log"
if [ "$mode" = vdhost ]; then
    # One poll lcore (CPU 1) for all three devices.
    cat >"$dir/vdhost.yaml" <<YAML
host:
  poll_lcores: [1]
  control_socket: $dir/ctl.sock
devices:
  - name: fs0
    type: virtiofs
    socket: $dir/fs.sock
    lcore: 1
    config:
      shared_dir: $share
  - name: blk0
    type: virtioblk
    socket: $dir/blk0.sock
    lcore: 1
    config:
      path: $rw_img
      block_size: 4096
  - name: blkro
    type: virtioblk
    socket: $dir/blkro.sock
    lcore: 1
    config:
      path: $ro_img
      readonly: true
YAML
    "$VDHOST" --config "$dir/vdhost.yaml" --plugin-dir "$PLUGIN_DIR" >"$blog" 2>&1 &
    vpid=$!
    e2e_track_pid "$vpid"
    for s in fs blk0 blkro; do
        e2e_wait_socket "$dir/$s.sock" 20 || tap_bail "vdhost serves fs0, blk0 and blkro" "$blog"
    done
    ok "vdhost serves fs0, blk0 and blkro on one poll lcore"
else
    qemu-storage-daemon \
        --blockdev "driver=file,node-name=rw,filename=$rw_img,cache.direct=off,aio=io_uring" \
        --blockdev "driver=file,node-name=ro,filename=$ro_img,read-only=on,aio=io_uring" \
        --export "type=vhost-user-blk,id=e0,node-name=rw,addr.type=unix,addr.path=$dir/blk0.sock,writable=on,num-queues=1,logical-block-size=4096" \
        --export "type=vhost-user-blk,id=e1,node-name=ro,addr.type=unix,addr.path=$dir/blkro.sock,writable=off,num-queues=1" \
        >"$blog" 2>&1 &
    e2e_track_pid $!
    for s in blk0 blkro; do
        e2e_wait_socket "$dir/$s.sock" 20 || tap_bail "qemu-storage-daemon exports" "$blog"
    done
    e2e_start_virtiofsd "$dir/fs.sock" "$share" || tap_bail "C virtiofsd started" "$dir/fs.sock.log"
    ok "qemu-storage-daemon exports blk0 and blkro, virtiofsd serves fs0"
fi

log="$dir/qemu.log"
t0=$SECONDS
rc=0
e2e_run_guest --socket "$dir/fs.sock" --log "$log" --timeout 150 \
    --append "vdh.script=.vdh/run.sh" -- \
    -chardev "socket,id=blk0,path=$dir/blk0.sock" \
    -device vhost-user-blk-pci,chardev=blk0,num-queues=1 \
    -chardev "socket,id=blkro,path=$dir/blkro.sock" \
    -device vhost-user-blk-pci,chardev=blkro,num-queues=1 || rc=$?
echo "# guest ran $((SECONDS - t0)) s (qemu rc $rc, kernel $KVER)"

check "guest loaded its modules (virtio_blk among them)" 'e2e_expect "$log" "^VDH-MODULES-OK"'
check "guest mounted the virtio-fs share" '[ "$(grep -ac "^VDH-MOUNT-OK" "$log")" = 1 ]'
nchecks=0
while IFS= read -r line; do
    read -r _ name status rest <<<"$line"
    nchecks=$((nchecks + 1))
    case "$status" in
        PASS) ok "guest: $name" ;;
        *) notok "guest: $name"; echo "#   $rest" ;;
    esac
done < <(grep -a '^CHECK ' "$log")
want=23
[ "$mode" = vdhost ] && want=25
check "guest ran all $want checks (ran $nchecks)" '[ "$nchecks" = "$want" ]'
check "guest script exited 0" 'e2e_expect "$log" "^VDH-SCRIPT-EXIT 0"'
check "guest unmounted the share cleanly" 'e2e_expect "$log" "^VDH-UMOUNT-OK"'

# The host's view of the disk: a consistent file system holding exactly the guest's bytes.
e2fsck -fn "$rw_img" >"$dir/e2fsck.log" 2>&1
erc=$?
check "host: e2fsck -fn finds the guest's file system clean (rc $erc)" '[ "$erc" = 0 ]'
[ "$erc" = 0 ] || tail -n 10 "$dir/e2fsck.log" | diag
sums="$share/keep/blk.sha256"
nfiles=0 nbad=0
if [ -s "$sums" ]; then
    # One debugfs run dumps every file the guest listed (a few processes, not one per file).
    awk -v o="$dir/out" '{ print "dump /" $2 " " o "/" $2 }' "$sums" >"$dir/debugfs.cmds"
    awk -v o="$dir/out" '$2 ~ /\// { sub("/[^/]*$", "", $2); print o "/" $2 }' "$sums" | sort -u |
        xargs -r mkdir -p
    debugfs -f "$dir/debugfs.cmds" "$rw_img" >"$dir/debugfs.log" 2>&1
    nfiles=$(wc -l <"$sums")
    (cd "$dir/out" && sha256sum -c "$sums") >"$dir/verify.log" 2>&1
    nbad=$((nfiles - $(grep -c ': OK$' "$dir/verify.log")))
    grep -v ': OK$' "$dir/verify.log" | head -n 10 | diag
fi
check "host: debugfs reads the guest's $nfiles files from the image, sums equal ($nbad differ)" \
    '[ "$nfiles" = 45 ] && [ "$nbad" = 0 ]'
check "host: the share's file the guest copied onto the disk is intact on the disk" \
    '[ "$(sha_of "$dir/out/fromfs.bin")" = "$(sha_of "$share/.vdh/fromfs.bin")" ]'
check "host: the disk's file the guest copied into the share is intact in the share" \
    '[ "$(sha_of "$share/keep/b-from-blk.bin")" = "$(sha_of "$dir/out/b.bin")" ]'
check "host: the share's files match the guest's sums" \
    '(cd "$share/keep" && sha256sum --quiet -c fs.sha256)'
check "host: debugfs does not find the trimmed file" \
    '! debugfs -R "stat /trim.bin" "$rw_img" 2>&1 | grep -q "Inode:"'
check "host: the read-only image is unchanged" '[ "$(sha_of "$ro_img")" = "$ro_img_sha" ]'

if [ "$mode" = vdhost ]; then
    # Per device: requests, the CPUs that served them, errors, malformed chains + broken rings.
    "$VDHOST" --stats "$dir/ctl.sock" >"$dir/stats.json" 2>&1
    # and the plugin's own counters: the guest's sync, fstrim and serial reads reached blk0 as
    # FLUSH, DISCARD and GET_ID; nothing was written to blkro (the last line).
    per_dev="$(python3 -c '
import json, sys
devs = json.load(open(sys.argv[1]))["devices"]
for d in devs:
    qs = d.get("queues", [])
    cpus = sorted({q["cpu"] for q in qs if q["requests"] > 0})
    print(d["name"], sum(q["requests"] for q in qs), ",".join(map(str, cpus)) or "-",
          sum(q["errors"] for q in qs), sum(q["bad_chains"] + q["broken"] for q in qs),
          sum(q["bytes_in"] for q in qs), sum(q["bytes_out"] for q in qs))
p = {d["name"]: d.get("plugin", {}) for d in devs}
b, r = p.get("blk0", {}), p.get("blkro", {})
print("plugin", b.get("flushes", 0), b.get("discards", 0), b.get("get_ids", 0),
      r.get("get_ids", 0), r.get("writes", -1))
' "$dir/stats.json" 2>&1)"
    blk_ops="$(echo "$per_dev" | sed -n 's/^plugin //p')"
    per_dev="$(echo "$per_dev" | grep -v '^plugin ')"
    echo "device requests cpus errors bad_chains+broken bytes_in bytes_out" | diag
    echo "$per_dev" | diag
    echo "blk0 flushes discards get_ids, blkro get_ids writes: $blk_ops" | diag
    check "vdhost stats: fs0, blk0 and blkro all carried requests, all on CPU 1" \
        '[ "$(echo "$per_dev" | awk "\$2 > 0 && \$3 == \"1\"" | wc -l)" = 3 ]'
    check "vdhost stats: no malformed chain or broken ring, no blk request failed" \
        '[ "$(echo "$per_dev" | awk "\$5 == 0 && (\$1 == \"fs0\" || \$4 == 0)" | wc -l)" = 3 ]'
    read -r n_flush n_discard n_id n_id_ro n_w_ro <<<"$blk_ops"
    check "vdhost blk0 served FLUSH ($n_flush), DISCARD ($n_discard), GET_ID ($n_id)" \
        '[ "${n_flush:-0}" -gt 0 ] && [ "${n_discard:-0}" -gt 0 ] && [ "${n_id:-0}" -gt 0 ]'
    check "vdhost blkro served GET_ID ($n_id_ro) and wrote nothing ($n_w_ro writes)" \
        '[ "${n_id_ro:-0}" -gt 0 ] && [ "$n_w_ro" = 0 ]'
    src=0
    if kill -0 "$vpid" 2>/dev/null; then
        kill -TERM "$vpid"
        wait "$vpid" || src=$?
    else
        src=dead
    fi
    check "vdhost exits 0 on SIGTERM after the guest" '[ "$src" = 0 ]'
fi
if [ "$tap_nfail" -gt 0 ]; then
    echo "# backend log:"
    tail -n 20 "$blog" | diag
    echo "# guest log:"
    grep -av '^CHECK .* PASS' "$log" | tail -n 40 | diag
fi
tap_finish

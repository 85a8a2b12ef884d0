#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds a tiny Linux guest for end-to-end tests: a Debian cloud kernel
# (downloaded, never installed) plus a busybox initramfs whose /init mounts a
# virtio-fs share, runs an optional script from it, and powers off. virtio_blk
# is loaded too (after the virtio-fs modules), so a script can use a
# vhost-user-blk disk; ext4 (which also mounts ext2) is built into both kernels.
# No root mounts, no loop devices: the initramfs is packed from a plain tree.
#
# Usage: build-guest.sh [--kernel 6.1|6.12] [--force] [--keep-work] [OUTDIR]
#   OUTDIR defaults to <repo>/build/guest. Outputs (idempotent):
#     OUTDIR/vmlinuz-<kver>  OUTDIR/initrd-<kver>.cpio.gz  OUTDIR/guest-<6.1|6.12>.env
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$script_dir/../.." && pwd)"

flavor=6.1
outdir=""
force=0
keep_work=0

usage() { sed -n '8,11p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --kernel) flavor="${2:?--kernel needs 6.1 or 6.12}"; shift ;;
        --kernel=*) flavor="${1#--kernel=}" ;;
        --force) force=1 ;;
        --keep-work) keep_work=1 ;;
        -h|--help) usage; exit 0 ;;
        -*) echo "build-guest: unknown option '$1'" >&2; usage >&2; exit 2 ;;
        *) [ -z "$outdir" ] || { echo "build-guest: only one OUTDIR" >&2; exit 2; }
           outdir="$1" ;;
    esac
    shift
done

case "$flavor" in
    6.1|6.12) ;;
    *) echo "build-guest: --kernel must be 6.1 or 6.12 (got '$flavor')" >&2; exit 2 ;;
esac

outdir="${outdir:-$repo_root/build/guest}"
mkdir -p "$outdir"
outdir="$(cd "$outdir" && pwd)"

log() { echo "build-guest[$flavor]: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

for tool in apt-cache apt-get dpkg-deb cpio gzip xz find sha256sum; do
    command -v "$tool" >/dev/null || die "missing tool '$tool' (run scripts/setup.sh)"
done

busybox_bin=""
for cand in /bin/busybox /usr/bin/busybox; do
    if [ -x "$cand" ]; then busybox_bin="$cand"; break; fi
done
[ -n "$busybox_bin" ] || die "busybox not found (install busybox-static)"
if command -v file >/dev/null && ! file -L "$busybox_bin" | grep -q 'statically linked'; then
    die "$busybox_bin is not static (install busybox-static)"
fi

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)

# ---------------------------------------------------------------------------
# 1. Which versioned image package does the metapackage point at?
# ---------------------------------------------------------------------------
apt_updated=0
apt_update_once() {
    [ "$apt_updated" -eq 0 ] || return 0
    log "package lookup found nothing; running apt-get update once"
    "${sudo_cmd[@]}" apt-get update -q >&2 || true
    apt_updated=1
}

# Prints the first "linux-image-*" dependency of the metapackage candidate.
resolve_image_pkg() {
    if [ "$flavor" = 6.1 ]; then
        apt-cache depends linux-image-cloud-amd64 2>/dev/null |
            awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
    else
        apt-cache show --no-all-versions linux-image-cloud-amd64/bookworm-backports 2>/dev/null |
            awk -F': ' '$1 == "Depends" {
                n = split($2, d, /, */)
                for (i = 1; i <= n; i++) {
                    split(d[i], w, / /)
                    if (w[1] ~ /^linux-image-[0-9]/) { print w[1]; exit }
                }
            }'
    fi
}

image_pkg="$(resolve_image_pkg || true)"
if [ -z "$image_pkg" ]; then
    if [ "$flavor" = 6.12 ]; then
        if ! apt-cache policy 2>/dev/null | grep -q bookworm-backports; then
            log "bookworm-backports not configured; running enable-backports.sh"
            "$script_dir/enable-backports.sh" >&2
            apt_updated=1
        else
            apt_update_once
        fi
    else
        apt_update_once
    fi
    image_pkg="$(resolve_image_pkg || true)"
fi
[ -n "$image_pkg" ] || die "cannot resolve the image package of linux-image-cloud-amd64 ($flavor)"

case "$flavor:$image_pkg" in
    6.1:linux-image-6.1.*|6.12:linux-image-6.12.*) ;;
    *) die "metapackage resolves to '$image_pkg', which is not a $flavor kernel" ;;
esac
log "image package: $image_pkg"

apt_target=()
[ "$flavor" = 6.12 ] && apt_target=(-t bookworm-backports)

# 'URI' filename size hash  ->  filename and size (nothing is downloaded)
uri_line="$(apt-get download --print-uris "${apt_target[@]}" "$image_pkg" 2>/dev/null | head -n1 || true)"
if [ -z "$uri_line" ]; then
    apt_update_once
    uri_line="$(apt-get download --print-uris "${apt_target[@]}" "$image_pkg" 2>/dev/null | head -n1 || true)"
fi
[ -n "$uri_line" ] || die "apt-get download --print-uris $image_pkg printed nothing"
deb_name="$(awk '{ print $2 }' <<<"$uri_line")"
deb_size="$(awk '{ print $3 }' <<<"$uri_line")"

# ---------------------------------------------------------------------------
# 2. Up to date?  Key = deb file + this script + busybox binary.
# ---------------------------------------------------------------------------
env_file="$outdir/guest-$flavor.env"
stamp_file="$outdir/.guest-$flavor.stamp"
stamp="deb=$deb_name
script=$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)
busybox=$(sha256sum "$busybox_bin" | cut -d' ' -f1)"

if [ "$force" -eq 0 ] && [ -f "$stamp_file" ] && [ -f "$env_file" ] &&
   [ "$(cat "$stamp_file")" = "$stamp" ]; then
    # shellcheck disable=SC1090,SC2153
    ( . "$env_file"; [ -f "$KERNEL" ] && [ -f "$INITRD" ] ) && {
        log "up to date ($env_file)"
        exit 0
    }
fi

# ---------------------------------------------------------------------------
# 3. Download (cached in OUTDIR/debs) and extract into a scratch dir.
# ---------------------------------------------------------------------------
deb_dir="$outdir/debs"
mkdir -p "$deb_dir"
deb_path="$deb_dir/$deb_name"
if [ ! -f "$deb_path" ] || [ "$(stat -c %s "$deb_path")" != "$deb_size" ]; then
    log "downloading $deb_name ($deb_size bytes)"
    dl_tmp="$(mktemp -d "$deb_dir/.dl.XXXXXX")"
    # apt drops privileges to _apt for the download when it can write there.
    chmod 0777 "$dl_tmp"
    if ! (cd "$dl_tmp" && apt-get download -q "${apt_target[@]}" "$image_pkg" >&2); then
        rm -rf "$dl_tmp"
        die "apt-get download ${apt_target[*]} $image_pkg failed"
    fi
    mv -f "$dl_tmp/$deb_name" "$deb_path"
    rm -rf "$dl_tmp"
else
    log "using cached $deb_path"
fi

work="$outdir/work-$flavor"
rm -rf "$work"
mkdir -p "$work"
cleanup_work() { [ "$keep_work" -eq 1 ] || rm -rf "$work"; }
trap cleanup_work EXIT

kroot="$work/kernel"
log "extracting $deb_name"
dpkg-deb -x "$deb_path" "$kroot"

moddir=""
for d in "$kroot"/lib/modules/* "$kroot"/usr/lib/modules/*; do
    if [ -d "$d" ]; then moddir="$d"; break; fi
done
[ -n "$moddir" ] || die "no lib/modules/<kver> in $deb_name"
kver="$(basename "$moddir")"
vmlinuz_src=""
for f in "$kroot/boot/vmlinuz-$kver" "$kroot/usr/lib/linux-image-$kver/vmlinuz"; do
    if [ -f "$f" ]; then vmlinuz_src="$f"; break; fi
done
[ -n "$vmlinuz_src" ] || die "no vmlinuz for $kver in $deb_name"
log "kernel version: $kver"

# ---------------------------------------------------------------------------
# 4. Modules: built-in ones are skipped, loadable ones are copied
#    (decompressed) in dependency order.
# ---------------------------------------------------------------------------
stage="$work/initramfs"
mkdir -p "$stage/lib/modules"

norm() { tr '-' '_' <<<"$1"; }

declare -A builtin=()
if [ -f "$moddir/modules.builtin" ]; then
    while read -r path; do
        [ -n "$path" ] || continue
        b="$(basename "$path")"
        builtin["$(norm "${b%%.ko*}")"]=1
    done <"$moddir/modules.builtin"
else
    log "warning: $moddir/modules.builtin missing; assuming nothing is built in"
fi

declare -A seen=()
load_order=()
builtin_used=()

find_module_file() {
    local name="$1" alt
    alt="$(tr '_' '-' <<<"$name")"
    find "$moddir" -type f \( -name "$name.ko" -o -name "$name.ko.*" \
        -o -name "$alt.ko" -o -name "$alt.ko.*" \) -print -quit
}

# Copies module $1 (and, first, what it depends on) into the staging tree.
add_module() {
    local name dep src dst deps
    name="$(norm "$1")"
    [ -z "${seen[$name]:-}" ] || return 0
    seen[$name]=1
    if [ -n "${builtin[$name]:-}" ]; then
        builtin_used+=("$name")
        return 0
    fi
    src="$(find_module_file "$name")"
    [ -n "$src" ] || die "module '$name' is neither built in nor shipped in $deb_name"
    dst="$stage/lib/modules/$name.ko"
    case "$src" in
        *.ko) cp "$src" "$dst" ;;
        *.ko.xz) xz -dc "$src" >"$dst" ;;
        *.ko.gz) gzip -dc "$src" >"$dst" ;;
        *.ko.zst)
            command -v zstd >/dev/null || die "$src needs zstd to decompress"
            zstd -q -dc "$src" >"$dst" ;;
        *) die "unknown module format: $src" ;;
    esac
    # .modinfo holds "depends=a,b" as a NUL-terminated string.
    deps="$(tr '\0' '\n' <"$dst" | sed -n 's/^depends=//p' || true)"
    deps="${deps%%$'\n'*}"
    for dep in ${deps//,/ }; do
        add_module "$dep"
    done
    load_order+=("$name")
}

# Load order matters (no modules.dep in the package): virtio core, the PCI transport, then
# the device drivers. virtio_blk last, so the virtio-fs-only tests load what they did before.
wanted_modules=(virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev
                virtio_pci fuse virtiofs virtio_blk)
for m in "${wanted_modules[@]}"; do
    # virtio_pci_{legacy,modern}_dev do not exist as separate objects on some
    # configs; only insist on the modules that actually provide virtio-fs.
    case "$m" in
        virtio_pci_legacy_dev|virtio_pci_modern_dev)
            if [ -z "${builtin[$m]:-}" ] && [ -z "$(find_module_file "$m")" ]; then
                log "note: $m not present (neither built in nor module); skipping"
                continue
            fi ;;
    esac
    add_module "$m"
done
log "built in: ${builtin_used[*]:-none}"
log "modules:  ${load_order[*]:-none}"
printf '%s\n' "${load_order[@]}" >"$stage/etc-vdh-modules.tmp"

# ---------------------------------------------------------------------------
# 5. Initramfs tree (plain user-writable files; ownership set by cpio -R).
# ---------------------------------------------------------------------------
mkdir -p "$stage"/{bin,dev,etc,proc,sys,tmp,mnt,root,run,var,home/user}
chmod 1777 "$stage/tmp"
ln -s bin "$stage/sbin"
mkdir -p "$stage/usr"
ln -s ../bin "$stage/usr/bin"
ln -s ../bin "$stage/usr/sbin"
mv "$stage/etc-vdh-modules.tmp" "$stage/etc/vdh-modules"
cp "$busybox_bin" "$stage/bin/busybox"
for applet in $("$stage/bin/busybox" --list); do
    case "$applet" in busybox|*/*) continue ;; esac
    [ -e "$stage/bin/$applet" ] || ln -s busybox "$stage/bin/$applet"
done

cat >"$stage/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:user:/home/user:/bin/sh
EOF
cat >"$stage/etc/group" <<'EOF'
root:x:0:
users:x:100:user
user:x:1000:
EOF
cat >"$stage/etc/shadow" <<'EOF'
root:*:19000:0:99999:7:::
user:*:19000:0:99999:7:::
EOF
chmod 0600 "$stage/etc/shadow"
echo "$kver" >"$stage/etc/vdh-kver"

cat >"$stage/init" <<'INIT_EOF'
#!/bin/sh
# vdhost e2e guest init (generated by scripts/guest/build-guest.sh).
# Kernel cmdline: vdh.tag=TAG (fs0) vdh.mnt=DIR (/mnt) vdh.opts=MOUNTOPTS
#   vdh.script=PATH (inside the share, relative to the mount point)
#   vdh.nomount=1 vdh.sleep=N
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export HOME=/root
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1

finish() {
    cd /
    echo "VDH-UPTIME-END $(cut -d' ' -f1 /proc/uptime)"
    echo "VDH-POWEROFF"
    sync
    poweroff -f
    echo o >/proc/sysrq-trigger
    sleep 5
    exit 1
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs -o mode=1777 tmpfs /tmp
chown 1000:1000 /home/user
hostname vdh-guest
echo; echo "VDH-INIT kernel=$(uname -r) uptime=$(cut -d' ' -f1 /proc/uptime)"

tag=fs0 mnt=/mnt script= opts= nomount=0 sleep_s=0
set -f
for w in $(cat /proc/cmdline); do
    v="${w#*=}"; v="${v#\"}"; v="${v%\"}"
    case "$w" in
        vdh.tag=*) tag="$v" ;;
        vdh.mnt=*) mnt="$v" ;;
        vdh.script=*) script="$v" ;;
        vdh.opts=*) opts="$v" ;;
        vdh.nomount=*) nomount="$v" ;;
        vdh.sleep=*) sleep_s="$v" ;;
    esac
done
set +f

mods_ok=1
while read -r m; do
    [ -n "$m" ] || continue
    if ! insmod "/lib/modules/$m.ko"; then
        echo "VDH-MODULES-FAIL $m"
        mods_ok=0
    fi
done </etc/vdh-modules
[ "$mods_ok" = 1 ] && echo "VDH-MODULES-OK"

if [ "$nomount" = 1 ]; then
    [ "$sleep_s" = 0 ] || sleep "$sleep_s"
    finish
fi

mkdir -p "$mnt"
if [ -n "$opts" ]; then
    mount -t virtiofs -o "$opts" "$tag" "$mnt"
else
    mount -t virtiofs "$tag" "$mnt"
fi
rc=$?
if [ "$rc" -ne 0 ]; then
    echo "VDH-MOUNT-FAIL $rc"
    finish
fi
echo "VDH-MOUNT-OK"

if [ -n "$script" ]; then
    case "$script" in
        /*) spath="$mnt$script" ;;
        *) spath="$mnt/$script" ;;
    esac
    [ -f "$spath" ] || echo "VDH-SCRIPT-MISSING $spath"
    (cd "$mnt" && VDH_MNT="$mnt" VDH_TAG="$tag" sh "$spath")
    echo "VDH-SCRIPT-EXIT $?"
else
    ls -la "$mnt"
    [ -e "$mnt/hello.txt" ] && cat "$mnt/hello.txt" 2>&1
fi

cd /
umount "$mnt"
rc=$?
if [ "$rc" -eq 0 ]; then
    echo "VDH-UMOUNT-OK"
else
    echo "VDH-UMOUNT-FAIL $rc"
fi
finish
INIT_EOF
chmod 0755 "$stage/init"

# ---------------------------------------------------------------------------
# 6. Pack: main archive + a hand-written entry for /dev/console (a device
#    node a normal user cannot mknod), so the kernel has a console for /init.
# ---------------------------------------------------------------------------
# newc header: magic + 13 hex fields; name NUL-terminated, padded to 4 bytes.
newc_entry() { # name mode rdevmajor rdevminor
    local name="$1" mode="$2" rmaj="$3" rmin="$4" namesize hdr pad
    namesize=$(( ${#name} + 1 ))
    hdr="$(printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
        0 "$mode" 0 0 1 0 0 0 0 "$rmaj" "$rmin" "$namesize" 0)"
    printf '%s%s\0' "$hdr" "$name"
    pad=$(( (4 - (110 + namesize) % 4) % 4 ))
    head -c "$pad" /dev/zero
}

initrd="$outdir/initrd-$kver.cpio.gz"
vmlinuz="$outdir/vmlinuz-$kver"
log "packing $initrd"
(
    cd "$stage"
    find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet
    newc_entry dev/console $((8#020600)) 5 1
    newc_entry TRAILER!!! 0 0 0
) | gzip -9 -n >"$initrd.tmp"
mv -f "$initrd.tmp" "$initrd"
cp -f "$vmlinuz_src" "$vmlinuz.tmp"
mv -f "$vmlinuz.tmp" "$vmlinuz"

{
    echo "# Generated by scripts/guest/build-guest.sh --kernel $flavor"
    printf 'KERNEL=%q\n' "$vmlinuz"
    printf 'INITRD=%q\n' "$initrd"
    printf 'KVER=%q\n' "$kver"
    printf 'GUEST_FLAVOR=%q\n' "$flavor"
    printf 'GUEST_MODULES=%q\n' "${load_order[*]:-}"
} >"$env_file.tmp"
mv -f "$env_file.tmp" "$env_file"
printf '%s\n' "$stamp" >"$stamp_file"
log "done: $env_file"
cat "$env_file" >&2

#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# End to end: a POSIX workload (guest_workload.sh) runs in the busybox guest on a virtio-fs
# share served by the C virtiofsd or by vdhost; the host changes files while the guest
# waits (cache check) and verifies afterwards what the guest wrote. "compare" runs both
# backends on fresh shares and checks that every RESULT line is identical. TAP output.
#
# Usage: virtiofs_workload.sh virtiofsd
#        virtiofs_workload.sh vdhost VDHOST_BIN PLUGIN_DIR
#        virtiofs_workload.sh compare VDHOST_BIN PLUGIN_DIR
# Environment: VDH_GUEST_KERNEL=6.1|6.12 (default 6.1), VDH_CACHE=auto|never|always,
#   VDH_FILE_HANDLES=never|prefer|mandatory (vdhost's inode_file_handles)
#   (default auto), VDH_NO_HELPER=1 (busybox only: no locks/xattr/mmap checks),
#   VDH_MMAP_SHARES=1 (vdhost only: two more `cache: never` shares in the same guest, with
#   and without allow_mmap, and a shared mmap on each; the first also has announce_tag),
#   VDH_WORKLOAD_TIMEOUT=seconds per guest (default 240), E2E_KEEP_TMP=1 keeps the shares,
#   VDH_XATTRMAP=1 (both backends map the guest's security.*/trusted.* under user.virtiofs.).
#   VDH_POSIX_ACL=1: posix_acl on both backends plus the issue-10 guest checks (setfacl and
#   getfacl in the guest, a create through a secondary group; needs the `acl` package).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/lib.sh"
. "$here/host_checks.sh"
trap e2e_cleanup EXIT

usage() { sed -n '8,19p' "$0" | sed 's/^# \{0,1\}//'; }

mode="${1:-}"
VDHOST=""
PLUGIN_DIR=""
case "$mode" in
    virtiofsd) ;;
    vdhost|compare)
        [ $# -ge 3 ] || { usage >&2; exit 2; }
        VDHOST="$(realpath "$2")"
        PLUGIN_DIR="$(realpath "$3")"
        [ -x "$VDHOST" ] || { echo "not executable: $VDHOST" >&2; exit 2; }
        ;;
    *) usage >&2; exit 2 ;;
esac
CACHE="${VDH_CACHE:-auto}"
FILE_HANDLES="${VDH_FILE_HANDLES:-never}" # vdhost only: never|prefer|mandatory
case "$CACHE" in auto|never|always) ;; *) echo "VDH_CACHE: auto|never|always" >&2; exit 2 ;; esac
GUEST_TIMEOUT="${VDH_WORKLOAD_TIMEOUT:-240}"
MMAP_SHARES="${VDH_MMAP_SHARES:-}" # vdhost only: the allow_mmap shares (tags fsmmap, fsnommap)
XATTRMAP="${VDH_XATTRMAP:-}"
# VDH_XATTRMAP=1: the guest's security.* and trusted.* live under user.virtiofs. on the
# host, the guest cannot name user.virtiofs.* itself, the host's own security.* and
# trusted.* are hidden, everything else passes (virtiofsd's syntax; the same rules for both).
# security.capability passes unmapped, as without a map: with it remapped, the guest's chown
# failed on the C virtiofsd (QEMU 7.2; the file stayed 0:0), which would spoil the comparison.
XATTRMAP_RULES=(':ok:all:security.capability:security.capability:'
    ':prefix:all:security.:user.virtiofs.:' ':prefix:all:trusted.:user.virtiofs.:'
    ':bad:all:user.virtiofs.:security.:' ':bad:server::trusted.:' ':ok:all:::')
POSIX_ACL="${VDH_POSIX_ACL:-0}"
HOST_WANT='host-v2-modified-content'

# --- TAP ----------------------------------------------------------------------------------
n=0
nfail=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
notok() { n=$((n + 1)); nfail=$((nfail + 1)); echo "not ok $n - $*"; }
skipped() { n=$((n + 1)); echo "ok $n - $1 # SKIP $2"; }
diag() { sed 's/^/# /'; }
# check DESC ACTUAL WANTED
check() {
    if [ "$2" = "$3" ]; then ok "$1"; else notok "$1"; echo "#   got '$2', want '$3'"; fi
}

# --- setup shared by all runs -----------------------------------------------------------
if [ "$(id -u)" -ne 0 ]; then
    e2e_skip "needs root (virtiofsd, chown in the share)"
fi
e2e_require_cmd qemu-system-x86_64 md5sum stat getfattr
[ "$POSIX_ACL" = 1 ] && e2e_require_cmd setfacl getfacl ldd
e2e_guest_env "${VDH_GUEST_KERNEL:-6.1}" || { notok "guest image (${VDH_GUEST_KERNEL:-6.1})"; echo "1..$n"; exit 1; }
work_root=""
e2e_mktemp_dir work_root
helper=""
if [ -z "${VDH_NO_HELPER:-}" ]; then
    if hc_build_helper "$work_root/vdh-helper"; then
        helper="$work_root/vdh-helper"
    else
        echo "# no static C toolchain: lock/xattr/mmap checks are skipped" >&2
    fi
fi

# host_side SHARE OUT DONEFLAG: the host's half of the cache check. Waits for the guest's
# .vdh/ready1, records what the guest wrote, changes files and creates .vdh/host-done1.
host_side() {
    local share="$1" out="$2" doneflag="$3" i
    for ((i = 0; i < GUEST_TIMEOUT * 10; i++)); do
        [ -e "$share/.vdh/ready1" ] && break
        [ -e "$doneflag" ] && { echo "ready1 never-seen" >>"$out"; return; }
        sleep 0.1
    done
    echo "guest_written $(cat "$share/guest-written.txt" 2>&1)" >>"$out"
    printf '%s\n' "$HOST_WANT" >"$share/hostchg.txt"   # in place, same inode, new size
    echo new-from-host >"$share/hostnew.txt"
    rm -f "$share/hostdel.txt"
    : >"$share/.vdh/host-done1"
    echo "host_done $(date +%s.%N)" >>"$out"
}

# start_backend KIND DIR SHARE: starts virtiofsd or vdhost on DIR/fs.sock; sets BACKEND_PID.
start_backend() {
    local kind="$1" dir="$2" share="$3"
    BACKEND_PID=""
    if [ "$kind" = virtiofsd ]; then
        local vc="$CACHE"
        [ "$vc" = never ] && vc=none
        local map=() acl=()
        [ -z "$XATTRMAP" ] || map=(-o "xattrmap=${XATTRMAP_RULES[*]}")
        [ "$POSIX_ACL" = 1 ] && acl=(-o posix_acl)
        e2e_start_virtiofsd "$dir/fs.sock" "$share" -o "cache=$vc" \
            -o posix_lock -o flock -o xattr "${map[@]}" "${acl[@]}" || return 1
        BACKEND_PID="$E2E_VIRTIOFSD_PID"
        BACKEND_LOG="$dir/fs.sock.log"
        return 0
    fi
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
      cache: $CACHE
      xattr: true
      posix_locks: true
      flock: true
      inode_file_handles: $FILE_HANDLES
      posix_acl: $([ "$POSIX_ACL" = 1 ] && echo true || echo false)
YAML
    if [ -n "$XATTRMAP" ]; then
        echo "      xattrmap:" >>"$dir/vdhost.yaml"
        printf '        - "%s"\n' "${XATTRMAP_RULES[@]}" >>"$dir/vdhost.yaml"
    fi
    if [ -n "$MMAP_SHARES" ]; then
        mkdir -p "$dir/share-mmap" "$dir/share-nommap"
        cat >>"$dir/vdhost.yaml" <<YAML
  - name: fsmmap
    type: virtiofs
    socket: $dir/fsmmap.sock
    config:
      shared_dir: $dir/share-mmap
      cache: never
      allow_mmap: true
      announce_tag: true
      fd_limit: 256
  - name: fsnommap
    type: virtiofs
    socket: $dir/fsnommap.sock
    config:
      shared_dir: $dir/share-nommap
      cache: never
      fd_limit: 256
YAML
    fi
    BACKEND_LOG="$dir/vdhost.log"
    "$VDHOST" --config "$dir/vdhost.yaml" --plugin-dir "$PLUGIN_DIR" >"$BACKEND_LOG" 2>&1 &
    BACKEND_PID=$!
    e2e_track_pid "$BACKEND_PID"
    if ! e2e_wait_socket "$dir/fs.sock" 20; then
        diag <"$BACKEND_LOG" >&2
        return 1
    fi
}

# run_workload KIND LABEL: one guest boot on a fresh share; TAP lines prefixed [LABEL];
# RESULT lines saved to $work_root/LABEL.results.
run_workload() {
    local kind="$1" label="$2" dir share log rc t0 t1
    e2e_mktemp_dir dir
    share="$dir/share"
    log="$dir/qemu.log"
    mkdir -p "$share/.vdh"
    chmod 0755 "$share"   # mktemp -d made it 0700: uid 1000 must get through
    cp "$here/guest_workload.sh" "$share/.vdh/run.sh"
    [ -z "$helper" ] || cp "$helper" "$share/.vdh/vdh-helper"
    echo "CACHE=$CACHE" >"$share/.vdh/config"
    local mmap_args=()
    if [ -n "$MMAP_SHARES" ] && [ "$kind" = vdhost ]; then
        printf 'MMAP_ALLOW_TAG=fsmmap\nMMAP_DENY_TAG=fsnommap\n' >>"$share/.vdh/config"
        mmap_args=(--fs-socket2 "$dir/fsmmap.sock" --tag2 fsmmap --
                   -chardev "socket,id=char2,path=$dir/fsnommap.sock"
                   -device "vhost-user-fs-pci,chardev=char2,tag=fsnommap,queue-size=128")
    fi
    if [ -n "$XATTRMAP" ]; then
        echo "XATTRMAP=1" >>"$share/.vdh/config"
        echo h >"$share/.vdh/xattrmap-host"
        setfattr -n trusted.host -v T "$share/.vdh/xattrmap-host"
        setfattr -n security.host -v S "$share/.vdh/xattrmap-host"
        setfattr -n user.host -v U "$share/.vdh/xattrmap-host"
    fi
    if [ "$POSIX_ACL" = 1 ]; then
        # The guest's ACL tools: the host's setfacl/getfacl with their libraries, run
        # through the copied dynamic loader.
        mkdir -p "$share/.vdh/acl"
        local t lib
        for t in setfacl getfacl; do
            cp "$(command -v "$t")" "$share/.vdh/acl/$t"
            for lib in $(ldd "$(command -v "$t")" | awk '$3 ~ /^\// { print $3 }'); do
                cp -L "$lib" "$share/.vdh/acl/"
            done
        done
        cp -L "$(ldd "$(command -v setfacl)" | awk '$1 ~ /ld-linux/ { print $1 }')" "$share/.vdh/acl/ld.so"
        # Only a 6.5+ guest sends FUSE_EXT_GROUPS, and the C virtiofsd ignores it.
        local want=EACCES
        [ "$kind" = vdhost ] && [ "${KVER%%.*}" -ge 6 ] && [ "$(echo "$KVER" | cut -d. -f2)" -ge 5 ] && want=OK
        printf 'EXT_CHECKS=1\nSUPP_GROUP_WANT=%s\n' "$want" >>"$share/.vdh/config"
    fi
    : >"$work_root/$label.results"

    echo "# [$label] share $share"
    if ! start_backend "$kind" "$dir" "$share"; then
        notok "[$label] backend started"
        return 1
    fi
    t0=$(date +%s)
    host_side "$share" "$dir/host.out" "$dir/guest-exited" &
    local hpid=$!
    e2e_track_pid "$hpid"
    rc=0
    e2e_run_guest --socket "$dir/fs.sock" --log "$log" --timeout "$GUEST_TIMEOUT" \
        --append "vdh.script=.vdh/run.sh" "${mmap_args[@]}" || rc=$?
    : >"$dir/guest-exited"
    wait "$hpid" 2>/dev/null
    t1=$(date +%s)
    echo "# [$label] guest ran $((t1 - t0)) s (qemu rc $rc, kernel $KVER)"

    # Guest-side checks.
    check "[$label] guest booted and mounted the share" \
        "$(grep -c '^VDH-MOUNT-OK' "$log")" 1
    local line name status rest _
    while IFS= read -r line; do
        read -r _ name status rest <<<"$line"
        [ -n "$status" ] || continue
        case "$status" in
            PASS) ok "[$label] $name" ;;
            SKIP) skipped "[$label] $name" "$rest" ;;
            *) notok "[$label] $name"; echo "#   $rest" ;;
        esac
    done < <(grep -a '^CHECK ' "$log")
    grep -a '^RESULT ' "$log" | sed 's/^RESULT //' >"$work_root/$label.results"
    grep -a '^INFO ' "$log" | sed "s/^INFO /[$label] /" | diag
    check "[$label] workload ran to the end (VDH-SCRIPT-EXIT 0)" \
        "$(grep -a -o '^VDH-SCRIPT-EXIT [0-9]*' "$log")" "VDH-SCRIPT-EXIT 0"
    check "[$label] guest unmounted cleanly" "$(grep -a -c '^VDH-UMOUNT-OK' "$log")" 1
    if ! grep -aq '^WORKLOAD-DONE' "$log"; then
        echo "# [$label] guest log tail:"
        grep -av '^\[' "$log" | tail -n 25 | diag
    fi

    # Host-side checks of what the guest did.
    local k="$share/keep"
    check "[$label] host sees the guest's write at once (guest-written.txt)" \
        "$(grep '^guest_written' "$dir/host.out" 2>/dev/null)" "guest_written guest-written"
    check "[$label] host: big.txt contents" \
        "$(md5sum <"$k/big.txt" 2>&1 | cut -d' ' -f1)" "$(seq 1 200000 | md5sum | cut -d' ' -f1)"
    check "[$label] host: chown 1234:5678" "$(hc_stat %u:%g "$k/owned")" 1234:5678
    check "[$label] host: chmod 751" "$(hc_stat %a "$k/mode751")" 751
    check "[$label] host: umask 027 file/dir modes" \
        "$(hc_stat %a "$k/umask_file")/$(hc_stat %a "$k/umask_dir")" 640/750
    check "[$label] host: file created by guest uid 1000" \
        "$(hc_stat %u:%g:%a "$k/pub/userfile"):$(cat "$k/pub/userfile" 2>&1)" "1000:1000:600:by-user"
    check "[$label] host: setgid dir inheritance" \
        "$(hc_stat %g "$k/sgid/rootfile")/$(hc_stat %u:%g "$k/sgid/userfile")/$(hc_stat %g:%a "$k/sgid/sub")" \
        "100/1000:100/100:2755"
    check "[$label] host: hard link count" "$(hc_stat %h "$k/hl")/$(hc_stat %i "$k/hl2")" \
        "2/$(hc_stat %i "$k/hl")"
    check "[$label] host: symlink target" "$(readlink "$k/sym")" "../w/st"
    check "[$label] host: fifo" "$(hc_stat %F "$k/fifo")" fifo
    check "[$label] host: mtime set by the guest" "$(hc_stat %Y "$k/mtime")" 981173106
    check "[$label] host: 2 GiB sparse file size" "$(hc_stat %s "$k/sparse")" 2147483648
    check "[$label] host: sparse file bytes at 0, 1G, 2G-1" \
        "$(hc_bytes "$k/sparse" 0 1)$(hc_bytes "$k/sparse" 1073741824 1)$(hc_bytes "$k/sparse" 2147483647 1)" SME
    local blocks
    blocks="$(hc_stat %b "$k/sparse")"
    if [ -n "$blocks" ] && [ "$blocks" -lt 4096 ]; then
        ok "[$label] host: sparse file stays sparse ($blocks blocks)"
    else
        notok "[$label] host: sparse file stays sparse (${blocks:-?} blocks)"
    fi
    check "[$label] host: data written by the guest (mmap, else dd)" \
        "$(hc_bytes "$k/mmap.bin" 0 16)|$(hc_bytes "$k/mmap.bin" 8292 16)|$(hc_stat %s "$k/mmap.bin")" \
        "guest-mmap-page0|guest-mmap-page2|12288"
    if [ -n "$helper" ]; then
        check "[$label] host: xattrs set/removed by the guest" \
            "$(getfattr --absolute-names --only-values -n user.vdh "$k/xattr" 2>&1)/$(getfattr --absolute-names -d "$k/xattr" 2>/dev/null | grep -c user.other)" \
            "value-1/0"
    else
        skipped "[$label] host: xattrs set by the guest" "no helper"
    fi
    if [ -z "$XATTRMAP" ]; then
        :
    elif [ -n "$helper" ]; then
        check "[$label] host: xattrmap keeps the guest's security.*/trusted.* under user.virtiofs." \
            "$(getfattr --absolute-names --only-values -n user.virtiofs.security.vdh "$k/xattrmap" 2>&1)/$(getfattr --absolute-names --only-values -n user.virtiofs.trusted.vdh "$k/xattrmap" 2>&1)/$(getfattr --absolute-names -m - "$k/xattrmap" 2>&1 | grep -v '^#' | grep . | sort | tr '\n' ,)" \
            "sec-1/tr-1/user.virtiofs.security.vdh,user.virtiofs.trusted.vdh,"
    else
        skipped "[$label] host: xattrmap names on the host" "no helper"
    fi
    if [ "$POSIX_ACL" = 1 ]; then
        check "[$label] host: ACL inherited from the default ACL, mask after chmod" \
            "$(getfacl -c -n "$k/acl/f" 2>&1 | grep -E '^(user:1234|mask)' | tr '\t\n' '  ')" \
            "user:1234:rw- #effective:r-- mask::r-- "
    fi
    check "[$label] host: guest scratch dir removed" "$([ -e "$share/w" ] && echo left)" ""
    if [ -n "$MMAP_SHARES" ] && [ "$kind" = vdhost ]; then
        # allow_mmap: the bytes the guest wrote through a shared mmap of a direct-I/O file
        # are in the host file; without allow_mmap the mmap failed and the file stayed zero.
        check "[$label] host: allow_mmap share got the mmap'd bytes" \
            "$(hc_bytes "$dir/share-mmap/m.bin" 4100 17)|$(hc_stat %s "$dir/share-mmap/m.bin")" \
            "guest-mmap-fsmmap|8192"
        # fsmmap also offers VHOST_USER_PROTOCOL_F_CONFIG (announce_tag): QEMU 7.2's
        # vhost-user-fs-pci does not take it, says so once, and the share works (above).
        check "[$label] QEMU: CONFIG offered by the announce_tag share only, masked with a warning" \
            "$(grep -a -c 'supports VHOST_USER_PROTOCOL_F_CONFIG but QEMU does not' "$log")" 1
        check "[$label] host: share without allow_mmap unchanged" \
            "$(hc_bytes "$dir/share-nommap/m.bin" 4100 16 | tr -d '\0' | wc -c)|$(hc_stat %s "$dir/share-nommap/m.bin")" \
            "0|8192"
    fi

    # The backend after the guest: vdhost keeps serving and stops cleanly on SIGTERM; the
    # C virtiofsd exits by itself once QEMU is gone.
    if [ "$kind" = vdhost ]; then
        if kill -0 "$BACKEND_PID" 2>/dev/null; then
            ok "[$label] vdhost still running after the guest powered off"
            local src=0
            kill -TERM "$BACKEND_PID"
            wait "$BACKEND_PID" || src=$?
            check "[$label] vdhost exits 0 on SIGTERM" "$src" 0
        else
            notok "[$label] vdhost still running after the guest powered off"
        fi
    else
        local i
        for ((i = 0; i < 50; i++)); do kill -0 "$BACKEND_PID" 2>/dev/null || break; sleep 0.1; done
        e2e_stop_pid "$BACKEND_PID"
    fi
    if grep -aqiE 'error|fatal|assert|sanitizer' "$BACKEND_LOG"; then
        echo "# [$label] backend log lines with errors:"
        grep -aiE 'error|fatal|assert|sanitizer' "$BACKEND_LOG" | head -n 20 | diag
    fi
}

t_all=$(date +%s)
case "$mode" in
    virtiofsd) run_workload virtiofsd virtiofsd ;;
    vdhost) run_workload vdhost vdhost ;;
    compare)
        run_workload vdhost vdhost
        run_workload virtiofsd virtiofsd
        a="$work_root/vdhost.results"
        b="$work_root/virtiofsd.results"
        if [ ! -s "$a" ] || [ ! -s "$b" ]; then
            # One line instead of one "missing" per RESULT: the run itself already failed.
            notok "[compare] both backends produced RESULT lines (vdhost $(wc -l <"$a"), virtiofsd $(wc -l <"$b"))"
            : >"$a"
            : >"$b"
        fi
        # Every RESULT name either backend printed, in first-seen order.
        while IFS= read -r name; do
            va="$(awk -v k="$name" '$1 == k { sub(/^[^ ]+ ?/, ""); print; exit }' "$a")"
            vb="$(awk -v k="$name" '$1 == k { sub(/^[^ ]+ ?/, ""); print; exit }' "$b")"
            if ! grep -q "^$name\( \|$\)" "$a"; then
                notok "[compare] $name: identical on vdhost and virtiofsd"
                echo "#   missing on vdhost; virtiofsd: '$vb'"
            elif ! grep -q "^$name\( \|$\)" "$b"; then
                notok "[compare] $name: identical on vdhost and virtiofsd"
                echo "#   missing on virtiofsd; vdhost: '$va'"
            elif [ "$va" = "$vb" ]; then
                ok "[compare] $name: identical on vdhost and virtiofsd"
            else
                notok "[compare] $name: identical on vdhost and virtiofsd"
                echo "#   vdhost:    '$va'"
                echo "#   virtiofsd: '$vb'"
            fi
        done < <(cat "$a" "$b" | awk '!seen[$1]++ { print $1 }')
        ;;
esac
echo "# total $(($(date +%s) - t_all)) s, $nfail failed"
echo "1..$n"
[ "$nfail" -eq 0 ]

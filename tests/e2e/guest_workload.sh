# SPDX-License-Identifier: MIT
# POSIX file-system workload run INSIDE the busybox e2e guest on a mounted virtio-fs share
# (copied by virtiofs_workload.sh to SHARE/.vdh/run.sh, run as root with cwd = the mount).
# Prints "CHECK <name> PASS|FAIL <details>|SKIP <why>", backend-comparable
# "RESULT <name> <value>" and informational "INFO <name> <value>" lines; exits 0 iff no
# CHECK failed. POSIX sh + busybox applets only; .vdh/vdh-helper (static, optional) adds
# flock, fcntl locks, xattrs and shared mmap. Leaves keep/ for the host to verify.

# ls is part of what is tested here (readdir), not a way to iterate over names:
# shellcheck disable=SC2010,SC2012
M="${VDH_MNT:-/mnt}"
V="$M/.vdh"
W="$M/w"          # scratch, removed at the end
K="$M/keep"       # verified by the host driver afterwards
H="$V/vdh-helper"
T=/tmp/vdhw       # guest-local scratch (markers between guest processes)
CACHE=auto
# shellcheck disable=SC1091
[ -f "$V/config" ] && . "$V/config"

fails=0
pass() { echo "CHECK $1 PASS"; }
fail() {
    n="$1"
    shift
    echo "CHECK $n FAIL $*"
    fails=$((fails + 1))
}
skip() { echo "CHECK $1 SKIP $2"; }
result() {
    n="$1"
    shift
    echo "RESULT $n $*"
}
info() {
    n="$1"
    shift
    echo "INFO $n $*"
}
# expect NAME ACTUAL WANTED
expect() {
    if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "got '$2' want '$3'"; fi
}
# expect_result NAME ACTUAL WANTED: a check plus a RESULT line with the value.
expect_result() {
    result "$1" "$2"
    expect "$1" "$2" "$3"
}
# errmsg CMD...: run CMD, print "ok" or its stderr's last ": "-separated part.
errmsg() {
    _e="$("$@" 2>&1 >/dev/null)" && { echo ok; return; }
    echo "${_e##*: }"
}
as_user() { su -s /bin/sh user -c "$1"; }
now_cs() {
    read -r _up _ </proc/uptime
    echo $((${_up%.*} * 100 + 1${_up#*.} - 100))
}
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
has_helper() { [ -x "$H" ]; }
# section NAME: guest uptime (centiseconds) at the start of each part, for tuning.
section() { info "t_$1" "$(($(now_cs) - t_start))"; }

t_start=$(now_cs)
info kernel "$(uname -r)"
info cache "$CACHE"
rm -rf "$W" "$K" "$T"
mkdir -p "$W" "$K" "$T" || { echo "CHECK setup FAIL cannot mkdir $W $K"; exit 1; }
cd "$W" || exit 1

# === uid/gid translation: squashed ownership (issue 10) ===================================
# Gated by SQUASH_ID in .vdh/config (virtiofs_translate_ids.sh): the share squashes every
# guest uid and gid to that host id (translate_uid/translate_gid
# squash-guest:0:ID:4294967295). Only this section runs then, since the rest of the workload
# needs the guest's owners to reach the host. Leaves keep/suid and keep/pub/userfile.
if [ -n "${SQUASH_ID:-}" ]; then
    section squash
    # Root makes a setuid-root program: chown before chmod (a chown clears the setuid bit).
    r=ok
    cp /bin/busybox "$K/suid" && chown 0:0 "$K/suid" && chmod 4755 "$K/suid" || r=failed
    expect squash_setuid_root_attempt "$r" ok
    # Without a host-to-guest rule the guest sees the host's ids (virtiofsd), in the
    # SETATTR/CREATE replies and after a fresh lookup.
    expect squash_owner_seen_by_guest "$(stat -c %u:%g:%a "$K/suid")" "$SQUASH_ID:$SQUASH_ID:4755"
    drop_caches
    expect squash_owner_after_drop_caches "$(stat -c %u:%g:%a "$K/suid")" \
        "$SQUASH_ID:$SQUASH_ID:4755"
    # Any other guest user is squashed the same way.
    mkdir -m 1777 "$K/pub"
    as_user "echo by-user >$K/pub/userfile"
    expect squash_user_file "$(stat -c %u:%g "$K/pub/userfile" 2>&1)" "$SQUASH_ID:$SQUASH_ID"
    cd "$M" && rm -rf "$W" "$T"
    echo "WORKLOAD-DONE fails=$fails"
    exit $((fails > 0))
fi
# === end of uid/gid translation ===========================================================

section basic
# --- create / read / write / append / overwrite ---------------------------------------
echo hello >a.txt
expect create_read "$(cat a.txt)" hello
echo world >>a.txt
expect_result append "$(tr '\n' '|' <a.txt)" "hello|world|"
expect_result append_size "$(stat -c %s a.txt)" 12
echo x >a.txt
expect_result overwrite "$(cat a.txt)/$(stat -c %s a.txt)" "x/2"
: >zero
expect_result zero_byte "$(stat -c %s zero)/$(wc -c <zero | tr -d ' ')" "0/0"
seq 1 200000 >big.txt
want_md5="$(seq 1 200000 | md5sum | cut -d' ' -f1)"
drop_caches
expect_result big_write_md5 "$(md5sum <big.txt | cut -d' ' -f1)/$(stat -c %s big.txt)" \
    "$want_md5/1288895"
cp big.txt "$K/big.txt"
# O_EXCL through the shell's noclobber
expect_result excl_create "$(errmsg sh -c 'set -C; echo y >a.txt')" "File exists"

section truncate
# --- truncate ---------------------------------------------------------------------------
truncate -s 10000 a.txt
expect_result truncate_grow "$(stat -c %s a.txt)/$(tr -d '\0' <a.txt)" "10000/x"
truncate -s 1 a.txt
expect_result truncate_shrink "$(stat -c %s a.txt)/$(cat a.txt)" "1/x"

section rename
# --- rename ---------------------------------------------------------------------------
echo A >r1
echo B >r2
mv r1 r2
expect_result rename_over_file "$([ -e r1 ] && echo r1-left)$(cat r2)" A
mkdir d1 d2
echo in-d1 >d1/f
mv -T d1 d2
expect_result rename_dir_over_empty "$([ -e d1 ] && echo d1-left)$(cat d2/f)" in-d1
mkdir d3 d4
touch d3/x d4/y
expect_result rename_dir_over_nonempty "$(errmsg mv -T d3 d4)" "Directory not empty"
mkdir -p src/sub dst
echo moved >src/sub/m
mv src/sub/m dst/n
mv src/sub dst/sub2
expect_result rename_across_dirs \
    "$(cat dst/n)/$([ -e src/sub ] && echo left)$(stat -c %h src)/$(stat -c %h dst)" "moved/2/3"
expect_result rename_missing "$(errmsg mv nonexistent zz)" "No such file or directory"

section links
# --- hard links -------------------------------------------------------------------------
echo linked >h1
ln h1 h2
ln h1 h3
expect_result hardlink_count "$(stat -c %h h1)" 3
expect hardlink_same_inode "$(stat -c %i h3)" "$(stat -c %i h1)"
rm h2
expect_result hardlink_after_unlink "$(stat -c %h h1)/$(stat -c %h h3)/$(cat h3)" "2/2/linked"
echo keep >"$K/hl"
ln "$K/hl" "$K/hl2"
expect_result hardlink_dir_fails "$(errmsg ln d2 d2link)" "Operation not permitted"

# --- symlinks ---------------------------------------------------------------------------
echo target >st
ln -s st s1
ln -s does-not-exist s2
ln -s d2 s3
ln -s /abs/path/../x s4
expect_result symlink_readlink "$(readlink s1)|$(readlink s2)|$(readlink s4)" \
    "st|does-not-exist|/abs/path/../x"
expect_result symlink_follow "$(cat s1)" target
expect_result symlink_dangling "$([ -e s2 ] && echo exists)$([ -L s2 ] && echo islink)" islink
expect_result symlink_dir "$(ls s3/)/$(stat -c %F s3)/$(stat -L -c %F s3)" \
    "f/symbolic link/directory"
expect_result symlink_ls_l "$(ls -l s1 | sed 's/.* -> //')" st
expect_result symlink_size "$(stat -c %s s4)" 14
ln -s ../w/st "$K/sym"

# --- mkdir -p / rmdir -------------------------------------------------------------------
mkdir -p n1/n2/n3/n4/n5
expect_result mkdir_p "$([ -d n1/n2/n3/n4/n5 ] && echo dir)/$(stat -c %h n1)/$(stat -c %h n1/n2/n3/n4/n5)" \
    "dir/3/2"
expect_result rmdir_nonempty "$(errmsg rmdir n1)" "Directory not empty"
expect_result rmdir_nested "$(errmsg rmdir n1/n2/n3/n4/n5 n1/n2/n3/n4)$([ -e n1/n2/n3/n4 ] && echo left)" ok
expect_result mkdir_exists "$(errmsg mkdir n1)" "File exists"
expect_result rmdir_file "$(errmsg rmdir st)" "Not a directory"

# --- chmod / chown / utimes (as root) ---------------------------------------------------
echo m >"$K/mode751"
chmod 0751 "$K/mode751"
expect_result chmod "$(stat -c %a "$K/mode751")" 751
echo o >"$K/owned"
chown 1234:5678 "$K/owned"
expect_result chown "$(stat -c %u:%g "$K/owned")" 1234:5678
echo t >"$K/mtime"
touch -d "2001-02-03 04:05:06" "$K/mtime"
expect_result utimes "$(TZ=UTC0 stat -c %Y "$K/mtime")" 981173106
mkfifo "$K/fifo"
expect_result mkfifo "$(stat -c %F "$K/fifo")" fifo

# --- unlink while open ------------------------------------------------------------------
echo still-here >uo
exec 3<uo
rm uo
expect_result unlink_open "$(cat <&3)$([ -e uo ] && echo left)" still-here
exec 3<&-

section bigdir
# --- a directory of 10000 entries -------------------------------------------------------
t0=$(now_cs)
mkdir many
i=0
while [ $i -lt 10000 ]; do
    : >many/e$i
    i=$((i + 1))
done
t1=$(now_cs)
expect_result bigdir_count "$(ls many | wc -l | tr -d ' ')" 10000
expect_result bigdir_dups "$(ls many | sort | uniq -d | wc -l | tr -d ' ')" 0
expect_result bigdir_names_md5 "$(ls many | sort | md5sum | cut -d' ' -f1)" \
    "$(seq 0 9999 | sed 's/^/e/' | sort | md5sum | cut -d' ' -f1)"
drop_caches
expect_result bigdir_count_cold "$(ls many | grep -c '^e')" 10000
t2=$(now_cs)
rm -rf many
expect_result bigdir_removed "$([ -e many ] && echo left)$(ls | grep -c '^many$')" 0
t3=$(now_cs)
info bigdir_cs "create=$((t1 - t0)) list=$((t2 - t1)) rm=$((t3 - t2))"

section sparse
# --- 2 GiB sparse file ------------------------------------------------------------------
truncate -s 2G "$K/sparse"
printf S | dd of="$K/sparse" bs=1 conv=notrunc 2>/dev/null
printf M | dd of="$K/sparse" bs=1 seek=1073741824 conv=notrunc 2>/dev/null
printf E | dd of="$K/sparse" bs=1 seek=2147483647 conv=notrunc 2>/dev/null
drop_caches
rd() { dd if="$K/sparse" bs=1 skip="$1" count=1 2>/dev/null; }
expect_result sparse_size "$(stat -c %s "$K/sparse")" 2147483648
expect_result sparse_bytes "$(rd 0)$(rd 1073741824)$(rd 2147483647)|$(rd 1 | od -An -tx1 | tr -d ' ')" "SME|00"
blocks=$(stat -c %b "$K/sparse")
if [ "$blocks" -lt 4096 ]; then pass sparse_blocks; else fail sparse_blocks "$blocks blocks"; fi
info sparse_blocks "$blocks"

section mmap
# --- data for the host to verify (mmap when the helper exists) --------------------------
dd if=/dev/zero of="$K/mmap.bin" bs=4096 count=3 2>/dev/null
r=none
has_helper && r="$("$H" mmap-write "$K/mmap.bin" 0 guest-mmap-page0)$("$H" mmap-write "$K/mmap.bin" 8292 guest-mmap-page2)"
if [ "$r" = OKOK ]; then
    pass mmap_write
    drop_caches
    expect_result mmap_read "$("$H" mmap-read "$K/mmap.bin" 8292 16)" "=guest-mmap-page2"
else
    if [ "$r" = none ]; then
        skip mmap_write "no vdh-helper (busybox has no mmap tool); writing with dd"
    elif [ "$CACHE" = never ] && [ "$r" = ENODEVENODEV ]; then
        # direct I/O files: shared mmap needs FUSE_DIRECT_IO_ALLOW_MMAP (6.6+ and server)
        skip mmap_write "cache=never: shared mmap refused (ENODEV); writing with dd"
    else
        fail mmap_write "got '$r' want 'OKOK'"
    fi
    printf guest-mmap-page0 | dd of="$K/mmap.bin" bs=1 conv=notrunc 2>/dev/null
    printf guest-mmap-page2 | dd of="$K/mmap.bin" bs=1 seek=8292 conv=notrunc 2>/dev/null
fi
info mmap_write "$r"
expect_result data_for_host "$(dd if="$K/mmap.bin" bs=1 skip=8292 count=16 2>/dev/null)" guest-mmap-page2

section locks
# --- locks between two guest processes --------------------------------------------------
# fcntl locks across processes also need the helper: busybox has flock(1) only as an
# optional applet (missing in Debian 12's busybox-static) and no fcntl-lock tool at all.
lock_test() { # KIND (flock|fcntl)
    k="$1"
    : >"lock.$k"
    rm -f "$T/ready.$k" "$T/release.$k"
    "$H" "$k-hold" "lock.$k" "$T/ready.$k" "$T/release.$k" >"$T/hold.$k" &
    hp=$!
    j=0
    while [ ! -e "$T/ready.$k" ] && [ $j -lt 100 ]; do sleep 0.1; j=$((j + 1)); done
    held="$("$H" "$k-try" "lock.$k")"
    [ "$k" = fcntl ] && held="$held/$("$H" fcntl-getlk "lock.$k")"
    : >"$T/release.$k"
    wait $hp
    freed="$("$H" "$k-try" "lock.$k")"
    [ "$k" = fcntl ] && freed="$freed/$("$H" fcntl-getlk "lock.$k")"
    echo "$held|$freed|$(cat "$T/hold.$k")"
}
if has_helper; then
    expect_result flock_conflict "$(lock_test flock)" "EAGAIN|OK|"
    expect_result fcntl_conflict "$(lock_test fcntl)" "EAGAIN/WRLCK|OK/UNLCK|"
    # The C virtiofsd answers every blocking lock request (SETLKW: fcntl F_SETLKW and
    # flock without LOCK_NB) with EOPNOTSUPP, even without contention: recorded only.
    info fcntl_setlkw "$("$H" fcntl-setlkw lock.fcntl)"
    info flock_blocking "$("$H" flock-wait lock.flock)"
else
    skip flock_conflict "no vdh-helper and no flock applet in busybox"
    skip fcntl_conflict "no vdh-helper; POSIX fcntl locks are unreachable from busybox"
fi

section xattr
# --- xattrs -----------------------------------------------------------------------------
if has_helper; then
    echo x >"$K/xattr"
    r="$("$H" xattr-set "$K/xattr" user.vdh value-1)"
    r="$r/$("$H" xattr-set "$K/xattr" user.other 2)"
    r="$r/$("$H" xattr-get "$K/xattr" user.vdh)"
    r="$r/$("$H" xattr-list "$K/xattr" | sort | tr '\n' ,)"
    r="$r/$("$H" xattr-rm "$K/xattr" user.other)"
    r="$r/$("$H" xattr-get "$K/xattr" user.other)"
    r="$r/$("$H" xattr-get "$K/xattr" user.missing)"
    expect_result xattr "$r" "OK/OK/=value-1/user.other,user.vdh,/OK/ENODATA/ENODATA"
else
    skip xattr "busybox has no setfattr/getfattr and there is no vdh-helper"
fi

section xattrmap
# --- xattrmap (issue 10), only when .vdh/config says XATTRMAP=1: the share maps the guest's
# security.* and trusted.* under user.virtiofs. on the host, refuses the guest's own
# user.virtiofs.* and hides the host's security.* and trusted.* (virtiofs_workload.sh's
# VDH_XATTRMAP; it checks the host side and made .vdh/xattrmap-host before the boot) -----
if [ "${XATTRMAP:-0}" != 1 ]; then
    : # not configured for this run
elif has_helper; then
    f="$K/xattrmap"
    echo x >"$f"
    r="$("$H" xattr-set "$f" security.vdh sec-1)/$("$H" xattr-set "$f" trusted.vdh tr-1)"
    r="$r/$("$H" xattr-get "$f" security.vdh)/$("$H" xattr-get "$f" trusted.vdh)"
    r="$r/$("$H" xattr-set "$f" user.virtiofs.trusted.vdh evil)"
    r="$r/$("$H" xattr-get "$f" user.virtiofs.security.vdh)"
    r="$r/$("$H" xattr-names "$f" | sort | tr '\n' ,)"
    expect_result xattrmap "$r" "OK/OK/=sec-1/=tr-1/EPERM/ENODATA/security.vdh,trusted.vdh,"
    # The host's file: its trusted.host and security.host are hidden, user.host passes.
    f="$V/xattrmap-host"
    r="$("$H" xattr-names "$f" | sort | tr '\n' ,)/$("$H" xattr-get "$f" trusted.host)"
    expect_result xattrmap_host_hidden "$r" "user.host,/ENODATA"
else
    skip xattrmap "no vdh-helper"
fi

section perms
# --- permissions as the unprivileged guest user (uid 1000) ------------------------------
mkdir rootdir
chmod 755 rootdir
chmod 755 "$W" "$K"
expect_result perm_create_in_root_dir "$(errmsg as_user "touch $W/rootdir/u")" \
    "Permission denied"
echo secret >secret
chmod 600 secret
expect_result perm_read_600 "$(errmsg as_user "cat $W/secret")" "Permission denied"
echo ro >rootfile
chmod 644 rootfile
expect_result perm_write_644 "$(errmsg as_user "echo u >>$W/rootfile")" "Permission denied"
expect_result perm_chmod_other "$(errmsg as_user "chmod 777 $W/rootfile")" \
    "Operation not permitted"
mkdir "$K/pub"
chmod 1777 "$K/pub"
echo by-root >"$K/pub/rootowned"
expect_result perm_create_in_1777 "$(errmsg as_user "echo by-user >$K/pub/userfile")" ok
expect_result perm_user_owner "$(stat -c %u:%g "$K/pub/userfile")/$(cat "$K/pub/userfile")" \
    "1000:1000/by-user"
expect_result perm_sticky_unlink "$(errmsg as_user "rm -f $K/pub/rootowned")" \
    "Operation not permitted"
expect_result perm_user_chmod_own "$(errmsg as_user "chmod 600 $K/pub/userfile")/$(stat -c %a "$K/pub/userfile")" \
    "ok/600"
# killpriv (issue 7, finding 7): an unprivileged append to a root-owned 6777 file clears
# suid and sgid, and the writer's own guest sees that at once (no stale cached mode).
echo x >"$W/suidfile"
chmod 6777 "$W/suidfile"
as_user "echo y >>$W/suidfile"
expect_result killpriv_append "$(stat -c %a "$W/suidfile")/$(stat -c %u "$W/suidfile")" "777/0"
if has_helper; then
    expect_result perm_flock_readonly "$(as_user "$H flock-try $W/rootfile" 2>&1)" "open:EACCES"
fi

section setgid
# --- setgid directory inheritance -------------------------------------------------------
mkdir "$K/sgid"
chown 0:100 "$K/sgid"
chmod 2777 "$K/sgid"
: >"$K/sgid/rootfile"
mkdir "$K/sgid/sub"
as_user ": >$K/sgid/userfile"
expect_result setgid_inherit \
    "$(stat -c %g "$K/sgid/rootfile")/$(stat -c %u:%g "$K/sgid/userfile")/$(stat -c %g:%a "$K/sgid/sub")" \
    "100/1000:100/100:2755"
# Supplementary groups are not in FUSE request headers: a write that the guest allows
# only through a supplementary group may be refused by the host. Recorded, not compared.
mkdir "$K/grpdir"
chown 0:100 "$K/grpdir"
chmod 0775 "$K/grpdir"
info supplementary_group_create "$(errmsg as_user ": >$K/grpdir/f")"
# Backends differ here (vdhost honours the group a 6.5+ guest sends, FUSE_EXT_GROUPS; the C
# virtiofsd does not): keep/ must not depend on it. Checked in the issue-10 section.
rm -f "$K/grpdir/f"

# --- umask ------------------------------------------------------------------------------
(umask 027 && : >"$K/umask_file" && mkdir "$K/umask_dir")
expect_result umask "$(stat -c %a "$K/umask_file")/$(stat -c %a "$K/umask_dir")" "640/750"

section hostchange
# --- host-side changes, per cache mode --------------------------------------------------
# The host driver waits for .vdh/ready1, then rewrites hostchg.txt (new size), creates
# hostnew.txt, removes hostdel.txt and creates .vdh/host-done1.
printf 'guest-v1\n' >"$M/hostchg.txt"
echo del >"$M/hostdel.txt"
printf 'guest-written\n' >"$M/guest-written.txt"
cat "$M/hostchg.txt" "$M/hostdel.txt" >/dev/null
[ -e "$M/hostnew.txt" ] && echo "unexpected hostnew.txt"
: >"$V/ready1"
j=0
while [ ! -e "$V/host-done1" ] && [ $j -lt 150 ]; do sleep 0.1; j=$((j + 1)); done
if [ ! -e "$V/host-done1" ]; then
    fail host_change_visible "host driver never created .vdh/host-done1"
else
    t0=$(now_cs)
    want='host-v2-modified-content'
    got="" new="" del="" it=0
    # Each value is "<centiseconds after host-done1 was seen>:<poll round, 1 = first look>".
    while :; do
        it=$((it + 1))
        dt=$(($(now_cs) - t0))
        [ -n "$got" ] || { c="$(cat "$M/hostchg.txt")"; [ "$c" = "$want" ] && got=$dt:$it; }
        [ -n "$new" ] || { [ -e "$M/hostnew.txt" ] && new=$dt:$it; }
        [ -n "$del" ] || { [ -e "$M/hostdel.txt" ] || del=$dt:$it; }
        if [ -n "$got" ] && [ -n "$new" ] && [ -n "$del" ]; then break; fi
        [ $dt -lt 500 ] || break
        sleep 0.1
    done
    info host_change_cs "content=${got:-never} new=${new:-never} deleted=${del:-never} last='$c'"
    result host_change_visible "$c"
    result host_new_visible "$(cat "$M/hostnew.txt" 2>&1)"
    result host_del_visible "$([ -e "$M/hostdel.txt" ] && echo still-there || echo gone)"
    for what in content=$got new=$new deleted=$del; do
        n="host_${what%%=*}_visible"
        v="${what#*=}"
        if [ "$CACHE" = always ]; then
            skip "$n" "cache=always keeps stale data by design"
        elif [ -z "$v" ]; then
            fail "$n" "not visible after 5 s (cache=$CACHE)"
        elif [ "$CACHE" = never ]; then
            # no caching: the first look after the change must already see it
            if [ "${v#*:}" = 1 ]; then pass "$n"; else fail "$n" "seen only at poll ${v#*:} (cache=never)"; fi
        elif [ "${v%:*}" -le 250 ]; then
            pass "$n"   # 1 s entry/attr timeouts, plus slack for TCG
        else
            fail "$n" "visible only after ${v%:*}0 ms, budget 2500 ms (cache=$CACHE)"
        fi
    done
fi

# === allow_mmap (issue 10, parity) =================================================# Gated by MMAP_ALLOW_TAG / MMAP_DENY_TAG in .vdh/config (vdhost runs that add the two
# `cache: never` shares): a shared writable mmap of a direct-I/O file works on the share
# with allow_mmap (FUSE_DIRECT_IO_ALLOW_MMAP) and fails with ENODEV on the one without.
# The host checks afterwards that the mmap'd bytes reached its file.
if [ -n "${MMAP_ALLOW_TAG:-}" ]; then
    section allow_mmap
    for t in "$MMAP_ALLOW_TAG:OK" "${MMAP_DENY_TAG:-}:ENODEV"; do
        tag="${t%%:*}"
        [ -n "$tag" ] || continue
        d="/tmp/vdh-mmap-$tag"
        mkdir -p "$d"
        if ! has_helper; then
            skip "allow_mmap_$tag" "no vdh-helper"
        elif ! mount -t virtiofs "$tag" "$d"; then
            fail "allow_mmap_$tag" "mount -t virtiofs $tag failed"
        else
            dd if=/dev/zero of="$d/m.bin" bs=4096 count=2 2>/dev/null
            expect "allow_mmap_$tag" "$("$H" mmap-write "$d/m.bin" 4100 "guest-mmap-$tag")" "${t#*:}"
            umount "$d" || fail "allow_mmap_umount_$tag" "umount $d failed"
        fi
    done
fi
# === end allow_mmap =====================================================================
=======
# >>> issue 10: supplementary groups and POSIX ACLs (EXT_CHECKS=1 in .vdh/config) >>>>>>>>>>
# Run with `posix_acl: true` (vdhost) / `-o posix_acl` (virtiofsd). .vdh/acl holds setfacl,
# getfacl, their libraries and the dynamic loader (the busybox guest has no libc).
# SUPP_GROUP_WANT: what a create through a secondary group gives (OK when the guest sends
# FUSE_EXT_GROUPS and the backend honours it, else EACCES).
if [ "${EXT_CHECKS:-0}" = 1 ]; then
    section ext
    A="$V/acl"
    acl_run() { _t="$1"; shift; "$A/ld.so" --library-path "$A" "$A/$_t" "$@"; }
    mkdir -p "$K/acl"
    if [ ! -x "$A/ld.so" ]; then
        fail acl_tools "no $A/ld.so"
    else
        # A default ACL with a named user; a file and a directory created under umask 077.
        expect acl_setfacl_default "$(errmsg acl_run setfacl -d -m u:1234:rw,g::rx,o::rx "$K/acl")" ok
        (umask 077 && echo x >"$K/acl/f" && mkdir "$K/acl/sub")
        expect_result acl_inherit_mode "$(stat -c %a "$K/acl/f")/$(stat -c %a "$K/acl/sub")" 664/775
        expect_result acl_inherit_entry \
            "$(acl_run getfacl -c -n "$K/acl/f" 2>&1 | grep -E '^(user:1234|mask)' | tr '\n' ' ')" \
            "user:1234:rw- mask::rw- "
        expect_result acl_inherit_default_dir \
            "$(acl_run getfacl -c -n -d "$K/acl/sub" 2>&1 | grep -c '^user:1234:rw-$')" 1
        # chmod moves the mask; the named entry stays.
        chmod 640 "$K/acl/f"
        expect_result acl_chmod_mask \
            "$(acl_run getfacl -c -n "$K/acl/f" 2>&1 | grep -E '^(user:1234|mask)' | tr '\t\n' '  ')" \
            "user:1234:rw- #effective:r-- mask::r-- "
        # No default ACL (keep/ has none): the umask applies.
        (umask 027 && echo y >"$K/acl_plain")
        expect_result acl_umask_without_default "$(stat -c %a "$K/acl_plain")" 640
        # An access ACL set by setfacl, read back, and the mode's group bits = its mask.
        expect acl_setfacl_access "$(errmsg acl_run setfacl -m u:4321:rwx "$K/acl_plain")" ok
        expect_result acl_access_mode "$(stat -c %a "$K/acl_plain")" 670
        expect_result acl_access_entry \
            "$(acl_run getfacl -c -n "$K/acl_plain" 2>&1 | grep -E '^(user:4321|mask)' | tr '\n' ' ')" \
            "user:4321:rwx mask::rwx "
    fi
    # A create as uid 1000 (primary group 1000) in a directory writable only by group 3000,
    # which the caller has as its one secondary group.
    # (In the scratch dir: backends differ here, keep/ must not.)
    mkdir "$W/team" && chown 0:3000 "$W/team" && chmod 0770 "$W/team"
    if has_helper; then
        expect supp_group_create_file "$("$H" create-as "$W/team/f" 1000 1000 3000 file)" \
            "${SUPP_GROUP_WANT:-OK}"
        expect supp_group_create_dir "$("$H" create-as "$W/team/d" 1000 1000 3000 dir)" \
            "${SUPP_GROUP_WANT:-OK}"
        if [ "${SUPP_GROUP_WANT:-OK}" = OK ]; then
            expect supp_group_owner "$(stat -c %u:%g "$W/team/f" "$W/team/d" | tr '\n' ' ')" \
                "1000:1000 1000:1000 "
        fi
    else
        skip supp_group_create_file "no helper"
    fi
fi
# <<< issue 10 <<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<

section listing
# --- a sorted listing of everything kept, for the backends to compare --------------------
cd "$M" || exit 1
rm -rf "$W"
result keep_tree_md5 "$(find keep | sort | while read -r f; do
    stat -c '%n %F %a %u:%g %h %s' "$f"
done | md5sum | cut -d' ' -f1)"
result root_listing "$(ls -A | sort | tr '\n' ' ')"
info elapsed_cs "$(($(now_cs) - t_start))"
echo "WORKLOAD-DONE fails=$fails"
[ "$fails" -eq 0 ]

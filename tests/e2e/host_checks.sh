# SPDX-License-Identifier: MIT
# Host-side helpers for virtiofs_workload.sh: builds the optional static guest helper
# (flock, fcntl locks, xattrs, mmap: things busybox has no applet for) and small
# stat/byte readers used to verify, on the host, what the guest wrote into the share.
# Source it from bash after lib.sh.

if [ -n "${HC_LIB_SOURCED:-}" ]; then
    return 0
fi
HC_LIB_SOURCED=1

# hc_build_helper OUT: compile the guest helper as a static x86-64 binary at OUT.
# Returns non-zero (and leaves no OUT) when no C compiler or static libc is available.
hc_build_helper() {
    local out="$1" cc src
    cc="${CC:-cc}"
    command -v "$cc" >/dev/null 2>&1 || return 1
    src="$(mktemp "${TMPDIR:-/tmp}/vdh-helper.XXXXXX.c")" || return 1
    cat >"$src" <<'C_EOF'
// SPDX-License-Identifier: MIT
// vdh-helper: runs inside the busybox e2e guest for what busybox cannot do
// (flock, fcntl locks, xattrs, shared mmap, a create as a user with one secondary group).
// Prints OK or an errno name.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

static const char* ename(int e) {
    static char buf[16];
    switch (e) {
    case EAGAIN: return "EAGAIN";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ENODATA: return "ENODATA";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case ENOSYS: return "ENOSYS";
    case EINVAL: return "EINVAL";
    case EDEADLK: return "EDEADLK";
    case EBADF: return "EBADF";
    case EINTR: return "EINTR";
    case ERANGE: return "ERANGE";
    case EEXIST: return "EEXIST";
    case ENODEV: return "ENODEV";
    case EIO: return "EIO";
    case ENOLCK: return "ENOLCK";
    }
    snprintf(buf, sizeof buf, "E%d", e);
    return buf;
}

static int report(int rc) {
    if (rc == 0) {
        puts("OK");
        return 0;
    }
    puts(ename(errno));
    return 1;
}

static int open_rw(const char* p) {
    int fd = open(p, O_RDWR | O_CREAT, 0644);
    if (fd < 0) {
        printf("open:%s\n", ename(errno));
        exit(2);
    }
    return fd;
}

// Waits (up to 30 s) until RELEASE exists.
static void wait_release(const char* release) {
    for (int i = 0; i < 300 && access(release, F_OK) != 0; i++) usleep(100000);
}

static void touch(const char* p) {
    int fd = open(p, O_WRONLY | O_CREAT, 0644);
    if (fd >= 0) close(fd);
}

static int fcntl_lock(int fd, int cmd, short type) {
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    return fcntl(fd, cmd, &fl);
}

int main(int argc, char** argv) {
    if (argc < 3) {
        fputs("usage: vdh-helper CMD PATH [ARGS]\n", stderr);
        return 2;
    }
    const char* cmd = argv[1];
    const char* path = argv[2];
    if (!strcmp(cmd, "flock-hold") && argc == 5) {  // PATH READY RELEASE
        // LOCK_NB: uncontended here, and the C virtiofsd refuses blocking requests.
        int fd = open_rw(path);
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) return report(-1);
        touch(argv[3]);
        wait_release(argv[4]);
        return 0;
    }
    if (!strcmp(cmd, "flock-try") && argc == 3) {
        return report(flock(open_rw(path), LOCK_EX | LOCK_NB));
    }
    if (!strcmp(cmd, "flock-wait") && argc == 3) {  // blocking flock()
        return report(flock(open_rw(path), LOCK_EX));
    }
    if (!strcmp(cmd, "fcntl-hold") && argc == 5) {  // PATH READY RELEASE
        int fd = open_rw(path);
        if (fcntl_lock(fd, F_SETLK, F_WRLCK) != 0) return report(-1);
        touch(argv[3]);
        wait_release(argv[4]);
        return 0;
    }
    if (!strcmp(cmd, "fcntl-try") && argc == 3) {
        return report(fcntl_lock(open_rw(path), F_SETLK, F_WRLCK));
    }
    if (!strcmp(cmd, "fcntl-getlk") && argc == 3) {  // prints the conflicting lock type
        struct flock fl;
        memset(&fl, 0, sizeof fl);
        fl.l_type = F_WRLCK;
        if (fcntl(open_rw(path), F_GETLK, &fl) != 0) return report(-1);
        puts(fl.l_type == F_UNLCK ? "UNLCK" : fl.l_type == F_WRLCK ? "WRLCK" : "RDLCK");
        return 0;
    }
    if (!strcmp(cmd, "fcntl-setlkw") && argc == 3) {
        return report(fcntl_lock(open_rw(path), F_SETLKW, F_WRLCK));
    }
    if (!strcmp(cmd, "xattr-set") && argc == 5) {
        return report(setxattr(path, argv[3], argv[4], strlen(argv[4]), 0));
    }
    if (!strcmp(cmd, "xattr-get") && argc == 4) {
        char buf[4096];
        ssize_t n = getxattr(path, argv[3], buf, sizeof buf - 1);
        if (n < 0) return report(-1);
        buf[n] = 0;
        printf("=%s\n", buf);
        return 0;
    }
    if (!strcmp(cmd, "xattr-list") && argc == 3) {  // names, one per line, user.* only
        char buf[8192];
        ssize_t n = listxattr(path, buf, sizeof buf);
        if (n < 0) return report(-1);
        for (ssize_t i = 0; i < n; i += (ssize_t)strlen(buf + i) + 1) {
            if (!strncmp(buf + i, "user.", 5)) puts(buf + i);
        }
        return 0;
    }
    if (!strcmp(cmd, "xattr-names") && argc == 3) {  // every name, one per line
        char buf[8192];
        ssize_t n = listxattr(path, buf, sizeof buf);
        if (n < 0) return report(-1);
        for (ssize_t i = 0; i < n; i += (ssize_t)strlen(buf + i) + 1) puts(buf + i);
        return 0;
    }
    if (!strcmp(cmd, "xattr-rm") && argc == 4) {
        return report(removexattr(path, argv[3]));
    }
    if (!strcmp(cmd, "mmap-write") && argc == 5) {  // PATH OFFSET STRING (file big enough)
        int fd = open_rw(path);
        off_t off = atoll(argv[3]);
        size_t len = strlen(argv[4]);
        long pg = sysconf(_SC_PAGESIZE);
        off_t base = off - off % pg;
        size_t maplen = (size_t)(off - base) + len;
        char* p = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, base);
        if (p == MAP_FAILED) return report(-1);
        memcpy(p + (off - base), argv[4], len);
        if (msync(p, maplen, MS_SYNC) != 0) return report(-1);
        if (munmap(p, maplen) != 0) return report(-1);
        return report(close(fd));
    }
    if (!strcmp(cmd, "mmap-read") && argc == 5) {  // PATH OFFSET LEN
        int fd = open(path, O_RDONLY);
        if (fd < 0) return report(-1);
        off_t off = atoll(argv[3]);
        size_t len = (size_t)atoll(argv[4]);
        long pg = sysconf(_SC_PAGESIZE);
        off_t base = off - off % pg;
        size_t maplen = (size_t)(off - base) + len;
        char* p = mmap(NULL, maplen, PROT_READ, MAP_SHARED, fd, base);
        if (p == MAP_FAILED) return report(-1);
        printf("=%.*s\n", (int)len, p + (off - base));
        return 0;
    }
    if (!strcmp(cmd, "create-as") && argc == 7) {  // PATH UID GID SUPPGID file|dir
        // The caller of a create through a secondary group: only SUPPGID as supplementary
        // group, GID primary (a single-threaded process: glibc's process-wide calls).
        gid_t g = (gid_t)atol(argv[5]);
        if (setgroups(1, &g) != 0 || setgid((gid_t)atol(argv[4])) != 0 ||
            setuid((uid_t)atol(argv[3])) != 0) {
            return report(-1);
        }
        if (!strcmp(argv[6], "dir")) return report(mkdir(path, 0755));
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
        return report(fd < 0 ? -1 : close(fd));
    }
    fprintf(stderr, "vdh-helper: bad command '%s'\n", cmd);
    return 2;
}
C_EOF
    if ! "$cc" -static -O1 -o "$out" "$src" 2>"$src.err"; then
        sed 's/^/  hc_build_helper: /' "$src.err" >&2
        rm -f "$src" "$src.err" "$out"
        return 1
    fi
    rm -f "$src" "$src.err"
}

# hc_bytes FILE OFFSET LEN: print LEN bytes of FILE at OFFSET (binary-safe via od).
hc_bytes() {
    dd if="$1" bs=1 skip="$2" count="$3" status=none 2>/dev/null
}

# hc_stat FMT FILE: GNU stat -c FMT, no dereference.
hc_stat() {
    stat -c "$1" -- "$2" 2>/dev/null
}

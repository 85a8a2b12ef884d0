// SPDX-License-Identifier: MIT
// The process sandbox (see sandbox.h): the prepared root (a small read-only tmpfs with the
// shares and socket directories bound in at their own paths), how it is entered (pivot_root
// in a private mount namespace, or chroot), and the capability cut.
#include "sandbox.h"

#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "vdh/unique_fd.h"

namespace vdh {
namespace {

std::string sys_err(const std::string& what) {
    return what + ": " + std::strerror(errno);
}

/// Creates \p path and its missing parents as directories (mode 0755).
bool mkdir_p(const std::string& path, std::string* err) {
    for (size_t pos = 1; pos <= path.size(); ++pos) {
        if (pos != path.size() && path[pos] != '/') {
            continue;
        }
        std::string part = path.substr(0, pos);
        if (mkdir(part.c_str(), 0755) != 0 && errno != EEXIST) {
            *err = sys_err("sandbox: mkdir " + part);
            return false;
        }
    }
    return true;
}

/// A detached copy of the mount tree at \p src (with its submounts) with \p attrs set on
/// every mount of it, ready for move_mount(). Cloning first means the source stays
/// reachable even when the staging tmpfs later covers one of its parents.
bool clone_tree(const std::string& src, uint64_t attrs, UniqueFd* out, std::string* err) {
    UniqueFd tree(
        open_tree(AT_FDCWD, src.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE));
    if (!tree) {
        *err = sys_err("sandbox: cannot bind " + src + " (open_tree)");
        return false;
    }
    struct mount_attr attr = {};
    attr.attr_set = attrs;
    if (mount_setattr(tree.get(), "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) != 0) {
        *err = sys_err("sandbox: cannot restrict the bind of " + src + " (mount_setattr)");
        return false;
    }
    *out = std::move(tree);
    return true;
}

/// Host directories the process itself needs inside the root, bound read-only (each was
/// found missing by running vdhost in the sandbox without it). No /dev at all: nothing opens
/// a device after start-up (getrandom(2) needs no /dev/urandom, EAL's memory is a memfd with
/// --no-huge), and the unit, integration and QEMU suites pass without it.
const char* const kSystemDirs[] = {
    // EAL's lcore detection (cpuN/topology/core_id, "core N unavailable" without it) and
    // glibc's sysconf(_SC_NPROCESSORS_*) for the blocking pool's and io_uring's CPU masks.
    "/sys/devices/system/cpu",
};

struct Staged {
    std::string path; ///< absolute path inside the new root
    UniqueFd tree;
};

/// Loads now what glibc and libstdc++ would load from the host file system on first use,
/// which is no longer reachable inside the sandbox: libgcc_s (thread cancellation and
/// unwinding, e.g. when DPDK cancels its threads at cleanup) and the NSS modules used by
/// user/group lookups.
void preload_lazy_libraries() {
    // Never closed: it must stay mapped for the life of the process.
    (void)dlopen("libgcc_s.so.1", RTLD_NOW | RTLD_GLOBAL | RTLD_NODELETE);
    (void)getpwuid(0);
    (void)getgrgid(0);
    endpwent();
    endgrent();
}

/// The chroot mode's prepared root lives in the host's mount namespace. A child forked here
/// (still holding CAP_SYS_ADMIN, outside the root, holding no other fd) waits for vdhost to
/// end and then detaches and removes it, so no mount outlives the process.
bool spawn_chroot_cleaner(const std::string& stage, std::string* err) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        *err = sys_err("sandbox: pipe");
        return false;
    }
    UniqueFd rd(p[0]);
    UniqueFd wr(p[1]);
    pid_t pid = fork();
    if (pid < 0) {
        *err = sys_err("sandbox: fork");
        return false;
    }
    if (pid == 0) {
        // Ignore the terminal's signals: cleaning up is this process's only job.
        signal(SIGINT, SIG_IGN);
        signal(SIGTERM, SIG_IGN);
        signal(SIGHUP, SIG_IGN);
        int rfd = rd.get();
        close_range(0, static_cast<unsigned>(rfd) - 1, 0);
        close_range(static_cast<unsigned>(rfd) + 1, ~0U, 0);
        char c;
        while (read(rfd, &c, 1) < 0 && errno == EINTR) {
        }
        umount2(stage.c_str(), MNT_DETACH);
        rmdir(stage.c_str());
        _exit(0);
    }
    // The read end closes here; the write end stays open (CLOEXEC) for the life of vdhost:
    // the cleaner's read() returns when the process, and with it that end, is gone.
    (void)wr.release();
    return true;
}

} // namespace

std::string normalize_abs_path(const std::string& path) {
    if (path.empty() || path[0] != '/') {
        return "";
    }
    std::vector<std::string> parts;
    size_t i = 0;
    while (i < path.size()) {
        size_t j = path.find('/', i);
        if (j == std::string::npos) {
            j = path.size();
        }
        std::string part = path.substr(i, j - i);
        if (part == "..") {
            if (!parts.empty()) {
                parts.pop_back();
            }
        } else if (!part.empty() && part != ".") {
            parts.push_back(part);
        }
        i = j + 1;
    }
    std::string out;
    for (const auto& p : parts) {
        out += "/" + p;
    }
    return out.empty() ? "/" : out;
}

bool SandboxPlan::add(const std::string& path, bool writable, bool socket_dir, std::string* err) {
    std::string norm = normalize_abs_path(path);
    if (norm.empty()) {
        *err = "sandbox: " + path + " is not an absolute path";
        return false;
    }
    if (norm == "/") {
        *err = "sandbox: " + path +
               " is the whole file system; a sandbox cannot hold it (set host.sandbox: none)";
        return false;
    }
    for (auto& d : dirs_) {
        if (d.path == norm) {
            d.writable = d.writable || writable;
            d.socket_dir = d.socket_dir || socket_dir;
            return true;
        }
    }
    dirs_.push_back(SandboxDir{norm, writable, socket_dir});
    // Parents first: a shorter path that is a prefix sorts before its children.
    std::sort(dirs_.begin(), dirs_.end(),
              [](const SandboxDir& a, const SandboxDir& b) { return a.path < b.path; });
    return true;
}

bool SandboxPlan::add_share(const std::string& path, bool writable, std::string* err) {
    return add(path, writable, false, err);
}

bool SandboxPlan::add_empty_dir(const std::string& path, std::string* err) {
    std::string norm = normalize_abs_path(path);
    if (norm.empty() || norm == "/") {
        *err = "sandbox: " + path + " is not an absolute path below /";
        return false;
    }
    empty_dirs_.push_back(norm);
    return true;
}

bool SandboxPlan::add_socket_dir(const std::string& path, std::string* err) {
    return add(path, true, true, err);
}

const std::vector<int>& sandbox_kept_caps() {
    static const std::vector<int> caps = {
        CAP_CHOWN,           // SETATTR uid/gid, CREATE as a guest uid
        CAP_DAC_OVERRIDE,    // the guest's own permission checks decide, as in virtiofsd
        CAP_DAC_READ_SEARCH, // open_by_handle_at (inode_file_handles)
        CAP_FOWNER,          // utimes/chmod/xattrs on files the guest uid owns, O_NOATIME
        CAP_FSETID,          // keep setgid bits on chmod/chown done for the guest
        CAP_SETGID,          // setfsgid per request, setgroups
        CAP_SETUID,          // setfsuid per request
        CAP_MKNOD,           // MKNOD of device nodes (never opened: shares are nodev)
        CAP_SETFCAP,         // security.capability xattrs
        CAP_LEASE,           // leases on files the guest does not own
    };
    return caps;
}

int thread_count() {
    DIR* d = opendir("/proc/self/task");
    if (d == nullptr) {
        return -1;
    }
    int n = 0;
    while (struct dirent* e = readdir(d)) {
        if (e->d_name[0] != '.') {
            ++n;
        }
    }
    closedir(d);
    return n;
}

const char* to_string(SandboxMode m) {
    switch (m) {
    case SandboxMode::Namespace:
        return "namespace";
    case SandboxMode::Chroot:
        return "chroot";
    case SandboxMode::None:
        return "none";
    }
    return "?";
}

bool enter_sandbox(SandboxMode mode, const SandboxPlan& plan, std::string* err) {
    if (mode == SandboxMode::None) {
        return true;
    }
    int threads = thread_count();
    if (threads != 1) {
        *err = "sandbox: must be entered while vdhost has one thread (it has " +
               std::to_string(threads) + ")";
        return false;
    }
    preload_lazy_libraries();

    std::string stage;
    if (mode == SandboxMode::Namespace) {
        if (unshare(CLONE_NEWNS) != 0) {
            *err = sys_err("sandbox: unshare(CLONE_NEWNS) (host.sandbox: chroot works where "
                           "namespaces are not allowed)");
            return false;
        }
        // Nothing mounted from here on may propagate back to the host.
        if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
            *err = sys_err("sandbox: making / private");
            return false;
        }
        // Only this namespace sees the staging mount; /tmp exists on every system we run on
        // and every source below is cloned before it is covered.
        stage = "/tmp";
    } else {
        char tmpl[] = "/run/vdhost-sandbox.XXXXXX";
        if (mkdtemp(tmpl) == nullptr) {
            *err = sys_err("sandbox: mkdtemp /run/vdhost-sandbox.XXXXXX");
            return false;
        }
        stage = tmpl;
    }

    // Detached clones of everything the root will hold, restricted before they are attached.
    std::vector<Staged> staged;
    for (const char* sys : kSystemDirs) {
        Staged s{sys, UniqueFd()};
        if (!clone_tree(sys, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID |
                                 MOUNT_ATTR_NOEXEC,
                        &s.tree, err)) {
            return false;
        }
        staged.push_back(std::move(s));
    }
    for (const auto& d : plan.dirs()) {
        uint64_t attrs = MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID;
        if (!d.writable) {
            attrs |= MOUNT_ATTR_RDONLY;
        }
        if (d.socket_dir) {
            attrs |= MOUNT_ATTR_NOEXEC;
        }
        Staged s{d.path, UniqueFd()};
        if (!clone_tree(d.path, attrs, &s.tree, err)) {
            return false;
        }
        staged.push_back(std::move(s));
    }

    // The root: a small tmpfs, read-only once populated.
    if (mount("vdhost-root", stage.c_str(), "tmpfs", MS_NODEV | MS_NOSUID | MS_NOEXEC,
              "mode=0755,size=64k,nr_inodes=256") != 0) {
        *err = sys_err("sandbox: mounting the root tmpfs on " + stage);
        if (mode == SandboxMode::Chroot) {
            rmdir(stage.c_str());
        }
        return false;
    }
    if (mode == SandboxMode::Chroot) {
        if (mount(nullptr, stage.c_str(), nullptr, MS_PRIVATE, nullptr) != 0) {
            *err = sys_err("sandbox: making " + stage + " private");
            umount2(stage.c_str(), MNT_DETACH);
            rmdir(stage.c_str());
            return false;
        }
        if (!spawn_chroot_cleaner(stage, err)) {
            umount2(stage.c_str(), MNT_DETACH);
            rmdir(stage.c_str());
            return false;
        }
    }
    for (auto& s : staged) {
        std::string target = stage + s.path;
        if (!mkdir_p(target, err)) {
            return false;
        }
        if (move_mount(s.tree.get(), "", AT_FDCWD, target.c_str(), MOVE_MOUNT_F_EMPTY_PATH) !=
            0) {
            *err = sys_err("sandbox: attaching " + s.path + " (move_mount)");
            return false;
        }
    }
    // Empty directories: /sys/module makes EAL's module probe answer "vfio not loaded"
    // (without it EAL cannot tell and refuses to start; vdhost drives no PCI device), and
    // the plan's own (DPDK's runtime directory, which EAL insists on creating).
    std::vector<std::string> empties = plan.empty_dirs();
    empties.push_back("/sys/module");
    for (const auto& e : empties) {
        if (!mkdir_p(stage + e, err)) {
            return false;
        }
    }
    // /proc: the passthrough reopens its own fds through /proc/self/fd and the xattr calls
    // take /proc/self/fd/N paths; EAL reads /proc/self (maps, status). A fresh procfs with
    // subset=pid shows only the process directories: no /proc/sys, /proc/kcore, sysrq-trigger;
    // hidepid=invisible hides the processes vdhost (without CAP_SYS_PTRACE) may not inspect.
    std::string proc = stage + "/proc";
    if (!mkdir_p(proc, err)) {
        return false;
    }
    if (mount("proc", proc.c_str(), "proc", MS_NODEV | MS_NOSUID | MS_NOEXEC,
              "subset=pid,hidepid=invisible") != 0) {
        *err = sys_err("sandbox: mounting proc on " + proc);
        return false;
    }
    if (mount(nullptr, stage.c_str(), nullptr,
              MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NODEV | MS_NOSUID | MS_NOEXEC,
              nullptr) != 0) {
        *err = sys_err("sandbox: making the root read-only");
        return false;
    }

    if (chdir(stage.c_str()) != 0) {
        *err = sys_err("sandbox: chdir " + stage);
        return false;
    }
    if (mode == SandboxMode::Namespace) {
        // pivot_root(".", "."): the old root ends up stacked on the new one; detaching it
        // leaves nothing of the host's tree reachable from this namespace.
        if (syscall(SYS_pivot_root, ".", ".") != 0) {
            *err = sys_err("sandbox: pivot_root " + stage);
            return false;
        }
        if (umount2(".", MNT_DETACH) != 0) {
            *err = sys_err("sandbox: detaching the old root");
            return false;
        }
    } else if (chroot(".") != 0) {
        *err = sys_err("sandbox: chroot " + stage);
        return false;
    }
    if (chdir("/") != 0) {
        *err = sys_err("sandbox: chdir /");
        return false;
    }
    return true;
}

bool drop_privileges(std::string* err) {
    const auto& keep = sandbox_kept_caps();
    auto kept = [&](int c) { return std::find(keep.begin(), keep.end(), c) != keep.end(); };
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
        *err = sys_err("sandbox: clearing the ambient capabilities");
        return false;
    }
    // The bounding set: needs CAP_SETPCAP, which is itself dropped with the rest.
    bool can_setpcap = prctl(PR_CAPBSET_READ, CAP_SETPCAP, 0, 0, 0) == 1;
    __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2] = {};
    if (syscall(SYS_capget, &hdr, data) != 0) {
        *err = sys_err("sandbox: capget");
        return false;
    }
    bool have_setpcap = (data[CAP_SETPCAP / 32].effective & (1U << (CAP_SETPCAP % 32))) != 0;
    if (can_setpcap && have_setpcap) {
        for (int c = 0; prctl(PR_CAPBSET_READ, c, 0, 0, 0) >= 0; ++c) {
            if (!kept(c) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0) {
                *err = sys_err("sandbox: dropping capability " + std::to_string(c) +
                               " from the bounding set");
                return false;
            }
        }
    }
    for (int i = 0; i < 2; ++i) {
        uint32_t mask = 0;
        for (int c : keep) {
            if (c / 32 == i) {
                mask |= 1U << (c % 32);
            }
        }
        data[i].permitted &= mask;
        data[i].effective &= mask;
        data[i].inheritable = 0;
    }
    if (syscall(SYS_capset, &hdr, data) != 0) {
        *err = sys_err("sandbox: capset");
        return false;
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        *err = sys_err("sandbox: PR_SET_NO_NEW_PRIVS");
        return false;
    }
    return true;
}

} // namespace vdh

// SPDX-License-Identifier: MIT
// The seccomp allow-list (see seccomp_filter.h): the list of calls, grouped by who makes
// them, and the BPF program built from it. The list was checked by running the host,
// virtio-fs and QEMU end-to-end suites with `host.seccomp: log` and reading the kernel's
// audit records (type=1326), and against strace -f -c of the POSIX workload. Left out on
// purpose: ioctl, mlock, mbind, membarrier, mincore (no run-time user), execve, ptrace,
// mount and namespace calls, bpf, keyrings, module loading.
#include "seccomp_filter.h"

#include <linux/audit.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace vdh {
namespace {

#if defined(__x86_64__)
constexpr uint32_t kAuditArch = AUDIT_ARCH_X86_64;
#else
#error "seccomp_filter.cc: add this architecture's AUDIT_ARCH_* value and its call list"
#endif

std::vector<int> make_list() {
    std::vector<int> v = {
        // Everyone: memory, threads, time, signals, exit.
        SYS_brk, SYS_mmap, SYS_munmap, SYS_mremap, SYS_mprotect, SYS_madvise, SYS_futex,
        SYS_set_robust_list, SYS_rseq, SYS_clone, SYS_clone3, SYS_exit, SYS_exit_group,
        SYS_gettid, SYS_getpid, SYS_tgkill, SYS_rt_sigaction,
        SYS_rt_sigprocmask, SYS_rt_sigreturn, SYS_rt_sigtimedwait, SYS_sigaltstack,
        SYS_clock_gettime, SYS_clock_nanosleep, SYS_nanosleep, SYS_sched_yield,
        SYS_sched_getaffinity, SYS_sched_setaffinity, SYS_getrandom, SYS_prctl,
        // A plugin's worker threads lower their own priority (raising it needs CAP_SYS_NICE,
        // which the sandbox drops).
        SYS_setpriority,
        SYS_getrlimit, SYS_prlimit64, SYS_getuid, SYS_geteuid, SYS_getgid, SYS_getegid,
        SYS_getresuid, SYS_getresgid, SYS_uname, SYS_restart_syscall, SYS_get_mempolicy,
        SYS_set_mempolicy, SYS_timerfd_create, SYS_timerfd_settime, SYS_sysinfo, SYS_msync,
        // Normally answered by the vDSO; the kernel fallbacks.
        SYS_gettimeofday, SYS_time, SYS_getcpu,
        // fds, polling, eventfds (poll lcores' kick/wake fds, the vhost-user transport's thread,
        // the control socket thread).
        SYS_read, SYS_write, SYS_readv, SYS_writev, SYS_close, SYS_close_range, SYS_dup,
        SYS_dup2, SYS_dup3, SYS_fcntl, SYS_pipe2, SYS_eventfd2, SYS_epoll_create, SYS_epoll_create1,
        SYS_epoll_ctl, SYS_epoll_wait, SYS_epoll_pwait, SYS_poll, SYS_ppoll, SYS_lseek,
        SYS_memfd_create,
        // vhost-user and control sockets (AF_UNIX): accept, SCM_RIGHTS messages.
        SYS_bind, SYS_listen, SYS_accept, SYS_accept4, SYS_connect,
        SYS_recvmsg, SYS_sendmsg, SYS_recvfrom, SYS_sendto, SYS_shutdown, SYS_getsockopt,
        SYS_setsockopt, SYS_getsockname, SYS_unlink, SYS_unlinkat,
        // io_uring.
        SYS_io_uring_setup, SYS_io_uring_enter, SYS_io_uring_register,
        // The passthrough: name and handle opens, attributes, directory ops, data, locks.
        SYS_open, SYS_openat, SYS_openat2, SYS_name_to_handle_at, SYS_open_by_handle_at,
        SYS_statx, SYS_newfstatat, SYS_fstat, SYS_stat, SYS_lstat, SYS_readlinkat,
        SYS_getdents64, SYS_faccessat, SYS_faccessat2, SYS_access, SYS_mkdirat,
        SYS_mknodat, SYS_symlinkat, SYS_linkat, SYS_renameat, SYS_renameat2, SYS_fchmod,
        SYS_fchmodat, SYS_fchown, SYS_fchownat, SYS_utimensat, SYS_ftruncate, SYS_truncate,
        SYS_fallocate, SYS_fsync, SYS_fdatasync, SYS_syncfs, SYS_sync_file_range,
        SYS_fstatfs, SYS_statfs, SYS_pread64, SYS_pwrite64, SYS_preadv, SYS_pwritev,
        SYS_preadv2, SYS_pwritev2, SYS_copy_file_range, SYS_flock, SYS_fadvise64,
        SYS_setxattr, SYS_lsetxattr, SYS_fsetxattr, SYS_getxattr, SYS_lgetxattr,
        SYS_fgetxattr, SYS_listxattr, SYS_llistxattr, SYS_flistxattr, SYS_removexattr,
        SYS_lremovexattr, SYS_fremovexattr, SYS_setfsuid, SYS_setfsgid, SYS_setgroups,
        SYS_setresuid, SYS_setresgid, SYS_getgroups, SYS_umask, SYS_fchdir, SYS_chdir,
        SYS_getcwd, SYS_readlink, SYS_mkdir, SYS_rmdir, SYS_rename, SYS_capget,
        // The virtio-fs inline-write gate: a slow write's voluntary context switches.
        SYS_getrusage,
    };
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    return v;
}

} // namespace

const std::vector<SeccompArgRule>& seccomp_arg_rules() {
    static const std::vector<SeccompArgRule> rules = {
        // Passthrough threads (poll lcores, blocking pool): a private umask per thread.
        {SYS_unshare, 0, CLONE_FS},
        // vhost-user and control sockets are UNIX sockets; nothing else is ever needed.
        {SYS_socket, 0, AF_UNIX},
    };
    return rules;
}

const std::vector<int>& seccomp_allowed_syscalls() {
    static const std::vector<int> list = make_list();
    return list;
}

std::vector<sock_filter> build_seccomp_filter(SeccompMode mode, const std::vector<int>& allowed,
                                              const std::vector<SeccompArgRule>& rules) {
    const uint32_t deny = mode == SeccompMode::Log ? SECCOMP_RET_LOG : SECCOMP_RET_KILL_PROCESS;
    std::vector<sock_filter> f;
    // A foreign architecture's numbers mean other calls: kill, whatever the mode.
    f.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)));
    f.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kAuditArch, 1, 0));
    f.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS));
    f.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)));
#if defined(__x86_64__)
    // x32 calls share the architecture value; their numbers have bit 30 set.
    f.push_back(BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000U, 0, 1));
    f.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS));
#endif
    // Argument-checked calls. The accumulator holds the call number on entry and on the
    // way out of a non-matching rule.
    for (const SeccompArgRule& r : rules) {
        const uint32_t lo = static_cast<uint32_t>(offsetof(seccomp_data, args) + 8 * r.arg);
        f.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(r.nr), 0, 6));
        f.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, lo)); // little endian: low half first
        f.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(r.value), 0, 2));
        f.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, lo + 4));
        f.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(r.value >> 32), 1,
                             0));
        f.push_back(BPF_STMT(BPF_RET | BPF_K, deny));
        f.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
    }
    // Chunks of at most 200 compares, each followed by its own ALLOW, so no jump offset
    // exceeds the 8-bit limit. The kernel caches the verdict of calls whose outcome does not
    // depend on arguments (all of these), so the length costs nothing on the hot path.
    constexpr size_t kChunk = 200;
    for (size_t start = 0; start < allowed.size(); start += kChunk) {
        size_t n = std::min(kChunk, allowed.size() - start);
        for (size_t i = 0; i < n; ++i) {
            // On a match, jump over the remaining compares and the skip to the ALLOW.
            uint8_t to_allow = static_cast<uint8_t>(n - 1 - i + 1);
            f.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
                                 static_cast<uint32_t>(allowed[start + i]), to_allow, 0));
        }
        f.push_back(BPF_JUMP(BPF_JMP | BPF_JA, 1, 0, 0)); // no match in this chunk
        f.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
    }
    f.push_back(BPF_STMT(BPF_RET | BPF_K, deny));
    return f;
}

bool install_seccomp(SeccompMode mode, std::string* err) {
    if (mode == SeccompMode::None) {
        return true;
    }
    std::vector<sock_filter> f =
        build_seccomp_filter(mode, seccomp_allowed_syscalls(), seccomp_arg_rules());
    sock_fprog prog = {static_cast<unsigned short>(f.size()), f.data()};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        *err = std::string("seccomp: PR_SET_NO_NEW_PRIVS: ") + std::strerror(errno);
        return false;
    }
    long rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog);
    if (rc != 0) {
        *err = rc > 0 ? "seccomp: thread " + std::to_string(rc) + " could not be synchronised"
                      : std::string("seccomp: ") + std::strerror(errno);
        return false;
    }
    return true;
}

const char* to_string(SeccompMode m) {
    switch (m) {
    case SeccompMode::Kill:
        return "kill";
    case SeccompMode::Log:
        return "log";
    case SeccompMode::None:
        return "none";
    }
    return "?";
}

} // namespace vdh

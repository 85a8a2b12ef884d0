// SPDX-License-Identifier: MIT
// Unit tests of the seccomp filter construction (host/src/seccomp_filter.h): the program is
// run through a small classic-BPF interpreter on crafted seccomp_data (a foreign
// architecture and x32 numbers are killed in every mode, listed calls allowed, others get
// the mode's action, lists longer than one jump range work), and for real in forked
// children: a call outside the list kills the process with SIGSYS in kill mode and is only
// logged in log mode.
#include <gtest/gtest.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "seccomp_filter.h"

namespace vdh {
namespace {

/// Runs the subset of classic BPF that seccomp filters use. Returns the RET value.
uint32_t run_bpf(const std::vector<sock_filter>& prog, const seccomp_data& data) {
    uint32_t a = 0;
    size_t pc = 0;
    while (pc < prog.size()) {
        const sock_filter& i = prog[pc];
        switch (i.code) {
        case BPF_LD | BPF_W | BPF_ABS: {
            EXPECT_LE(i.k + 4, sizeof(data));
            std::memcpy(&a, reinterpret_cast<const char*>(&data) + i.k, 4);
            ++pc;
            break;
        }
        case BPF_JMP | BPF_JEQ | BPF_K:
            pc += 1 + (a == i.k ? i.jt : i.jf);
            break;
        case BPF_JMP | BPF_JGE | BPF_K:
            pc += 1 + (a >= i.k ? i.jt : i.jf);
            break;
        case BPF_JMP | BPF_JA:
            pc += 1 + i.k;
            break;
        case BPF_RET | BPF_K:
            return i.k;
        default:
            ADD_FAILURE() << "unexpected BPF opcode " << i.code;
            return 0xdead;
        }
    }
    ADD_FAILURE() << "fell off the end of the program";
    return 0xdead;
}

seccomp_data call(int nr, uint32_t arch = AUDIT_ARCH_X86_64) {
    seccomp_data d = {};
    d.nr = nr;
    d.arch = arch;
    return d;
}

TEST(SeccompFilter, AllowsListedCallsAndAppliesTheModeToOthers) {
    std::vector<int> allowed = {SYS_read, SYS_write, SYS_io_uring_enter};
    auto kill = build_seccomp_filter(SeccompMode::Kill, allowed);
    auto log = build_seccomp_filter(SeccompMode::Log, allowed);
    for (int nr : allowed) {
        EXPECT_EQ(run_bpf(kill, call(nr)), SECCOMP_RET_ALLOW) << nr;
        EXPECT_EQ(run_bpf(log, call(nr)), SECCOMP_RET_ALLOW) << nr;
    }
    EXPECT_EQ(run_bpf(kill, call(SYS_ptrace)), SECCOMP_RET_KILL_PROCESS);
    EXPECT_EQ(run_bpf(log, call(SYS_ptrace)), SECCOMP_RET_LOG);
}

TEST(SeccompFilter, ArgumentRuleAllowsOnlyItsValue) {
    auto f = build_seccomp_filter(SeccompMode::Kill, {SYS_read}, seccomp_arg_rules());
    seccomp_data d = call(SYS_unshare);
    d.args[0] = CLONE_FS;
    EXPECT_EQ(run_bpf(f, d), SECCOMP_RET_ALLOW);
    for (uint64_t bad : {uint64_t{CLONE_NEWNS}, uint64_t{CLONE_FS | CLONE_NEWUSER},
                         uint64_t{CLONE_FS} | (uint64_t{1} << 32), uint64_t{0}}) {
        d.args[0] = bad;
        EXPECT_EQ(run_bpf(f, d), SECCOMP_RET_KILL_PROCESS) << std::hex << bad;
    }
    seccomp_data sock = call(SYS_socket);
    sock.args[0] = AF_UNIX;
    EXPECT_EQ(run_bpf(f, sock), SECCOMP_RET_ALLOW);
    sock.args[0] = AF_INET;
    EXPECT_EQ(run_bpf(f, sock), SECCOMP_RET_KILL_PROCESS);
    sock.args[0] = AF_NETLINK;
    EXPECT_EQ(run_bpf(f, sock), SECCOMP_RET_KILL_PROCESS);
    // Calls after the rules still reach the list with the call number.
    EXPECT_EQ(run_bpf(f, call(SYS_read)), SECCOMP_RET_ALLOW);
    auto log = build_seccomp_filter(SeccompMode::Log, {SYS_read}, seccomp_arg_rules());
    d.args[0] = CLONE_NEWNS;
    EXPECT_EQ(run_bpf(log, d), SECCOMP_RET_LOG);
}

TEST(SeccompFilter, ForeignArchitectureAndX32AreKilledInEveryMode) {
    std::vector<int> allowed = {SYS_read};
    for (SeccompMode m : {SeccompMode::Kill, SeccompMode::Log}) {
        auto f = build_seccomp_filter(m, allowed);
        // i386's number 3 is read(2) too: still killed, the numbers mean other calls.
        EXPECT_EQ(run_bpf(f, call(SYS_read, AUDIT_ARCH_I386)), SECCOMP_RET_KILL_PROCESS);
        EXPECT_EQ(run_bpf(f, call(SYS_read | 0x40000000)), SECCOMP_RET_KILL_PROCESS);
    }
}

TEST(SeccompFilter, LongListsStayWithinJumpRange) {
    std::vector<int> allowed;
    for (int nr = 0; nr < 450; nr += 1) {
        if (nr != 300) {
            allowed.push_back(nr);
        }
    }
    auto f = build_seccomp_filter(SeccompMode::Kill, allowed);
    for (int nr : allowed) {
        ASSERT_EQ(run_bpf(f, call(nr)), SECCOMP_RET_ALLOW) << nr;
    }
    EXPECT_EQ(run_bpf(f, call(300)), SECCOMP_RET_KILL_PROCESS);
    EXPECT_EQ(run_bpf(f, call(451)), SECCOMP_RET_KILL_PROCESS);
}

TEST(SeccompFilter, TheRealListCoversTheHotPathAndNotTheDangerousCalls) {
    const auto& l = seccomp_allowed_syscalls();
    EXPECT_TRUE(std::is_sorted(l.begin(), l.end()));
    EXPECT_EQ(std::adjacent_find(l.begin(), l.end()), l.end());
    auto has = [&](int nr) { return std::binary_search(l.begin(), l.end(), nr); };
    for (int nr : {SYS_io_uring_enter, SYS_epoll_wait, SYS_read, SYS_write, SYS_futex,
                   SYS_recvmsg, SYS_accept4, SYS_mmap, SYS_openat2, SYS_open_by_handle_at,
                   SYS_name_to_handle_at, SYS_setfsuid, SYS_setfsgid, SYS_renameat2,
                   SYS_copy_file_range, SYS_statx, SYS_fgetxattr, SYS_mknodat}) {
        EXPECT_TRUE(has(nr)) << nr;
    }
    for (int nr : {SYS_execve, SYS_execveat, SYS_ptrace, SYS_mount, SYS_umount2, SYS_pivot_root,
                   SYS_chroot, SYS_unshare, SYS_setns, SYS_init_module, SYS_finit_module,
                   SYS_kexec_load, SYS_bpf, SYS_perf_event_open, SYS_process_vm_readv,
                   SYS_keyctl, SYS_add_key, SYS_reboot, SYS_swapon, SYS_open_tree,
                   SYS_move_mount, SYS_fsopen, SYS_userfaultfd, SYS_capset, SYS_socket,
                   SYS_unshare}) {
        EXPECT_FALSE(has(nr)) << nr;
    }
}

/// In a forked child: installs the filter for \p mode, \p allowed and the real argument
/// rules on this thread, or exits 3.
void install_in_child(SeccompMode mode, const std::vector<int>& allowed) {
    auto f = build_seccomp_filter(mode, allowed, seccomp_arg_rules());
    sock_fprog prog = {static_cast<unsigned short>(f.size()), f.data()};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) {
        _exit(3);
    }
}

/// Forks; the child installs \p mode with getppid() left out, calls it, and exits 0.
int run_child_calling_unlisted(SeccompMode mode) {
    pid_t pid = fork();
    if (pid == 0) {
        std::vector<int> allowed = seccomp_allowed_syscalls();
        allowed.erase(std::remove(allowed.begin(), allowed.end(), SYS_getppid), allowed.end());
        install_in_child(mode, allowed);
        syscall(SYS_getppid);
        syscall(SYS_exit_group, 0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
}

TEST(SeccompFilter, KernelKillsAnUnlistedCallInKillMode) {
    int status = run_child_calling_unlisted(SeccompMode::Kill);
    ASSERT_TRUE(WIFSIGNALED(status)) << "exit " << WEXITSTATUS(status);
    EXPECT_EQ(WTERMSIG(status), SIGSYS);
}

TEST(SeccompFilter, KernelOnlyLogsAnUnlistedCallInLogMode) {
    int status = run_child_calling_unlisted(SeccompMode::Log);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(SeccompFilter, KernelAllowsUnshareFsAndKillsUnshareNewns) {
    for (int flags : {CLONE_FS, CLONE_NEWNS}) {
        pid_t pid = fork();
        if (pid == 0) {
            install_in_child(SeccompMode::Kill, seccomp_allowed_syscalls());
            long rc = syscall(SYS_unshare, flags);
            syscall(SYS_exit_group, rc == 0 ? 0 : 4);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        if (flags == CLONE_FS) {
            EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
        } else {
            EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS) << status;
        }
    }
}

TEST(SeccompFilter, InstallNoneDoesNothing) {
    std::string err;
    EXPECT_TRUE(install_seccomp(SeccompMode::None, &err));
    EXPECT_STREQ(to_string(SeccompMode::Kill), "kill");
    EXPECT_STREQ(to_string(SeccompMode::Log), "log");
    EXPECT_STREQ(to_string(SeccompMode::None), "none");
}

} // namespace
} // namespace vdh

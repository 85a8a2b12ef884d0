// SPDX-License-Identifier: MIT
// The seccomp allow-list: a classic-BPF program that admits only the system calls vdhost,
// the vhost-user transport's threads, the poll lcores, io_uring, the blocking pool and the
// passthrough make once start-up is over, for the native architecture only. Installed on
// every thread at once (SECCOMP_FILTER_FLAG_TSYNC) when start-up is complete.
#pragma once

#include <linux/filter.h>

#include <cstdint>
#include <string>
#include <vector>

namespace vdh {

/// host.seccomp.
enum class SeccompMode {
    Kill, ///< a call outside the list kills the process (default)
    Log,  ///< a call outside the list is allowed and logged by the kernel (audit type 1326)
    None, ///< no filter
};

/// The allowed system call numbers (native architecture), sorted, no duplicates.
const std::vector<int>& seccomp_allowed_syscalls();

/// A call allowed only with one exact value of one argument (compared as 64 bits).
struct SeccompArgRule {
    int nr;
    unsigned arg;   ///< 0..5
    uint64_t value;
};

/// The argument-checked calls: unshare(CLONE_FS) only (the passthrough's threads take their
/// own umask; every namespace flag is refused) and socket(AF_UNIX, ...) only.
const std::vector<SeccompArgRule>& seccomp_arg_rules();

/// Builds the filter program: a foreign architecture (or an x32 call on x86-64) is killed
/// in every mode; a call of \p rules with its one allowed argument value and a call listed
/// in \p allowed are allowed; anything else (a rule's call with another value included)
/// gets the action of \p mode (SECCOMP_RET_KILL_PROCESS or SECCOMP_RET_LOG). \p mode must
/// not be None.
std::vector<sock_filter> build_seccomp_filter(SeccompMode mode, const std::vector<int>& allowed,
                                              const std::vector<SeccompArgRule>& rules = {});

/// Installs build_seccomp_filter(mode, seccomp_allowed_syscalls(), seccomp_arg_rules()) on
/// every thread of the
/// process (TSYNC; sets no_new_privs first). Nothing for None. Returns false and sets \p err.
bool install_seccomp(SeccompMode mode, std::string* err);

const char* to_string(SeccompMode m);

} // namespace vdh

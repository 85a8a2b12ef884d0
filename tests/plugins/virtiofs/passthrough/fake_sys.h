// SPDX-License-Identifier: MIT
// FakeSys: the real kernel with injectable faults, for inode-store and mount-fd tests.
// Rules are keyed by the REAL inode number of the file a call targets, and can make
// name_to_handle_at fail (a number of times or forever), report a different inode number
// or mount id (to simulate inode number reuse and other mounts), or make reopening fail.
// Counts the opens, statx calls and handle calls a test may want to bound.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "sys.h"

namespace vdh::virtiofs::passthrough::testing {

struct FakeRule {
    int handle_err = 0;          ///< errno for name_to_handle_at (0: no fault)
    int handle_err_times = -1;   ///< how many calls fail; -1 forever
    std::optional<uint64_t> ino; ///< reported st_ino override
    std::optional<uint64_t> mnt_id; ///< reported mount id override (statx and handles)
    int reopen_err = 0;          ///< errno for reopen() of this file (0: no fault)
};

class FakeSys : public RealSys {
public:
    FakeSys();

    /// Installs \p rule for the file with real inode number \p real_ino.
    void set_rule(uint64_t real_ino, const FakeRule& rule);
    void clear_rules();

    /// Makes every non-O_PATH open (openat, openat2, reopen, open_by_handle_at) open
    /// \p path instead, with the caller's access mode, O_NONBLOCK and O_NOCTTY: the
    /// kernel answering with something else than the caller expected (a device node, a
    /// FIFO). Empty: off.
    /// \p reopen_only: only reopen() (the /proc/self/fd path) is substituted.
    void substitute_opens(const std::string& path, bool reopen_only = false);

    Result<UniqueFd> openat(int dirfd, const char* path, int flags, mode_t mode) override;
    Result<UniqueFd> openat2(int dirfd, const char* path, uint64_t flags, uint64_t mode,
                             uint64_t resolve) override;
    Result<UniqueFd> reopen(int fd, int flags) override;
    Status name_to_handle_at(int dirfd, const char* path, struct file_handle* fh, int* mount_id,
                             int flags) override;
    Result<UniqueFd> open_by_handle_at(int mount_fd, struct file_handle* fh, int flags) override;
    Status statx(int dirfd, const char* path, int flags, unsigned int mask,
                 struct statx* out) override;

    std::atomic<int> name_to_handle_calls{0};
    std::atomic<int> open_by_handle_calls{0};
    std::atomic<int> reopen_calls{0};
    std::atomic<int> open_calls{0};  ///< openat + openat2
    std::atomic<int> statx_calls{0};
    /// Flags of the last non-O_PATH open (any of the four calls), -1 before the first.
    std::atomic<int> last_io_open_flags{-1};

private:
    /// For a non-O_PATH open with \p flags: records them and, when substituting, opens
    /// the substitute. nullopt: go on with the real call.
    std::optional<Result<UniqueFd>> io_open(int flags, bool is_reopen = false);
    std::optional<uint64_t> real_ino(int dirfd, const char* path, int flags);
    /// Copies the rule for \p ino (and consumes one failure when \p consume_handle_err).
    std::optional<FakeRule> rule_for(uint64_t ino, bool consume_handle_err);

    std::mutex mutex_;
    std::map<uint64_t, FakeRule> rules_;
    std::string substitute_; // guarded by mutex_
    bool substitute_reopen_only_ = false; // guarded by mutex_
};

} // namespace vdh::virtiofs::passthrough::testing

// SPDX-License-Identifier: MIT
// FakeSys implementation and the small helpers declared in test_util.h.

#include "fake_sys.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <fstream>

#include "file_handle.h"
#include "test_util.h"

namespace vdh::virtiofs::passthrough::testing {

FakeSys::FakeSys() : RealSys(RealSys::open_proc_self_fd().value()) {}

void FakeSys::set_rule(uint64_t real_ino, const FakeRule& rule) {
    std::lock_guard<std::mutex> g(mutex_);
    rules_[real_ino] = rule;
}

void FakeSys::clear_rules() {
    std::lock_guard<std::mutex> g(mutex_);
    rules_.clear();
}

void FakeSys::substitute_opens(const std::string& path, bool reopen_only) {
    std::lock_guard<std::mutex> g(mutex_);
    substitute_ = path;
    substitute_reopen_only_ = reopen_only;
}

std::optional<Result<UniqueFd>> FakeSys::io_open(int flags, bool is_reopen) {
    if ((flags & O_PATH) != 0) {
        return std::nullopt;
    }
    last_io_open_flags = flags;
    std::string sub;
    {
        std::lock_guard<std::mutex> g(mutex_);
        if (!substitute_reopen_only_ || is_reopen) {
            sub = substitute_;
        }
    }
    if (sub.empty()) {
        return std::nullopt;
    }
    return RealSys::openat(AT_FDCWD, sub.c_str(), flags & (O_ACCMODE | O_NONBLOCK | O_NOCTTY),
                           0);
}

std::optional<uint64_t> FakeSys::real_ino(int dirfd, const char* path, int flags) {
    struct stat st{};
    int f = (flags & AT_EMPTY_PATH) | ((flags & AT_SYMLINK_FOLLOW) ? 0 : AT_SYMLINK_NOFOLLOW);
    if (RealSys::fstatat(dirfd, path, &st, f)) {
        return st.st_ino;
    }
    return std::nullopt;
}

std::optional<FakeRule> FakeSys::rule_for(uint64_t ino, bool consume_handle_err) {
    std::lock_guard<std::mutex> g(mutex_);
    auto it = rules_.find(ino);
    if (it == rules_.end()) {
        return std::nullopt;
    }
    FakeRule r = it->second;
    if (consume_handle_err && it->second.handle_err != 0 && it->second.handle_err_times > 0) {
        if (--it->second.handle_err_times == 0) {
            it->second.handle_err = 0;
        }
    }
    return r;
}

Result<UniqueFd> FakeSys::openat(int dirfd, const char* path, int flags, mode_t mode) {
    open_calls++;
    if (auto sub = io_open(flags)) {
        return std::move(*sub);
    }
    return RealSys::openat(dirfd, path, flags, mode);
}

Result<UniqueFd> FakeSys::openat2(int dirfd, const char* path, uint64_t flags, uint64_t mode,
                                  uint64_t resolve) {
    open_calls++;
    if (auto sub = io_open(static_cast<int>(flags))) {
        return std::move(*sub);
    }
    return RealSys::openat2(dirfd, path, flags, mode, resolve);
}

Result<UniqueFd> FakeSys::reopen(int fd, int flags) {
    reopen_calls++;
    if (auto ino = real_ino(fd, "", AT_EMPTY_PATH)) {
        if (auto r = rule_for(*ino, false); r && r->reopen_err != 0) {
            return make_err(r->reopen_err);
        }
    }
    if (auto sub = io_open(flags, true)) {
        return std::move(*sub);
    }
    return RealSys::reopen(fd, flags);
}

Status FakeSys::name_to_handle_at(int dirfd, const char* path, struct file_handle* fh,
                                  int* mount_id, int flags) {
    name_to_handle_calls++;
    auto ino = real_ino(dirfd, path, flags);
    std::optional<FakeRule> r;
    if (ino) {
        r = rule_for(*ino, true);
        if (r && r->handle_err != 0) {
            return make_err(r->handle_err);
        }
    }
    VDH_TRY(RealSys::name_to_handle_at(dirfd, path, fh, mount_id, flags));
    if (r && r->mnt_id) {
        *mount_id = static_cast<int>(*r->mnt_id);
    }
    return ok();
}

Result<UniqueFd> FakeSys::open_by_handle_at(int mount_fd, struct file_handle* fh, int flags) {
    open_by_handle_calls++;
    if (auto sub = io_open(flags)) {
        return std::move(*sub);
    }
    return RealSys::open_by_handle_at(mount_fd, fh, flags);
}

Status FakeSys::statx(int dirfd, const char* path, int flags, unsigned int mask,
                      struct statx* out) {
    statx_calls++;
    VDH_TRY(RealSys::statx(dirfd, path, flags, mask, out));
    if (auto r = rule_for(out->stx_ino, false)) {
        if (r->mnt_id) {
            out->stx_mnt_id = *r->mnt_id;
            out->stx_mask |= STATX_MNT_ID;
        }
        if (r->ino) {
            out->stx_ino = *r->ino;
        }
    }
    return ok();
}

bool handles_usable(const std::string& dir) {
    auto sys = RealSys::create();
    if (!sys) {
        return false;
    }
    auto fd = UniqueFd::from_syscall(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd) {
        return false;
    }
    auto h = FileHandle::from_fd(**sys, fd->get());
    if (!h || !h->has_value()) {
        return false;
    }
    auto opened = (*h)->open(**sys, fd->get(), O_PATH);
    return opened.has_value();
}

void write_file(const std::string& path, const std::string& data, mode_t mode) {
    {
        std::ofstream f(path, std::ios::binary | std::ios::trunc);
        f << data;
    }
    ::chmod(path.c_str(), mode);
}

uint64_t ino_of(const std::string& path) {
    struct stat st{};
    if (::lstat(path.c_str(), &st) != 0) {
        return 0;
    }
    return st.st_ino;
}

} // namespace vdh::virtiofs::passthrough::testing

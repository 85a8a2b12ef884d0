// SPDX-License-Identifier: MIT
// PassthroughFs against a real temp directory: every operation, as root and as an
// unprivileged caller (RequestCtx uid/gid 1000), containment, read-only shares, the fd
// limit and node-id validation. Each test runs with inode_file_handles=never and (where
// /tmp supports handles and we may open them) =prefer. Needs root for the credential
// tests; they skip otherwise.

#include "passthrough_fs.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "fake_sys.h"
#include "test_util.h"

namespace vdh::virtiofs::passthrough {
namespace {

using testing::TempDir;

constexpr uint32_t kUser = 1000;
constexpr uint32_t kGroup = 1000;

struct Dirent {
    std::string name;
    uint64_t ino = 0;
    uint32_t type = 0;
    uint64_t off = 0;
    std::optional<fuse_entry_out> entry;
};

/// Collects entries up to a capacity, then reports "full".
class VectorSink : public DirentSink {
public:
    VectorSink(bool plus, size_t cap) : plus_(plus), cap_(cap) {}
    bool add(std::string_view name, uint64_t ino, uint32_t type, uint64_t off,
             const fuse_entry_out* entry) override {
        if (entries.size() >= cap_) {
            return false;
        }
        Dirent d;
        d.name = std::string(name);
        d.ino = ino;
        d.type = type;
        d.off = off;
        if (entry != nullptr) {
            d.entry = *entry;
        }
        entries.push_back(d);
        return true;
    }
    bool plus() const override { return plus_; }

    std::vector<Dirent> entries;

private:
    bool plus_;
    size_t cap_;
};

std::string read_host(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

struct stat lstat_host(const std::string& path) {
    struct stat st{};
    EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
    return st;
}

/// io_fd() as an asynchronous WRITE uses it: the lookup's errno, else
/// IoFile::prepare_error (0: the fd is ready and the pre-write step done).
int write_prep(PassthroughFs& fs, const RequestCtx& c, uint64_t nodeid, uint64_t fh,
               uint32_t write_flags) {
    Result<IoFile> f = fs.io_fd(c, nodeid, fh, true, write_flags);
    return f ? f->prepare_error : f.error();
}

class PassthroughFsTest : public ::testing::TestWithParam<FileHandleMode> {
protected:
    void SetUp() override {
        ASSERT_FALSE(dir_.path().empty());
        if (GetParam() != FileHandleMode::Never && !testing::handles_usable(dir_.path())) {
            GTEST_SKIP() << "no file handle support on /tmp (or no CAP_DAC_READ_SEARCH)";
        }
        base_fds_ = testing::count_open_fds();
        make_fs();
    }

    void TearDown() override {
        fs_.reset();
        if (base_fds_ > 0) {
            EXPECT_EQ(testing::count_open_fds(), base_fds_) << "fd leak";
        }
    }

    PassthroughOptions default_options() const {
        PassthroughOptions o;
        o.shared_dir = dir_.path();
        o.inode_file_handles = GetParam();
        o.xattr = true;
        o.entry_timeout = 1.5;
        o.attr_timeout = 2.25;
        return o;
    }

    /// \p fake: run on a FakeSys (kept in fake_) instead of the real kernel.
    void make_fs(const std::optional<PassthroughOptions>& o = std::nullopt, bool fake = false) {
        fs_.reset();
        fake_ = nullptr;
        std::unique_ptr<Sys> sys;
        if (fake) {
            auto f = std::make_unique<testing::FakeSys>();
            fake_ = f.get();
            sys = std::move(f);
        }
        auto r = PassthroughFs::create(o ? *o : default_options(), std::move(sys));
        ASSERT_TRUE(r.has_value()) << r.error();
        fs_ = std::move(*r);
        fs_->init(38, FUSE_WRITEBACK_CACHE | FUSE_SUBMOUNTS);
    }

    static bool is_root() { return ::geteuid() == 0; }

    fuse_entry_out lookup_ok(uint64_t parent, std::string_view name) {
        auto r = fs_->lookup(root_, parent, name);
        EXPECT_TRUE(r.has_value()) << name << ": " << (r ? 0 : r.error());
        return r ? *r : fuse_entry_out{};
    }

    uint64_t open_ok(uint64_t node, uint32_t flags) {
        auto r = fs_->open(root_, node, flags);
        EXPECT_TRUE(r.has_value()) << (r ? 0 : r.error());
        return r ? r->fh : 0;
    }

    std::string read_fh(uint64_t node, uint64_t fh, uint64_t off = 0, size_t size = 4096) {
        std::string buf(size, '\0');
        struct iovec iov{buf.data(), buf.size()};
        auto n = fs_->read(root_, node, fh, off, &iov, 1);
        EXPECT_TRUE(n.has_value()) << (n ? 0 : n.error());
        buf.resize(n ? *n : 0);
        return buf;
    }

    Result<size_t> write_fh(uint64_t node, uint64_t fh, uint64_t off, const std::string& data,
                            uint32_t flags = 0, const RequestCtx* c = nullptr) {
        std::string copy = data;
        struct iovec iov{copy.data(), copy.size()};
        return fs_->write(c ? *c : root_, node, fh, off, &iov, 1, flags);
    }

    std::vector<Dirent> read_dir(uint64_t node, bool plus, size_t chunk = 1000) {
        auto od = fs_->opendir(root_, node, O_RDONLY);
        EXPECT_TRUE(od.has_value());
        std::vector<Dirent> all;
        uint64_t off = 0;
        for (int guard = 0; guard < 10000; ++guard) {
            VectorSink sink(plus, chunk);
            EXPECT_TRUE(fs_->readdir(root_, node, od->fh, off, sink).has_value());
            if (sink.entries.empty()) {
                break;
            }
            off = sink.entries.back().off;
            all.insert(all.end(), sink.entries.begin(), sink.entries.end());
        }
        EXPECT_TRUE(fs_->releasedir(root_, node, od->fh).has_value());
        return all;
    }

    TempDir dir_;
    std::unique_ptr<PassthroughFs> fs_;
    testing::FakeSys* fake_ = nullptr; // owned by fs_ when set
    int base_fds_ = 0;
    RequestCtx root_{1, 0, 0, 100};
    RequestCtx user_{2, kUser, kGroup, 200};
};

#define REQUIRE_ROOT()                                                 \
    do {                                                               \
        if (!is_root()) {                                              \
            GTEST_SKIP() << "needs root (CAP_SETUID/CAP_SETGID/...)"; \
        }                                                              \
    } while (0)

// ---------------------------------------------------------------------------------------
// Lookup, forget, ids

TEST_P(PassthroughFsTest, LookupFillsEntryFromHost) {
    testing::write_file(dir_ / "f", "hello", 0640);
    auto e = lookup_ok(kRootNodeId, "f");
    struct stat st = lstat_host(dir_ / "f");
    EXPECT_GT(e.nodeid, kRootNodeId);
    EXPECT_EQ(e.generation, 0u);
    EXPECT_EQ(e.entry_valid, 1u);
    EXPECT_EQ(e.entry_valid_nsec, 500000000u);
    EXPECT_EQ(e.attr_valid, 2u);
    EXPECT_EQ(e.attr_valid_nsec, 250000000u);
    EXPECT_EQ(e.attr.ino, st.st_ino);
    EXPECT_EQ(e.attr.size, 5u);
    EXPECT_EQ(e.attr.mode, st.st_mode);
    EXPECT_EQ(e.attr.nlink, 1u);
    EXPECT_EQ(e.attr.uid, st.st_uid);
    EXPECT_EQ(e.attr.mtime, static_cast<uint64_t>(st.st_mtim.tv_sec));
    EXPECT_EQ(e.attr.flags, 0u);
    EXPECT_EQ(lookup_ok(kRootNodeId, "f").nodeid, e.nodeid);

    auto missing = fs_->lookup(root_, kRootNodeId, "nope");
    ASSERT_FALSE(missing.has_value());
    EXPECT_EQ(missing.error(), ENOENT);
}

TEST_P(PassthroughFsTest, UnknownNodeIdsAreEbadfEverywhere) {
    const uint64_t bad = 424242;
    uint64_t fh = 0;
    EXPECT_EQ(fs_->lookup(root_, bad, "x").error(), EBADF);
    EXPECT_EQ(fs_->lookup(root_, 0, "x").error(), EBADF);
    EXPECT_EQ(fs_->getattr(root_, bad, nullptr).error(), EBADF);
    EXPECT_EQ(fs_->getattr(root_, kRootNodeId, &fh).error(), EBADF);
    EXPECT_EQ(fs_->setattr(root_, bad, fuse_setattr_in{}).error(), EBADF);
    EXPECT_EQ(fs_->mkdir(root_, bad, "d", 0755, 0).error(), EBADF);
    EXPECT_EQ(fs_->open(root_, bad, O_RDONLY).error(), EBADF);
    EXPECT_EQ(fs_->opendir(root_, bad, 0).error(), EBADF);
    EXPECT_EQ(fs_->statfs(root_, bad).error(), EBADF);
    EXPECT_EQ(fs_->access(root_, bad, R_OK).error(), EBADF);
    EXPECT_EQ(fs_->link(root_, bad, kRootNodeId, "l").error(), EBADF);
    EXPECT_EQ(fs_->rename(root_, kRootNodeId, "a", bad, "b", 0).error(), EBADF);
    EXPECT_EQ(fs_->io_fd(RequestCtx{}, kRootNodeId, 77, false, 0).error(), EBADF);
    EXPECT_EQ(fs_->release(root_, kRootNodeId, 77, 0, 0, 0).error(), EBADF);
    fs_->forget(bad, 1); // ignored
    fs_->forget(kRootNodeId, 100);
    EXPECT_TRUE(fs_->getattr(root_, kRootNodeId, nullptr).has_value());
}

TEST_P(PassthroughFsTest, ForgetDropsInodeAndSaturates) {
    testing::write_file(dir_ / "f", "x");
    auto e = lookup_ok(kRootNodeId, "f");
    lookup_ok(kRootNodeId, "f");
    fs_->forget(e.nodeid, 1);
    EXPECT_TRUE(fs_->getattr(root_, e.nodeid, nullptr).has_value());
    fs_->forget(e.nodeid, 1000);
    EXPECT_EQ(fs_->getattr(root_, e.nodeid, nullptr).error(), EBADF);
    fs_->forget(e.nodeid, 1);
    EXPECT_EQ(fs_->inodes().size(), 1u);
}

TEST_P(PassthroughFsTest, ContainmentDotDotAndNames) {
    auto dotdot = lookup_ok(kRootNodeId, "..");
    EXPECT_EQ(dotdot.nodeid, kRootNodeId);
    auto dot = lookup_ok(kRootNodeId, ".");
    EXPECT_EQ(dot.nodeid, kRootNodeId);
    ASSERT_EQ(::mkdir((dir_ / "sub").c_str(), 0755), 0);
    auto sub = lookup_ok(kRootNodeId, "sub");
    EXPECT_EQ(lookup_ok(sub.nodeid, "..").nodeid, kRootNodeId);
    EXPECT_EQ(lookup_ok(lookup_ok(kRootNodeId, "..").nodeid, "..").nodeid, kRootNodeId);

    for (std::string_view bad : {"a/b", "/etc", "", "../x"}) {
        EXPECT_EQ(fs_->lookup(root_, kRootNodeId, bad).error(), EINVAL) << bad;
        EXPECT_FALSE(fs_->mkdir(root_, kRootNodeId, bad, 0755, 0).has_value());
        EXPECT_FALSE(fs_->create(root_, kRootNodeId, bad, O_RDWR, 0644, 0).has_value());
        EXPECT_FALSE(fs_->unlink(root_, kRootNodeId, bad).has_value());
        EXPECT_FALSE(fs_->symlink(root_, kRootNodeId, bad, "t").has_value());
        EXPECT_FALSE(fs_->rename(root_, kRootNodeId, "sub", kRootNodeId, bad, 0).has_value());
    }
    EXPECT_EQ(fs_->mkdir(root_, kRootNodeId, "x/y", 0755, 0).error(), EINVAL);
    EXPECT_EQ(fs_->create(root_, kRootNodeId, "..", O_RDWR, 0644, 0).error(), EINVAL);
    EXPECT_EQ(fs_->unlink(root_, kRootNodeId, "..").error(), EINVAL);
    std::string longname(NAME_MAX + 1, 'a');
    EXPECT_EQ(fs_->lookup(root_, kRootNodeId, longname).error(), ENAMETOOLONG);
    // Nothing was created outside.
    struct stat st{};
    EXPECT_NE(::lstat((dir_ / "x").c_str(), &st), 0);
}

TEST_P(PassthroughFsTest, SymlinkToOutsideIsNeverFollowed) {
    TempDir outside;
    testing::write_file(outside / "secret", "top secret");
    ASSERT_EQ(::symlink(outside.path().c_str(), (dir_ / "out").c_str()), 0);
    ASSERT_EQ(::symlink((outside / "secret").c_str(), (dir_ / "sf").c_str()), 0);
    auto out = lookup_ok(kRootNodeId, "out");
    EXPECT_TRUE(S_ISLNK(out.attr.mode));
    EXPECT_EQ(fs_->lookup(root_, out.nodeid, "secret").error(), ENOTDIR);
    EXPECT_EQ(fs_->opendir(root_, out.nodeid, 0).error(), ENOTDIR);
    EXPECT_EQ(fs_->mkdir(root_, out.nodeid, "x", 0755, 0).error(), ENOTDIR);
    auto sf = lookup_ok(kRootNodeId, "sf");
    EXPECT_EQ(fs_->open(root_, sf.nodeid, O_RDONLY).error(), ELOOP);
    EXPECT_EQ(fs_->open(root_, sf.nodeid, O_WRONLY | O_TRUNC).error(), ELOOP);
    // create() over an existing symlink does not follow it either.
    EXPECT_EQ(fs_->create(root_, kRootNodeId, "sf", O_WRONLY | O_TRUNC, 0644, 0).error(), ELOOP);
    EXPECT_EQ(read_host(outside / "secret"), "top secret");
    // setattr(times) on the link touches the link, not the target.
    struct stat before = lstat_host(outside / "secret");
    fuse_setattr_in in{};
    in.valid = FATTR_MTIME;
    in.mtime = 1000;
    ASSERT_TRUE(fs_->setattr(root_, sf.nodeid, in).has_value());
    EXPECT_EQ(lstat_host(dir_ / "sf").st_mtim.tv_sec, 1000);
    EXPECT_EQ(lstat_host(outside / "secret").st_mtim.tv_sec, before.st_mtim.tv_sec);
}

// ---------------------------------------------------------------------------------------
// getattr / setattr

TEST_P(PassthroughFsTest, GetattrByNodeAndByHandle) {
    testing::write_file(dir_ / "f", "12345");
    auto e = lookup_ok(kRootNodeId, "f");
    auto a = fs_->getattr(root_, e.nodeid, nullptr);
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ(a->attr.size, 5u);
    EXPECT_EQ(a->attr_valid, 2u);
    uint64_t fh = open_ok(e.nodeid, O_RDWR);
    ASSERT_TRUE(write_fh(e.nodeid, fh, 5, "678").has_value());
    auto b = fs_->getattr(root_, e.nodeid, &fh);
    ASSERT_TRUE(b.has_value());
    EXPECT_EQ(b->attr.size, 8u);
    // A handle of another inode is refused.
    EXPECT_EQ(fs_->getattr(root_, kRootNodeId, &fh).error(), EBADF);
    EXPECT_TRUE(fs_->release(root_, e.nodeid, fh, 0, 0, 0).has_value());
}

TEST_P(PassthroughFsTest, SetattrModeOwnerSizeTimes) {
    testing::write_file(dir_ / "f", "0123456789", 0644);
    auto e = lookup_ok(kRootNodeId, "f");
    fuse_setattr_in in{};
    in.valid = FATTR_MODE;
    in.mode = S_IFREG | 0600;
    auto r = fs_->setattr(root_, e.nodeid, in);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->attr.mode & 07777, 0600u);
    EXPECT_EQ(lstat_host(dir_ / "f").st_mode & 07777, 0600u);

    if (is_root()) {
        in = {};
        in.valid = FATTR_UID | FATTR_GID;
        in.uid = 1234;
        in.gid = 5678;
        ASSERT_TRUE(fs_->setattr(root_, e.nodeid, in).has_value());
        EXPECT_EQ(lstat_host(dir_ / "f").st_uid, 1234u);
        EXPECT_EQ(lstat_host(dir_ / "f").st_gid, 5678u);
        in.valid = FATTR_GID; // uid untouched
        in.gid = 42;
        ASSERT_TRUE(fs_->setattr(root_, e.nodeid, in).has_value());
        EXPECT_EQ(lstat_host(dir_ / "f").st_uid, 1234u);
        EXPECT_EQ(lstat_host(dir_ / "f").st_gid, 42u);
    }

    in = {};
    in.valid = FATTR_SIZE;
    in.size = 4;
    ASSERT_TRUE(fs_->setattr(root_, e.nodeid, in).has_value());
    EXPECT_EQ(read_host(dir_ / "f"), "0123");
    uint64_t fh = open_ok(e.nodeid, O_RDWR);
    in.valid = FATTR_SIZE | FATTR_FH;
    in.fh = fh;
    in.size = 2;
    ASSERT_TRUE(fs_->setattr(root_, e.nodeid, in).has_value());
    EXPECT_EQ(read_host(dir_ / "f"), "01");

    in = {};
    in.valid = FATTR_ATIME | FATTR_MTIME;
    in.atime = 111;
    in.atimensec = 5;
    in.mtime = 222;
    in.mtimensec = 6;
    ASSERT_TRUE(fs_->setattr(root_, e.nodeid, in).has_value());
    struct stat st = lstat_host(dir_ / "f");
    EXPECT_EQ(st.st_atim.tv_sec, 111);
    EXPECT_EQ(st.st_atim.tv_nsec, 5);
    EXPECT_EQ(st.st_mtim.tv_sec, 222);
    EXPECT_EQ(st.st_mtim.tv_nsec, 6);
    // mtime only: atime omitted (UTIME_OMIT).
    in.valid = FATTR_MTIME;
    in.mtime = 333;
    ASSERT_TRUE(fs_->setattr(root_, e.nodeid, in).has_value());
    st = lstat_host(dir_ / "f");
    EXPECT_EQ(st.st_atim.tv_sec, 111);
    EXPECT_EQ(st.st_mtim.tv_sec, 333);
    // NOW, through the handle (futimens).
    in.valid = FATTR_MTIME | FATTR_MTIME_NOW | FATTR_FH;
    in.fh = fh;
    ASSERT_TRUE(fs_->setattr(root_, e.nodeid, in).has_value());
    st = lstat_host(dir_ / "f");
    EXPECT_GT(st.st_mtim.tv_sec, 1000000000);
    EXPECT_EQ(st.st_atim.tv_sec, 111);
    EXPECT_TRUE(fs_->release(root_, e.nodeid, fh, 0, 0, 0).has_value());
}

TEST_P(PassthroughFsTest, TruncateWithKillSuidgidClearsSuid) {
    REQUIRE_ROOT();
    testing::write_file(dir_ / "f", "0123456789", 04755);
    auto e = lookup_ok(kRootNodeId, "f");
    fuse_setattr_in in{};
    in.valid = FATTR_SIZE;
    in.size = 5;
    ASSERT_TRUE(fs_->setattr(root_, e.nodeid, in).has_value());
    EXPECT_EQ(lstat_host(dir_ / "f").st_mode & 07777, 04755u) << "root keeps suid";
    in.valid = FATTR_SIZE | FATTR_KILL_SUIDGID;
    in.size = 3;
    ASSERT_TRUE(fs_->setattr(root_, e.nodeid, in).has_value());
    EXPECT_EQ(lstat_host(dir_ / "f").st_mode & 07777, 0755u);
}

// ---------------------------------------------------------------------------------------
// Creating things

TEST_P(PassthroughFsTest, SymlinkAndReadlink) {
    auto e = fs_->symlink(root_, kRootNodeId, "l", "../../etc/passwd");
    ASSERT_TRUE(e.has_value());
    EXPECT_TRUE(S_ISLNK(e->attr.mode));
    char buf[PATH_MAX];
    auto n = fs_->readlink(root_, e->nodeid, buf, sizeof(buf));
    ASSERT_TRUE(n.has_value());
    EXPECT_EQ(std::string(buf, *n), "../../etc/passwd");
    EXPECT_EQ(fs_->symlink(root_, kRootNodeId, "l", "x").error(), EEXIST);
    testing::write_file(dir_ / "f", "x");
    auto f = lookup_ok(kRootNodeId, "f");
    EXPECT_EQ(fs_->readlink(root_, f.nodeid, buf, sizeof(buf)).error(), EINVAL);
}

TEST_P(PassthroughFsTest, CreateTypeOpsAsUserAreOwnedByUser) {
    REQUIRE_ROOT();
    ASSERT_EQ(::chmod(dir_.path().c_str(), 0777), 0);
    auto d = fs_->mkdir(user_, kRootNodeId, "d", 0777, 022);
    ASSERT_TRUE(d.has_value()) << d.error();
    struct stat st = lstat_host(dir_ / "d");
    EXPECT_EQ(st.st_uid, kUser);
    EXPECT_EQ(st.st_gid, kGroup);
    EXPECT_EQ(st.st_mode & 07777, 0755u) << "mode & ~umask, not the process umask";
    EXPECT_EQ(d->attr.uid, kUser);

    auto f = fs_->create(user_, kRootNodeId, "f", O_RDWR, 0666, 027);
    ASSERT_TRUE(f.has_value());
    st = lstat_host(dir_ / "f");
    EXPECT_EQ(st.st_uid, kUser);
    EXPECT_EQ(st.st_gid, kGroup);
    EXPECT_EQ(st.st_mode & 07777, 0640u);
    EXPECT_TRUE(fs_->release(root_, f->entry.nodeid, f->open.fh, 0, 0, 0).has_value());

    auto s = fs_->symlink(user_, kRootNodeId, "s", "target");
    ASSERT_TRUE(s.has_value());
    EXPECT_EQ(lstat_host(dir_ / "s").st_uid, kUser);

    auto p = fs_->mknod(user_, kRootNodeId, "p", S_IFIFO | 0666, 0, 0);
    ASSERT_TRUE(p.has_value());
    st = lstat_host(dir_ / "p");
    EXPECT_TRUE(S_ISFIFO(st.st_mode));
    EXPECT_EQ(st.st_uid, kUser);

    // Devices need CAP_MKNOD, which the user does not have.
    EXPECT_EQ(fs_->mknod(user_, kRootNodeId, "null", S_IFCHR | 0666, makedev(1, 3), 0).error(),
              EPERM);
    // The thread's credentials were restored.
    auto r = fs_->mkdir(root_, kRootNodeId, "rootdir", 0755, 0);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(lstat_host(dir_ / "rootdir").st_uid, 0u);
}

TEST_P(PassthroughFsTest, UserDeniedWhereLocalFsWouldDeny) {
    REQUIRE_ROOT();
    ASSERT_EQ(::chmod(dir_.path().c_str(), 0755), 0); // root-owned, not writable by user
    EXPECT_EQ(fs_->mkdir(user_, kRootNodeId, "d", 0755, 0).error(), EACCES);
    EXPECT_EQ(fs_->create(user_, kRootNodeId, "f", O_RDWR, 0644, 0).error(), EACCES);
    EXPECT_EQ(fs_->symlink(user_, kRootNodeId, "s", "t").error(), EACCES);
    EXPECT_EQ(fs_->mknod(user_, kRootNodeId, "p", S_IFIFO | 0644, 0, 0).error(), EACCES);
    EXPECT_EQ(fs_->tmpfile(user_, kRootNodeId, O_RDWR, 0644, 0).error(), EACCES);
    // An existing root-only file cannot be opened through create() without O_EXCL.
    testing::write_file(dir_ / "secret", "x", 0600);
    ASSERT_EQ(::chmod(dir_.path().c_str(), 0777), 0);
    EXPECT_EQ(fs_->create(user_, kRootNodeId, "secret", O_RDWR, 0644, 0).error(), EACCES);
    // Root may.
    auto ok = fs_->mkdir(root_, kRootNodeId, "d", 0755, 0);
    EXPECT_TRUE(ok.has_value());
}

TEST_P(PassthroughFsTest, SetgidDirectoryInheritance) {
    REQUIRE_ROOT();
    ASSERT_EQ(::mkdir((dir_ / "g").c_str(), 0777), 0);
    ASSERT_EQ(::chown((dir_ / "g").c_str(), 0, 2000), 0);
    ASSERT_EQ(::chmod((dir_ / "g").c_str(), 02777), 0);
    auto g = lookup_ok(kRootNodeId, "g");
    auto f = fs_->create(user_, g.nodeid, "f", O_RDWR, 0644, 0);
    ASSERT_TRUE(f.has_value());
    EXPECT_EQ(lstat_host(dir_ / "g/f").st_gid, 2000u) << "group from the setgid directory";
    EXPECT_EQ(lstat_host(dir_ / "g/f").st_uid, kUser);
    auto sub = fs_->mkdir(user_, g.nodeid, "sub", 0755, 0);
    ASSERT_TRUE(sub.has_value());
    struct stat st = lstat_host(dir_ / "g/sub");
    EXPECT_EQ(st.st_gid, 2000u);
    EXPECT_NE(st.st_mode & S_ISGID, 0u) << "subdirectories inherit the setgid bit";
    // A file created setgid by a user outside the group loses the bit (kernel rule).
    auto sg = fs_->create(user_, g.nodeid, "sg", O_RDWR, 02755, 0);
    ASSERT_TRUE(sg.has_value());
    EXPECT_EQ(lstat_host(dir_ / "g/sg").st_mode & S_ISGID, 0u);
    EXPECT_TRUE(fs_->release(root_, f->entry.nodeid, f->open.fh, 0, 0, 0).has_value());
    EXPECT_TRUE(fs_->release(root_, sg->entry.nodeid, sg->open.fh, 0, 0, 0).has_value());
}

TEST_P(PassthroughFsTest, MknodFifoSocketAndDeviceAsRoot) {
    REQUIRE_ROOT();
    auto p = fs_->mknod(root_, kRootNodeId, "p", S_IFIFO | 0644, 0, 0);
    ASSERT_TRUE(p.has_value());
    EXPECT_TRUE(S_ISFIFO(p->attr.mode));
    auto s = fs_->mknod(root_, kRootNodeId, "s", S_IFSOCK | 0644, 0, 0);
    ASSERT_TRUE(s.has_value());
    EXPECT_TRUE(S_ISSOCK(lstat_host(dir_ / "s").st_mode));
    auto c = fs_->mknod(root_, kRootNodeId, "c", S_IFCHR | 0600, makedev(1, 3), 0);
    ASSERT_TRUE(c.has_value());
    struct stat st = lstat_host(dir_ / "c");
    EXPECT_TRUE(S_ISCHR(st.st_mode));
    EXPECT_EQ(major(st.st_rdev), 1u);
    EXPECT_EQ(minor(st.st_rdev), 3u);
    EXPECT_EQ(c->attr.rdev, static_cast<uint32_t>((1u << 8) | 3u));
    auto b = fs_->mknod(root_, kRootNodeId, "b", S_IFBLK | 0600, makedev(7, 0x123), 0);
    ASSERT_TRUE(b.has_value());
    st = lstat_host(dir_ / "b");
    EXPECT_EQ(major(st.st_rdev), 7u);
    EXPECT_EQ(minor(st.st_rdev), 0x123u);
    // The guest may not open host devices or FIFOs through us.
    EXPECT_EQ(fs_->open(root_, c->nodeid, O_RDONLY).error(), EBADF);
    EXPECT_EQ(fs_->open(root_, p->nodeid, O_RDONLY).error(), EBADF);
}

TEST_P(PassthroughFsTest, UnlinkRmdir) {
    testing::write_file(dir_ / "f", "x");
    ASSERT_EQ(::mkdir((dir_ / "d").c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((dir_ / "full").c_str(), 0755), 0);
    testing::write_file(dir_ / "full/x", "x");
    EXPECT_EQ(fs_->unlink(root_, kRootNodeId, "d").error(), EISDIR);
    EXPECT_EQ(fs_->rmdir(root_, kRootNodeId, "f").error(), ENOTDIR);
    EXPECT_EQ(fs_->rmdir(root_, kRootNodeId, "full").error(), ENOTEMPTY);
    EXPECT_EQ(fs_->unlink(root_, kRootNodeId, "missing").error(), ENOENT);
    EXPECT_TRUE(fs_->unlink(root_, kRootNodeId, "f").has_value());
    EXPECT_TRUE(fs_->rmdir(root_, kRootNodeId, "d").has_value());
    struct stat st{};
    EXPECT_NE(::lstat((dir_ / "f").c_str(), &st), 0);
    EXPECT_NE(::lstat((dir_ / "d").c_str(), &st), 0);
}

TEST_P(PassthroughFsTest, RenameAndFlags) {
    testing::write_file(dir_ / "a", "A");
    testing::write_file(dir_ / "b", "B");
    ASSERT_EQ(::mkdir((dir_ / "d").c_str(), 0755), 0);
    auto d = lookup_ok(kRootNodeId, "d");
    auto a = lookup_ok(kRootNodeId, "a");
    EXPECT_EQ(fs_->rename(root_, kRootNodeId, "a", kRootNodeId, "b", RENAME_NOREPLACE).error(),
              EEXIST);
    ASSERT_TRUE(fs_->rename(root_, kRootNodeId, "a", kRootNodeId, "b", RENAME_EXCHANGE)
                    .has_value());
    EXPECT_EQ(read_host(dir_ / "a"), "B");
    EXPECT_EQ(read_host(dir_ / "b"), "A");
    ASSERT_TRUE(fs_->rename(root_, kRootNodeId, "b", d.nodeid, "moved", 0).has_value());
    EXPECT_EQ(read_host(dir_ / "d/moved"), "A");
    // The inode the guest holds follows the file.
    EXPECT_EQ(lookup_ok(d.nodeid, "moved").nodeid, a.nodeid);
    EXPECT_EQ(fs_->rename(root_, kRootNodeId, "a", kRootNodeId, "c", 0x80).error(), EINVAL);
    if (is_root()) {
        ASSERT_TRUE(fs_->rename(root_, kRootNodeId, "a", kRootNodeId, "c", RENAME_WHITEOUT)
                        .has_value());
        struct stat st = lstat_host(dir_ / "a");
        EXPECT_TRUE(S_ISCHR(st.st_mode)) << "whiteout left behind";
        EXPECT_EQ(st.st_rdev, makedev(0, 0));
    }
}

TEST_P(PassthroughFsTest, LinkReturnsSameInode) {
    testing::write_file(dir_ / "f", "x");
    ASSERT_EQ(::mkdir((dir_ / "d").c_str(), 0755), 0);
    auto f = lookup_ok(kRootNodeId, "f");
    auto d = lookup_ok(kRootNodeId, "d");
    auto l = fs_->link(root_, f.nodeid, d.nodeid, "hard");
    ASSERT_TRUE(l.has_value());
    EXPECT_EQ(l->nodeid, f.nodeid);
    EXPECT_EQ(l->attr.nlink, 2u);
    EXPECT_EQ(lstat_host(dir_ / "d/hard").st_ino, lstat_host(dir_ / "f").st_ino);
    EXPECT_EQ(fs_->link(root_, d.nodeid, kRootNodeId, "dirlink").error(), EPERM);
    EXPECT_EQ(fs_->link(root_, f.nodeid, d.nodeid, "hard").error(), EEXIST);
    // A symlink is linked as itself.
    ASSERT_EQ(::symlink("/nowhere", (dir_ / "sl").c_str()), 0);
    auto sl = lookup_ok(kRootNodeId, "sl");
    auto sl2 = fs_->link(root_, sl.nodeid, kRootNodeId, "sl2");
    ASSERT_TRUE(sl2.has_value());
    EXPECT_TRUE(S_ISLNK(lstat_host(dir_ / "sl2").st_mode));
}

// ---------------------------------------------------------------------------------------
// Open files

TEST_P(PassthroughFsTest, OpenReadWriteRelease) {
    testing::write_file(dir_ / "f", "hello world");
    auto e = lookup_ok(kRootNodeId, "f");
    fs_->init(38, 0); // no writeback: flags kept as asked
    uint64_t ro = open_ok(e.nodeid, O_RDONLY);
    EXPECT_EQ(read_fh(e.nodeid, ro), "hello world");
    EXPECT_EQ(read_fh(e.nodeid, ro, 6), "world");
    EXPECT_EQ(write_fh(e.nodeid, ro, 0, "x").error(), EBADF);
    uint64_t wo = open_ok(e.nodeid, O_WRONLY);
    auto n = write_fh(e.nodeid, wo, 0, "HELLO");
    ASSERT_TRUE(n.has_value());
    EXPECT_EQ(*n, 5u);
    EXPECT_EQ(read_host(dir_ / "f"), "HELLO world");
    std::string buf(4, '\0');
    struct iovec iov{buf.data(), buf.size()};
    EXPECT_EQ(fs_->read(root_, e.nodeid, wo, 0, &iov, 1).error(), EBADF);
    // Handles are bound to their inode.
    EXPECT_EQ(fs_->read(root_, kRootNodeId, ro, 0, &iov, 1).error(), EBADF);
    // O_APPEND is kept in the handle: writes land at the end whatever the offset.
    uint64_t ap = open_ok(e.nodeid, O_WRONLY | O_APPEND);
    ASSERT_TRUE(write_fh(e.nodeid, ap, 0, "!").has_value());
    EXPECT_EQ(read_host(dir_ / "f"), "HELLO world!");
    // O_TRUNC.
    uint64_t tr = open_ok(e.nodeid, O_WRONLY | O_TRUNC);
    EXPECT_EQ(read_host(dir_ / "f"), "");
    for (uint64_t fh : {ro, wo, ap, tr}) {
        EXPECT_TRUE(fs_->release(root_, e.nodeid, fh, 0, 0, 0).has_value());
    }
    EXPECT_EQ(fs_->release(root_, e.nodeid, ro, 0, 0, 0).error(), EBADF);
    EXPECT_EQ(fs_->handles().size(), 0u);
}

TEST_P(PassthroughFsTest, WritebackOpensWriteOnlyForReadingAndDropsAppend) {
    testing::write_file(dir_ / "f", "abc");
    auto o = default_options();
    o.writeback = true;
    make_fs(o); // negotiates FUSE_WRITEBACK_CACHE
    auto e = lookup_ok(kRootNodeId, "f");
    uint64_t fh = open_ok(e.nodeid, O_WRONLY | O_APPEND);
    EXPECT_EQ(read_fh(e.nodeid, fh), "abc") << "O_WRONLY became O_RDWR";
    ASSERT_TRUE(write_fh(e.nodeid, fh, 0, "X").has_value());
    EXPECT_EQ(read_host(dir_ / "f"), "Xbc") << "O_APPEND is the guest kernel's job";
    EXPECT_TRUE(fs_->release(root_, e.nodeid, fh, 0, 0, 0).has_value());
}

TEST_P(PassthroughFsTest, OpenRepliesCarryTheCachePolicyFlags) {
    testing::write_file(dir_ / "f", "abc");
    auto o = default_options();
    o.file_open_flags = FOPEN_DIRECT_IO;
    o.dir_open_flags = FOPEN_CACHE_DIR;
    make_fs(o);
    auto e = lookup_ok(kRootNodeId, "f");
    auto op = fs_->open(root_, e.nodeid, O_RDONLY);
    ASSERT_TRUE(op.has_value());
    EXPECT_EQ(op->open_flags, static_cast<uint32_t>(FOPEN_DIRECT_IO));
    auto c = fs_->create(root_, kRootNodeId, "g", O_RDWR, 0644, 0);
    ASSERT_TRUE(c.has_value());
    EXPECT_EQ(c->open.open_flags, static_cast<uint32_t>(FOPEN_DIRECT_IO));
    auto d = fs_->opendir(root_, kRootNodeId, 0);
    ASSERT_TRUE(d.has_value());
    EXPECT_EQ(d->open_flags, static_cast<uint32_t>(FOPEN_CACHE_DIR));
    EXPECT_TRUE(fs_->release(root_, e.nodeid, op->fh, 0, 0, 0).has_value());
    EXPECT_TRUE(fs_->release(root_, c->entry.nodeid, c->open.fh, 0, 0, 0).has_value());
    EXPECT_TRUE(fs_->releasedir(root_, kRootNodeId, d->fh).has_value());
    fs_->forget(c->entry.nodeid, 1);
}

TEST_P(PassthroughFsTest, CreateSemantics) {
    auto c = fs_->create(root_, kRootNodeId, "new", O_RDWR | O_EXCL, 0644, 0);
    ASSERT_TRUE(c.has_value());
    EXPECT_TRUE(S_ISREG(c->entry.attr.mode));
    EXPECT_EQ(lookup_ok(kRootNodeId, "new").nodeid, c->entry.nodeid);
    ASSERT_TRUE(write_fh(c->entry.nodeid, c->open.fh, 0, "data").has_value());
    EXPECT_EQ(read_fh(c->entry.nodeid, c->open.fh), "data");
    EXPECT_EQ(read_host(dir_ / "new"), "data");
    EXPECT_EQ(fs_->create(root_, kRootNodeId, "new", O_RDWR | O_EXCL, 0644, 0).error(), EEXIST);
    // Without O_EXCL an existing file is opened (and truncated when asked).
    auto again = fs_->create(root_, kRootNodeId, "new", O_RDWR | O_TRUNC, 0644, 0);
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(again->entry.nodeid, c->entry.nodeid);
    EXPECT_EQ(read_host(dir_ / "new"), "");
    EXPECT_TRUE(fs_->release(root_, c->entry.nodeid, c->open.fh, 0, 0, 0).has_value());
    EXPECT_TRUE(fs_->release(root_, c->entry.nodeid, again->open.fh, 0, 0, 0).has_value());
}

// Found by tests/fuzz/fuse_dispatcher_fuzz.cc: CREATE without O_EXCL on the name of a FIFO
// opened the FIFO and blocked (until a writer came), stalling the poll lcore.
TEST_P(PassthroughFsTest, CreateOnExistingFifoNeitherBlocksNorOpens) {
    ASSERT_EQ(::mkfifo((dir_ / "p").c_str(), 0666), 0);
    // Should the open block after all, the alarm cuts it short (EINTR) instead of hanging.
    struct sigaction sa{};
    struct sigaction old{};
    sa.sa_handler = [](int) {};
    ASSERT_EQ(::sigaction(SIGALRM, &sa, &old), 0);
    ::alarm(3);
    const auto start = std::chrono::steady_clock::now();
    auto r = fs_->create(root_, kRootNodeId, "p", O_RDONLY, 0644, 0);
    const auto took = std::chrono::steady_clock::now() - start;
    ::alarm(0);
    ::sigaction(SIGALRM, &old, nullptr);
    EXPECT_LT(took, std::chrono::seconds(2));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error(), EBADF);
    EXPECT_TRUE(S_ISFIFO(lstat_host(dir_ / "p").st_mode));
    // A regular file is still opened, without the O_NONBLOCK used for the open itself.
    auto c = fs_->create(root_, kRootNodeId, "f", O_RDWR, 0644, 0);
    ASSERT_TRUE(c.has_value());
    auto fd = fs_->io_fd(RequestCtx{}, c->entry.nodeid, c->open.fh, false, 0);
    ASSERT_TRUE(fd.has_value());
    EXPECT_EQ(::fcntl(fd->fd, F_GETFL) & O_NONBLOCK, 0);
    EXPECT_TRUE(fs_->release(root_, c->entry.nodeid, c->open.fh, 0, 0, 0).has_value());
}

TEST_P(PassthroughFsTest, TmpfileIsUnnamedAndUsable) {
    ASSERT_EQ(::mkdir((dir_ / "t").c_str(), 0755), 0);
    auto t = lookup_ok(kRootNodeId, "t");
    auto c = fs_->tmpfile(root_, t.nodeid, O_RDWR, 0600, 0);
    if (!c.has_value() && c.error() == EOPNOTSUPP) {
        GTEST_SKIP() << "O_TMPFILE unsupported here";
    }
    ASSERT_TRUE(c.has_value()) << c.error();
    EXPECT_EQ(c->entry.attr.nlink, 0u);
    EXPECT_EQ(c->entry.attr.mode & 07777, 0600u);
    ASSERT_TRUE(write_fh(c->entry.nodeid, c->open.fh, 0, "tmp").has_value());
    EXPECT_EQ(read_fh(c->entry.nodeid, c->open.fh), "tmp");
    EXPECT_EQ(read_dir(t.nodeid, false).size(), 2u) << "only . and ..";
    // It can be given a name with link().
    auto l = fs_->link(root_, c->entry.nodeid, t.nodeid, "named");
    ASSERT_TRUE(l.has_value()) << l.error();
    EXPECT_EQ(read_host(dir_ / "t/named"), "tmp");
    EXPECT_EQ(fs_->tmpfile(root_, t.nodeid, O_RDONLY, 0600, 0).error(), EINVAL);
    EXPECT_TRUE(fs_->release(root_, c->entry.nodeid, c->open.fh, 0, 0, 0).has_value());
}

TEST_P(PassthroughFsTest, WriteWithKillSuidgidClearsSuid) {
    REQUIRE_ROOT();
    testing::write_file(dir_ / "f", "x", 04755);
    ASSERT_EQ(::chown((dir_ / "f").c_str(), 0, 0), 0);
    ASSERT_EQ(::chmod((dir_ / "f").c_str(), 06775), 0);
    auto e = lookup_ok(kRootNodeId, "f");
    uint64_t fh = open_ok(e.nodeid, O_WRONLY);
    // A write as (privileged) root without the flag keeps the bits.
    ASSERT_TRUE(write_fh(e.nodeid, fh, 0, "a").has_value());
    EXPECT_EQ(lstat_host(dir_ / "f").st_mode & 07777, 06775u);
    // A write by a non-owner: the guest sets FUSE_WRITE_KILL_SUIDGID.
    ASSERT_TRUE(write_fh(e.nodeid, fh, 0, "b", FUSE_WRITE_KILL_SUIDGID, &user_).has_value());
    EXPECT_EQ(lstat_host(dir_ / "f").st_mode & 07777, 0775u);
    EXPECT_EQ(read_host(dir_ / "f"), "b");
    // The capability came back: a new suid file keeps its bit on a plain write.
    ASSERT_EQ(::chmod((dir_ / "f").c_str(), 04755), 0);
    ASSERT_TRUE(write_fh(e.nodeid, fh, 0, "c").has_value());
    EXPECT_EQ(lstat_host(dir_ / "f").st_mode & 07777, 04755u);
    EXPECT_TRUE(fs_->release(root_, e.nodeid, fh, 0, 0, 0).has_value());
}

TEST_P(PassthroughFsTest, IoFdAndPrepareWrite) {
    testing::write_file(dir_ / "f", "abc", 04755);
    auto e = lookup_ok(kRootNodeId, "f");
    uint64_t ro = open_ok(e.nodeid, O_RDONLY);
    uint64_t rw = open_ok(e.nodeid, O_RDWR);
    auto fd = fs_->io_fd(RequestCtx{}, e.nodeid, ro, false, 0);
    ASSERT_TRUE(fd.has_value());
    char c = 0;
    EXPECT_EQ(::pread(fd->fd, &c, 1, 1), 1);
    EXPECT_EQ(c, 'b');
    EXPECT_EQ(fs_->io_fd(RequestCtx{}, e.nodeid, ro, true, 0).error(), EBADF);
    EXPECT_EQ(fs_->io_fd(RequestCtx{}, kRootNodeId, ro, false, 0).error(), EBADF);
    auto wfd = fs_->io_fd(RequestCtx{}, e.nodeid, rw, true, 0);
    ASSERT_TRUE(wfd.has_value());
    EXPECT_EQ(fs_->io_fd(root_, e.nodeid, ro, true, 0).error(), EBADF);
    ASSERT_TRUE(fs_->io_fd(root_, e.nodeid, rw, true, 0).has_value());
    EXPECT_EQ(lstat_host(dir_ / "f").st_mode & 07777, 04755u);
    ASSERT_EQ(write_prep(*fs_, root_, e.nodeid, rw, FUSE_WRITE_KILL_SUIDGID), 0);
    EXPECT_EQ(lstat_host(dir_ / "f").st_mode & 07777, 0755u);
    EXPECT_TRUE(fs_->release(root_, e.nodeid, ro, 0, 0, 0).has_value());
    EXPECT_TRUE(fs_->release(root_, e.nodeid, rw, 0, 0, 0).has_value());
}

/// The O_DIRECT bit of the open file \p fd, as /proc/self/fdinfo shows it (octal flags).
int fdinfo_direct(int fd) {
    std::ifstream f("/proc/self/fdinfo/" + std::to_string(fd));
    std::string key;
    while (f >> key) {
        if (key == "flags:") {
            std::string octal;
            f >> octal;
            return static_cast<int>(std::stoul(octal, nullptr, 8)) & O_DIRECT;
        }
    }
    ADD_FAILURE() << "no flags: line in /proc/self/fdinfo/" << fd;
    return -1;
}

// The guest's O_DIRECT is about the guest's page cache: without allow_direct_io (the
// default, as virtiofsd) host files are opened without it on OPEN, CREATE (a new file and
// an existing one) and TMPFILE, so the unaligned writes of the guest's mmap writeback,
// which may come through that handle, are accepted. With allow_direct_io it is kept.
TEST_P(PassthroughFsTest, ODirectReachesTheHostOnlyWithAllowDirectIo) {
    testing::write_file(dir_ / "f", std::string(8192, 'a'));
    ASSERT_EQ(::mkdir((dir_ / "t").c_str(), 0755), 0);
    struct statfs sfs {};
    ASSERT_EQ(::statfs(dir_.path().c_str(), &sfs), 0);
    for (bool allow : {false, true}) {
        SCOPED_TRACE(allow ? "allow_direct_io: true" : "allow_direct_io: false");
        auto o = default_options();
        o.allow_direct_io = allow;
        make_fs(o);
        fs_->init(38, 0);
        const int want = allow ? O_DIRECT : 0;
        auto e = lookup_ok(kRootNodeId, "f");
        auto t = lookup_ok(kRootNodeId, "t");
        std::vector<std::pair<uint64_t, uint64_t>> handles; // {nodeid, fh}
        auto op = fs_->open(root_, e.nodeid, O_RDWR | O_DIRECT);
        if (!op && op.error() == EINVAL) {
            GTEST_SKIP() << "no O_DIRECT on " << dir_.path();
        }
        ASSERT_TRUE(op.has_value()) << op.error();
        handles.emplace_back(e.nodeid, op->fh);
        auto made = fs_->create(root_, kRootNodeId, allow ? "new1" : "new0",
                                O_RDWR | O_DIRECT | O_EXCL, 0644, 0);
        ASSERT_TRUE(made.has_value()) << made.error();
        handles.emplace_back(made->entry.nodeid, made->open.fh);
        auto existing = fs_->create(root_, kRootNodeId, "f", O_RDWR | O_DIRECT, 0644, 0);
        ASSERT_TRUE(existing.has_value()) << existing.error();
        handles.emplace_back(existing->entry.nodeid, existing->open.fh);
        auto tmp = fs_->tmpfile(root_, t.nodeid, O_RDWR | O_DIRECT, 0600, 0);
        if (tmp.has_value()) {
            handles.emplace_back(tmp->entry.nodeid, tmp->open.fh);
        } else {
            EXPECT_EQ(tmp.error(), EOPNOTSUPP);
        }
        for (auto [node, fh] : handles) {
            auto io = fs_->io_fd(root_, node, fh, true, 0);
            ASSERT_TRUE(io.has_value()) << io.error();
            EXPECT_EQ(fdinfo_direct(io->fd), want) << "host fd of handle " << fh;
            EXPECT_EQ(io->flags & O_DIRECT, want) << "IoFile::flags of handle " << fh;
        }
        // A 3-byte write at offset 5: what writeback of a file's partial last page sends.
        // A host fd opened O_DIRECT refuses it on a block file system (tmpfs takes it).
        auto n = write_fh(e.nodeid, op->fh, 5, "xyz");
        if (!allow) {
            ASSERT_TRUE(n.has_value()) << n.error();
            EXPECT_EQ(*n, 3u);
            EXPECT_EQ(read_host(dir_ / "f").substr(0, 10), "aaaaaxyzaa");
        } else if (sfs.f_type != TMPFS_MAGIC) {
            ASSERT_FALSE(n.has_value());
            EXPECT_EQ(n.error(), EINVAL);
        }
        for (auto [node, fh] : handles) {
            EXPECT_TRUE(fs_->release(root_, node, fh, 0, 0, 0).has_value());
        }
    }
}

TEST_P(PassthroughFsTest, QueueCachesSeeReleaseForgetAndDestroyAtOnce) {
    // Calls made for queue 1 go through its lookup caches; a RELEASE, FORGET or session end
    // made for another queue (or off the lcores) is seen by queue 1's next call, and the
    // async path still holds a real reference on a cache hit.
    testing::write_file(dir_ / "f", "abc");
    RequestCtx q1 = root_;
    q1.queue = 1;
    RequestCtx q2 = root_;
    q2.queue = 2;
    auto e = lookup_ok(kRootNodeId, "f");
    uint64_t fh = open_ok(e.nodeid, O_RDONLY);
    char buf[4] = {};
    iovec iov{buf, 3};
    for (int i = 0; i < 3; ++i) { // a miss, then hits
        ASSERT_EQ(*fs_->read(q1, e.nodeid, fh, 0, &iov, 1), 3u);
        ASSERT_TRUE(fs_->getattr(q1, e.nodeid, nullptr).has_value());
    }
    EXPECT_EQ(std::string(buf, 3), "abc");
    auto f = fs_->io_fd(q1, e.nodeid, fh, false, 0); // a cache hit: takes a reference
    ASSERT_TRUE(f.has_value());
    ASSERT_TRUE(f->keep);
    EXPECT_EQ(fs_->read(q1, e.nodeid, fh, 0, &iov, 1).value(), 3u);
    EXPECT_TRUE(fs_->release(q2, e.nodeid, fh, 0, 0, 0).has_value());
    EXPECT_EQ(fs_->read(q1, e.nodeid, fh, 0, &iov, 1).error(), EBADF);
    EXPECT_EQ(fs_->io_fd(q1, e.nodeid, fh, false, 0).error(), EBADF);
    EXPECT_EQ(::fcntl(f->fd, F_GETFD), FD_CLOEXEC) << "the async reference keeps it open";
    f = make_err(EIO); // the completion lets go
    fs_->forget(e.nodeid, 1);
    EXPECT_EQ(fs_->getattr(q1, e.nodeid, nullptr).error(), EBADF);
    auto e2 = lookup_ok(kRootNodeId, "f");
    ASSERT_TRUE(fs_->getattr(q1, e2.nodeid, nullptr).has_value());
    fs_->destroy();
    EXPECT_EQ(fs_->getattr(q1, e2.nodeid, nullptr).error(), EBADF);
    EXPECT_TRUE(fs_->getattr(q1, kRootNodeId, nullptr).has_value());
}

TEST_P(PassthroughFsTest, IoFdKeepsTheFileOpenAfterReleaseAndDestroy) {
    // Finding 6: what io_fd() lends the async path stays open, and its number unused, after
    // RELEASE (and the end of the session) until the caller lets go.
    testing::write_file(dir_ / "f", "abc");
    auto e = lookup_ok(kRootNodeId, "f");
    uint64_t fh = open_ok(e.nodeid, O_RDONLY);
    auto f = fs_->io_fd(RequestCtx{}, e.nodeid, fh, false, 0);
    ASSERT_TRUE(f.has_value());
    const int fd = f->fd;
    ASSERT_TRUE(f->keep);
    EXPECT_TRUE(fs_->release(root_, e.nodeid, fh, 0, 0, 0).has_value());
    // The guest's handle is gone.
    EXPECT_EQ(fs_->io_fd(RequestCtx{}, e.nodeid, fh, false, 0).error(), EBADF);
    fs_->destroy();
    char c = 0;
    EXPECT_EQ(::pread(fd, &c, 1, 2), 1); // still the same open file
    EXPECT_EQ(c, 'c');
    f->keep.reset();
    EXPECT_EQ(::fcntl(fd, F_GETFD), -1); // closed with the last reference
}

TEST_P(PassthroughFsTest, FsyncFallocateLseekCopyFileRange) {
    testing::write_file(dir_ / "src", "0123456789");
    auto s = lookup_ok(kRootNodeId, "src");
    auto d = fs_->create(root_, kRootNodeId, "dst", O_RDWR, 0644, 0);
    ASSERT_TRUE(d.has_value());
    uint64_t sfh = open_ok(s.nodeid, O_RDONLY);
    EXPECT_TRUE(fs_->fsync(root_, d->entry.nodeid, d->open.fh, false).has_value());
    EXPECT_TRUE(fs_->fsync(root_, d->entry.nodeid, d->open.fh, true).has_value());

    fuse_copy_file_range_in in{};
    in.fh_in = sfh;
    in.off_in = 2;
    in.nodeid_out = d->entry.nodeid;
    in.fh_out = d->open.fh;
    in.off_out = 0;
    in.len = 5;
    auto n = fs_->copy_file_range(root_, in, s.nodeid);
    ASSERT_TRUE(n.has_value()) << n.error();
    EXPECT_EQ(*n, 5u);
    EXPECT_EQ(read_host(dir_ / "dst"), "23456");
    in.fh_out = sfh; // read-only destination
    in.nodeid_out = s.nodeid;
    EXPECT_EQ(fs_->copy_file_range(root_, in, s.nodeid).error(), EBADF);

    // A sparse file: data at 1 MiB, hole before.
    ASSERT_TRUE(fs_->fallocate(root_, d->entry.nodeid, d->open.fh, 1 << 20, 4096, 0).has_value());
    EXPECT_GE(lstat_host(dir_ / "dst").st_size, (1 << 20) + 4096);
    auto data = fs_->lseek(root_, d->entry.nodeid, d->open.fh, 0, SEEK_DATA);
    ASSERT_TRUE(data.has_value());
    EXPECT_EQ(*data, 0u);
    auto hole = fs_->lseek(root_, d->entry.nodeid, d->open.fh, 0, SEEK_HOLE);
    ASSERT_TRUE(hole.has_value());
    EXPECT_GT(*hole, 0u);
    EXPECT_LT(*hole, static_cast<uint64_t>(1 << 20));
    EXPECT_EQ(fs_->lseek(root_, d->entry.nodeid, d->open.fh, 0, 99).error(), EINVAL);
    EXPECT_EQ(fs_->fallocate(root_, s.nodeid, sfh, 0, 10, 0).error(), EBADF);

    EXPECT_TRUE(fs_->syncfs(root_, d->entry.nodeid).has_value());
    EXPECT_TRUE(fs_->syncfs(root_, kRootNodeId).has_value());
    EXPECT_TRUE(fs_->release(root_, s.nodeid, sfh, 0, 0, 0).has_value());
    EXPECT_TRUE(fs_->release(root_, d->entry.nodeid, d->open.fh, 0, 0, 0).has_value());
}

// ---------------------------------------------------------------------------------------
// Directories

TEST_P(PassthroughFsTest, ReaddirListsEverythingAcrossCalls) {
    std::set<std::string> expect{".", ".."};
    for (int i = 0; i < 50; ++i) {
        std::string n = "file" + std::to_string(i);
        testing::write_file(dir_ / n, "x");
        expect.insert(n);
    }
    auto whole = read_dir(kRootNodeId, false);
    std::set<std::string> got;
    for (auto& d : whole) {
        EXPECT_TRUE(got.insert(d.name).second) << "duplicate " << d.name;
        EXPECT_FALSE(d.entry.has_value());
    }
    EXPECT_EQ(got, expect);
    // Small chunks (the sink fills after 7 entries): same listing, resumed by d_off.
    auto chunked = read_dir(kRootNodeId, false, 7);
    std::set<std::string> got2;
    for (auto& d : chunked) {
        EXPECT_TRUE(got2.insert(d.name).second) << "duplicate " << d.name;
    }
    EXPECT_EQ(got2, expect);
    // opendir on a file.
    auto f = lookup_ok(kRootNodeId, "file1");
    EXPECT_EQ(fs_->opendir(root_, f.nodeid, 0).error(), ENOTDIR);
}

TEST_P(PassthroughFsTest, ReaddirSeekRestartsAtCookie) {
    for (int i = 0; i < 10; ++i) {
        testing::write_file(dir_ / ("f" + std::to_string(i)), "x");
    }
    auto od = fs_->opendir(root_, kRootNodeId, 0);
    ASSERT_TRUE(od.has_value());
    VectorSink first(false, 100);
    ASSERT_TRUE(fs_->readdir(root_, kRootNodeId, od->fh, 0, first).has_value());
    ASSERT_EQ(first.entries.size(), 12u);
    // Seek back to after the 4th entry.
    VectorSink again(false, 100);
    ASSERT_TRUE(fs_->readdir(root_, kRootNodeId, od->fh, first.entries[3].off, again).has_value());
    ASSERT_EQ(again.entries.size(), 8u);
    EXPECT_EQ(again.entries[0].name, first.entries[4].name);
    // Offset 0 restarts.
    VectorSink restart(false, 100);
    ASSERT_TRUE(fs_->readdir(root_, kRootNodeId, od->fh, 0, restart).has_value());
    EXPECT_EQ(restart.entries.size(), 12u);
    EXPECT_TRUE(fs_->releasedir(root_, kRootNodeId, od->fh).has_value());
    EXPECT_EQ(fs_->releasedir(root_, kRootNodeId, od->fh).error(), EBADF);
}

TEST_P(PassthroughFsTest, ReaddirplusLooksUpAndUndoesWhenFull) {
    testing::write_file(dir_ / "a", "x");
    testing::write_file(dir_ / "b", "x");
    testing::write_file(dir_ / "c", "x");
    const size_t before = fs_->inodes().size();
    auto od = fs_->opendir(root_, kRootNodeId, 0);
    ASSERT_TRUE(od.has_value());
    VectorSink two(true, 2);
    ASSERT_TRUE(fs_->readdir(root_, kRootNodeId, od->fh, 0, two).has_value());
    ASSERT_EQ(two.entries.size(), 2u);
    size_t looked_up = 0;
    for (auto& d : two.entries) {
        ASSERT_TRUE(d.entry.has_value());
        if (d.name == "." || d.name == "..") {
            EXPECT_EQ(d.entry->nodeid, 0u);
            EXPECT_EQ(d.entry->attr.ino, d.ino);
        } else {
            EXPECT_NE(d.entry->nodeid, 0u);
            EXPECT_EQ(d.entry->attr.ino, d.ino);
            ++looked_up;
        }
    }
    // Exactly the entries handed to the guest hold a lookup: the one that did not fit
    // was looked up and then forgotten again.
    EXPECT_EQ(fs_->inodes().size(), before + looked_up);
    VectorSink rest(true, 100);
    ASSERT_TRUE(fs_->readdir(root_, kRootNodeId, od->fh, two.entries.back().off, rest).has_value());
    EXPECT_EQ(two.entries.size() + rest.entries.size(), 5u);
    for (auto& d : rest.entries) {
        if (d.name != "." && d.name != "..") {
            auto e = lookup_ok(kRootNodeId, d.name);
            EXPECT_EQ(e.nodeid, d.entry->nodeid);
            auto i = fs_->inodes().get(e.nodeid);
            ASSERT_TRUE(i.has_value());
            EXPECT_EQ((*i)->refcount.load(), 2u);
        }
    }
    EXPECT_TRUE(fs_->releasedir(root_, kRootNodeId, od->fh).has_value());
}

TEST_P(PassthroughFsTest, FsyncdirAndStatfs) {
    auto od = fs_->opendir(root_, kRootNodeId, 0);
    ASSERT_TRUE(od.has_value());
    EXPECT_TRUE(fs_->fsyncdir(root_, kRootNodeId, od->fh, false).has_value());
    EXPECT_TRUE(fs_->fsyncdir(root_, kRootNodeId, od->fh, true).has_value());
    EXPECT_TRUE(fs_->releasedir(root_, kRootNodeId, od->fh).has_value());
    auto s = fs_->statfs(root_, kRootNodeId);
    ASSERT_TRUE(s.has_value());
    struct statvfs sv{};
    ASSERT_EQ(::statvfs(dir_.path().c_str(), &sv), 0);
    EXPECT_EQ(s->st.blocks, sv.f_blocks);
    EXPECT_EQ(s->st.bsize, sv.f_bsize);
    EXPECT_EQ(s->st.namelen, sv.f_namemax);
    EXPECT_EQ(s->st.files, sv.f_files);
}

// ---------------------------------------------------------------------------------------
// access, xattrs

TEST_P(PassthroughFsTest, AccessUsesCallerCredentials) {
    REQUIRE_ROOT();
    testing::write_file(dir_ / "rootonly", "x", 0600);
    testing::write_file(dir_ / "mine", "x", 0600);
    ASSERT_EQ(::chown((dir_ / "mine").c_str(), kUser, kGroup), 0);
    testing::write_file(dir_ / "plain", "x", 0644);
    auto ro = lookup_ok(kRootNodeId, "rootonly");
    auto mine = lookup_ok(kRootNodeId, "mine");
    auto plain = lookup_ok(kRootNodeId, "plain");
    EXPECT_TRUE(fs_->access(root_, ro.nodeid, R_OK | W_OK).has_value());
    EXPECT_EQ(fs_->access(user_, ro.nodeid, R_OK).error(), EACCES);
    EXPECT_TRUE(fs_->access(user_, ro.nodeid, F_OK).has_value());
    EXPECT_TRUE(fs_->access(user_, mine.nodeid, R_OK | W_OK).has_value());
    EXPECT_TRUE(fs_->access(user_, plain.nodeid, R_OK).has_value());
    EXPECT_EQ(fs_->access(user_, plain.nodeid, W_OK).error(), EACCES);
    EXPECT_EQ(fs_->access(root_, plain.nodeid, X_OK).error(), EACCES);
    EXPECT_EQ(fs_->access(root_, plain.nodeid, 0x40).error(), EINVAL);
}

TEST_P(PassthroughFsTest, Xattrs) {
    testing::write_file(dir_ / "f", "x");
    auto f = lookup_ok(kRootNodeId, "f");
    const char v[] = "value";
    auto set = fs_->setxattr(root_, f.nodeid, "user.test", v, 5, 0, 0);
    if (!set.has_value() && set.error() == EOPNOTSUPP) {
        GTEST_SKIP() << "no user xattrs on /tmp";
    }
    ASSERT_TRUE(set.has_value()) << set.error();
    EXPECT_EQ(fs_->setxattr(root_, f.nodeid, "user.test", v, 5, XATTR_CREATE, 0).error(), EEXIST);
    auto len = fs_->getxattr(root_, f.nodeid, "user.test", nullptr, 0);
    ASSERT_TRUE(len.has_value());
    EXPECT_EQ(*len, 5u);
    char buf[64];
    auto got = fs_->getxattr(root_, f.nodeid, "user.test", buf, sizeof(buf));
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(std::string(buf, *got), "value");
    EXPECT_EQ(fs_->getxattr(root_, f.nodeid, "user.test", buf, 2).error(), ERANGE);
    EXPECT_EQ(fs_->getxattr(root_, f.nodeid, "user.none", buf, sizeof(buf)).error(), ENODATA);
    char host[64];
    EXPECT_EQ(::getxattr((dir_ / "f").c_str(), "user.test", host, sizeof(host)), 5);
    auto list_len = fs_->listxattr(root_, f.nodeid, nullptr, 0);
    ASSERT_TRUE(list_len.has_value());
    std::string list(*list_len, '\0');
    auto l = fs_->listxattr(root_, f.nodeid, list.data(), list.size());
    ASSERT_TRUE(l.has_value());
    EXPECT_NE(list.find("user.test"), std::string::npos);
    EXPECT_TRUE(fs_->removexattr(root_, f.nodeid, "user.test").has_value());
    EXPECT_EQ(fs_->removexattr(root_, f.nodeid, "user.test").error(), ENODATA);
    // On a symlink: the link itself (user.* is not allowed on links), not its target.
    ASSERT_EQ(::symlink("f", (dir_ / "sl").c_str()), 0);
    auto sl = lookup_ok(kRootNodeId, "sl");
    EXPECT_EQ(fs_->setxattr(root_, sl.nodeid, "user.x", v, 1, 0, 0).error(), EPERM);
    EXPECT_EQ(::getxattr((dir_ / "f").c_str(), "user.x", host, sizeof(host)), -1);
    // On a FIFO: handled without opening it.
    ASSERT_EQ(::mkfifo((dir_ / "p").c_str(), 0644), 0);
    auto p = lookup_ok(kRootNodeId, "p");
    auto plen = fs_->listxattr(root_, p.nodeid, nullptr, 0);
    EXPECT_TRUE(plen.has_value());
    // Disabled.
    auto o = default_options();
    o.xattr = false;
    make_fs(o);
    f = lookup_ok(kRootNodeId, "f");
    EXPECT_EQ(fs_->getxattr(root_, f.nodeid, "user.test", buf, sizeof(buf)).error(), ENOSYS);
    EXPECT_EQ(fs_->setxattr(root_, f.nodeid, "user.test", v, 5, 0, 0).error(), ENOSYS);
    EXPECT_EQ(fs_->listxattr(root_, f.nodeid, buf, sizeof(buf)).error(), ENOSYS);
    EXPECT_EQ(fs_->removexattr(root_, f.nodeid, "user.test").error(), ENOSYS);
}

TEST_P(PassthroughFsTest, XattrMapRenamesRefusesAndFiltersPerRuleKind) {
    testing::write_file(dir_ / "f", "x");
    const std::string host_f = dir_ / "f";
    if (::setxattr(host_f.c_str(), "user.host_plain", "p", 1, 0) != 0) {
        GTEST_SKIP() << "no user xattrs on /tmp";
    }
    ASSERT_EQ(::setxattr(host_f.c_str(), "user.virtiofs.", "e", 1, 0), 0); // would list as ""
    XattrMapError e;
    auto map = XattrMap::parse("/prefix/client/trusted./user.virtiofs./ "
                               "/prefix/server//user.virtiofs./ "
                               "/unsupported/client/system.// "
                               "/bad/client/user.virtiofs.// "
                               "/bad/server//user.host_hidden/ "
                               "/ok/all///",
                               &e);
    ASSERT_TRUE(map.has_value()) << e.message;
    auto o = default_options();
    o.xattr_map = std::make_shared<const XattrMap>(std::move(*map));
    make_fs(o);
    auto f = lookup_ok(kRootNodeId, "f");
    const char v[] = "tv";
    char buf[256];
    char host[64];
    // prefix (client): stored under the prefix, read back under the guest's name.
    ASSERT_TRUE(fs_->setxattr(root_, f.nodeid, "trusted.t", v, 2, 0, 0).has_value());
    EXPECT_EQ(::getxattr(host_f.c_str(), "user.virtiofs.trusted.t", host, sizeof(host)), 2);
    auto got = fs_->getxattr(root_, f.nodeid, "trusted.t", buf, sizeof(buf));
    ASSERT_TRUE(got.has_value()) << got.error();
    EXPECT_EQ(std::string(buf, *got), "tv");
    // ok: unchanged both ways.
    ASSERT_TRUE(fs_->setxattr(root_, f.nodeid, "user.g", v, 2, 0, 0).has_value());
    EXPECT_EQ(::getxattr(host_f.c_str(), "user.g", host, sizeof(host)), 2);
    // bad (client): EPERM to set and remove, ENODATA to read; unsupported: ENOTSUP.
    EXPECT_EQ(fs_->setxattr(root_, f.nodeid, "user.virtiofs.x", v, 2, 0, 0).error(), EPERM);
    EXPECT_EQ(fs_->removexattr(root_, f.nodeid, "user.virtiofs.trusted.t").error(), EPERM);
    EXPECT_EQ(fs_->getxattr(root_, f.nodeid, "user.virtiofs.trusted.t", buf, 9).error(), ENODATA);
    EXPECT_EQ(fs_->getxattr(root_, f.nodeid, "system.posix_acl_access", buf, 9).error(),
              ENOTSUP);
    EXPECT_EQ(fs_->setxattr(root_, f.nodeid, "system.x", v, 2, 0, 0).error(), ENOTSUP);
    // Too long once prefixed.
    EXPECT_EQ(fs_->setxattr(root_, f.nodeid, "trusted." + std::string(240, 'n'), v, 2, 0, 0)
                  .error(),
              ERANGE);
    // The list: prefix stripped (server), bad (server) hidden, the bare prefix hidden; the
    // size probe is the mapped list's size, and ERANGE only below it.
    ASSERT_EQ(::setxattr(host_f.c_str(), "user.host_hidden", "h", 1, 0), 0);
    auto size = fs_->listxattr(root_, f.nodeid, nullptr, 0);
    ASSERT_TRUE(size.has_value()) << size.error();
    std::string list(*size, '\0');
    auto l = fs_->listxattr(root_, f.nodeid, list.data(), list.size());
    ASSERT_TRUE(l.has_value()) << l.error();
    EXPECT_EQ(*l, *size);
    std::vector<std::string> names;
    for (size_t i = 0; i < list.size(); i += names.back().size() + 1) {
        names.emplace_back(list.c_str() + i);
    }
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names, (std::vector<std::string>{"trusted.t", "user.g", "user.host_plain"}));
    EXPECT_EQ(fs_->listxattr(root_, f.nodeid, buf, *size - 1).error(), ERANGE);
    // remove through the mapping.
    EXPECT_TRUE(fs_->removexattr(root_, f.nodeid, "trusted.t").has_value());
    EXPECT_EQ(::getxattr(host_f.c_str(), "user.virtiofs.trusted.t", host, sizeof(host)), -1);
    // A FIFO's list goes through the same path without opening it.
    ASSERT_EQ(::mkfifo((dir_ / "p").c_str(), 0644), 0);
    auto p = lookup_ok(kRootNodeId, "p");
    auto plen = fs_->listxattr(root_, p.nodeid, nullptr, 0);
    ASSERT_TRUE(plen.has_value()) << plen.error();
    EXPECT_EQ(*plen, 0u);
}

// ---------------------------------------------------------------------------------------
// Locks

fuse_lk_in lock_req(uint64_t fh, uint64_t owner, uint32_t type, uint64_t start = 0,
                    uint64_t end = INT64_MAX, uint32_t flags = 0) {
    fuse_lk_in in{};
    in.fh = fh;
    in.owner = owner;
    in.lk.start = start;
    in.lk.end = end;
    in.lk.type = type;
    in.lk.pid = 1;
    in.lk_flags = flags;
    return in;
}

TEST_P(PassthroughFsTest, PosixLocksPerOwner) {
    testing::write_file(dir_ / "f", "0123456789");
    auto e = lookup_ok(kRootNodeId, "f");
    uint64_t fh = open_ok(e.nodeid, O_RDWR);
    ASSERT_TRUE(fs_->setlk(root_, e.nodeid, lock_req(fh, 1, F_WRLCK, 0, 4), false).has_value());
    // Same owner may re-lock; another owner conflicts.
    EXPECT_TRUE(fs_->setlk(root_, e.nodeid, lock_req(fh, 1, F_WRLCK, 0, 9), false).has_value());
    EXPECT_EQ(fs_->setlk(root_, e.nodeid, lock_req(fh, 2, F_RDLCK, 2, 3), false).error(), EAGAIN);
    EXPECT_TRUE(fs_->setlk(root_, e.nodeid, lock_req(fh, 2, F_RDLCK, 20, 30), false).has_value());
    auto g = fs_->getlk(root_, e.nodeid, lock_req(fh, 2, F_WRLCK, 0, 100));
    ASSERT_TRUE(g.has_value());
    EXPECT_EQ(g->lk.type, static_cast<uint32_t>(F_WRLCK));
    EXPECT_EQ(g->lk.start, 0u);
    EXPECT_EQ(g->lk.end, 9u);
    auto own = fs_->getlk(root_, e.nodeid, lock_req(fh, 1, F_WRLCK, 0, 9));
    ASSERT_TRUE(own.has_value());
    EXPECT_EQ(own->lk.type, static_cast<uint32_t>(F_UNLCK)) << "own locks do not conflict";
    // Unlock by owner 1 → owner 2 may lock.
    ASSERT_TRUE(fs_->setlk(root_, e.nodeid, lock_req(fh, 1, F_UNLCK), false).has_value());
    EXPECT_TRUE(fs_->setlk(root_, e.nodeid, lock_req(fh, 2, F_WRLCK, 0, 4), false).has_value());
    // FLUSH by owner 2 drops its locks (close semantics).
    ASSERT_TRUE(fs_->flush(root_, e.nodeid, fh, 2).has_value());
    EXPECT_TRUE(fs_->setlk(root_, e.nodeid, lock_req(fh, 3, F_WRLCK, 0, 4), false).has_value());
    EXPECT_EQ(fs_->setlk(root_, e.nodeid, lock_req(fh, 1, F_WRLCK, 3, 3, 0), false).error(),
              EAGAIN);
    EXPECT_EQ(fs_->setlk(root_, e.nodeid, lock_req(fh, 1, 77), false).error(), EINVAL);
    EXPECT_TRUE(fs_->release(root_, e.nodeid, fh, 0, 0, 0).has_value());
    // Forgetting the inode releases the lock fds (and their budget units).
    fs_->forget(e.nodeid, 1);
    EXPECT_EQ(fs_->fd_budget().in_use(), 0u);
}

TEST_P(PassthroughFsTest, SetlkwBlocksAndIsInterruptible) {
    testing::write_file(dir_ / "f", "x");
    auto e = lookup_ok(kRootNodeId, "f");
    uint64_t fh = open_ok(e.nodeid, O_RDWR);
    ASSERT_TRUE(fs_->setlk(root_, e.nodeid, lock_req(fh, 1, F_WRLCK), false).has_value());

    // Interrupted waiter.
    std::atomic<int> result{-1};
    RequestCtx c = root_;
    c.unique = 777;
    std::thread waiter([&] {
        auto s = fs_->setlk(c, e.nodeid, lock_req(fh, 2, F_WRLCK), true);
        result = s.has_value() ? 0 : s.error();
    });
    bool found = false;
    for (int i = 0; i < 200 && !found; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        found = fs_->interrupt_lock(777);
    }
    waiter.join();
    EXPECT_TRUE(found);
    EXPECT_EQ(result.load(), EINTR);
    EXPECT_FALSE(fs_->interrupt_lock(777)) << "no longer waiting";

    // A waiter that gets the lock once it is released.
    result = -1;
    c.unique = 778;
    std::thread waiter2([&] {
        auto s = fs_->setlk(c, e.nodeid, lock_req(fh, 2, F_WRLCK), true);
        result = s.has_value() ? 0 : s.error();
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    EXPECT_EQ(result.load(), -1) << "still blocked";
    ASSERT_TRUE(fs_->setlk(root_, e.nodeid, lock_req(fh, 1, F_UNLCK), false).has_value());
    waiter2.join();
    EXPECT_EQ(result.load(), 0);
    EXPECT_EQ(fs_->setlk(root_, e.nodeid, lock_req(fh, 1, F_WRLCK), false).error(), EAGAIN);
    EXPECT_TRUE(fs_->release(root_, e.nodeid, fh, 0, 0, 0).has_value());
}

TEST_P(PassthroughFsTest, FlockOnHandles) {
    testing::write_file(dir_ / "f", "x");
    auto e = lookup_ok(kRootNodeId, "f");
    uint64_t a = open_ok(e.nodeid, O_RDONLY);
    uint64_t b = open_ok(e.nodeid, O_RDONLY);
    ASSERT_TRUE(fs_->setlk(root_, e.nodeid, lock_req(a, 1, F_WRLCK, 0, 0, FUSE_LK_FLOCK), false)
                    .has_value());
    EXPECT_EQ(fs_->setlk(root_, e.nodeid, lock_req(b, 2, F_RDLCK, 0, 0, FUSE_LK_FLOCK), false)
                  .error(),
              EAGAIN);
    // Blocking flock is interruptible too.
    std::atomic<int> result{-1};
    RequestCtx c = root_;
    c.unique = 900;
    std::thread waiter([&] {
        auto s = fs_->setlk(c, e.nodeid, lock_req(b, 2, F_WRLCK, 0, 0, FUSE_LK_FLOCK), true);
        result = s.has_value() ? 0 : s.error();
    });
    bool found = false;
    for (int i = 0; i < 200 && !found; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        found = fs_->interrupt_lock(900);
    }
    waiter.join();
    EXPECT_EQ(result.load(), EINTR);
    // RELEASE with FUSE_RELEASE_FLOCK_UNLOCK frees it.
    ASSERT_TRUE(fs_->release(root_, e.nodeid, a, 0, FUSE_RELEASE_FLOCK_UNLOCK, 1).has_value());
    EXPECT_TRUE(fs_->setlk(root_, e.nodeid, lock_req(b, 2, F_WRLCK, 0, 0, FUSE_LK_FLOCK), false)
                    .has_value());
    EXPECT_TRUE(fs_->release(root_, e.nodeid, b, 0, 0, 0).has_value());
}

TEST_P(PassthroughFsTest, LocksDisabledAreEnosys) {
    auto o = default_options();
    o.posix_locks = false;
    o.flock = false;
    make_fs(o);
    testing::write_file(dir_ / "f", "x");
    auto e = lookup_ok(kRootNodeId, "f");
    uint64_t fh = open_ok(e.nodeid, O_RDWR);
    EXPECT_EQ(fs_->setlk(root_, e.nodeid, lock_req(fh, 1, F_WRLCK), false).error(), ENOSYS);
    EXPECT_EQ(fs_->getlk(root_, e.nodeid, lock_req(fh, 1, F_WRLCK)).error(), ENOSYS);
    EXPECT_EQ(fs_->setlk(root_, e.nodeid, lock_req(fh, 1, F_WRLCK, 0, 0, FUSE_LK_FLOCK), false)
                  .error(),
              ENOSYS);
    EXPECT_TRUE(fs_->release(root_, e.nodeid, fh, 0, 0, 0).has_value());
}

// ---------------------------------------------------------------------------------------
// Share options and lifetime

TEST_P(PassthroughFsTest, ReadonlyShareRefusesEveryModification) {
    testing::write_file(dir_ / "f", "x", 0644);
    ASSERT_EQ(::mkdir((dir_ / "d").c_str(), 0755), 0);
    auto o = default_options();
    o.readonly = true;
    make_fs(o);
    auto f = lookup_ok(kRootNodeId, "f");
    auto d = lookup_ok(kRootNodeId, "d");
    fuse_setattr_in sa{};
    sa.valid = FATTR_MODE;
    sa.mode = 0600;
    EXPECT_EQ(fs_->setattr(root_, f.nodeid, sa).error(), EROFS);
    EXPECT_EQ(fs_->symlink(root_, kRootNodeId, "s", "t").error(), EROFS);
    EXPECT_EQ(fs_->mknod(root_, kRootNodeId, "p", S_IFIFO | 0644, 0, 0).error(), EROFS);
    EXPECT_EQ(fs_->mkdir(root_, kRootNodeId, "n", 0755, 0).error(), EROFS);
    EXPECT_EQ(fs_->unlink(root_, kRootNodeId, "f").error(), EROFS);
    EXPECT_EQ(fs_->rmdir(root_, kRootNodeId, "d").error(), EROFS);
    EXPECT_EQ(fs_->rename(root_, kRootNodeId, "f", kRootNodeId, "g", 0).error(), EROFS);
    EXPECT_EQ(fs_->link(root_, f.nodeid, d.nodeid, "l").error(), EROFS);
    EXPECT_EQ(fs_->open(root_, f.nodeid, O_WRONLY).error(), EROFS);
    EXPECT_EQ(fs_->open(root_, f.nodeid, O_RDWR).error(), EROFS);
    EXPECT_EQ(fs_->open(root_, f.nodeid, O_RDONLY | O_TRUNC).error(), EROFS);
    EXPECT_EQ(fs_->create(root_, kRootNodeId, "c", O_RDWR, 0644, 0).error(), EROFS);
    EXPECT_EQ(fs_->tmpfile(root_, kRootNodeId, O_RDWR, 0644, 0).error(), EROFS);
    EXPECT_EQ(fs_->setxattr(root_, f.nodeid, "user.a", "v", 1, 0, 0).error(), EROFS);
    EXPECT_EQ(fs_->removexattr(root_, f.nodeid, "user.a").error(), EROFS);
    uint64_t fh = open_ok(f.nodeid, O_RDONLY);
    EXPECT_EQ(read_fh(f.nodeid, fh), "x");
    EXPECT_EQ(write_fh(f.nodeid, fh, 0, "y").error(), EROFS);
    EXPECT_EQ(fs_->fallocate(root_, f.nodeid, fh, 0, 10, 0).error(), EROFS);
    EXPECT_EQ(fs_->io_fd(RequestCtx{}, f.nodeid, fh, true, 0).error(), EROFS);
    EXPECT_EQ(fs_->io_fd(root_, f.nodeid, fh, true, FUSE_WRITE_KILL_SUIDGID).error(), EROFS);
    fuse_copy_file_range_in cr{};
    cr.fh_in = fh;
    cr.nodeid_out = f.nodeid;
    cr.fh_out = fh;
    cr.len = 1;
    EXPECT_EQ(fs_->copy_file_range(root_, cr, f.nodeid).error(), EROFS);
    EXPECT_TRUE(fs_->release(root_, f.nodeid, fh, 0, 0, 0).has_value());
    EXPECT_EQ(read_host(dir_ / "f"), "x");
    EXPECT_EQ(lstat_host(dir_ / "f").st_mode & 07777, 0644u);
}

TEST_P(PassthroughFsTest, FdLimitGivesEnfileForThisShareOnly) {
    testing::write_file(dir_ / "f", "x");
    auto o = default_options();
    o.fd_limit = 3;
    make_fs(o);
    auto f = lookup_ok(kRootNodeId, "f"); // an fd in `never` mode, none with handles
    std::vector<uint64_t> fhs;
    Result<fuse_open_out> r = make_err(EIO);
    for (int i = 0; i < 5; ++i) {
        r = fs_->open(root_, f.nodeid, O_RDONLY);
        if (!r) {
            break;
        }
        fhs.push_back(r->fh);
    }
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error(), ENFILE);
    EXPECT_EQ(fs_->fd_budget().in_use(), 3u);
    EXPECT_EQ(fhs.size(), GetParam() == FileHandleMode::Never ? 2u : 3u);
    // Another share is unaffected.
    auto other = PassthroughFs::create(o);
    ASSERT_TRUE(other.has_value());
    auto of = (*other)->lookup(root_, kRootNodeId, "f");
    ASSERT_TRUE(of.has_value());
    auto oo = (*other)->open(root_, of->nodeid, O_RDONLY);
    EXPECT_TRUE(oo.has_value());
    // Releasing frees a unit.
    ASSERT_TRUE(fs_->release(root_, f.nodeid, fhs.back(), 0, 0, 0).has_value());
    fhs.pop_back();
    auto again = fs_->open(root_, f.nodeid, O_RDONLY);
    ASSERT_TRUE(again.has_value());
    fhs.push_back(again->fh);
    for (uint64_t fh : fhs) {
        EXPECT_TRUE(fs_->release(root_, f.nodeid, fh, 0, 0, 0).has_value());
    }
}

TEST_P(PassthroughFsTest, DestroyDropsEverything) {
    testing::write_file(dir_ / "f", "x");
    int before = testing::count_open_fds();
    auto f = lookup_ok(kRootNodeId, "f");
    uint64_t fh = open_ok(f.nodeid, O_RDONLY);
    auto od = fs_->opendir(root_, kRootNodeId, 0);
    ASSERT_TRUE(od.has_value());
    ASSERT_TRUE(fs_->setlk(root_, f.nodeid, lock_req(fh, 1, F_RDLCK), false).has_value());
    fs_->destroy();
    EXPECT_EQ(fs_->inodes().size(), 1u);
    EXPECT_EQ(fs_->handles().size(), 0u);
    EXPECT_EQ(fs_->fd_budget().in_use(), 0u);
    EXPECT_EQ(testing::count_open_fds(), before);
    EXPECT_EQ(fs_->getattr(root_, f.nodeid, nullptr).error(), EBADF);
    EXPECT_EQ(fs_->read(root_, f.nodeid, fh, 0, nullptr, 0).error(), EBADF);
    // Usable again (a new session).
    EXPECT_NE(lookup_ok(kRootNodeId, "f").nodeid, 0u);
}

TEST_P(PassthroughFsTest, SubmountsAreAnnounced) {
    REQUIRE_ROOT();
    ASSERT_EQ(::mkdir((dir_ / "mnt").c_str(), 0755), 0);
    // A private mount namespace for this thread, so the host sees nothing.
    if (::unshare(CLONE_NEWNS) != 0 ||
        ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        ::mount("tmpfs", (dir_ / "mnt").c_str(), "tmpfs", 0, "size=1m") != 0) {
        GTEST_SKIP() << "cannot mount a tmpfs here: " << std::strerror(errno);
    }
    testing::write_file(dir_ / "mnt/inner", "x");
    auto o = default_options();
    o.announce_submounts = true;
    make_fs(o);
    fs_->init(38, FUSE_SUBMOUNTS);
    auto m = lookup_ok(kRootNodeId, "mnt");
    EXPECT_NE(m.attr.flags & FUSE_ATTR_SUBMOUNT, 0u);
    auto inner = lookup_ok(m.nodeid, "inner");
    EXPECT_EQ(inner.attr.flags & FUSE_ATTR_SUBMOUNT, 0u);
    // Not announced unless negotiated.
    fs_->init(38, 0);
    auto m2 = lookup_ok(kRootNodeId, "mnt");
    EXPECT_EQ(m2.attr.flags & FUSE_ATTR_SUBMOUNT, 0u);
    fs_.reset();
    EXPECT_EQ(::umount2((dir_ / "mnt").c_str(), MNT_DETACH), 0);
}

// ---------------------------------------------------------------------------------------
// Containment at every open (issue 7, findings 1, 2 and 7)

/// True when \p fd has O_NONBLOCK set.
bool nonblocking(int fd) { return (::fcntl(fd, F_GETFL) & O_NONBLOCK) != 0; }

// CREATE of an existing device node, FIFO, symlink or directory without O_EXCL: the host
// never opens it (a FIFO open would block the poll lcore; a device is the host's own).
TEST_P(PassthroughFsTest, CreateNeverOpensAnExistingSpecialFile) {
    REQUIRE_ROOT();
    ASSERT_TRUE(fs_->mknod(root_, kRootNodeId, "chr", S_IFCHR | 0666, makedev(1, 3), 0));
    ASSERT_TRUE(fs_->mknod(root_, kRootNodeId, "blk", S_IFBLK | 0666, makedev(7, 0), 0));
    ASSERT_TRUE(fs_->mknod(root_, kRootNodeId, "fifo", S_IFIFO | 0666, 0, 0));
    ASSERT_EQ(::symlink("chr", (dir_ / "link").c_str()), 0);
    ASSERT_EQ(::mkdir((dir_ / "dir").c_str(), 0755), 0);
    const int fds = testing::count_open_fds();
    const uint32_t budget = fs_->fd_budget().in_use();
    for (const char* name : {"chr", "blk", "fifo"}) {
        for (uint32_t acc : {O_RDONLY, O_WRONLY, O_RDWR}) {
            auto c = fs_->create(root_, kRootNodeId, name, acc, 0644, 0);
            ASSERT_FALSE(c.has_value()) << name << " opened with " << acc;
            EXPECT_EQ(c.error(), EBADF) << name;
            auto t = fs_->create(root_, kRootNodeId, name, acc | O_TRUNC, 0644, 0);
            ASSERT_FALSE(t.has_value());
            EXPECT_EQ(t.error(), EBADF);
        }
        EXPECT_EQ(fs_->create(root_, kRootNodeId, name, O_RDWR | O_EXCL, 0644, 0).error(),
                  EEXIST);
    }
    EXPECT_EQ(fs_->create(root_, kRootNodeId, "link", O_RDWR, 0644, 0).error(), ELOOP);
    EXPECT_EQ(fs_->create(root_, kRootNodeId, "dir", O_RDONLY, 0644, 0).error(), EISDIR);
    EXPECT_TRUE(S_ISCHR(lstat_host(dir_ / "chr").st_mode)) << "left as it was";
    EXPECT_EQ(testing::count_open_fds(), fds);
    EXPECT_EQ(fs_->fd_budget().in_use(), budget) << "slots given back";
}

// CREATE of an existing regular file without O_EXCL reopens it with the caller's
// credentials: the host kernel checks the permission, and O_TRUNC is applied.
TEST_P(PassthroughFsTest, CreateOfExistingFileUsesCallerPermissions) {
    REQUIRE_ROOT();
    ASSERT_EQ(::chmod(dir_.path().c_str(), 0777), 0);
    testing::write_file(dir_ / "mine", "data", 0600); // root's, 0600
    auto denied = fs_->create(user_, kRootNodeId, "mine", O_RDONLY, 0644, 0);
    ASSERT_FALSE(denied.has_value());
    EXPECT_EQ(denied.error(), EACCES);
    ASSERT_EQ(::chmod((dir_ / "mine").c_str(), 0644), 0);
    EXPECT_EQ(fs_->create(user_, kRootNodeId, "mine", O_RDWR, 0644, 0).error(), EACCES);
    auto ro = fs_->create(user_, kRootNodeId, "mine", O_RDONLY, 0644, 0);
    ASSERT_TRUE(ro.has_value()) << std::strerror(ro.error());
    EXPECT_EQ(read_fh(ro->entry.nodeid, ro->open.fh), "data");
    auto tr = fs_->create(root_, kRootNodeId, "mine", O_WRONLY | O_TRUNC, 0644, 0);
    ASSERT_TRUE(tr.has_value());
    EXPECT_EQ(tr->entry.nodeid, ro->entry.nodeid);
    EXPECT_EQ(read_host(dir_ / "mine"), "");
    EXPECT_TRUE(fs_->release(root_, ro->entry.nodeid, ro->open.fh, 0, 0, 0).has_value());
    EXPECT_TRUE(fs_->release(root_, tr->entry.nodeid, tr->open.fh, 0, 0, 0).has_value());
}

// OPEN, CREATE (new and existing) and TMPFILE open non-blocking and clear O_NONBLOCK
// afterwards unless the guest asked for it.
TEST_P(PassthroughFsTest, OpensAreNonblockingAndClearItAfterwards) {
    make_fs(std::nullopt, true);
    testing::write_file(dir_ / "f", "x");
    auto e = lookup_ok(kRootNodeId, "f");
    struct Case {
        const char* what;
        Result<uint64_t> fh;
        uint64_t node;
        bool guest_nonblock;
    };
    std::vector<Case> cases;
    auto opened = [&](const char* what, uint64_t node, Result<fuse_open_out> r, bool nb) {
        EXPECT_TRUE(r.has_value()) << what;
        EXPECT_NE(fake_->last_io_open_flags.load() & O_NONBLOCK, 0) << what << ": may block";
        cases.push_back({what, r ? Result<uint64_t>(r->fh) : make_err(r.error()), node, nb});
    };
    opened("open", e.nodeid, fs_->open(root_, e.nodeid, O_RDWR), false);
    opened("open nb", e.nodeid, fs_->open(root_, e.nodeid, O_RDWR | O_NONBLOCK), true);
    for (uint32_t nb : {0u, static_cast<uint32_t>(O_NONBLOCK)}) {
        auto c = fs_->create(root_, kRootNodeId, nb ? "new-nb" : "new", O_RDWR | nb, 0644, 0);
        ASSERT_TRUE(c.has_value());
        opened("create", c->entry.nodeid, c->open, nb != 0);
        auto x = fs_->create(root_, kRootNodeId, "f", O_RDWR | nb, 0644, 0);
        ASSERT_TRUE(x.has_value());
        opened("create existing", x->entry.nodeid, x->open, nb != 0);
        auto t = fs_->tmpfile(root_, kRootNodeId, O_RDWR | nb, 0600, 0);
        if (t || t.error() != EOPNOTSUPP) {
            ASSERT_TRUE(t.has_value()) << t.error();
            opened("tmpfile", t->entry.nodeid, t->open, nb != 0);
        }
    }
    for (auto& c : cases) {
        ASSERT_TRUE(c.fh.has_value()) << c.what;
        auto fd = fs_->io_fd(RequestCtx{}, c.node, *c.fh, false, 0);
        ASSERT_TRUE(fd.has_value()) << c.what;
        EXPECT_EQ(nonblocking(fd->fd), c.guest_nonblock) << c.what;
        EXPECT_TRUE(fs_->release(root_, c.node, *c.fh, 0, 0, 0).has_value());
    }
}

// Every path that opens checks the kernel's answer after the open: a device node in
// place of the file (simulated: FakeSys opens /dev/null instead) is closed again.
TEST_P(PassthroughFsTest, EveryOpenPathRefusesADeviceAfterTheOpen) {
    make_fs(std::nullopt, true);
    testing::write_file(dir_ / "f", "x");
    testing::write_file(dir_ / "g", "x");
    ASSERT_EQ(::mkdir((dir_ / "d").c_str(), 0755), 0);
    auto e = lookup_ok(kRootNodeId, "f");
    auto g = lookup_ok(kRootNodeId, "g");
    auto d = lookup_ok(kRootNodeId, "d");
    const uint64_t fh = open_ok(e.nodeid, O_RDWR);
    const int fds = testing::count_open_fds();
    fake_->substitute_opens("/dev/null");

    EXPECT_EQ(fs_->open(root_, e.nodeid, O_RDONLY).error(), EBADF) << "OPEN";
    EXPECT_EQ(fs_->opendir(root_, d.nodeid, 0).error(), EBADF) << "OPENDIR";
    EXPECT_EQ(fs_->create(root_, kRootNodeId, "new", O_RDWR, 0644, 0).error(), EBADF)
        << "CREATE";
    auto t = fs_->tmpfile(root_, kRootNodeId, O_RDWR, 0600, 0);
    ASSERT_FALSE(t.has_value()) << "TMPFILE";
    EXPECT_EQ(t.error(), EBADF);
    fuse_setattr_in in{};
    in.valid = FATTR_SIZE;
    in.size = 0;
    EXPECT_EQ(fs_->setattr(root_, e.nodeid, in).error(), EBADF) << "SETATTR size";
    fuse_lk_in lk{};
    lk.owner = 77;
    lk.lk.type = F_WRLCK;
    lk.lk.start = 0;
    lk.lk.end = 10;
    EXPECT_EQ(fs_->setlk(root_, g.nodeid, lk, false).error(), EBADF) << "SETLK lock fd";
    EXPECT_EQ(fs_->getlk(root_, g.nodeid, lk).error(), EBADF) << "GETLK";
    EXPECT_EQ(fs_->syncfs(root_, e.nodeid).error(), EBADF) << "SYNCFS";
    // CREATE of an existing name: the reopen through /proc/self/fd is checked too.
    fake_->substitute_opens("/dev/null", true);
    EXPECT_EQ(fs_->create(root_, kRootNodeId, "g", O_RDWR, 0644, 0).error(), EBADF)
        << "CREATE existing";
    fake_->substitute_opens("");
    EXPECT_EQ(testing::count_open_fds(), fds);
    EXPECT_EQ(read_host(dir_ / "f"), "x");
    EXPECT_TRUE(fs_->release(root_, e.nodeid, fh, 0, 0, 0).has_value());
}

// Finding 7: HANDLE_KILLPRIV_V2 is not offered; the guest kernel clears suid/sgid with a
// SETATTR of the mode, which works whoever the caller is (the guest checked it).
TEST_P(PassthroughFsTest, KillprivV2NotOfferedAndSetattrModeClearsBits) {
    REQUIRE_ROOT();
    EXPECT_FALSE(fs_->capabilities().killpriv_v2);
    testing::write_file(dir_ / "f", "x", 0644);
    ASSERT_EQ(::chmod((dir_ / "f").c_str(), 06777), 0);
    auto e = lookup_ok(kRootNodeId, "f");
    fuse_setattr_in in{};
    in.valid = FATTR_MODE;
    in.mode = S_IFREG | 0777;
    auto a = fs_->setattr(user_, e.nodeid, in);
    ASSERT_TRUE(a.has_value()) << a.error();
    EXPECT_EQ(a->attr.mode & 07777, 0777u);
    EXPECT_EQ(lstat_host(dir_ / "f").st_mode & 07777, 0777u);
    // A hostile guest's FATTR_KILL_SUIDGID along with a mode: the mode is what it says.
    ASSERT_EQ(::chmod((dir_ / "f").c_str(), 06777), 0);
    in.valid = FATTR_MODE | FATTR_KILL_SUIDGID;
    in.mode = 0755;
    ASSERT_TRUE(fs_->setattr(user_, e.nodeid, in).has_value());
    EXPECT_EQ(lstat_host(dir_ / "f").st_mode & 07777, 0755u);
}

// A guest-sent FUSE_WRITE_KILL_SUIDGID on the async path (io_fd for a write) only clears
// suid and group-executable sgid, atomically in the kernel: it never rewrites the rest
// of the mode, never changes the owner, never touches a plain sgid (no group exec).
TEST_P(PassthroughFsTest, PrepareWriteKillSuidgidOnlyClearsTheBits) {
    REQUIRE_ROOT();
    testing::write_file(dir_ / "f", "x", 0644);
    ASSERT_EQ(::chown((dir_ / "f").c_str(), kUser, kGroup), 0);
    ASSERT_EQ(::chmod((dir_ / "f").c_str(), 06777), 0);
    auto e = lookup_ok(kRootNodeId, "f");
    uint64_t fh = open_ok(e.nodeid, O_RDWR);
    ASSERT_EQ(write_prep(*fs_, user_, e.nodeid, fh, FUSE_WRITE_KILL_SUIDGID), 0);
    struct stat st = lstat_host(dir_ / "f");
    EXPECT_EQ(st.st_mode & 07777, 0777u);
    EXPECT_EQ(st.st_uid, kUser);
    EXPECT_EQ(st.st_gid, kGroup);
    ASSERT_EQ(::chmod((dir_ / "f").c_str(), 02745), 0); // sgid without group exec
    ASSERT_EQ(write_prep(*fs_, user_, e.nodeid, fh, FUSE_WRITE_KILL_SUIDGID), 0);
    EXPECT_EQ(lstat_host(dir_ / "f").st_mode & 07777, 02745u);
    ASSERT_EQ(::chmod((dir_ / "f").c_str(), 0600), 0); // nothing to clear: nothing changes
    ASSERT_EQ(write_prep(*fs_, user_, e.nodeid, fh, FUSE_WRITE_KILL_SUIDGID), 0);
    EXPECT_EQ(lstat_host(dir_ / "f").st_mode & 07777, 0600u);
    EXPECT_TRUE(fs_->release(root_, e.nodeid, fh, 0, 0, 0).has_value());
}

// The share profile's inode_limit reaches the store: handle-held inodes beyond it get
// ENFILE (Prefer), fd-held ones are not counted (Never).
TEST_P(PassthroughFsTest, InodeLimitCapsHandleHeldInodes) {
    auto o = default_options();
    o.inode_limit = 1;
    make_fs(o);
    ASSERT_EQ(::mkdir((dir_ / "d").c_str(), 0755), 0);
    testing::write_file(dir_ / "a", "x");
    lookup_ok(kRootNodeId, "d");
    auto a = fs_->lookup(root_, kRootNodeId, "a");
    if (GetParam() == FileHandleMode::Never) {
        EXPECT_TRUE(a.has_value());
        EXPECT_EQ(fs_->inode_budget().in_use(), 0u);
    } else {
        ASSERT_FALSE(a.has_value());
        EXPECT_EQ(a.error(), ENFILE);
        EXPECT_EQ(fs_->inode_budget().in_use(), 1u);
    }
}

/// The open(2) flags of handle \p fh's host fd, as the kernel reports them.
int host_fd_flags(PassthroughFs& fs, uint64_t nodeid, uint64_t fh) {
    auto f = fs.io_fd(RequestCtx{}, nodeid, fh, false, 0);
    EXPECT_TRUE(f.has_value());
    return f ? ::fcntl(f->fd, F_GETFL) : -1;
}

// preserve_noatime (virtiofsd --preserve-noatime): off by default, the guest's O_NOATIME
// never reaches the host fd (OPEN, CREATE of a new and of an existing name); on, it does.
TEST_P(PassthroughFsTest, NoatimeDroppedUnlessPreserved) {
    REQUIRE_ROOT(); // O_NOATIME needs ownership or CAP_FOWNER
    testing::write_file(dir_ / "f", "x", 0644);
    for (bool preserve : {false, true}) {
        auto o = default_options();
        o.preserve_noatime = preserve;
        make_fs(o);
        const int want = preserve ? O_NOATIME : 0;
        auto e = lookup_ok(kRootNodeId, "f");
        uint64_t fh = open_ok(e.nodeid, O_RDONLY | O_NOATIME);
        EXPECT_EQ(host_fd_flags(*fs_, e.nodeid, fh) & O_NOATIME, want) << "OPEN " << preserve;
        EXPECT_TRUE(fs_->release(root_, e.nodeid, fh, 0, 0, 0).has_value());
        const std::string name = preserve ? "new1" : "new0";
        auto c = fs_->create(root_, kRootNodeId, name, O_RDWR | O_NOATIME, 0644, 0);
        ASSERT_TRUE(c.has_value());
        EXPECT_EQ(host_fd_flags(*fs_, c->entry.nodeid, c->open.fh) & O_NOATIME, want)
            << "CREATE " << preserve;
        EXPECT_TRUE(fs_->release(root_, c->entry.nodeid, c->open.fh, 0, 0, 0).has_value());
        auto x = fs_->create(root_, kRootNodeId, "f", O_RDWR | O_NOATIME, 0644, 0);
        ASSERT_TRUE(x.has_value());
        EXPECT_EQ(host_fd_flags(*fs_, x->entry.nodeid, x->open.fh) & O_NOATIME, want)
            << "CREATE existing " << preserve;
        EXPECT_TRUE(fs_->release(root_, x->entry.nodeid, x->open.fh, 0, 0, 0).has_value());
    }
}

// readdirplus and allow_mmap reach the INIT capabilities.
TEST_P(PassthroughFsTest, ReaddirplusAndAllowMmapCapabilities) {
    EXPECT_TRUE(fs_->capabilities().readdirplus);
    EXPECT_FALSE(fs_->capabilities().direct_io_allow_mmap);
    auto o = default_options();
    o.readdirplus = false;
    o.allow_mmap = true;
    make_fs(o);
    EXPECT_FALSE(fs_->capabilities().readdirplus);
    EXPECT_TRUE(fs_->capabilities().direct_io_allow_mmap);
}

/// An IdMap from virtiofsd-syntax rules (the test's own rules: must build).
IdMap id_map(const std::vector<std::string_view>& texts) {
    std::vector<IdMapRule> rules;
    for (auto t : texts) {
        std::string err;
        auto r = parse_id_map_rule(t, &err);
        EXPECT_TRUE(r.has_value()) << err;
        rules.push_back(r.value_or(IdMapRule{}));
    }
    size_t bad = 0;
    std::string err;
    auto m = IdMap::build(rules, &bad, &err);
    EXPECT_TRUE(m.has_value()) << err;
    return m.value_or(IdMap{});
}

TEST_P(PassthroughFsTest, TranslatedIdsEveryTypeBothDirections) {
    REQUIRE_ROOT();
    // Squashed callers are unprivileged on the host: let them create in the share.
    ASSERT_EQ(::chmod(dir_.path().c_str(), 0777), 0);
    PassthroughOptions o = default_options();
    o.uid_map = id_map({"squash-guest:0:65534:1000", "map:1000:51000:10", "forbid-guest:2000:1",
                        "host:0:4242:1", "squash-host:60000:7:100", "guest:5000:53000:5"});
    o.gid_map = id_map({"map:1000:52000:10", "squash-guest:0:65533:1000", "forbid-guest:3000:1"});
    make_fs(o);
    const RequestCtx groot{1, 0, 0, 100};
    const RequestCtx guser{2, 1000, 1000, 200};
    const RequestCtx g5001{3, 5001, 1001, 300};

    // squash-guest: the guest's root creates an unprivileged setuid file; no host→guest
    // rule covers 65534, so the guest sees the host ids (virtiofsd).
    auto c = fs_->create(groot, kRootNodeId, "suid", O_CREAT | O_RDWR, 04755, 0);
    ASSERT_TRUE(c.has_value()) << c.error();
    struct stat st = lstat_host(dir_ / "suid");
    EXPECT_EQ(st.st_uid, 65534u);
    EXPECT_EQ(st.st_gid, 65533u);
    EXPECT_EQ(st.st_mode & 07777, 04755u);
    EXPECT_EQ(c->entry.attr.uid, 65534u);
    EXPECT_EQ(c->entry.attr.gid, 65533u);
    EXPECT_TRUE(fs_->release(groot, c->entry.nodeid, c->open.fh, 0, 0, 0).has_value());
    auto sl = fs_->symlink(groot, kRootNodeId, "link", "suid");
    ASSERT_TRUE(sl.has_value()) << sl.error();
    EXPECT_EQ(lstat_host(dir_ / "link").st_uid, 65534u);
    auto nod = fs_->mknod(groot, kRootNodeId, "fifo", S_IFIFO | 0600, 0, 0);
    ASSERT_TRUE(nod.has_value()) << nod.error();
    EXPECT_EQ(lstat_host(dir_ / "fifo").st_uid, 65534u);

    // map: both ways; guest: one way (the host id comes back as itself).
    auto d = fs_->mkdir(guser, kRootNodeId, "d", 0755, 0);
    ASSERT_TRUE(d.has_value()) << d.error();
    EXPECT_EQ(lstat_host(dir_ / "d").st_uid, 51000u);
    EXPECT_EQ(lstat_host(dir_ / "d").st_gid, 52000u);
    EXPECT_EQ(d->attr.uid, 1000u);
    EXPECT_EQ(d->attr.gid, 1000u);
    auto g = fs_->mkdir(g5001, kRootNodeId, "g", 0755, 0);
    ASSERT_TRUE(g.has_value()) << g.error();
    EXPECT_EQ(lstat_host(dir_ / "g").st_uid, 53001u);
    EXPECT_EQ(lstat_host(dir_ / "g").st_gid, 52001u);
    EXPECT_EQ(g->attr.uid, 53001u);
    EXPECT_EQ(g->attr.gid, 1001u);
    // The host checks permissions with the translated ids: 51000 owns d, 53001 does not.
    EXPECT_TRUE(fs_->access(guser, d->nodeid, W_OK).has_value());
    EXPECT_EQ(fs_->access(g5001, d->nodeid, W_OK).error(), EACCES);

    // host and squash-host: files the host owns, as the guest sees them.
    testing::write_file(dir_ / "h0", "x", 0644);
    testing::write_file(dir_ / "h6", "x", 0644);
    ASSERT_EQ(::chown((dir_ / "h6").c_str(), 60050, 60050), 0);
    auto h0 = lookup_ok(kRootNodeId, "h0");
    EXPECT_EQ(h0.attr.uid, 4242u);
    EXPECT_EQ(h0.attr.gid, 0u);
    auto h6 = lookup_ok(kRootNodeId, "h6");
    EXPECT_EQ(h6.attr.uid, 7u);
    EXPECT_EQ(h6.attr.gid, 60050u);
    auto ga = fs_->getattr(groot, h6.nodeid, nullptr);
    ASSERT_TRUE(ga.has_value());
    EXPECT_EQ(ga->attr.uid, 7u);
    // READDIRPLUS entries carry the same translated attributes.
    int seen = 0;
    for (const Dirent& e : read_dir(kRootNodeId, true)) {
        if (!e.entry || e.entry->nodeid == 0) {
            continue;
        }
        if (e.name == "h0") {
            EXPECT_EQ(e.entry->attr.uid, 4242u);
            ++seen;
        } else if (e.name == "h6") {
            EXPECT_EQ(e.entry->attr.uid, 7u);
            ++seen;
        } else if (e.name == "d") {
            EXPECT_EQ(e.entry->attr.uid, 1000u);
            EXPECT_EQ(e.entry->attr.gid, 1000u);
            ++seen;
        }
        fs_->forget(e.entry->nodeid, 1);
    }
    EXPECT_EQ(seen, 3);

    // chown: the guest's ids become host ids; the reply shows them back in guest ids.
    fuse_setattr_in in{};
    in.valid = FATTR_UID | FATTR_GID;
    in.uid = 1005;
    in.gid = 1001;
    auto sa = fs_->setattr(groot, h0.nodeid, in);
    ASSERT_TRUE(sa.has_value()) << sa.error();
    EXPECT_EQ(lstat_host(dir_ / "h0").st_uid, 51005u);
    EXPECT_EQ(lstat_host(dir_ / "h0").st_gid, 52001u);
    EXPECT_EQ(sa->attr.uid, 1005u);
    EXPECT_EQ(sa->attr.gid, 1001u);
    // A guest chown to its root lands on the squash target, never on host root.
    in.uid = 0;
    in.valid = FATTR_UID;
    ASSERT_TRUE(fs_->setattr(groot, h0.nodeid, in).has_value());
    EXPECT_EQ(lstat_host(dir_ / "h0").st_uid, 65534u);

    // forbid-guest: EPERM for the owner, and nothing else of the request is applied.
    in = {};
    in.valid = FATTR_UID | FATTR_MODE;
    in.uid = 2000;
    in.mode = S_IFREG | 0600;
    EXPECT_EQ(fs_->setattr(groot, h0.nodeid, in).error(), EPERM);
    EXPECT_EQ(lstat_host(dir_ / "h0").st_mode & 07777, 0644u);
    EXPECT_EQ(lstat_host(dir_ / "h0").st_uid, 65534u);
    in.valid = FATTR_GID;
    in.gid = 3000;
    EXPECT_EQ(fs_->setattr(groot, h0.nodeid, in).error(), EPERM);
    // ... and for a caller with a forbidden uid or gid, on every credential switch.
    const RequestCtx fuid{4, 2000, 1000, 400};
    const RequestCtx fgid{5, 1000, 3000, 500};
    EXPECT_EQ(fs_->create(fuid, kRootNodeId, "no1", O_CREAT | O_RDWR, 0644, 0).error(), EPERM);
    EXPECT_EQ(fs_->mkdir(fgid, kRootNodeId, "no2", 0755, 0).error(), EPERM);
    EXPECT_EQ(fs_->mknod(fuid, kRootNodeId, "no3", S_IFIFO | 0600, 0, 0).error(), EPERM);
    EXPECT_EQ(fs_->symlink(fgid, kRootNodeId, "no4", "x").error(), EPERM);
    EXPECT_EQ(fs_->tmpfile(fuid, kRootNodeId, O_RDWR, 0600, 0).error(), EPERM);
    EXPECT_EQ(fs_->access(fuid, h0.nodeid, R_OK).error(), EPERM);
    // 4294967295 ("no id") is never in a range; as a credential it is refused.
    const RequestCtx noid{6, UINT32_MAX, 0, 600};
    EXPECT_EQ(fs_->mkdir(noid, kRootNodeId, "no5", 0755, 0).error(), EPERM);
    EXPECT_EQ(::access((dir_ / "no1").c_str(), F_OK), -1);
    EXPECT_EQ(::access((dir_ / "no2").c_str(), F_OK), -1);
}

// ---------------------------------------------------------------------------------------
// Supplementary groups, POSIX ACLs, security labels (request extensions)

/// A POSIX ACL in the kernel's xattr format: version 2, then {tag, perm, id} entries.
std::string acl_xattr(std::initializer_list<std::array<uint32_t, 3>> entries) {
    std::string v;
    auto put32 = [&](uint32_t x) { v.append(reinterpret_cast<const char*>(&x), 4); };
    auto put16 = [&](uint16_t x) { v.append(reinterpret_cast<const char*>(&x), 2); };
    put32(2);
    for (const auto& e : entries) {
        put16(static_cast<uint16_t>(e[0]));
        put16(static_cast<uint16_t>(e[1]));
        put32(e[2]);
    }
    return v;
}
constexpr uint32_t kAclUserObj = 0x01, kAclUser = 0x02, kAclGroupObj = 0x04, kAclMask = 0x10,
                   kAclOther = 0x20, kAclNoId = UINT32_MAX;

/// The permission bits of the entry tagged \p tag in ACL xattr \p v, or -1.
int acl_perm(const std::string& v, uint32_t tag) {
    for (size_t off = 4; off + 8 <= v.size(); off += 8) {
        uint16_t t;
        uint16_t perm;
        std::memcpy(&t, v.data() + off, 2);
        std::memcpy(&perm, v.data() + off + 2, 2);
        if (t == tag) {
            return perm;
        }
    }
    return -1;
}

std::string host_xattr(const std::string& path, const char* name) {
    char buf[4096];
    ssize_t n = ::lgetxattr(path.c_str(), name, buf, sizeof(buf));
    return n < 0 ? std::string("<errno ") + std::to_string(errno) + ">"
                 : std::string(buf, static_cast<size_t>(n));
}

TEST_P(PassthroughFsTest, SuppGroupLetsASecondaryGroupMemberCreate) {
    REQUIRE_ROOT();
    // Writable by owner root and group 3000 only; the user's primary group is kGroup.
    ASSERT_EQ(::mkdir((dir_ / "team").c_str(), 0770), 0);
    ASSERT_EQ(::chown((dir_ / "team").c_str(), 0, 3000), 0);
    ASSERT_EQ(::chmod((dir_ / "team").c_str(), 0770), 0); // not the process umask's 0750
    auto team = lookup_ok(kRootNodeId, "team");
    // Without the extension (a guest before Linux 6.5): the group is unknown, EACCES.
    EXPECT_EQ(fs_->mkdir(user_, team.nodeid, "d", 0755, 0).error(), EACCES);
    EXPECT_EQ(fs_->create(user_, team.nodeid, "f", O_RDWR, 0644, 0).error(), EACCES);
    // With FUSE_EXT_GROUPS naming 3000 every create type succeeds, owned by the user.
    RequestCtx member = user_;
    member.has_supp_group = true;
    member.supp_group = 3000;
    ASSERT_TRUE(fs_->mkdir(member, team.nodeid, "d", 0755, 0).has_value());
    auto f = fs_->create(member, team.nodeid, "f", O_RDWR, 0644, 0);
    ASSERT_TRUE(f.has_value());
    EXPECT_TRUE(fs_->release(root_, f->entry.nodeid, f->open.fh, 0, 0, 0).has_value());
    ASSERT_TRUE(fs_->symlink(member, team.nodeid, "s", "t").has_value());
    ASSERT_TRUE(fs_->mknod(member, team.nodeid, "p", S_IFIFO | 0644, 0, 0).has_value());
    auto t = fs_->tmpfile(member, team.nodeid, O_RDWR, 0600, 0);
    if (t.has_value()) {
        EXPECT_TRUE(fs_->release(root_, t->entry.nodeid, t->open.fh, 0, 0, 0).has_value());
    } else {
        EXPECT_EQ(t.error(), EOPNOTSUPP);
    }
    for (const char* n : {"team/d", "team/f", "team/s", "team/p"}) {
        SCOPED_TRACE(n);
        struct stat st = lstat_host(dir_ / n);
        EXPECT_EQ(st.st_uid, kUser);
        EXPECT_EQ(st.st_gid, kGroup) << "the primary group owns new files, as locally";
    }
    // Another group than the directory's does not help.
    member.supp_group = 3001;
    EXPECT_EQ(fs_->mkdir(member, team.nodeid, "d2", 0755, 0).error(), EACCES);
    // The thread's own groups came back.
    EXPECT_EQ(::syscall(SYS_getgroups, 0, nullptr), ::getgroups(0, nullptr));
}

class PassthroughAclTest : public PassthroughFsTest {
protected:
    void SetUp() override {
        PassthroughFsTest::SetUp();
        if (IsSkipped()) {
            return;
        }
        auto o = default_options();
        o.posix_acl = true;
        make_fs(o);
        fs_->init(38, FUSE_POSIX_ACL | FUSE_DONT_MASK | FUSE_SETXATTR_EXT);
        ASSERT_TRUE(fs_->capabilities().posix_acl);
        ASSERT_TRUE(fs_->capabilities().setxattr_ext);
        ASSERT_EQ(::mkdir((dir_ / "acl").c_str(), 0777), 0);
        const std::string def = acl_xattr({{kAclUserObj, 7, kAclNoId},
                                           {kAclUser, 6, 1234},
                                           {kAclGroupObj, 5, kAclNoId},
                                           {kAclMask, 7, kAclNoId},
                                           {kAclOther, 5, kAclNoId}});
        if (::setxattr((dir_ / "acl").c_str(), "system.posix_acl_default", def.data(),
                       def.size(), 0) != 0) {
            GTEST_SKIP() << "no POSIX ACLs on the test directory's filesystem";
        }
        ASSERT_EQ(::mkdir((dir_ / "plain").c_str(), 0777), 0);
    }
};

TEST_P(PassthroughAclTest, DefaultAclIsInheritedAndUmaskAppliesOnlyWithout) {
    auto acl = lookup_ok(kRootNodeId, "acl");
    auto plain = lookup_ok(kRootNodeId, "plain");
    // The guest sends the mode unmasked and its umask (DONT_MASK).
    auto f = fs_->create(user_, acl.nodeid, "f", O_RDWR, 0666, 077);
    ASSERT_TRUE(f.has_value()) << f.error();
    EXPECT_TRUE(fs_->release(root_, f->entry.nodeid, f->open.fh, 0, 0, 0).has_value());
    // Default ACL: the umask is ignored; group bits = mask = 0666 & rwx -> rw-.
    EXPECT_EQ(lstat_host(dir_ / "acl/f").st_mode & 0777, 0664u);
    const std::string access = host_xattr(dir_ / "acl/f", "system.posix_acl_access");
    EXPECT_EQ(acl_perm(access, kAclUser), 6) << "named entry inherited";
    auto d = fs_->mkdir(user_, acl.nodeid, "d", 0777, 077);
    ASSERT_TRUE(d.has_value());
    EXPECT_EQ(lstat_host(dir_ / "acl/d").st_mode & 0777, 0775u);
    EXPECT_EQ(acl_perm(host_xattr(dir_ / "acl/d", "system.posix_acl_default"), kAclUser), 6)
        << "a new directory inherits the default ACL as its own default";
    ASSERT_TRUE(fs_->mknod(user_, acl.nodeid, "p", S_IFIFO | 0666, 0, 077).has_value());
    EXPECT_EQ(lstat_host(dir_ / "acl/p").st_mode & 0777, 0664u);
    // No default ACL: the umask applies (by the host kernel, on this thread only).
    auto g = fs_->create(user_, plain.nodeid, "g", O_RDWR, 0666, 027);
    ASSERT_TRUE(g.has_value());
    EXPECT_TRUE(fs_->release(root_, g->entry.nodeid, g->open.fh, 0, 0, 0).has_value());
    EXPECT_EQ(lstat_host(dir_ / "plain/g").st_mode & 0777, 0640u);
    ASSERT_TRUE(fs_->mkdir(user_, plain.nodeid, "e", 0777, 022).has_value());
    EXPECT_EQ(lstat_host(dir_ / "plain/e").st_mode & 0777, 0755u);
    // The thread's umask is back to 0.
    const mode_t old = ::umask(0);
    EXPECT_EQ(old, 0u);
}

TEST_P(PassthroughAclTest, ChmodUpdatesTheMaskAndAclsPassThroughXattrs) {
    auto acl = lookup_ok(kRootNodeId, "acl");
    auto f = fs_->create(root_, acl.nodeid, "f", O_RDWR, 0666, 0);
    ASSERT_TRUE(f.has_value());
    EXPECT_TRUE(fs_->release(root_, f->entry.nodeid, f->open.fh, 0, 0, 0).has_value());
    char buf[256];
    auto n = fs_->getxattr(root_, f->entry.nodeid, "system.posix_acl_access", buf, sizeof(buf));
    ASSERT_TRUE(n.has_value());
    EXPECT_EQ(acl_perm(std::string(buf, *n), kAclMask), 6);
    fuse_setattr_in in{};
    in.valid = FATTR_MODE;
    in.mode = S_IFREG | 0640;
    ASSERT_TRUE(fs_->setattr(root_, f->entry.nodeid, in).has_value());
    n = fs_->getxattr(root_, f->entry.nodeid, "system.posix_acl_access", buf, sizeof(buf));
    ASSERT_TRUE(n.has_value());
    EXPECT_EQ(acl_perm(std::string(buf, *n), kAclMask), 4) << "chmod g=r sets the mask";
    EXPECT_EQ(acl_perm(std::string(buf, *n), kAclUser), 6) << "the named entry is kept";
    // Setting an ACL through setxattr updates the mode's group bits (= the mask).
    const std::string a = acl_xattr({{kAclUserObj, 6, kAclNoId},
                                     {kAclUser, 7, 1234},
                                     {kAclGroupObj, 4, kAclNoId},
                                     {kAclMask, 7, kAclNoId},
                                     {kAclOther, 0, kAclNoId}});
    ASSERT_TRUE(fs_->setxattr(root_, f->entry.nodeid, "system.posix_acl_access", a.data(),
                              a.size(), 0, 0)
                    .has_value());
    EXPECT_EQ(lstat_host(dir_ / "acl/f").st_mode & 0777, 0670u);
}

TEST_P(PassthroughAclTest, AclKillSgidClearsSetgidAsTheCallerWould) {
    REQUIRE_ROOT();
    auto acl = lookup_ok(kRootNodeId, "plain");
    testing::write_file(dir_ / "plain/s", "x", 0644);
    ASSERT_EQ(::chown((dir_ / "plain/s").c_str(), kUser, 2000), 0); // user not in 2000
    ASSERT_EQ(::chmod((dir_ / "plain/s").c_str(), 02770), 0);
    auto s = lookup_ok(acl.nodeid, "s");
    const std::string a = acl_xattr({{kAclUserObj, 7, kAclNoId},
                                     {kAclGroupObj, 7, kAclNoId},
                                     {kAclOther, 0, kAclNoId}});
    // Without the flag the server (root) keeps the bit.
    ASSERT_TRUE(fs_->setxattr(user_, s.nodeid, "system.posix_acl_access", a.data(), a.size(), 0,
                              0)
                    .has_value());
    EXPECT_NE(lstat_host(dir_ / "plain/s").st_mode & S_ISGID, 0u);
    ASSERT_TRUE(fs_->setxattr(user_, s.nodeid, "system.posix_acl_access", a.data(), a.size(), 0,
                              FUSE_SETXATTR_ACL_KILL_SGID)
                    .has_value());
    EXPECT_EQ(lstat_host(dir_ / "plain/s").st_mode & S_ISGID, 0u);
}

class PassthroughLabelTest : public PassthroughFsTest {
protected:
    void SetUp() override {
        PassthroughFsTest::SetUp();
        if (IsSkipped()) {
            return;
        }
        if (!is_root()) {
            GTEST_SKIP() << "security.* xattrs need CAP_SYS_ADMIN";
        }
        auto o = default_options();
        o.security_label = true;
        make_fs(o);
        fs_->init(38, FUSE_SECURITY_CTX);
        ASSERT_EQ(::chmod(dir_.path().c_str(), 0777), 0);
        labelled_ = user_;
        labelled_.has_secctx = true;
        labelled_.secctx_name = "security.vdhtest";
        labelled_.secctx_value = kValue;
        labelled_.secctx_size = sizeof(kValue);
        testing::write_file(dir_ / "probe", "");
        if (::setxattr((dir_ / "probe").c_str(), "security.vdhtest", "x", 1, 0) != 0) {
            GTEST_SKIP() << "security.* xattrs not stored here: " << errno;
        }
        ASSERT_EQ(::unlink((dir_ / "probe").c_str()), 0);
    }
    /// Names in the shared directory (no temporary name may be left).
    std::vector<std::string> names() {
        std::vector<std::string> out;
        for (const auto& e : read_dir(kRootNodeId, false)) {
            if (e.name != "." && e.name != "..") {
                out.push_back(e.name);
            }
        }
        std::sort(out.begin(), out.end());
        return out;
    }
    static constexpr char kValue[] = "system_u:object_r:vdh_t:s0"; // with its NUL, as SELinux
    RequestCtx labelled_;
};

TEST_P(PassthroughLabelTest, EveryCreateTypeStoresTheLabel) {
    const std::string want(kValue, sizeof(kValue));
    auto f = fs_->create(labelled_, kRootNodeId, "f", O_RDONLY, 0640, 0);
    ASSERT_TRUE(f.has_value()) << f.error();
    EXPECT_TRUE(fs_->release(root_, f->entry.nodeid, f->open.fh, 0, 0, 0).has_value());
    ASSERT_TRUE(fs_->mkdir(labelled_, kRootNodeId, "d", 0750, 0).has_value());
    ASSERT_TRUE(fs_->symlink(labelled_, kRootNodeId, "s", "target").has_value());
    ASSERT_TRUE(fs_->mknod(labelled_, kRootNodeId, "p", S_IFIFO | 0600, 0, 0).has_value());
    for (const char* n : {"f", "d", "s", "p"}) {
        SCOPED_TRACE(n);
        EXPECT_EQ(host_xattr(dir_ / n, "security.vdhtest"), want);
        EXPECT_EQ(lstat_host(dir_ / n).st_uid, kUser);
    }
    EXPECT_EQ(lstat_host(dir_ / "f").st_mode & 07777, 0640u);
    EXPECT_EQ(lstat_host(dir_ / "d").st_mode & 07777, 0750u);
    EXPECT_EQ(names(), (std::vector<std::string>{"d", "f", "p", "s"})) << "no temporary left";
    auto t = fs_->tmpfile(labelled_, kRootNodeId, O_RDWR, 0600, 0);
    ASSERT_TRUE(t.has_value());
    char buf[64];
    auto n = fs_->getxattr(root_, t->entry.nodeid, "security.vdhtest", buf, sizeof(buf));
    ASSERT_TRUE(n.has_value());
    EXPECT_EQ(std::string(buf, *n), want);
    EXPECT_TRUE(fs_->release(root_, t->entry.nodeid, t->open.fh, 0, 0, 0).has_value());
}

TEST_P(PassthroughLabelTest, ExistingNamesAndRefusedLabelsLeaveNothingBehind) {
    testing::write_file(dir_ / "f", "old", 0666);
    ASSERT_EQ(::mkdir((dir_ / "d").c_str(), 0777), 0);
    // O_EXCL on an existing name, a directory on an existing one: EEXIST, no temporary.
    EXPECT_EQ(fs_->create(labelled_, kRootNodeId, "f", O_RDWR | O_EXCL, 0644, 0).error(), EEXIST);
    EXPECT_EQ(fs_->mkdir(labelled_, kRootNodeId, "d", 0755, 0).error(), EEXIST);
    EXPECT_EQ(fs_->symlink(labelled_, kRootNodeId, "f", "x").error(), EEXIST);
    // Without O_EXCL the existing file is opened as it is (not relabelled).
    auto f = fs_->create(labelled_, kRootNodeId, "f", O_RDWR, 0644, 0);
    ASSERT_TRUE(f.has_value());
    EXPECT_EQ(read_fh(f->entry.nodeid, f->open.fh), "old");
    EXPECT_TRUE(fs_->release(root_, f->entry.nodeid, f->open.fh, 0, 0, 0).has_value());
    EXPECT_EQ(::lgetxattr((dir_ / "f").c_str(), "security.vdhtest", nullptr, 0), -1);
    // Only security.* names, never security.capability: refused before anything is made.
    RequestCtx bad = labelled_;
    for (std::string_view name : {"user.x", "trusted.x", "security.capability", "security.",
                                  "system.posix_acl_access"}) {
        SCOPED_TRACE(name);
        bad.secctx_name = name;
        EXPECT_EQ(fs_->mkdir(bad, kRootNodeId, "n", 0755, 0).error(), EPERM);
        EXPECT_EQ(fs_->create(bad, kRootNodeId, "n", O_RDWR, 0644, 0).error(), EPERM);
    }
    EXPECT_EQ(names(), (std::vector<std::string>{"d", "f"}));
    // Not negotiated: the context is ignored.
    fs_->init(38, 0);
    ASSERT_TRUE(fs_->mkdir(bad, kRootNodeId, "plain", 0755, 0).has_value());
    EXPECT_EQ(::lgetxattr((dir_ / "plain").c_str(), "security.vdhtest", nullptr, 0), -1);
}

INSTANTIATE_TEST_SUITE_P(Modes, PassthroughAclTest,
                         ::testing::Values(FileHandleMode::Never, FileHandleMode::Prefer),
                         [](const ::testing::TestParamInfo<FileHandleMode>& i) {
                             return i.param == FileHandleMode::Never ? std::string("Never")
                                                                     : std::string("Prefer");
                         });
INSTANTIATE_TEST_SUITE_P(Modes, PassthroughLabelTest,
                         ::testing::Values(FileHandleMode::Never, FileHandleMode::Prefer),
                         [](const ::testing::TestParamInfo<FileHandleMode>& i) {
                             return i.param == FileHandleMode::Never ? std::string("Never")
                                                                     : std::string("Prefer");
                         });

INSTANTIATE_TEST_SUITE_P(Modes, PassthroughFsTest,
                         ::testing::Values(FileHandleMode::Never, FileHandleMode::Prefer),
                         [](const ::testing::TestParamInfo<FileHandleMode>& i) {
                             return i.param == FileHandleMode::Never ? std::string("Never")
                                                                     : std::string("Prefer");
                         });

} // namespace
} // namespace vdh::virtiofs::passthrough

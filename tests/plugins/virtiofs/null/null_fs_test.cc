// SPDX-License-Identifier: MIT
// NullFs (`backend: null`): every Filesystem method called directly, one FUSE session
// through FuseDispatcher (INIT, LOOKUP hit and miss, READ on the synchronous fallback,
// READDIRPLUS decoded record by record), and the factory building it from a share profile.
#include "null/null_fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "filesystem_factory.h"
#include "fuse/fuse_dispatcher.h"
#include "fuse_test_util.h"
#include "share_profile.h"

namespace vdh::virtiofs::null {
namespace {

using test::Bytes;
using test::Chain;
using test::Completions;
using test::FakeEngine;
using test::Msg;

constexpr uint64_t kRoot = NullFs::kRootNodeId;

/// One entry a DirentSink received.
struct Listed {
    std::string name;
    uint64_t ino;
    uint32_t type;
    uint64_t off;
    bool has_entry;
    fuse_entry_out entry;
};

/// Takes up to \p room entries, then refuses.
class RecordingSink : public DirentSink {
public:
    RecordingSink(bool plus, size_t room) : plus_(plus), room_(room) {}
    bool add(std::string_view name, uint64_t ino, uint32_t type, uint64_t off,
             const fuse_entry_out* entry) override {
        if (got.size() == room_) {
            return false;
        }
        Listed l{std::string(name), ino, type, off, entry != nullptr, {}};
        if (entry != nullptr) {
            l.entry = *entry;
        }
        got.push_back(l);
        return true;
    }
    bool plus() const override { return plus_; }

    std::vector<Listed> got;

private:
    bool plus_;
    size_t room_;
};

NullFsOptions sample_options() {
    NullFsOptions o;
    o.entry_valid = 3;
    o.entry_valid_nsec = 4;
    o.attr_valid = 5;
    o.attr_valid_nsec = 6;
    o.file_open_flags = FOPEN_KEEP_CACHE;
    o.dir_open_flags = FOPEN_CACHE_DIR;
    o.capabilities.xattr = true;
    o.capabilities.writeback_cache = true;
    return o;
}

std::string name_of(uint32_t i) {
    char buf[NullFs::kEntryNameLen];
    NullFs::entry_name(i, buf);
    return std::string(buf, sizeof(buf));
}

class NullFsTest : public ::testing::Test {
protected:
    NullFs fs{sample_options()};
    RequestCtx rc{1, 1000, 1000, 42};
};

// ---- Names ----------------------------------------------------------------------------------

TEST(NullFsIds, EntryNamesAreZeroPadded) {
    EXPECT_EQ(name_of(0), "f00000");
    EXPECT_EQ(name_of(7), "f00007");
    EXPECT_EQ(name_of(1234), "f01234");
    EXPECT_EQ(name_of(NullFs::kDirEntries - 1), "f09999");
}

TEST(NullFsIds, IdsCarryKindAndAreStable) {
    const uint64_t a = NullFs::node_id(kRoot, "a", NodeKind::File);
    EXPECT_EQ(a, NullFs::node_id(kRoot, "a", NodeKind::File));
    EXPECT_EQ(NullFs::kind_of(a), 2u);
    EXPECT_NE(a, NullFs::node_id(kRoot, "b", NodeKind::File));
    const uint64_t d = NullFs::node_id(kRoot, "a", NodeKind::Dir);
    EXPECT_EQ(NullFs::kind_of(d), 1u);
    EXPECT_NE(d, kRoot);
    EXPECT_NE(d, 0u);
    // The same directory name one level down is another node (no aliasing of ancestors).
    EXPECT_NE(NullFs::node_id(d, "a", NodeKind::Dir), d);
    EXPECT_EQ(NullFs::kind_of(0), 0u);
}

TEST_F(NullFsTest, LookupOfAnyNameIsAOneGibFile) {
    Result<fuse_entry_out> e = fs.lookup(rc, kRoot, "some_file");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->nodeid, NullFs::node_id(kRoot, "some_file", NodeKind::File));
    EXPECT_EQ(e->attr.ino, e->nodeid);
    EXPECT_EQ(e->attr.mode, static_cast<uint32_t>(S_IFREG | 0666));
    EXPECT_EQ(e->attr.size, uint64_t{1} << 30);
    EXPECT_EQ(e->attr.blocks, (uint64_t{1} << 30) / 512);
    EXPECT_EQ(e->attr.nlink, 1u);
    EXPECT_EQ(e->entry_valid, 3u);
    EXPECT_EQ(e->entry_valid_nsec, 4u);
    EXPECT_EQ(e->attr_valid, 5u);
    EXPECT_EQ(e->attr_valid_nsec, 6u);
    // Same answer every time.
    Result<fuse_entry_out> again = fs.lookup(rc, kRoot, "some_file");
    ASSERT_TRUE(again);
    EXPECT_EQ(std::memcmp(&*e, &*again, sizeof(fuse_entry_out)), 0);
}

TEST_F(NullFsTest, LookupOfDirPrefixIsADirectory) {
    Result<fuse_entry_out> e = fs.lookup(rc, kRoot, "dir7");
    ASSERT_TRUE(e);
    EXPECT_TRUE(S_ISDIR(e->attr.mode));
    EXPECT_EQ(e->attr.nlink, 2u);
    // And it works as a parent.
    Result<fuse_entry_out> sub = fs.lookup(rc, e->nodeid, "f00001");
    ASSERT_TRUE(sub);
    EXPECT_TRUE(S_ISREG(sub->attr.mode));
    EXPECT_NE(sub->nodeid, fs.lookup(rc, kRoot, "f00001")->nodeid);
}

TEST_F(NullFsTest, LookupOfMissingPrefixIsEnoent) {
    for (const char* n : {"missing", "missing_file", "missingdir"}) {
        Result<fuse_entry_out> e = fs.lookup(rc, kRoot, n);
        ASSERT_FALSE(e) << n;
        EXPECT_EQ(e.error(), ENOENT) << n;
    }
    // Only a prefix counts.
    EXPECT_TRUE(fs.lookup(rc, kRoot, "not_missing"));
}

TEST_F(NullFsTest, LookupChecksParentAndName) {
    const uint64_t file = fs.lookup(rc, kRoot, "x")->nodeid;
    EXPECT_EQ(fs.lookup(rc, file, "y").error(), ENOTDIR);
    EXPECT_EQ(fs.lookup(rc, 0, "y").error(), ENOENT);
    EXPECT_EQ(fs.lookup(rc, kRoot, std::string(256, 'a')).error(), ENAMETOOLONG);
    EXPECT_TRUE(fs.lookup(rc, kRoot, std::string(255, 'a')));
    EXPECT_EQ(fs.lookup(rc, kRoot, "..")->nodeid, kRoot);
    const uint64_t dir = fs.lookup(rc, kRoot, "dir")->nodeid;
    EXPECT_EQ(fs.lookup(rc, dir, ".")->nodeid, dir);
}

TEST_F(NullFsTest, GetattrDependsOnKind) {
    Result<fuse_attr_out> root = fs.getattr(rc, kRoot, nullptr);
    ASSERT_TRUE(root);
    EXPECT_EQ(root->attr.ino, kRoot);
    EXPECT_EQ(root->attr.mode, static_cast<uint32_t>(S_IFDIR | 0777));
    EXPECT_EQ(root->attr_valid, 5u);
    const uint64_t file = fs.lookup(rc, kRoot, "x")->nodeid;
    const uint64_t fh = 9;
    Result<fuse_attr_out> a = fs.getattr(rc, file, &fh);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->attr.size, NullFs::kFileSize);
    EXPECT_EQ(a->attr.mtime, NullFs::kTime);
    EXPECT_EQ(fs.getattr(rc, 0, nullptr).error(), ENOENT);
    EXPECT_EQ(fs.getattr(rc, 8, nullptr).error(), ENOENT); // kind 0: never handed out
}

TEST_F(NullFsTest, SetattrAnswersTheChange) {
    const uint64_t file = fs.lookup(rc, kRoot, "x")->nodeid;
    fuse_setattr_in in{};
    in.valid = FATTR_SIZE | FATTR_MODE | FATTR_UID;
    in.size = 12345;
    in.mode = S_IFDIR | 0600; // the type bits are not the guest's to change
    in.uid = 77;
    Result<fuse_attr_out> a = fs.setattr(rc, file, in);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->attr.size, 12345u);
    EXPECT_EQ(a->attr.mode, static_cast<uint32_t>(S_IFREG | 0600));
    EXPECT_EQ(a->attr.uid, 77u);
    EXPECT_EQ(a->attr.gid, 0u);
    // Not kept.
    EXPECT_EQ(fs.getattr(rc, file, nullptr)->attr.size, NullFs::kFileSize);
    EXPECT_EQ(fs.setattr(rc, kRoot, in).error(), EISDIR);
}

TEST_F(NullFsTest, CreateTypeOpsGiveNodesOfTheirKind) {
    Result<fuse_entry_out> d = fs.mkdir(rc, kRoot, "plain", 0755, 022);
    ASSERT_TRUE(d);
    EXPECT_TRUE(S_ISDIR(d->attr.mode));
    EXPECT_TRUE(S_ISDIR(fs.getattr(rc, d->nodeid, nullptr)->attr.mode));

    Result<fuse_entry_out> l = fs.symlink(rc, kRoot, "ln", "anything");
    ASSERT_TRUE(l);
    EXPECT_TRUE(S_ISLNK(l->attr.mode));
    char buf[32];
    Result<size_t> n = fs.readlink(rc, l->nodeid, buf, sizeof(buf));
    ASSERT_TRUE(n);
    EXPECT_EQ(std::string(buf, *n), std::string(NullFs::kSymlinkTarget));
    EXPECT_EQ(fs.readlink(rc, d->nodeid, buf, sizeof(buf)).error(), EINVAL);

    Result<fuse_entry_out> p = fs.mknod(rc, kRoot, "pipe", S_IFIFO | 0600, 0, 0);
    ASSERT_TRUE(p);
    EXPECT_TRUE(S_ISFIFO(fs.getattr(rc, p->nodeid, nullptr)->attr.mode));
    EXPECT_EQ(fs.mknod(rc, kRoot, "d", S_IFDIR | 0600, 0, 0).error(), EINVAL);

    Result<CreateOut> c1 = fs.create(rc, kRoot, "new", O_RDWR | O_CREAT, 0644, 022);
    Result<CreateOut> c2 = fs.create(rc, kRoot, "new2", O_RDWR | O_CREAT, 0644, 022);
    ASSERT_TRUE(c1);
    ASSERT_TRUE(c2);
    EXPECT_TRUE(S_ISREG(c1->entry.attr.mode));
    EXPECT_EQ(c1->open.open_flags, static_cast<uint32_t>(FOPEN_KEEP_CACHE));
    EXPECT_NE(c1->open.fh, c2->open.fh);

    Result<CreateOut> t1 = fs.tmpfile(rc, kRoot, O_RDWR, 0600, 0);
    Result<CreateOut> t2 = fs.tmpfile(rc, kRoot, O_RDWR, 0600, 0);
    ASSERT_TRUE(t1);
    ASSERT_TRUE(t2);
    EXPECT_NE(t1->entry.nodeid, t2->entry.nodeid);

    Result<fuse_entry_out> hl = fs.link(rc, c1->entry.nodeid, kRoot, "hard");
    ASSERT_TRUE(hl);
    EXPECT_EQ(hl->nodeid, c1->entry.nodeid);
    EXPECT_EQ(fs.link(rc, d->nodeid, kRoot, "hard").error(), EPERM);
}

TEST_F(NullFsTest, RemovalsSucceedExceptForMissingNames) {
    EXPECT_TRUE(fs.unlink(rc, kRoot, "f00001"));
    EXPECT_TRUE(fs.rmdir(rc, kRoot, "dir1"));
    EXPECT_TRUE(fs.rename(rc, kRoot, "a", kRoot, "b", 0));
    EXPECT_EQ(fs.unlink(rc, kRoot, "missing").error(), ENOENT);
    EXPECT_EQ(fs.rename(rc, kRoot, "missing1", kRoot, "b", 0).error(), ENOENT);
    const uint64_t file = fs.lookup(rc, kRoot, "x")->nodeid;
    EXPECT_EQ(fs.rename(rc, kRoot, "a", file, "b", 0).error(), ENOTDIR);
}

// ---- Data -----------------------------------------------------------------------------------

TEST_F(NullFsTest, ReadZeroFillsEveryBuffer) {
    const uint64_t file = fs.lookup(rc, kRoot, "x")->nodeid;
    std::vector<uint8_t> a(1000, 0xAA), b(3000, 0xAA), c(96, 0xAA);
    const struct iovec iov[] = {{a.data(), a.size()}, {b.data(), b.size()}, {c.data(), c.size()}};
    Result<size_t> n = fs.read(rc, file, 1, 4096, iov, 3);
    ASSERT_TRUE(n);
    EXPECT_EQ(*n, 4096u);
    for (const auto* v : {&a, &b, &c}) {
        EXPECT_EQ(std::count(v->begin(), v->end(), 0), static_cast<long>(v->size()));
    }
}

TEST_F(NullFsTest, ReadStopsAtTheEnd) {
    const uint64_t file = fs.lookup(rc, kRoot, "x")->nodeid;
    std::vector<uint8_t> buf(4096, 0xAA);
    const struct iovec iov = {buf.data(), buf.size()};
    Result<size_t> n = fs.read(rc, file, 1, NullFs::kFileSize - 100, &iov, 1);
    ASSERT_TRUE(n);
    EXPECT_EQ(*n, 100u);
    EXPECT_EQ(std::count(buf.begin(), buf.begin() + 100, 0), 100);
    EXPECT_EQ(std::count(buf.begin() + 100, buf.end(), 0xAA), 4096 - 100);
    EXPECT_EQ(*fs.read(rc, file, 1, NullFs::kFileSize, &iov, 1), 0u);
    EXPECT_EQ(*fs.read(rc, file, 1, UINT64_MAX, &iov, 1), 0u);
    EXPECT_EQ(fs.read(rc, kRoot, 1, 0, &iov, 1).error(), EISDIR);
}

TEST_F(NullFsTest, WriteTakesEverything) {
    const uint64_t file = fs.lookup(rc, kRoot, "x")->nodeid;
    std::vector<uint8_t> a(100, 1), b(5000, 2);
    const struct iovec iov[] = {{a.data(), a.size()}, {b.data(), b.size()}};
    Result<size_t> n = fs.write(rc, file, 1, 77, iov, 2, 0);
    ASSERT_TRUE(n);
    EXPECT_EQ(*n, 5100u);
    EXPECT_EQ(fs.write(rc, kRoot, 1, 0, iov, 2, 0).error(), EISDIR);
}

TEST_F(NullFsTest, IoFdAlwaysRefuses) {
    const uint64_t file = fs.lookup(rc, kRoot, "x")->nodeid;
    EXPECT_EQ(fs.io_fd(RequestCtx{}, file, 1, false, 0).error(), EOPNOTSUPP);
    EXPECT_EQ(fs.io_fd(RequestCtx{}, file, 1, true, 0).error(), EOPNOTSUPP);
}

TEST_F(NullFsTest, OpenHandsOutDistinctHandles) {
    const uint64_t file = fs.lookup(rc, kRoot, "x")->nodeid;
    Result<fuse_open_out> a = fs.open(rc, file, O_RDONLY);
    Result<fuse_open_out> b = fs.open(rc, file, O_RDWR);
    ASSERT_TRUE(a);
    ASSERT_TRUE(b);
    EXPECT_NE(a->fh, b->fh);
    EXPECT_EQ(a->open_flags, static_cast<uint32_t>(FOPEN_KEEP_CACHE));
    Result<fuse_open_out> d = fs.opendir(rc, kRoot, O_RDONLY);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->open_flags, static_cast<uint32_t>(FOPEN_CACHE_DIR));
    EXPECT_EQ(fs.opendir(rc, file, 0).error(), ENOTDIR);
    EXPECT_TRUE(fs.flush(rc, file, a->fh, 0));
    EXPECT_TRUE(fs.fsync(rc, file, a->fh, true));
    EXPECT_TRUE(fs.release(rc, file, a->fh, 0, 0, 0));
    EXPECT_TRUE(fs.release(rc, file, 123456789, 0, 0, 0)); // never tracked
    EXPECT_TRUE(fs.releasedir(rc, kRoot, d->fh));
    EXPECT_TRUE(fs.fsyncdir(rc, kRoot, d->fh, false));
}

TEST_F(NullFsTest, HandlesAreUniqueAcrossThreads) {
    constexpr int kPerThread = 5000;
    const uint64_t file = fs.lookup(rc, kRoot, "x")->nodeid;
    std::vector<uint64_t> got[2];
    std::vector<std::thread> threads;
    for (auto& g : got) {
        threads.emplace_back([&, file] {
            for (int i = 0; i < kPerThread; ++i) {
                g.push_back(fs.open(rc, file, O_RDONLY)->fh);
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    std::set<uint64_t> all(got[0].begin(), got[0].end());
    all.insert(got[1].begin(), got[1].end());
    EXPECT_EQ(all.size(), 2u * kPerThread);
}

TEST_F(NullFsTest, LseekTreatsFilesAsAllData) {
    const uint64_t file = fs.lookup(rc, kRoot, "x")->nodeid;
    EXPECT_EQ(*fs.lseek(rc, file, 1, 4096, SEEK_DATA), 4096u);
    EXPECT_EQ(*fs.lseek(rc, file, 1, 4096, SEEK_HOLE), NullFs::kFileSize);
    EXPECT_EQ(fs.lseek(rc, file, 1, NullFs::kFileSize, SEEK_DATA).error(), ENXIO);
    EXPECT_EQ(fs.lseek(rc, file, 1, NullFs::kFileSize, SEEK_HOLE).error(), ENXIO);
    EXPECT_EQ(*fs.lseek(rc, file, 1, 17, SEEK_SET), 17u);
}

TEST_F(NullFsTest, RangeOpsSucceed) {
    const uint64_t file = fs.lookup(rc, kRoot, "x")->nodeid;
    EXPECT_TRUE(fs.fallocate(rc, file, 1, 0, 1 << 20, 0));
    EXPECT_EQ(fs.fallocate(rc, kRoot, 1, 0, 1, 0).error(), EISDIR);
    fuse_copy_file_range_in in{};
    in.len = 3 << 20;
    EXPECT_EQ(*fs.copy_file_range(rc, in, file), size_t{3} << 20);
    EXPECT_TRUE(fs.syncfs(rc, kRoot));
}

// ---- Directories ----------------------------------------------------------------------------

TEST_F(NullFsTest, ReaddirListsDotsAndTenThousandFiles) {
    RecordingSink sink(false, SIZE_MAX);
    ASSERT_TRUE(fs.readdir(rc, kRoot, 1, 0, sink));
    ASSERT_EQ(sink.got.size(), NullFs::kDirEntries + 2u);
    EXPECT_EQ(sink.got[0].name, ".");
    EXPECT_EQ(sink.got[0].ino, kRoot);
    EXPECT_EQ(sink.got[0].type, static_cast<uint32_t>(DT_DIR));
    EXPECT_EQ(sink.got[1].name, "..");
    for (size_t i = 0; i < sink.got.size(); ++i) {
        const Listed& l = sink.got[i];
        EXPECT_EQ(l.off, i + 1) << i;
        EXPECT_FALSE(l.has_entry);
        if (i >= 2) {
            ASSERT_EQ(l.name, name_of(static_cast<uint32_t>(i - 2)));
            EXPECT_EQ(l.type, static_cast<uint32_t>(DT_REG));
        }
    }
    // The listed inode numbers are what LOOKUP answers.
    EXPECT_EQ(sink.got[2].ino, fs.lookup(rc, kRoot, "f00000")->attr.ino);
    EXPECT_EQ(sink.got.back().ino, fs.lookup(rc, kRoot, "f09999")->attr.ino);
}

TEST_F(NullFsTest, ReaddirResumesAtTheOffset) {
    RecordingSink first(false, 5);
    ASSERT_TRUE(fs.readdir(rc, kRoot, 1, 0, first));
    ASSERT_EQ(first.got.size(), 5u);
    RecordingSink next(false, 3);
    ASSERT_TRUE(fs.readdir(rc, kRoot, 1, first.got.back().off, next));
    ASSERT_EQ(next.got.size(), 3u);
    EXPECT_EQ(next.got[0].name, "f00003");
    EXPECT_EQ(next.got[0].off, 6u);
    RecordingSink end(false, 10);
    ASSERT_TRUE(fs.readdir(rc, kRoot, 1, NullFs::kDirEntries + 2, end));
    EXPECT_TRUE(end.got.empty());
    ASSERT_TRUE(fs.readdir(rc, kRoot, 1, UINT64_MAX, end));
    EXPECT_TRUE(end.got.empty());
    const uint64_t file = fs.lookup(rc, kRoot, "x")->nodeid;
    EXPECT_EQ(fs.readdir(rc, file, 1, 0, end).error(), ENOTDIR);
}

TEST_F(NullFsTest, ReaddirplusCarriesLookupEntries) {
    const uint64_t dir = fs.lookup(rc, kRoot, "dirA")->nodeid;
    RecordingSink sink(true, 4);
    ASSERT_TRUE(fs.readdir(rc, dir, 1, 0, sink));
    ASSERT_EQ(sink.got.size(), 4u);
    EXPECT_TRUE(sink.got[0].has_entry);
    EXPECT_EQ(sink.got[0].entry.nodeid, 0u); // "." is name only
    EXPECT_EQ(sink.got[0].ino, dir);
    const Listed& f = sink.got[2];
    ASSERT_TRUE(f.has_entry);
    Result<fuse_entry_out> e = fs.lookup(rc, dir, "f00000");
    ASSERT_TRUE(e);
    EXPECT_EQ(std::memcmp(&f.entry, &*e, sizeof(fuse_entry_out)), 0);
    EXPECT_EQ(f.ino, e->nodeid);
}

// ---- The rest -------------------------------------------------------------------------------

TEST_F(NullFsTest, XattrsAreAlwaysEmpty) {
    char buf[64];
    EXPECT_TRUE(fs.setxattr(rc, kRoot, "user.a", "v", 1, 0, 0));
    EXPECT_EQ(fs.getxattr(rc, kRoot, "user.a", buf, sizeof(buf)).error(), ENODATA);
    EXPECT_EQ(fs.getxattr(rc, kRoot, "user.a", nullptr, 0).error(), ENODATA);
    EXPECT_EQ(*fs.listxattr(rc, kRoot, buf, sizeof(buf)), 0u);
    EXPECT_EQ(*fs.listxattr(rc, kRoot, nullptr, 0), 0u);
    EXPECT_EQ(fs.removexattr(rc, kRoot, "user.a").error(), ENODATA);
}

TEST_F(NullFsTest, LocksAreAlwaysGranted) {
    const uint64_t file = fs.lookup(rc, kRoot, "x")->nodeid;
    fuse_lk_in in{};
    in.fh = 1;
    in.owner = 9;
    in.lk.start = 10;
    in.lk.end = 20;
    in.lk.type = F_WRLCK;
    in.lk.pid = 42;
    Result<fuse_lk_out> o = fs.getlk(rc, file, in);
    ASSERT_TRUE(o);
    EXPECT_EQ(o->lk.type, static_cast<uint32_t>(F_UNLCK));
    EXPECT_EQ(o->lk.start, 10u);
    EXPECT_EQ(o->lk.end, 20u);
    EXPECT_TRUE(fs.setlk(rc, file, in, false));
    EXPECT_TRUE(fs.setlk(rc, file, in, true));
    EXPECT_FALSE(fs.interrupt_lock(1));
}

TEST_F(NullFsTest, StatfsAndAccess) {
    Result<fuse_statfs_out> s = fs.statfs(rc, kRoot);
    ASSERT_TRUE(s);
    EXPECT_EQ(s->st.bsize, 4096u);
    EXPECT_EQ(s->st.namelen, 255u);
    EXPECT_GT(s->st.blocks, 0u);
    EXPECT_EQ(s->st.bavail, s->st.blocks);
    EXPECT_TRUE(fs.access(rc, kRoot, R_OK | W_OK | X_OK));
    EXPECT_EQ(fs.access(rc, 0, R_OK).error(), ENOENT);
}

TEST_F(NullFsTest, CapabilitiesAreTheOptions) {
    FsCapabilities caps = fs.capabilities();
    EXPECT_TRUE(caps.xattr);
    EXPECT_TRUE(caps.writeback_cache);
    NullFs other{NullFsOptions{}};
    EXPECT_FALSE(other.capabilities().xattr);
}

TEST(NullFsReadonly, RefusesModificationsOnly) {
    NullFsOptions o;
    o.readonly = true;
    NullFs fs(o);
    const RequestCtx rc{};
    const uint64_t file = fs.lookup(rc, kRoot, "x")->nodeid;
    std::vector<uint8_t> buf(512, 0xAA);
    const struct iovec iov = {buf.data(), buf.size()};
    EXPECT_EQ(*fs.read(rc, file, 1, 0, &iov, 1), 512u);
    EXPECT_TRUE(fs.open(rc, file, O_RDONLY));
    EXPECT_EQ(fs.open(rc, file, O_RDWR).error(), EROFS);
    EXPECT_EQ(fs.open(rc, file, O_RDONLY | O_TRUNC).error(), EROFS);
    EXPECT_EQ(fs.write(rc, file, 1, 0, &iov, 1, 0).error(), EROFS);
    EXPECT_EQ(fs.mkdir(rc, kRoot, "d", 0755, 0).error(), EROFS);
    EXPECT_EQ(fs.create(rc, kRoot, "c", O_RDWR, 0644, 0).error(), EROFS);
    EXPECT_EQ(fs.unlink(rc, kRoot, "x").error(), EROFS);
    EXPECT_EQ(fs.setattr(rc, file, fuse_setattr_in{}).error(), EROFS);
    EXPECT_EQ(fs.access(rc, file, W_OK).error(), EROFS);
    EXPECT_TRUE(fs.access(rc, file, R_OK));
}

// ---- Through the dispatcher -----------------------------------------------------------------

constexpr uint64_t kUniq = 0x55;

fuse_out_header header_of(const Bytes& b) {
    fuse_out_header h{};
    std::memcpy(&h, b.data(), sizeof(h));
    return h;
}

class NullFsDispatcherTest : public ::testing::Test {
protected:
    void SetUp() override {
        Completions::list().clear();
        cfg.done = &Completions::done;
        disp = std::make_unique<FuseDispatcher>(fs, cfg);
    }

    /// Sends \p m with one out buffer of \p out bytes; returns the bytes of the reply.
    Bytes call(const Msg& m, size_t out) {
        Chain ch(m.build(), {out});
        const int64_t n = disp->handle(ch.req(), &ctx, &engine);
        EXPECT_GE(n, 16);
        if (n < 16) {
            return {};
        }
        Bytes r = ch.out(static_cast<size_t>(n));
        EXPECT_EQ(header_of(r).len, static_cast<uint32_t>(n));
        EXPECT_EQ(header_of(r).unique, kUniq);
        EXPECT_TRUE(ch.untouched_from(static_cast<size_t>(n)));
        return r;
    }

    void init() {
        fuse_init_in in{};
        in.major = 7;
        in.minor = 38;
        in.max_readahead = 131072;
        in.flags = FUSE_ASYNC_READ | FUSE_MAX_PAGES | FUSE_DO_READDIRPLUS | FUSE_INIT_EXT;
        Bytes r = call(Msg(FUSE_INIT, 0, kUniq).add(in), 4096);
        ASSERT_EQ(r.size(), 16 + sizeof(fuse_init_out));
        EXPECT_EQ(header_of(r).error, 0);
        ASSERT_TRUE(disp->initialized());
        EXPECT_NE(disp->negotiated_flags() & FUSE_DO_READDIRPLUS, 0u);
    }

    NullFs fs{sample_options()};
    FakeEngine engine; ///< takes everything offered: nothing may be offered
    FuseDispatcherConfig cfg;
    std::unique_ptr<FuseDispatcher> disp;
    FuseRequestCtx ctx{};
};

TEST_F(NullFsDispatcherTest, LookupHitAndMiss) {
    init();
    Bytes hit = call(Msg(FUSE_LOOKUP, kRoot, kUniq).name("bench_file"), 4096);
    ASSERT_EQ(hit.size(), 16 + sizeof(fuse_entry_out));
    EXPECT_EQ(header_of(hit).error, 0);
    fuse_entry_out e;
    std::memcpy(&e, hit.data() + 16, sizeof(e));
    EXPECT_EQ(e.nodeid, NullFs::node_id(kRoot, "bench_file", NodeKind::File));
    EXPECT_EQ(e.attr.size, NullFs::kFileSize);
    EXPECT_EQ(e.entry_valid, 3u);

    Bytes miss = call(Msg(FUSE_LOOKUP, kRoot, kUniq).name("missing_1"), 4096);
    ASSERT_EQ(miss.size(), 16u);
    EXPECT_EQ(header_of(miss).error, -ENOENT);
}

TEST_F(NullFsDispatcherTest, ReadIsSynchronousZeros) {
    init();
    const uint64_t file = NullFs::node_id(kRoot, "bench_file", NodeKind::File);
    fuse_read_in in{};
    in.fh = 1;
    in.offset = 8192;
    in.size = 4096;
    // The data part split over three guest buffers, pre-filled with kFill by Chain.
    Chain ch(Msg(FUSE_READ, file, kUniq).add(in).build(), {16, 1000, 3096, 512});
    const int64_t n = disp->handle(ch.req(), &ctx, &engine);
    ASSERT_EQ(n, 16 + 4096);
    Bytes r = ch.out(16 + 4096);
    EXPECT_EQ(header_of(r).error, 0);
    EXPECT_EQ(header_of(r).len, 16u + 4096u);
    EXPECT_EQ(std::count(r.begin() + 16, r.end(), 0), 4096);
    EXPECT_TRUE(ch.untouched_from(16 + 4096));
    // io_fd() refused, so the engine never saw it and nothing completes later.
    EXPECT_TRUE(engine.subs.empty());
    EXPECT_TRUE(Completions::list().empty());
    EXPECT_EQ(disp->stats().async_submitted, 0u);
}

TEST_F(NullFsDispatcherTest, ReadAtEndIsEmpty) {
    init();
    const uint64_t file = NullFs::node_id(kRoot, "bench_file", NodeKind::File);
    fuse_read_in in{};
    in.offset = NullFs::kFileSize;
    in.size = 4096;
    Bytes r = call(Msg(FUSE_READ, file, kUniq).add(in), 16 + 4096);
    EXPECT_EQ(r.size(), 16u);
    EXPECT_EQ(header_of(r).error, 0);
    EXPECT_TRUE(engine.subs.empty());
}

TEST_F(NullFsDispatcherTest, WriteIsSynchronous) {
    init();
    const uint64_t file = NullFs::node_id(kRoot, "bench_file", NodeKind::File);
    const std::string data(3000, 'w');
    fuse_write_in in{};
    in.fh = 1;
    in.size = static_cast<uint32_t>(data.size());
    Bytes r = call(Msg(FUSE_WRITE, file, kUniq).add(in).raw(data), 4096);
    ASSERT_EQ(r.size(), 16 + sizeof(fuse_write_out));
    fuse_write_out wo;
    std::memcpy(&wo, r.data() + 16, sizeof(wo));
    EXPECT_EQ(wo.size, 3000u);
    EXPECT_TRUE(engine.subs.empty());
}

TEST_F(NullFsDispatcherTest, ReaddirplusDecodesAndResumes) {
    init();
    uint64_t offset = 0;
    size_t seen = 0;
    std::vector<std::string> names;
    // Page through the whole listing in 4 KiB replies, decoding every fuse_direntplus.
    for (int round = 0; round < 1000; ++round) {
        fuse_read_in in{};
        in.fh = 1;
        in.offset = offset;
        in.size = 4096;
        Bytes r = call(Msg(FUSE_READDIRPLUS, kRoot, kUniq).add(in), 16 + 4096);
        ASSERT_GE(r.size(), 16u);
        ASSERT_EQ(header_of(r).error, 0);
        if (r.size() == 16) {
            break; // end of directory
        }
        size_t pos = 16;
        while (pos < r.size()) {
            ASSERT_LE(pos + sizeof(fuse_direntplus), r.size());
            fuse_direntplus dp;
            std::memcpy(&dp, r.data() + pos, sizeof(dp));
            const std::string name(reinterpret_cast<const char*>(r.data()) + pos +
                                       sizeof(fuse_direntplus),
                                   dp.dirent.namelen);
            EXPECT_EQ(dp.dirent.off, seen + 1);
            if (seen >= 2) {
                EXPECT_EQ(name, name_of(static_cast<uint32_t>(seen - 2)));
                EXPECT_EQ(dp.entry_out.nodeid, NullFs::node_id(kRoot, name, NodeKind::File));
                EXPECT_EQ(dp.entry_out.attr.size, NullFs::kFileSize);
                EXPECT_EQ(dp.dirent.type, static_cast<uint32_t>(DT_REG));
            } else {
                EXPECT_EQ(dp.entry_out.nodeid, 0u);
            }
            names.push_back(name);
            offset = dp.dirent.off;
            ++seen;
            pos += FUSE_DIRENTPLUS_SIZE(&dp);
        }
        ASSERT_EQ(pos, r.size());
    }
    EXPECT_EQ(seen, NullFs::kDirEntries + 2u);
    ASSERT_GE(names.size(), 3u);
    EXPECT_EQ(names[0], ".");
    EXPECT_EQ(names[1], "..");
    EXPECT_EQ(names.back(), "f09999");
}

// ---- The factory ----------------------------------------------------------------------------

std::unique_ptr<Filesystem> from_yaml(const std::string& yaml, std::string* err) {
    std::optional<ShareProfile> p = parse_share_profile(yaml, "t.yaml", "fs0", err);
    EXPECT_TRUE(p.has_value()) << *err;
    if (!p) {
        return nullptr;
    }
    return make_filesystem(*p, err);
}

TEST(NullFsFactory, BackendNullNeedsNoDirectory) {
    std::string err;
    // The directory does not exist: passthrough fails, null does not open it.
    EXPECT_EQ(from_yaml("shared_dir: /nonexistent/vdh-null-test\n", &err), nullptr);
    EXPECT_NE(err.find("cannot open shared_dir"), std::string::npos) << err;
    err.clear();
    std::unique_ptr<Filesystem> fs = from_yaml("shared_dir: /nonexistent/vdh-null-test\n"
                                               "backend: null\n"
                                               "cache: always\n"
                                               "xattr: true\n",
                                               &err);
    ASSERT_NE(fs, nullptr) << err;
    EXPECT_NE(dynamic_cast<NullFs*>(fs.get()), nullptr);
    EXPECT_TRUE(fs->capabilities().xattr);
    EXPECT_TRUE(fs->capabilities().cache_symlinks); // what capabilities_from says for always
    const RequestCtx rc{};
    Result<fuse_entry_out> e = fs->lookup(rc, kRoot, "f00000");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->entry_valid, 86400u);
    EXPECT_EQ(e->attr_valid, 86400u);
    EXPECT_EQ(fs->open(rc, e->nodeid, O_RDONLY)->open_flags,
              static_cast<uint32_t>(FOPEN_KEEP_CACHE));
    EXPECT_EQ(fs->opendir(rc, kRoot, 0)->open_flags, static_cast<uint32_t>(FOPEN_CACHE_DIR));
}

TEST(NullFsFactory, ReadonlyAndTimeoutOverrides) {
    std::string err;
    std::unique_ptr<Filesystem> fs = from_yaml("shared_dir: /x\n"
                                               "backend: \"null\"\n"
                                               "readonly: true\n"
                                               "entry_timeout_ms: 1500\n"
                                               "attr_timeout_ms: 0\n",
                                               &err);
    ASSERT_NE(fs, nullptr) << err;
    const RequestCtx rc{};
    Result<fuse_entry_out> e = fs->lookup(rc, kRoot, "a");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->entry_valid, 1u);
    EXPECT_EQ(e->entry_valid_nsec, 500000000u);
    EXPECT_EQ(e->attr_valid, 0u);
    EXPECT_EQ(fs->mkdir(rc, kRoot, "d", 0755, 0).error(), EROFS);
}

} // namespace
} // namespace vdh::virtiofs::null

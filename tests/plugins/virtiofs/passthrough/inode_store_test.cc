// SPDX-License-Identifier: MIT
// InodeStore rules (inode_store.h) against a temp dir, with FakeSys injecting handle
// failures, fake mount ids and inode number reuse. Handle tests skip when /tmp cannot
// produce handles or this process may not open them.

#include "inode_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "fake_sys.h"
#include "test_util.h"

namespace vdh::virtiofs::passthrough {
namespace {

using testing::FakeRule;
using testing::FakeSys;
using testing::TempDir;

class InodeStoreTest : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_FALSE(dir_.path().empty());
        base_fds_ = testing::count_open_fds();
    }

    void make_store(FileHandleMode mode, uint32_t fd_limit = 0, uint32_t inode_limit = 0) {
        store_.reset();
        budget_ = std::make_unique<GuestFdBudget>(fd_limit);
        handle_budget_ = std::make_unique<GuestFdBudget>(inode_limit);
        store_ = std::make_unique<InodeStore>(sys_, mode, *budget_, *handle_budget_);
        auto root = UniqueFd::from_syscall(
            ::open(dir_.path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
        ASSERT_TRUE(root.has_value());
        ASSERT_TRUE(store_->init_root(std::move(*root)).has_value());
    }

    bool need_handles() {
        if (!testing::handles_usable(dir_.path())) {
            return false;
        }
        return true;
    }

    Result<LookupResult> lookup(std::string_view name) {
        const auto& root = store_->root();
        return store_->lookup(*root, root->fd(), name);
    }

    uint64_t lookup_id(std::string_view name) {
        auto r = lookup(name);
        EXPECT_TRUE(r.has_value()) << name << ": " << (r ? 0 : r.error());
        return r ? r->inode->id : 0;
    }

    TempDir dir_;
    FakeSys sys_;
    std::unique_ptr<GuestFdBudget> budget_;
    std::unique_ptr<GuestFdBudget> handle_budget_;
    std::unique_ptr<InodeStore> store_;
    int base_fds_ = 0;
};

#define REQUIRE_HANDLES()                                                                 \
    do {                                                                                  \
        if (!need_handles()) {                                                            \
            GTEST_SKIP() << "no file handle support (or no CAP_DAC_READ_SEARCH) on /tmp"; \
        }                                                                                 \
    } while (0)

TEST_F(InodeStoreTest, RootIsNodeOneAndUnknownIdsAreEbadf) {
    make_store(FileHandleMode::Never);
    auto root = store_->get(kRootNodeId);
    ASSERT_TRUE(root.has_value());
    EXPECT_EQ((*root)->id, 1u);
    EXPECT_EQ((*root)->type, static_cast<uint32_t>(S_IFDIR));
    for (uint64_t bogus : {0ULL, 2ULL, 12345ULL, ~0ULL}) {
        auto r = store_->get(bogus);
        ASSERT_FALSE(r.has_value());
        EXPECT_EQ(r.error(), EBADF);
    }
}

TEST_F(InodeStoreTest, NodeIdsAreCountersNotHostInodes) {
    make_store(FileHandleMode::Never);
    testing::write_file(dir_ / "a", "a");
    testing::write_file(dir_ / "b", "b");
    uint64_t a = lookup_id("a");
    uint64_t b = lookup_id("b");
    EXPECT_EQ(a, 2u);
    EXPECT_EQ(b, 3u);
    EXPECT_NE(a, testing::ino_of(dir_ / "a"));
}

TEST_F(InodeStoreTest, LookupTwiceSameIdAndForgetReleasesFd) {
    make_store(FileHandleMode::Never);
    testing::write_file(dir_ / "f", "x");
    int fds0 = testing::count_open_fds();
    uint64_t id1 = lookup_id("f");
    uint64_t id2 = lookup_id("f");
    EXPECT_EQ(id1, id2);
    EXPECT_EQ(testing::count_open_fds(), fds0 + 1) << "one O_PATH fd for one inode";
    EXPECT_EQ((*store_->get(id1))->refcount.load(), 2u);
    store_->forget(id1, 1);
    EXPECT_TRUE(store_->get(id1).has_value());
    store_->forget(id1, 1);
    auto gone = store_->get(id1);
    ASSERT_FALSE(gone.has_value());
    EXPECT_EQ(gone.error(), EBADF);
    EXPECT_EQ(testing::count_open_fds(), fds0);
    EXPECT_EQ(store_->size(), 1u);
}

TEST_F(InodeStoreTest, ForgetSaturatesAndIgnoresUnknownAndRoot) {
    make_store(FileHandleMode::Never);
    testing::write_file(dir_ / "f", "x");
    uint64_t id = lookup_id("f");
    store_->forget(id, ~0ULL); // far more than held: saturates at zero, removes
    EXPECT_FALSE(store_->get(id).has_value());
    store_->forget(id, 1); // already gone: ignored
    store_->forget(999, 5);
    store_->forget(0, 1);
    store_->forget(kRootNodeId, 1000);
    EXPECT_TRUE(store_->get(kRootNodeId).has_value());
    // A new lookup gets a new id with count 1 (no leftover negative count).
    uint64_t again = lookup_id("f");
    EXPECT_NE(again, id);
    EXPECT_EQ((*store_->get(again))->refcount.load(), 1u);
}

TEST_F(InodeStoreTest, NamesAreSingleComponents) {
    make_store(FileHandleMode::Never);
    ASSERT_EQ(::mkdir((dir_ / "d").c_str(), 0755), 0);
    testing::write_file(dir_ / "d/f", "x");
    for (std::string_view bad : {std::string_view(""), std::string_view("d/f"),
                                 std::string_view("/etc"), std::string_view("a\0b", 3)}) {
        auto r = lookup(bad);
        ASSERT_FALSE(r.has_value());
        EXPECT_EQ(r.error(), EINVAL);
    }
    auto dot = lookup(".");
    ASSERT_TRUE(dot.has_value());
    EXPECT_EQ(dot->inode->id, kRootNodeId);
    auto dotdot = lookup("..");
    ASSERT_TRUE(dotdot.has_value());
    EXPECT_EQ(dotdot->inode->id, kRootNodeId) << "'..' of the share root stays at the root";
    // ".." of a subdirectory is its parent (the root here).
    auto d = lookup("d");
    ASSERT_TRUE(d.has_value());
    auto up = store_->lookup(*d->inode, d->inode->fd(), "..");
    ASSERT_TRUE(up.has_value());
    EXPECT_EQ(up->inode->id, kRootNodeId);
}

TEST_F(InodeStoreTest, SymlinksAreNotFollowed) {
    make_store(FileHandleMode::Never);
    ASSERT_EQ(::symlink("/etc", (dir_ / "out").c_str()), 0);
    auto r = lookup("out");
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->inode->type, static_cast<uint32_t>(S_IFLNK));
    auto through = store_->lookup(*r->inode, r->inode->fd(), "passwd");
    ASSERT_FALSE(through.has_value());
    EXPECT_EQ(through.error(), ENOTDIR);
    auto opened = store_->open(*r->inode, O_RDONLY);
    ASSERT_FALSE(opened.has_value());
    EXPECT_EQ(opened.error(), ELOOP);
}

TEST_F(InodeStoreTest, SpecialFilesAreNotOpened) {
    make_store(FileHandleMode::Never);
    ASSERT_EQ(::mkfifo((dir_ / "fifo").c_str(), 0666), 0);
    auto r = lookup("fifo");
    ASSERT_TRUE(r.has_value());
    auto opened = store_->open(*r->inode, O_RDONLY);
    ASSERT_FALSE(opened.has_value());
    EXPECT_EQ(opened.error(), EBADF);
}

TEST_F(InodeStoreTest, NeverModeHoldsFdsAndMakesNoHandles) {
    make_store(FileHandleMode::Never);
    testing::write_file(dir_ / "f", "x");
    ASSERT_NE(lookup_id("f"), 0u);
    EXPECT_EQ(store_->fd_held_count(), 2u); // root + f
    EXPECT_EQ(store_->handle_held_count(), 0u);
    EXPECT_EQ(sys_.name_to_handle_calls.load(), 0);
}

// A LOOKUP hit on an fd-held inode (Never mode) is answered by statx by name: no open.
TEST_F(InodeStoreTest, NeverModeHitByNameDoesNotOpen) {
    make_store(FileHandleMode::Never);
    testing::write_file(dir_ / "f", "xyz");
    ASSERT_EQ(::mkdir((dir_ / "d").c_str(), 0755), 0);
    auto first = lookup("f");
    ASSERT_TRUE(first.has_value());
    ASSERT_TRUE(lookup("d").has_value());
    int opens = sys_.open_calls.load();
    int fds0 = testing::count_open_fds();
    for (int i = 0; i < 3; ++i) {
        auto again = lookup("f");
        ASSERT_TRUE(again.has_value());
        EXPECT_EQ(again->inode, first->inode);
        EXPECT_EQ(again->attr.stx_ino, testing::ino_of(dir_ / "f"));
        EXPECT_EQ(again->attr.stx_size, 3u) << "fresh attributes from the by-name statx";
    }
    auto d = lookup("d");
    ASSERT_TRUE(d.has_value());
    EXPECT_EQ((d->attr.stx_mode & S_IFMT), static_cast<uint32_t>(S_IFDIR));
    EXPECT_EQ(sys_.open_calls.load(), opens) << "hits must not open the child";
    EXPECT_EQ(testing::count_open_fds(), fds0);
    EXPECT_EQ(first->inode->refcount.load(), 4u);
    // Attributes are current: a write after the first lookup shows in the next hit.
    testing::write_file(dir_ / "f", "longer");
    auto later = lookup("f");
    ASSERT_TRUE(later.has_value());
    EXPECT_EQ(later->attr.stx_size, 6u);
    EXPECT_EQ(store_->size(), 3u);
    // A miss is ENOENT without an open either.
    auto miss = lookup("nope");
    ASSERT_FALSE(miss.has_value());
    EXPECT_EQ(miss.error(), ENOENT);
    EXPECT_EQ(sys_.open_calls.load(), opens);
    // A new name still takes the open path (and becomes fd-held).
    testing::write_file(dir_ / "g", "g");
    auto g = lookup("g");
    ASSERT_TRUE(g.has_value());
    EXPECT_TRUE(g->inode->fd_held());
    EXPECT_EQ(sys_.open_calls.load(), opens + 1);
}

// The by-name path matches ids, never names: a name whose file was replaced (the old one
// still pinned by our O_PATH fd, so the new one has another inode number) is a new inode.
TEST_F(InodeStoreTest, ReplacedNameIsNotMatchedToOldInode) {
    make_store(FileHandleMode::Never);
    testing::write_file(dir_ / "a", "old");
    auto old_r = lookup("a");
    ASSERT_TRUE(old_r.has_value());
    uint64_t old_ino = testing::ino_of(dir_ / "a");
    ASSERT_EQ(::unlink((dir_ / "a").c_str()), 0);
    testing::write_file(dir_ / "a", "new!");
    ASSERT_NE(testing::ino_of(dir_ / "a"), old_ino);
    int opens = sys_.open_calls.load();
    auto new_r = lookup("a");
    ASSERT_TRUE(new_r.has_value());
    EXPECT_NE(new_r->inode->id, old_r->inode->id);
    EXPECT_NE(new_r->inode->ids.ino, old_ino);
    EXPECT_EQ(new_r->attr.stx_size, 4u);
    EXPECT_EQ(sys_.open_calls.load(), opens + 1) << "no match: the open path";
    EXPECT_EQ(old_r->inode->refcount.load(), 1u) << "the old inode got no reference";
    // The same name renamed over by another looked-up file resolves to that file's inode.
    testing::write_file(dir_ / "b", "bb");
    auto b = lookup("b");
    ASSERT_TRUE(b.has_value());
    ASSERT_EQ(::rename((dir_ / "b").c_str(), (dir_ / "a").c_str()), 0);
    auto a2 = lookup("a");
    ASSERT_TRUE(a2.has_value());
    EXPECT_EQ(a2->inode, b->inode);
    EXPECT_NE(a2->inode, new_r->inode);
}

// Handle-held inodes are found only by handle: lookups with handles never take the
// by-name path (they open, make the handle and look it up), so a by-name ids match can
// never return a handle-held inode, and rule 3's errors still fail every lookup.
TEST_F(InodeStoreTest, HandleModesNeverUseTheByNamePath) {
    REQUIRE_HANDLES();
    make_store(FileHandleMode::Prefer);
    ASSERT_EQ(::mkdir((dir_ / "d").c_str(), 0755), 0);
    testing::write_file(dir_ / "f", "x");
    ASSERT_TRUE(lookup("d").has_value());
    auto first = lookup("f");
    ASSERT_TRUE(first.has_value());
    ASSERT_FALSE(first->inode->fd_held());
    int opens = sys_.open_calls.load();
    int handles = sys_.name_to_handle_calls.load();
    auto again = lookup("f");
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(again->inode, first->inode) << "found by handle";
    EXPECT_EQ(sys_.open_calls.load(), opens + 1);
    EXPECT_GT(sys_.name_to_handle_calls.load(), handles);
    // An fd-held inode in Prefer mode: the handle is still made on every lookup, so a
    // real handle error still fails it (rule 3) instead of being skipped by a by-name hit.
    testing::write_file(dir_ / "g", "x");
    FakeRule unsupported;
    unsupported.handle_err = EOPNOTSUPP;
    sys_.set_rule(testing::ino_of(dir_ / "g"), unsupported);
    auto g = lookup("g");
    ASSERT_TRUE(g.has_value());
    ASSERT_TRUE(g->inode->fd_held());
    FakeRule broken;
    broken.handle_err = EIO;
    sys_.set_rule(testing::ino_of(dir_ / "g"), broken);
    auto g2 = lookup("g");
    ASSERT_FALSE(g2.has_value());
    EXPECT_EQ(g2.error(), EIO);
    EXPECT_EQ(g->inode->refcount.load(), 1u);
}

// Rule 1: a handle-held inode pins nothing and is found only by handle.
TEST_F(InodeStoreTest, HandleHeldInodePinsNoFd) {
    REQUIRE_HANDLES();
    make_store(FileHandleMode::Prefer);
    // The first inode seen on a mount provides the mount fd (it is the file itself when it
    // can be opened), so look up a directory first: "f" must then pin nothing at all.
    ASSERT_EQ(::mkdir((dir_ / "d").c_str(), 0755), 0);
    testing::write_file(dir_ / "f", "x");
    int fds0 = testing::count_open_fds();
    auto d = lookup("d");
    ASSERT_TRUE(d.has_value());
    EXPECT_EQ(testing::count_open_fds(), fds0 + 1) << "the mount fd (from d)";
    auto r = lookup("f");
    ASSERT_TRUE(r.has_value());
    EXPECT_FALSE(r->inode->fd_held());
    EXPECT_EQ(store_->handle_held_count(), 2u);
    EXPECT_EQ(store_->fd_held_count(), 1u); // the root only
    EXPECT_EQ(testing::count_open_fds(), fds0 + 1) << "f holds no fd";
    // Nothing pins it: once unlinked, opening the handle fails.
    ASSERT_EQ(::unlink((dir_ / "f").c_str()), 0);
    auto p = store_->path_fd(*r->inode);
    ASSERT_FALSE(p.has_value());
    EXPECT_EQ(p.error(), ESTALE);
}

TEST_F(InodeStoreTest, HandleHeldInodeNotFoundByReusedInodeNumber) {
    REQUIRE_HANDLES();
    make_store(FileHandleMode::Prefer);
    testing::write_file(dir_ / "a", "old");
    uint64_t a = lookup_id("a");
    ASSERT_NE(a, 0u);
    uint64_t old_ino = testing::ino_of(dir_ / "a");
    ASSERT_EQ(::unlink((dir_ / "a").c_str()), 0);
    testing::write_file(dir_ / "b", "new");
    // The new file reports the freed inode number (same dev and mount): what a
    // filesystem that reuses numbers does. Its handle differs (generation).
    FakeRule reuse;
    reuse.ino = old_ino;
    sys_.set_rule(testing::ino_of(dir_ / "b"), reuse);
    auto b = lookup("b");
    ASSERT_TRUE(b.has_value());
    EXPECT_EQ(b->attr.stx_ino, old_ino);
    EXPECT_NE(b->inode->id, a) << "a handle-held inode must never be found by ids";
    // And even when b falls back to an fd (no handle now), it is not matched to `a`.
    testing::write_file(dir_ / "c", "newer");
    FakeRule reuse_nohandle;
    reuse_nohandle.ino = old_ino;
    reuse_nohandle.handle_err = EOPNOTSUPP;
    sys_.set_rule(testing::ino_of(dir_ / "c"), reuse_nohandle);
    auto c = lookup("c");
    ASSERT_TRUE(c.has_value());
    EXPECT_NE(c->inode->id, a);
    EXPECT_TRUE(c->inode->fd_held());
}

// Rule 2: inode created without a handle, handle available later: found by ids.
TEST_F(InodeStoreTest, FdHeldInodeFoundByIdsWhenHandleBecomesAvailable) {
    REQUIRE_HANDLES();
    make_store(FileHandleMode::Prefer);
    testing::write_file(dir_ / "f", "x");
    FakeRule once;
    once.handle_err = EOPNOTSUPP;
    once.handle_err_times = 1;
    sys_.set_rule(testing::ino_of(dir_ / "f"), once);
    auto first = lookup("f");
    ASSERT_TRUE(first.has_value());
    EXPECT_TRUE(first->inode->fd_held());
    auto second = lookup("f");
    ASSERT_TRUE(second.has_value());
    EXPECT_EQ(second->inode->id, first->inode->id);
    EXPECT_EQ(first->inode->refcount.load(), 2u);
    EXPECT_EQ(store_->handle_held_count(), 0u);
}

TEST_F(InodeStoreTest, PreferFallsBackToFdWhenHandlesUnsupported) {
    REQUIRE_HANDLES();
    for (int err : {EOPNOTSUPP, ENOTSUP, EOVERFLOW}) {
        make_store(FileHandleMode::Prefer);
        std::string name = "f" + std::to_string(err);
        testing::write_file(dir_ / name, "x");
        FakeRule r;
        r.handle_err = err;
        sys_.set_rule(testing::ino_of(dir_ / name), r);
        auto a = lookup(name);
        ASSERT_TRUE(a.has_value()) << err;
        EXPECT_TRUE(a->inode->fd_held());
        auto b = lookup(name);
        ASSERT_TRUE(b.has_value());
        EXPECT_EQ(a->inode->id, b->inode->id) << "same way every time";
    }
}

TEST_F(InodeStoreTest, MandatoryFailsWhenHandlesUnsupported) {
    REQUIRE_HANDLES();
    make_store(FileHandleMode::Mandatory);
    testing::write_file(dir_ / "f", "x");
    FakeRule r;
    r.handle_err = EOPNOTSUPP;
    sys_.set_rule(testing::ino_of(dir_ / "f"), r);
    auto a = lookup("f");
    ASSERT_FALSE(a.has_value());
    EXPECT_EQ(a.error(), EOPNOTSUPP);
    EXPECT_EQ(store_->size(), 1u);
    // Without the fault, Mandatory uses handles.
    testing::write_file(dir_ / "g", "x");
    auto g = lookup("g");
    ASSERT_TRUE(g.has_value());
    EXPECT_FALSE(g->inode->fd_held());
}

TEST_F(InodeStoreTest, OtherHandleErrorsFailTheLookupEveryTime) {
    REQUIRE_HANDLES();
    for (auto mode : {FileHandleMode::Prefer, FileHandleMode::Mandatory}) {
        make_store(mode);
        testing::write_file(dir_ / "f", "x");
        FakeRule r;
        r.handle_err = EACCES;
        sys_.set_rule(testing::ino_of(dir_ / "f"), r);
        for (int i = 0; i < 3; ++i) {
            auto a = lookup("f");
            ASSERT_FALSE(a.has_value());
            EXPECT_EQ(a.error(), EACCES);
        }
        EXPECT_EQ(store_->size(), 1u) << "no fd-held fallback for real errors";
        sys_.clear_rules();
    }
}

TEST_F(InodeStoreTest, HandleSucceedingAfterFailureGivesHandleHeldInode) {
    REQUIRE_HANDLES();
    make_store(FileHandleMode::Prefer);
    testing::write_file(dir_ / "f", "x");
    FakeRule r;
    r.handle_err = EACCES;
    r.handle_err_times = 1;
    sys_.set_rule(testing::ino_of(dir_ / "f"), r);
    auto a = lookup("f");
    ASSERT_FALSE(a.has_value());
    EXPECT_EQ(a.error(), EACCES);
    auto b = lookup("f");
    ASSERT_TRUE(b.has_value());
    EXPECT_FALSE(b->inode->fd_held());
    auto c = lookup("f");
    ASSERT_TRUE(c.has_value());
    EXPECT_EQ(b->inode->id, c->inode->id);
}

// A parent directory on the same mount provides the mount fd for a special file.
TEST_F(InodeStoreTest, ParentDirectoryProvidesMountFdForSpecialFile) {
    REQUIRE_HANDLES();
    make_store(FileHandleMode::Prefer);
    ASSERT_EQ(::mkfifo((dir_ / "fifo").c_str(), 0600), 0);
    EXPECT_EQ(store_->mount_fds().size(), 0u);
    auto r = lookup("fifo");
    ASSERT_TRUE(r.has_value());
    EXPECT_FALSE(r->inode->fd_held());
    EXPECT_EQ(store_->mount_fds().size(), 1u);
    auto p = store_->path_fd(*r->inode);
    EXPECT_TRUE(p.has_value());
}

// Rule 3's reproducible case: a special file on a mount with no mount fd, whose parent
// is on another mount. Prefer → fd; later the mount gets an fd (from a regular file on
// it), and the special file is then found by ids (rule 2).
TEST_F(InodeStoreTest, SpecialFileOnMountWithoutMountFdFallsBackThenFoundByIds) {
    REQUIRE_HANDLES();
    make_store(FileHandleMode::Prefer);
    ASSERT_EQ(::mkfifo((dir_ / "fifo").c_str(), 0600), 0);
    testing::write_file(dir_ / "reg", "x");
    const uint64_t kOtherMount = 0x7fff0001;
    FakeRule other;
    other.mnt_id = kOtherMount;
    sys_.set_rule(testing::ino_of(dir_ / "fifo"), other);
    sys_.set_rule(testing::ino_of(dir_ / "reg"), other);

    auto fifo = lookup("fifo");
    ASSERT_TRUE(fifo.has_value());
    EXPECT_TRUE(fifo->inode->fd_held());
    EXPECT_EQ(store_->mount_fds().find(kOtherMount), nullptr);

    auto reg = lookup("reg");
    ASSERT_TRUE(reg.has_value());
    EXPECT_FALSE(reg->inode->fd_held()) << "a regular file provides its own mount fd";
    EXPECT_NE(store_->mount_fds().find(kOtherMount), nullptr);

    int calls = sys_.name_to_handle_calls.load();
    auto again = lookup("fifo");
    ASSERT_TRUE(again.has_value());
    EXPECT_GT(sys_.name_to_handle_calls.load(), calls) << "a handle was generated this time";
    EXPECT_EQ(again->inode->id, fifo->inode->id);
    EXPECT_TRUE(again->inode->fd_held());
}

TEST_F(InodeStoreTest, MandatoryFailsForSpecialFileWithoutMountFd) {
    REQUIRE_HANDLES();
    make_store(FileHandleMode::Mandatory);
    ASSERT_EQ(::mkfifo((dir_ / "fifo").c_str(), 0600), 0);
    FakeRule other;
    other.mnt_id = 0x7fff0002;
    sys_.set_rule(testing::ino_of(dir_ / "fifo"), other);
    auto r = lookup("fifo");
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(store_->size(), 1u);
}

TEST_F(InodeStoreTest, UnopenableFileWithoutMountFdFallsBackToFd) {
    REQUIRE_HANDLES();
    make_store(FileHandleMode::Prefer);
    testing::write_file(dir_ / "secret", "x", 0);
    FakeRule r;
    r.mnt_id = 0x7fff0003;
    r.reopen_err = EACCES; // e.g. no permission to open it O_RDONLY
    sys_.set_rule(testing::ino_of(dir_ / "secret"), r);
    auto a = lookup("secret");
    ASSERT_TRUE(a.has_value());
    EXPECT_TRUE(a->inode->fd_held());
    a = make_err(EIO); // references must not outlive their store

    make_store(FileHandleMode::Mandatory);
    auto b = lookup("secret");
    ASSERT_FALSE(b.has_value());
    EXPECT_EQ(b.error(), EACCES);
}

TEST_F(InodeStoreTest, MountFdSharedAndClosedWithLastInode) {
    REQUIRE_HANDLES();
    make_store(FileHandleMode::Prefer);
    testing::write_file(dir_ / "a", "x");
    testing::write_file(dir_ / "b", "x");
    int fds0 = testing::count_open_fds();
    auto a = lookup("a");
    auto b = lookup("b");
    ASSERT_TRUE(a.has_value() && b.has_value());
    EXPECT_EQ(a->inode->handle()->mount_fd, b->inode->handle()->mount_fd);
    EXPECT_EQ(store_->mount_fds().size(), 1u);
    EXPECT_EQ(testing::count_open_fds(), fds0 + 1);
    uint64_t ida = a->inode->id;
    uint64_t idb = b->inode->id;
    a = make_err(EIO); // drop the test's strong references
    b = make_err(EIO);
    store_->forget(ida, 1);
    EXPECT_EQ(store_->mount_fds().size(), 1u);
    EXPECT_EQ(testing::count_open_fds(), fds0 + 1);
    store_->forget(idb, 1);
    EXPECT_EQ(store_->mount_fds().size(), 0u);
    EXPECT_EQ(testing::count_open_fds(), fds0);
}

TEST_F(InodeStoreTest, FdLimitGivesEnfileForThisStoreOnly) {
    make_store(FileHandleMode::Never, 2);
    for (auto n : {"a", "b", "c"}) {
        testing::write_file(dir_ / n, "x");
    }
    uint64_t a = lookup_id("a");
    ASSERT_NE(lookup_id("b"), 0u);
    EXPECT_EQ(budget_->in_use(), 2u);
    auto c = lookup("c");
    ASSERT_FALSE(c.has_value());
    EXPECT_EQ(c.error(), ENFILE);
    // Known inodes are still found.
    EXPECT_EQ(lookup_id("a"), a);
    // Another share's budget is independent.
    GuestFdBudget other_budget(2);
    GuestFdBudget other_handles(0);
    InodeStore other(sys_, FileHandleMode::Never, other_budget, other_handles);
    ASSERT_TRUE(other.init_root(*UniqueFd::from_syscall(
                                    ::open(dir_.path().c_str(), O_PATH | O_CLOEXEC)))
                    .has_value());
    EXPECT_TRUE(other.lookup(*other.root(), other.root()->fd(), "c").has_value());
    // Forgetting frees a unit.
    store_->forget(a, 2);
    EXPECT_TRUE(lookup("c").has_value());
}

TEST_F(InodeStoreTest, HandleHeldInodesDoNotUseTheFdBudget) {
    REQUIRE_HANDLES();
    make_store(FileHandleMode::Prefer, 1);
    for (int i = 0; i < 5; ++i) {
        std::string n = "f" + std::to_string(i);
        testing::write_file(dir_ / n, "x");
        ASSERT_NE(lookup_id(n), 0u);
    }
    EXPECT_EQ(budget_->in_use(), 0u);
}

/// True when some fd of this process refers to \p path after it was deleted.
bool holds_deleted(const std::string& path) {
    const std::string want = path + " (deleted)";
    for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
        char buf[4096];
        ssize_t n = ::readlink(e.path().c_str(), buf, sizeof(buf));
        if (n > 0 && std::string(buf, static_cast<size_t>(n)) == want) {
            return true;
        }
    }
    return false;
}

// Finding 9 of issue 7: the first regular file looked up on a mount must not become the
// mount fd (it would keep the file's inode and blocks allocated after the host deletes it).
TEST_F(InodeStoreTest, MountFdIsADirectoryNotTheFirstFileLookedUp) {
    REQUIRE_HANDLES();
    make_store(FileHandleMode::Prefer);
    testing::write_file(dir_ / "big", std::string(1 << 16, 'x'));
    auto big = lookup("big"); // the first lookup on this mount
    ASSERT_TRUE(big.has_value());
    EXPECT_FALSE(big->inode->fd_held());
    auto mfd = store_->mount_fds().find(big->inode->ids.mnt_id);
    ASSERT_NE(mfd, nullptr);
    struct stat st{};
    ASSERT_EQ(::fstat(mfd->fd(), &st), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode)) << "mount fd is not a directory";
    ASSERT_EQ(::unlink((dir_ / "big").c_str()), 0);
    EXPECT_FALSE(holds_deleted(dir_ / "big")) << "the deleted file is still held open";
    // The share keeps working through the same mount fd.
    testing::write_file(dir_ / "next", "y");
    auto next = lookup("next");
    ASSERT_TRUE(next.has_value());
    EXPECT_FALSE(next->inode->fd_held());
    EXPECT_EQ(next->inode->handle()->mount_fd, mfd);
    EXPECT_TRUE(store_->open(*next->inode, O_RDONLY).has_value());
}

// A directory below the root: its parent (the root) provides the mount fd, not the
// looked-up file in a subdirectory either.
TEST_F(InodeStoreTest, MountFdFromParentDirectoryForFilesInSubdirectories) {
    REQUIRE_HANDLES();
    make_store(FileHandleMode::Prefer);
    ASSERT_EQ(::mkdir((dir_ / "d").c_str(), 0755), 0);
    testing::write_file(dir_ / "d/f", "x");
    auto d = lookup("d");
    ASSERT_TRUE(d.has_value());
    auto dfd = store_->path_fd(*d->inode);
    ASSERT_TRUE(dfd.has_value());
    auto f = store_->lookup(*d->inode, dfd->get(), "f");
    ASSERT_TRUE(f.has_value());
    struct stat st{};
    ASSERT_EQ(::fstat(f->inode->handle()->mount_fd->fd(), &st), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode));
}

// A regular file is the mount fd only when no directory of its mount is known: it is
// then the root of its own mount (a bind-mounted file), and nothing else is on it.
TEST_F(InodeStoreTest, RegularFileIsMountFdOnlyWhenAloneOnItsMount) {
    REQUIRE_HANDLES();
    make_store(FileHandleMode::Prefer);
    testing::write_file(dir_ / "reg", "x");
    const uint64_t kOtherMount = 0x7fff0011;
    FakeRule other;
    other.mnt_id = kOtherMount;
    sys_.set_rule(testing::ino_of(dir_ / "reg"), other);
    auto reg = lookup("reg");
    ASSERT_TRUE(reg.has_value());
    EXPECT_FALSE(reg->inode->fd_held());
    auto mfd = store_->mount_fds().find(kOtherMount);
    ASSERT_NE(mfd, nullptr);
    struct stat st{};
    ASSERT_EQ(::fstat(mfd->fd(), &st), 0);
    EXPECT_TRUE(S_ISREG(st.st_mode));
}

// Handle-held inodes hold no fd but take a unit of the share's inode_limit budget.
TEST_F(InodeStoreTest, InodeLimitGivesEnfileForHandleHeldInodes) {
    REQUIRE_HANDLES();
    make_store(FileHandleMode::Prefer, 0, 2);
    for (auto n : {"a", "b", "c"}) {
        testing::write_file(dir_ / n, "x");
    }
    uint64_t a = lookup_id("a");
    ASSERT_NE(lookup_id("b"), 0u);
    EXPECT_EQ(handle_budget_->in_use(), 2u);
    EXPECT_EQ(budget_->in_use(), 0u);
    auto c = lookup("c");
    ASSERT_FALSE(c.has_value());
    EXPECT_EQ(c.error(), ENFILE);
    EXPECT_EQ(store_->size(), 3u); // root, a, b
    // Known inodes are still found without a new unit.
    EXPECT_EQ(lookup_id("a"), a);
    EXPECT_EQ(handle_budget_->in_use(), 2u);
    // Forgetting frees the unit.
    store_->forget(a, 2);
    EXPECT_EQ(handle_budget_->in_use(), 1u);
    EXPECT_TRUE(lookup("c").has_value());
    store_->clear();
    EXPECT_EQ(handle_budget_->in_use(), 0u);
}

// The inode limit does not apply to fd-held inodes (those have the fd budget).
TEST_F(InodeStoreTest, InodeLimitDoesNotCountFdHeldInodes) {
    make_store(FileHandleMode::Never, 0, 1);
    for (auto n : {"a", "b", "c"}) {
        testing::write_file(dir_ / n, "x");
        ASSERT_NE(lookup_id(n), 0u);
    }
    EXPECT_EQ(handle_budget_->in_use(), 0u);
}

// open() checks the kernel's answer, for fd-held (reopen through /proc/self/fd) and
// handle-held (open_by_handle_at) inodes: a device node in its place is refused, and the
// open itself is non-blocking, with O_NONBLOCK cleared afterwards unless asked for.
TEST_F(InodeStoreTest, OpenChecksTypeAfterOpenAndClearsNonblock) {
    for (auto mode : {FileHandleMode::Never, FileHandleMode::Prefer}) {
        if (mode != FileHandleMode::Never && !need_handles()) {
            continue;
        }
        SCOPED_TRACE(static_cast<int>(mode));
        make_store(mode);
        testing::write_file(dir_ / "f", "x");
        auto r = lookup("f");
        ASSERT_TRUE(r.has_value());
        EXPECT_EQ(r->inode->fd_held(), mode == FileHandleMode::Never);
        const int reopens = sys_.reopen_calls.load();
        const int by_handle = sys_.open_by_handle_calls.load();

        auto plain = store_->open(*r->inode, O_RDWR);
        ASSERT_TRUE(plain.has_value()) << plain.error();
        EXPECT_NE(sys_.last_io_open_flags.load() & O_NONBLOCK, 0) << "open may block";
        EXPECT_NE(sys_.last_io_open_flags.load() & O_NOCTTY, 0);
        EXPECT_EQ(::fcntl(plain->get(), F_GETFL) & O_NONBLOCK, 0) << "O_NONBLOCK not cleared";
        auto nb = store_->open(*r->inode, O_RDONLY | O_NONBLOCK);
        ASSERT_TRUE(nb.has_value());
        EXPECT_NE(::fcntl(nb->get(), F_GETFL) & O_NONBLOCK, 0) << "the guest asked for it";
        if (mode == FileHandleMode::Never) {
            EXPECT_GT(sys_.reopen_calls.load(), reopens);
        } else {
            EXPECT_GT(sys_.open_by_handle_calls.load(), by_handle);
        }

        sys_.substitute_opens("/dev/null");
        auto dev = store_->open(*r->inode, O_RDONLY);
        sys_.substitute_opens("");
        ASSERT_FALSE(dev.has_value()) << "a character device was opened";
        EXPECT_EQ(dev.error(), EBADF);
        r = make_err(EIO);
    }
}

// The mount-fd manager keeps a reopened candidate only if the kernel says it is what
// was asked for (never a device node).
TEST_F(InodeStoreTest, MountFdCandidateOfWrongTypeIsRefused) {
    REQUIRE_HANDLES();
    make_store(FileHandleMode::Prefer);
    testing::write_file(dir_ / "f", "x");
    sys_.substitute_opens("/dev/null");
    auto r = lookup("f");
    sys_.substitute_opens("");
    ASSERT_TRUE(r.has_value()) << r.error();
    EXPECT_TRUE(r->inode->fd_held()) << "no mount fd: prefer falls back to an fd";
    EXPECT_EQ(store_->mount_fds().size(), 0u);
}

TEST_F(InodeStoreTest, ClearDropsEverythingButRoot) {
    make_store(FileHandleMode::Never);
    testing::write_file(dir_ / "a", "x");
    int fds0 = testing::count_open_fds();
    uint64_t a = lookup_id("a");
    store_->clear();
    EXPECT_FALSE(store_->get(a).has_value());
    EXPECT_TRUE(store_->get(kRootNodeId).has_value());
    EXPECT_EQ(testing::count_open_fds(), fds0);
    EXPECT_EQ(budget_->in_use(), 0u);
    // The root is still found by ids after clear().
    EXPECT_EQ(lookup_id("."), kRootNodeId);
}

TEST_F(InodeStoreTest, ConcurrentLookupAndForgetStayConsistent) {
    for (auto mode : {FileHandleMode::Never, FileHandleMode::Prefer}) {
        if (mode == FileHandleMode::Prefer && !need_handles()) {
            continue;
        }
        make_store(mode);
        testing::write_file(dir_ / "f", "x");
        std::atomic<int> failures{0};
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t) {
            threads.emplace_back([&] {
                for (int i = 0; i < 300; ++i) {
                    auto r = lookup("f");
                    if (!r) {
                        failures++;
                        continue;
                    }
                    uint64_t id = r->inode->id;
                    r = make_err(EIO);
                    store_->forget(id, 1);
                }
            });
        }
        for (auto& t : threads) {
            t.join();
        }
        EXPECT_EQ(failures.load(), 0);
        EXPECT_EQ(store_->size(), 1u);
        EXPECT_EQ(budget_->in_use(), 0u);
        EXPECT_EQ(store_->mount_fds().size(), 0u);
    }
}

TEST_F(InodeStoreTest, NoFdsLeakedAfterStoreDestroyed) {
    REQUIRE_HANDLES();
    int before = testing::count_open_fds();
    make_store(FileHandleMode::Prefer);
    testing::write_file(dir_ / "a", "x");
    ASSERT_EQ(::mkfifo((dir_ / "p").c_str(), 0600), 0);
    lookup_id("a");
    lookup_id("p");
    store_.reset();
    EXPECT_EQ(testing::count_open_fds(), before);
}

} // namespace
} // namespace vdh::virtiofs::passthrough

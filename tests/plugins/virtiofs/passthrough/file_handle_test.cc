// SPDX-License-Identifier: MIT
// FileHandle: generation on a real temp dir, "unsupported" as a value (EOPNOTSUPP,
// ENOTSUP, EOVERFLOW) versus real errors, ordering/hash, and opening.

#include "file_handle.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <map>
#include <unordered_set>

#include "fake_sys.h"
#include "test_util.h"

namespace vdh::virtiofs::passthrough {
namespace {

using testing::FakeRule;
using testing::FakeSys;
using testing::TempDir;

class FileHandleTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (!testing::handles_usable(dir_.path())) {
            GTEST_SKIP() << "no file handle support on /tmp";
        }
        testing::write_file(dir_ / "a", "a");
        testing::write_file(dir_ / "b", "b");
        dirfd_ = *UniqueFd::from_syscall(::open(dir_.path().c_str(), O_PATH | O_DIRECTORY));
    }

    Result<std::optional<FileHandle>> handle_of(const char* name) {
        return FileHandle::from_name_at(sys_, dirfd_.get(), name, 0);
    }

    TempDir dir_;
    FakeSys sys_;
    UniqueFd dirfd_;
};

TEST_F(FileHandleTest, SameFileSameHandleOtherFileDiffers) {
    auto a1 = handle_of("a");
    auto a2 = handle_of("a");
    auto b = handle_of("b");
    ASSERT_TRUE(a1.has_value() && a2.has_value() && b.has_value());
    ASSERT_TRUE(a1->has_value());
    EXPECT_GT((*a1)->size, 0u);
    EXPECT_LE((*a1)->size, FileHandle::kMaxBytes);
    EXPECT_EQ(**a1, **a2);
    EXPECT_FALSE(**a1 == **b);
    EXPECT_TRUE((**a1 < **b) != (**b < **a1));
    EXPECT_EQ(FileHandleHash{}(**a1), FileHandleHash{}(**a2));
    std::map<FileHandle, int> m{{**a1, 1}, {**b, 2}};
    EXPECT_EQ(m.at(**a2), 1);
    std::unordered_set<FileHandle, FileHandleHash> s{**a1, **b, **a2};
    EXPECT_EQ(s.size(), 2u);
}

TEST_F(FileHandleTest, FromFdMatchesFromName) {
    auto fd = UniqueFd::from_syscall(::openat(dirfd_.get(), "a", O_PATH | O_NOFOLLOW));
    ASSERT_TRUE(fd.has_value());
    auto h = FileHandle::from_fd(sys_, fd->get());
    ASSERT_TRUE(h.has_value() && h->has_value());
    EXPECT_EQ(**h, **handle_of("a"));
    struct statx st{};
    ASSERT_TRUE(sys_.statx(fd->get(), "", AT_EMPTY_PATH, STATX_MNT_ID, &st).has_value());
    EXPECT_EQ((*h)->mnt_id, st.stx_mnt_id) << "same id space as STATX_MNT_ID";
}

TEST_F(FileHandleTest, UnsupportedIsAValueOtherErrorsAreErrors) {
    for (int err : {EOPNOTSUPP, ENOTSUP, EOVERFLOW}) {
        FakeRule r;
        r.handle_err = err;
        sys_.set_rule(testing::ino_of(dir_ / "a"), r);
        auto h = handle_of("a");
        ASSERT_TRUE(h.has_value()) << err;
        EXPECT_FALSE(h->has_value()) << err;
    }
    for (int err : {EACCES, ENOMEM, EIO, ESTALE}) {
        FakeRule r;
        r.handle_err = err;
        sys_.set_rule(testing::ino_of(dir_ / "a"), r);
        auto h = handle_of("a");
        ASSERT_FALSE(h.has_value());
        EXPECT_EQ(h.error(), err);
    }
    auto missing = handle_of("nope");
    ASSERT_FALSE(missing.has_value());
    EXPECT_EQ(missing.error(), ENOENT);
}

TEST_F(FileHandleTest, OpensUntilTheFileIsGone) {
    auto h = handle_of("a");
    ASSERT_TRUE(h.has_value() && h->has_value());
    auto mount_fd = UniqueFd::from_syscall(::open(dir_.path().c_str(), O_RDONLY | O_DIRECTORY));
    ASSERT_TRUE(mount_fd.has_value());
    auto fd = (*h)->open(sys_, mount_fd->get(), O_RDONLY);
    ASSERT_TRUE(fd.has_value());
    char c = 0;
    EXPECT_EQ(::read(fd->get(), &c, 1), 1);
    EXPECT_EQ(c, 'a');
    fd = make_err(EIO); // close it
    ASSERT_EQ(::unlink((dir_ / "a").c_str()), 0);
    auto gone = (*h)->open(sys_, mount_fd->get(), O_PATH);
    ASSERT_FALSE(gone.has_value());
    EXPECT_EQ(gone.error(), ESTALE);
}

} // namespace
} // namespace vdh::virtiofs::passthrough

// SPDX-License-Identifier: MIT
// MountFdMap: candidates are checked by file type and by statx mount id (no mountinfo),
// fds are shared per mount and closed with the last user.

#include "mount_fd.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include "fake_sys.h"
#include "test_util.h"

namespace vdh::virtiofs::passthrough {
namespace {

using testing::FakeRule;
using testing::FakeSys;
using testing::TempDir;

class MountFdMapTest : public ::testing::Test {
protected:
    void SetUp() override {
        testing::write_file(dir_ / "f", "x");
        ASSERT_EQ(::mkfifo((dir_ / "p").c_str(), 0600), 0);
        dir_fd_ = *UniqueFd::from_syscall(::open(dir_.path().c_str(), O_PATH | O_DIRECTORY));
        file_fd_ = *UniqueFd::from_syscall(::open((dir_ / "f").c_str(), O_PATH));
        fifo_fd_ = *UniqueFd::from_syscall(::open((dir_ / "p").c_str(), O_PATH));
        struct statx st{};
        ASSERT_TRUE(sys_.statx(dir_fd_.get(), "", AT_EMPTY_PATH, STATX_MNT_ID, &st).has_value());
        ASSERT_NE(st.stx_mask & STATX_MNT_ID, 0u) << "kernel without STATX_MNT_ID";
        mnt_ = st.stx_mnt_id;
    }

    TempDir dir_;
    FakeSys sys_;
    UniqueFd dir_fd_, file_fd_, fifo_fd_;
    uint64_t mnt_ = 0;
};

TEST_F(MountFdMapTest, ReusesFdForSameMountIdAndClosesWithLastUser) {
    MountFdMap map(sys_);
    int fds0 = testing::count_open_fds();
    MountFdCandidate c{file_fd_.get(), S_IFREG};
    auto a = map.get(mnt_, &c, 1);
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ((*a)->mnt_id(), mnt_);
    EXPECT_EQ(testing::count_open_fds(), fds0 + 1);
    int reopens = sys_.reopen_calls.load();
    auto b = map.get(mnt_, &c, 1);
    ASSERT_TRUE(b.has_value());
    EXPECT_EQ(a->get(), b->get());
    EXPECT_EQ(sys_.reopen_calls.load(), reopens) << "no new fd for a known mount";
    EXPECT_EQ(map.size(), 1u);
    EXPECT_EQ(map.find(mnt_), *a);
    // The fd is O_RDONLY (usable for open_by_handle_at), not O_PATH.
    int fl = ::fcntl((*a)->fd(), F_GETFL);
    EXPECT_EQ(fl & O_PATH, 0);
    EXPECT_EQ(fl & O_ACCMODE, O_RDONLY);
    a = make_err(EIO);
    EXPECT_EQ(map.size(), 1u);
    b = make_err(EIO);
    EXPECT_EQ(map.size(), 0u);
    EXPECT_EQ(map.find(mnt_), nullptr);
    EXPECT_EQ(testing::count_open_fds(), fds0);
}

TEST_F(MountFdMapTest, SkipsUnusableCandidatesInOrder) {
    MountFdMap map(sys_);
    // A FIFO cannot be a mount fd; the directory after it can.
    MountFdCandidate cands[] = {{fifo_fd_.get(), S_IFIFO}, {dir_fd_.get(), S_IFDIR}};
    auto m = map.get(mnt_, cands, 2);
    ASSERT_TRUE(m.has_value());
    struct stat st{};
    ASSERT_EQ(::fstat((*m)->fd(), &st), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode));
}

TEST_F(MountFdMapTest, NoUsableCandidateIsAnError) {
    MountFdMap map(sys_);
    MountFdCandidate fifo{fifo_fd_.get(), S_IFIFO};
    auto r = map.get(mnt_, &fifo, 1);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error(), ENOTSUP);
    auto none = map.get(mnt_, nullptr, 0);
    ASSERT_FALSE(none.has_value());
    // No permission to open the candidate.
    FakeRule deny;
    deny.reopen_err = EACCES;
    sys_.set_rule(testing::ino_of(dir_ / "f"), deny);
    MountFdCandidate file{file_fd_.get(), S_IFREG};
    auto denied = map.get(mnt_, &file, 1);
    ASSERT_FALSE(denied.has_value());
    EXPECT_EQ(denied.error(), EACCES);
    EXPECT_EQ(map.size(), 0u);
}

TEST_F(MountFdMapTest, CandidateOnAnotherMountIsRejectedByStatx) {
    MountFdMap map(sys_);
    MountFdCandidate dir{dir_fd_.get(), S_IFDIR};
    auto r = map.get(mnt_ + 1000, &dir, 1);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error(), EXDEV);
    // With the fake reporting that mount id for the file, the check passes.
    FakeRule other;
    other.mnt_id = mnt_ + 1000;
    sys_.set_rule(testing::ino_of(dir_ / "f"), other);
    MountFdCandidate file{file_fd_.get(), S_IFREG};
    auto ok = map.get(mnt_ + 1000, &file, 1);
    ASSERT_TRUE(ok.has_value());
    EXPECT_EQ((*ok)->mnt_id(), mnt_ + 1000);
}

TEST_F(MountFdMapTest, MountFdOutlivingTheMapIsHarmless) {
    std::shared_ptr<MountFd> keep;
    {
        MountFdMap map(sys_);
        MountFdCandidate c{dir_fd_.get(), S_IFDIR};
        auto m = map.get(mnt_, &c, 1);
        ASSERT_TRUE(m.has_value());
        keep = *m;
    }
    EXPECT_GE(keep->fd(), 0);
    keep.reset();
}

} // namespace
} // namespace vdh::virtiofs::passthrough

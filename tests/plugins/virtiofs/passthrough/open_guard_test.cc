// SPDX-License-Identifier: MIT
// open_guard: the flags every open for a guest carries and the type check of the kernel's
// answer, on real files, a directory, a symlink, a FIFO and a character device.

#include "open_guard.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "test_util.h"

namespace vdh::virtiofs::passthrough {
namespace {

using testing::TempDir;

Result<UniqueFd> open_raw(const std::string& path, int flags) {
    return UniqueFd::from_syscall(::open(path.c_str(), flags | O_CLOEXEC));
}

TEST(OpenGuard, FlagsAreNonblockingAndNeverCreate) {
    const int f = guest_open_flags(O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_TRUNC);
    EXPECT_EQ(f & O_ACCMODE, O_RDWR);
    EXPECT_NE(f & O_APPEND, 0);
    EXPECT_NE(f & O_TRUNC, 0);
    EXPECT_NE(f & O_NONBLOCK, 0);
    EXPECT_NE(f & O_NOCTTY, 0);
    EXPECT_NE(f & O_CLOEXEC, 0);
    EXPECT_EQ(f & (O_CREAT | O_EXCL), 0);
    EXPECT_NE(guest_open_flags(O_RDWR | O_TMPFILE) & O_TMPFILE, O_TMPFILE);
    EXPECT_EQ(guest_open_flags(O_RDONLY | O_PATH) & O_PATH, 0);
}

TEST(OpenGuard, TypeRuleAllowsOnlyRegularFilesAndDirectories) {
    EXPECT_TRUE(check_guest_open_type(S_IFREG | 0644).has_value());
    EXPECT_TRUE(check_guest_open_type(S_IFDIR | 0755).has_value());
    EXPECT_EQ(check_guest_open_type(S_IFLNK | 0777).error(), ELOOP);
    for (mode_t t : {S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK}) {
        auto r = check_guest_open_type(t | 0666);
        ASSERT_FALSE(r.has_value()) << std::oct << t;
        EXPECT_EQ(r.error(), EBADF);
    }
}

TEST(OpenGuard, RegularFileAndDirectoryPassWithNonblockCleared) {
    TempDir dir;
    testing::write_file(dir / "f", "x");
    auto f = check_guest_open(open_raw(dir / "f", O_RDWR | O_NONBLOCK), O_RDWR);
    ASSERT_TRUE(f.has_value()) << f.error();
    EXPECT_EQ(::fcntl(f->get(), F_GETFL) & O_NONBLOCK, 0);
    EXPECT_EQ(::fcntl(f->get(), F_GETFL) & O_ACCMODE, O_RDWR);
    auto kept = check_guest_open(open_raw(dir / "f", O_RDONLY | O_NONBLOCK | O_APPEND),
                                 O_RDONLY | O_NONBLOCK);
    ASSERT_TRUE(kept.has_value());
    EXPECT_NE(::fcntl(kept->get(), F_GETFL) & O_NONBLOCK, 0) << "asked for by the guest";
    EXPECT_NE(::fcntl(kept->get(), F_GETFL) & O_APPEND, 0) << "other status flags kept";
    auto d = check_guest_open(open_raw(dir.path(), O_RDONLY | O_DIRECTORY | O_NONBLOCK),
                              O_RDONLY | O_DIRECTORY);
    ASSERT_TRUE(d.has_value());
    EXPECT_EQ(::fcntl(d->get(), F_GETFL) & O_NONBLOCK, 0);
}

TEST(OpenGuard, DevicesFifosAndSymlinksAreRefusedAndClosed) {
    TempDir dir;
    ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0600), 0);
    ASSERT_EQ(::symlink("fifo", (dir / "link").c_str()), 0);
    const int fds = testing::count_open_fds();
    auto fifo = check_guest_open(open_raw(dir / "fifo", O_RDONLY | O_NONBLOCK), O_RDONLY);
    ASSERT_FALSE(fifo.has_value());
    EXPECT_EQ(fifo.error(), EBADF);
    auto dev = check_guest_open(open_raw("/dev/null", O_RDWR | O_NONBLOCK), O_RDWR);
    ASSERT_FALSE(dev.has_value());
    EXPECT_EQ(dev.error(), EBADF);
    auto link = check_guest_open(open_raw(dir / "link", O_PATH | O_NOFOLLOW), O_RDONLY);
    ASSERT_FALSE(link.has_value());
    EXPECT_EQ(link.error(), ELOOP);
    EXPECT_EQ(testing::count_open_fds(), fds) << "refused fds are closed";
}

TEST(OpenGuard, OpenErrorsPassThrough) {
    auto r = check_guest_open(make_err(EACCES), O_RDONLY);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error(), EACCES);
}

} // namespace
} // namespace vdh::virtiofs::passthrough

// SPDX-License-Identifier: MIT
// Per-thread credentials: fsuid/fsgid/groups switch only the calling thread and are
// restored; CAP_FSETID drop; per-thread umask. Needs root (skips otherwise).

#include "credentials.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "test_util.h"
#include "vdh/unique_fd.h"

namespace vdh::virtiofs::passthrough {
namespace {

uid_t fsuid() { return static_cast<uid_t>(::syscall(SYS_setfsuid, -1)); }
gid_t fsgid() { return static_cast<gid_t>(::syscall(SYS_setfsgid, -1)); }
int ngroups() { return static_cast<int>(::syscall(SYS_getgroups, 0, nullptr)); }

#define REQUIRE_ROOT()                      \
    do {                                    \
        if (::geteuid() != 0) {             \
            GTEST_SKIP() << "needs root";   \
        }                                   \
    } while (0)

TEST(ScopedCredentials, SwitchesOnlyThisThreadAndRestores) {
    REQUIRE_ROOT();
    const uid_t u0 = fsuid();
    const gid_t g0 = fsgid();
    const int n0 = ngroups();
    std::atomic<bool> switched{false};
    std::atomic<bool> done{false};
    std::atomic<uid_t> other_seen{12345};
    std::thread other([&] {
        while (!switched) {
            std::this_thread::yield();
        }
        other_seen = fsuid();
        done = true;
    });
    {
        auto c = ScopedCredentials::enter(1000, 1001);
        ASSERT_TRUE(c.has_value());
        EXPECT_TRUE(c->switched());
        EXPECT_EQ(fsuid(), 1000u);
        EXPECT_EQ(fsgid(), 1001u);
        EXPECT_EQ(ngroups(), 0) << "supplementary groups dropped for the op";
        switched = true;
        while (!done) {
            std::this_thread::yield();
        }
    }
    other.join();
    EXPECT_EQ(other_seen.load(), u0) << "other threads keep their credentials";
    EXPECT_EQ(fsuid(), u0);
    EXPECT_EQ(fsgid(), g0);
    EXPECT_EQ(ngroups(), n0);
}

TEST(ScopedCredentials, SameIdsSwitchNothing) {
    auto c = ScopedCredentials::enter(fsuid(), fsgid());
    ASSERT_TRUE(c.has_value());
    EXPECT_FALSE(c->switched());
}

TEST(ScopedCredentials, FilesCreatedAreOwnedAndChecked) {
    REQUIRE_ROOT();
    testing::TempDir dir;
    ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);
    {
        auto c = ScopedCredentials::enter(1000, 1000);
        ASSERT_TRUE(c.has_value());
        // Root-owned 0755 directory: the user may not create in it (no CAP_DAC_OVERRIDE).
        EXPECT_EQ(::mkdir((dir / "x").c_str(), 0755), -1);
        EXPECT_EQ(errno, EACCES);
    }
    ASSERT_EQ(::chmod(dir.path().c_str(), 0777), 0);
    {
        auto c = ScopedCredentials::enter(1000, 1000);
        ASSERT_TRUE(c.has_value());
        ASSERT_EQ(::mkdir((dir / "y").c_str(), 0755), 0);
    }
    struct stat st{};
    ASSERT_EQ(::stat((dir / "y").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 1000u);
    EXPECT_EQ(st.st_gid, 1000u);
    // Privileges are back.
    ASSERT_EQ(::chmod(dir.path().c_str(), 0700), 0);
    EXPECT_EQ(::mkdir((dir / "z").c_str(), 0755), 0);
}

TEST(ScopedCredentials, MovedFromDoesNotRestoreTwice) {
    REQUIRE_ROOT();
    const uid_t u0 = fsuid();
    {
        auto c = ScopedCredentials::enter(1000, 1000);
        ASSERT_TRUE(c.has_value());
        ScopedCredentials moved(std::move(*c));
        EXPECT_EQ(fsuid(), 1000u);
    }
    EXPECT_EQ(fsuid(), u0);
}

TEST(ScopedDropFsetid, WriteClearsSuidOnlyWhileDropped) {
    REQUIRE_ROOT();
    testing::TempDir dir;
    testing::write_file(dir / "f", "x", 04755);
    auto fd = UniqueFd::from_syscall(::open((dir / "f").c_str(), O_WRONLY | O_CLOEXEC));
    ASSERT_TRUE(fd.has_value());
    ASSERT_EQ(::pwrite(fd->get(), "a", 1, 0), 1);
    struct stat st{};
    ASSERT_EQ(::fstat(fd->get(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 04755u);
    {
        ScopedDropFsetid d;
        EXPECT_TRUE(d.ok());
        ASSERT_EQ(::pwrite(fd->get(), "b", 1, 0), 1);
    }
    ASSERT_EQ(::fstat(fd->get(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0755u);
    ASSERT_EQ(::fchmod(fd->get(), 04755), 0);
    ASSERT_EQ(::pwrite(fd->get(), "c", 1, 0), 1);
    ASSERT_EQ(::fstat(fd->get(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 04755u) << "capability restored";
}

TEST(PrepareThreadForCreates, UmaskIsPerThread) {
    const mode_t process_umask = ::umask(022);
    std::thread t([] {
        ASSERT_TRUE(prepare_thread_for_creates().has_value());
        mode_t m = ::umask(0);
        EXPECT_EQ(m, 0u);
        EXPECT_TRUE(prepare_thread_for_creates().has_value()); // idempotent
    });
    t.join();
    const mode_t after = ::umask(process_umask);
    EXPECT_EQ(after, 022u) << "the process umask is untouched";
}

TEST(ScopedCredentials, SuppGroupIsTheOnlyGroupWhileAliveAndRestored) {
    REQUIRE_ROOT();
    const int n0 = ngroups();
    // Even with the thread's own ids (nothing else to switch) the group list is set.
    for (uint32_t uid : {1000u, static_cast<uint32_t>(fsuid())}) {
        SCOPED_TRACE(uid);
        const uint32_t g = 3000;
        {
            auto c = ScopedCredentials::enter(uid, uid == 1000 ? 1001 : fsgid(), &g);
            ASSERT_TRUE(c.has_value());
            EXPECT_TRUE(c->switched());
            gid_t list[4] = {};
            ASSERT_EQ(::syscall(SYS_getgroups, 4, list), 1);
            EXPECT_EQ(list[0], 3000u);
        }
        EXPECT_EQ(ngroups(), n0);
    }
}

TEST(ScopedUmask, SetsThisThreadsUmaskAndPutsBackZero) {
    const mode_t process_umask = ::umask(022);
    std::thread t([] {
        {
            auto u = ScopedUmask::enter(027);
            ASSERT_TRUE(u.has_value());
            const mode_t m = ::umask(027);
            EXPECT_EQ(m, 027u);
        }
        EXPECT_EQ(::umask(0), 0u);
        auto none = ScopedUmask::enter(0); // no-op
        EXPECT_TRUE(none.has_value());
    });
    t.join();
    EXPECT_EQ(::umask(process_umask), 022u) << "the process umask is untouched";
}

} // namespace
} // namespace vdh::virtiofs::passthrough

// SPDX-License-Identifier: MIT
// Tests of host/src/socket_dir.cc: creating a socket directory 0700, refusing one that
// someone else owns or can write, refusing writable ancestors without the sticky bit, and
// socket file mode and group.
#include "socket_dir.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "temp_dir.h"
#include "vdh/unique_fd.h"

namespace vdh {
namespace {

using testing::TempDir;

mode_t umask_now() {
    mode_t m = umask(0);
    umask(m);
    return m;
}

uint32_t mode_of(const std::string& p) {
    struct stat st {};
    EXPECT_EQ(lstat(p.c_str(), &st), 0) << p;
    return st.st_mode & 07777;
}

TEST(SocketDir, ParentDir) {
    EXPECT_EQ(parent_dir("/run/vdhost/fs0.sock"), "/run/vdhost");
    EXPECT_EQ(parent_dir("/fs0.sock"), "/");
    EXPECT_EQ(parent_dir("fs0.sock"), ".");
}

TEST(SocketDir, CreatesTheDirectoryAndParents0700) {
    TempDir t;
    std::string dir = t.file("a/b/sockets");
    std::string err;
    ASSERT_TRUE(secure_socket_dir(dir, false, 0, &err)) << err;
    EXPECT_EQ(mode_of(dir), 0700u);
    EXPECT_EQ(mode_of(t.file("a/b")) & 0755u, 0755u & ~umask_now()) << "parents";
    // Existing and ours: accepted again, unchanged.
    ASSERT_TRUE(secure_socket_dir(dir, false, 0, &err)) << err;
    EXPECT_EQ(mode_of(dir), 0700u);
}

TEST(SocketDir, WithAGroupTheGroupMayTraverse) {
    TempDir t;
    std::string dir = t.file("grp");
    std::string err;
    ASSERT_TRUE(secure_socket_dir(dir, true, 4242, &err)) << err;
    struct stat st {};
    ASSERT_EQ(lstat(dir.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0710u);
    if (geteuid() == 0) {
        EXPECT_EQ(st.st_gid, 4242u);
    }
}

TEST(SocketDir, RefusesAWorldWritableDirectory) {
    TempDir t;
    std::string dir = t.file("open");
    ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
    ASSERT_EQ(chmod(dir.c_str(), 0777), 0);
    std::string err;
    EXPECT_FALSE(secure_socket_dir(dir, false, 0, &err));
    EXPECT_EQ(err, "socket directory " + dir +
                       " has mode 0777: writable by group or others, who could pose as the "
                       "device (expected at most 0755; vdhost creates it 0700)");
    ASSERT_EQ(chmod(dir.c_str(), 0770), 0);
    EXPECT_FALSE(secure_socket_dir(dir, false, 0, &err));
    ASSERT_EQ(chmod(dir.c_str(), 0755), 0);
    EXPECT_TRUE(secure_socket_dir(dir, false, 0, &err)) << err;
}

TEST(SocketDir, RefusesAForeignOwner) {
    // Decided on the lstat result: other owners are refused, root and we are not.
    EXPECT_EQ(socket_dir_problem("/run/x", 1234, S_IFDIR | 0700, 1000),
              "socket directory /run/x is owned by uid 1234, not by us (uid 1000) or root: "
              "whoever owns it can pose as the device");
    EXPECT_EQ(socket_dir_problem("/run/x", 0, S_IFDIR | 0755, 1000), "");
    EXPECT_EQ(socket_dir_problem("/run/x", 1000, S_IFDIR | 0700, 1000), "");
    EXPECT_EQ(socket_dir_problem("/run/x", 1000, S_IFLNK | 0777, 1000),
              "socket directory /run/x is a symbolic link (expected a directory)");
    EXPECT_EQ(socket_dir_problem("/run/x", 1000, S_IFREG | 0600, 1000),
              "socket directory /run/x exists and is not a directory");
    if (geteuid() == 0) {
        TempDir t;
        std::string dir = t.file("theirs");
        ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
        ASSERT_EQ(chown(dir.c_str(), 65534, 65534), 0);
        std::string err;
        EXPECT_FALSE(secure_socket_dir(dir, false, 0, &err));
        EXPECT_NE(err.find("is owned by uid 65534"), std::string::npos) << err;
    }
}

TEST(SocketDir, RefusesASymlink) {
    TempDir t;
    ASSERT_EQ(mkdir(t.file("real").c_str(), 0700), 0);
    ASSERT_EQ(symlink(t.file("real").c_str(), t.file("link").c_str()), 0);
    std::string err;
    EXPECT_FALSE(secure_socket_dir(t.file("link"), false, 0, &err));
    EXPECT_NE(err.find("is a symbolic link"), std::string::npos) << err;
}

TEST(SocketDir, RefusesAWritableAncestorWithoutStickyBit) {
    TempDir t;
    std::string a = t.file("shared");
    ASSERT_EQ(mkdir(a.c_str(), 0700), 0);
    ASSERT_EQ(chmod(a.c_str(), 0777), 0);
    std::string err;
    EXPECT_FALSE(secure_socket_dir(a + "/sockets", false, 0, &err));
    EXPECT_EQ(err, a + " (an ancestor of the socket directory) has mode 0777: writable by "
                       "group or others without the sticky bit");
    ASSERT_EQ(chmod(a.c_str(), 01777), 0); // like /tmp
    EXPECT_TRUE(secure_socket_dir(a + "/sockets", false, 0, &err)) << err;
}

TEST(SocketDir, AppliesModeAndGroupToASocket) {
    TempDir t;
    std::string path = t.file("s.sock");
    UniqueFd fd(socket(AF_UNIX, SOCK_STREAM, 0));
    ASSERT_TRUE(fd.valid());
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    ASSERT_EQ(bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    std::string err;
    ASSERT_TRUE(apply_socket_access(path, 0660, geteuid() == 0, 4242, &err)) << err;
    struct stat st {};
    ASSERT_EQ(lstat(path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0660u);
    if (geteuid() == 0) {
        EXPECT_EQ(st.st_gid, 4242u);
    }
}

} // namespace
} // namespace vdh

// SPDX-License-Identifier: MIT
// Unit tests of the sandbox plan (host/src/sandbox.h): path normalisation, merging of the
// same directory added by several devices (writable wins), parents ordered before children,
// refusal of relative paths and of "/", and the kept capability set. Entering the sandbox is
// tested through the real binary in vdhost_sandbox_test.cc.
#include <gtest/gtest.h>

#include <linux/capability.h>

#include <algorithm>

#include "sandbox.h"

namespace vdh {
namespace {

TEST(SandboxPath, NormalisesLexically) {
    EXPECT_EQ(normalize_abs_path("/a//b/./c/../d/"), "/a/b/d");
    EXPECT_EQ(normalize_abs_path("/"), "/");
    EXPECT_EQ(normalize_abs_path("/.."), "/");
    EXPECT_EQ(normalize_abs_path("/tmp/x"), "/tmp/x");
    EXPECT_EQ(normalize_abs_path("relative/x"), "");
    EXPECT_EQ(normalize_abs_path(""), "");
}

TEST(SandboxPlan, MergesTheSameDirectoryWritableWins) {
    SandboxPlan plan;
    std::string err;
    ASSERT_TRUE(plan.add_share("/srv/share", false, &err)) << err;
    ASSERT_TRUE(plan.add_share("/srv/share/", true, &err)) << err;
    ASSERT_TRUE(plan.add_share("/srv/ro", false, &err)) << err;
    ASSERT_TRUE(plan.add_share("/srv//ro", false, &err)) << err;
    ASSERT_EQ(plan.dirs().size(), 2u);
    EXPECT_EQ(plan.dirs()[0].path, "/srv/ro");
    EXPECT_FALSE(plan.dirs()[0].writable);
    EXPECT_EQ(plan.dirs()[1].path, "/srv/share");
    EXPECT_TRUE(plan.dirs()[1].writable);
    EXPECT_FALSE(plan.dirs()[1].socket_dir);
}

TEST(SandboxPlan, SocketDirIsWritableAndMarked) {
    SandboxPlan plan;
    std::string err;
    ASSERT_TRUE(plan.add_share("/run/vdhost", false, &err));
    ASSERT_TRUE(plan.add_socket_dir("/run/vdhost", &err));
    ASSERT_EQ(plan.dirs().size(), 1u);
    EXPECT_TRUE(plan.dirs()[0].writable);
    EXPECT_TRUE(plan.dirs()[0].socket_dir);
}

TEST(SandboxPlan, ParentsComeBeforeChildren) {
    SandboxPlan plan;
    std::string err;
    for (const char* p : {"/a/b/c", "/z", "/a", "/a/b", "/a-b"}) {
        ASSERT_TRUE(plan.add_share(p, true, &err)) << p;
    }
    std::vector<std::string> order;
    for (const auto& d : plan.dirs()) {
        order.push_back(d.path);
    }
    auto pos = [&](const std::string& p) {
        return std::find(order.begin(), order.end(), p) - order.begin();
    };
    EXPECT_LT(pos("/a"), pos("/a/b"));
    EXPECT_LT(pos("/a/b"), pos("/a/b/c"));
    EXPECT_EQ(order.size(), 5u);
}

TEST(SandboxPlan, RefusesRelativePathsAndTheWholeFileSystem) {
    SandboxPlan plan;
    std::string err;
    EXPECT_FALSE(plan.add_share("srv/share", true, &err));
    EXPECT_EQ(err, "sandbox: srv/share is not an absolute path");
    EXPECT_FALSE(plan.add_share("/srv/..", true, &err));
    EXPECT_NE(err.find("host.sandbox: none"), std::string::npos) << err;
    EXPECT_FALSE(plan.add_empty_dir("run", &err));
    EXPECT_TRUE(plan.dirs().empty());
}

TEST(SandboxCaps, KeepsOnlyWhatThePassthroughNeeds) {
    const auto& caps = sandbox_kept_caps();
    for (int c : {CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID,
                  CAP_SETGID, CAP_SETUID, CAP_MKNOD, CAP_SETFCAP, CAP_LEASE}) {
        EXPECT_NE(std::find(caps.begin(), caps.end(), c), caps.end()) << c;
    }
    for (int c : {CAP_SYS_ADMIN, CAP_SETPCAP, CAP_SYS_PTRACE, CAP_SYS_MODULE, CAP_NET_ADMIN,
                  CAP_SYS_RAWIO, CAP_SYS_CHROOT}) {
        EXPECT_EQ(std::find(caps.begin(), caps.end(), c), caps.end()) << c;
    }
    EXPECT_EQ(caps.size(), 10u);
}

TEST(SandboxMode, Names) {
    EXPECT_STREQ(to_string(SandboxMode::Namespace), "namespace");
    EXPECT_STREQ(to_string(SandboxMode::Chroot), "chroot");
    EXPECT_STREQ(to_string(SandboxMode::None), "none");
}

} // namespace
} // namespace vdh

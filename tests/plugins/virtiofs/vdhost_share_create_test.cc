// SPDX-License-Identifier: MIT
// `create: true` in the share profile through the real path: `vdhost --check-config` on a
// config whose shared_dir is missing succeeds and creates nothing; the real vdhost (default
// sandbox: namespace, seccomp: kill) creates the directory before its sandbox binds it, and
// a FUSE client (tools/fuse_client) over vhost-user can LOOKUP and CREATE in it. Without
// `create: true` the error names file:line:column, config.shared_dir and the key to add.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>

#include "fuse_client/fuse_session.h"
#include "vdhost_share_fixture.h"

namespace vdh {
namespace {

using fuse_client::FuseSession;
using fuse_client::kRootNodeId;
using fuse_client::SessionOptions;
using testing::TempDir;
using testing::VdhostProcess;

class VdhostShareCreate : public ::testing::Test {
protected:
    std::string config(const std::string& extra) {
        return testing::host_yaml("[0]", dir_.file("ctl.sock")) +
               testing::virtiofs_device_yaml("fs0", dir_.file("fs0.sock"), "0", share_, extra);
    }
    std::string write_config(const std::string& yaml) {
        const std::string path = dir_.file("check.yaml");
        std::ofstream(path) << yaml;
        return path;
    }

    TempDir dir_;
    /// Two levels missing below the test's directory.
    std::string share_ = dir_.file("missing/share");
};

TEST_F(VdhostShareCreate, CheckConfigAcceptsAndCreatesNothingThenRunCreatesAndServes) {
    std::string out;
    const std::string path = write_config(config("      create: true\n"));
    ASSERT_EQ(testing::vdhost_check_config(path, &out), 0) << out;
    EXPECT_NE(out.find("OK (1 device"), std::string::npos) << out;
    EXPECT_NE(out.find("shared_dir " + share_ + " does not exist: it will be created at start"),
              std::string::npos)
        << out;
    EXPECT_NE(::access(dir_.file("missing").c_str(), F_OK), 0) << "--check-config created it";

    VdhostProcess vdhost;
    ASSERT_TRUE(vdhost.start(dir_, config("      create: true\n"),
                             {dir_.file("fs0.sock"), dir_.file("ctl.sock")}))
        << vdhost.log();
    EXPECT_NE(vdhost.log().find("created shared_dir " + share_ + " (create: true)"),
              std::string::npos)
        << vdhost.log();
    EXPECT_NE(vdhost.log().find("sandbox: namespace"), std::string::npos) << vdhost.log();
    struct stat st {};
    ASSERT_EQ(::lstat(share_.c_str(), &st), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0755u);
    ASSERT_EQ(::lstat(dir_.file("missing").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0755u);

    // The host puts a file in the new share; the guest finds it and creates its own.
    std::ofstream(share_ + "/from-host") << "hello";
    SessionOptions o;
    o.socket_path = dir_.file("fs0.sock");
    o.num_request_queues = 1;
    o.queue_size = 256;
    o.memory_bytes = 16ULL << 20;
    auto s = FuseSession::connect(o);
    ASSERT_TRUE(s.has_value()) << "connect: " << (s ? 0 : s.error()) << "\n" << vdhost.log();
    auto l = (*s)->lookup(kRootNodeId, "from-host");
    ASSERT_TRUE(l.has_value()) << l.error();
    EXPECT_EQ(l->attr.size, 5u);
    auto c = (*s)->create(kRootNodeId, "from-guest", O_RDWR | O_CREAT, S_IFREG | 0640);
    ASSERT_TRUE(c.has_value()) << c.error();
    EXPECT_TRUE((*s)->release(c->entry.nodeid, c->open.fh).has_value());
    EXPECT_EQ(::access((share_ + "/from-guest").c_str(), F_OK), 0);
    s->reset();
    EXPECT_EQ(vdhost.stop(), 0) << vdhost.log();
}

TEST_F(VdhostShareCreate, WithoutCreateTheErrorNamesPositionKeyAndCreate) {
    std::string out;
    const std::string yaml = config("");
    const std::string path = write_config(yaml);
    ASSERT_EQ(testing::vdhost_check_config(path, &out), 1) << out;
    // shared_dir's value: line of "shared_dir:" in the file, column 19 (6 spaces + key).
    size_t line = 1;
    for (size_t i = 0; i < yaml.find("shared_dir:"); ++i) {
        line += yaml[i] == '\n' ? 1 : 0;
    }
    const std::string where = path + ":" + std::to_string(line) + ":19: config.shared_dir: ";
    EXPECT_NE(out.find(where + "cannot access \"" + share_ + "\": No such file or directory"),
              std::string::npos)
        << out;
    EXPECT_NE(out.find("create: true"), std::string::npos) << out;

    // The real run fails the same way, before anything is served.
    VdhostProcess vdhost;
    EXPECT_FALSE(vdhost.start(dir_, yaml, {dir_.file("fs0.sock")}, std::chrono::seconds(3)));
    EXPECT_EQ(vdhost.stop(SIGKILL), 1) << vdhost.log();
    EXPECT_NE(vdhost.log().find("config.shared_dir: cannot access"), std::string::npos)
        << vdhost.log();
    EXPECT_NE(::access(dir_.file("missing").c_str(), F_OK), 0);
}

TEST_F(VdhostShareCreate, RefusesASymlinkOnTheWay) {
    ASSERT_EQ(::mkdir(dir_.file("real").c_str(), 0755), 0);
    ASSERT_EQ(::symlink(dir_.file("real").c_str(), dir_.file("link").c_str()), 0);
    share_ = dir_.file("link/share");
    std::string out;
    const std::string path = write_config(config("      create: true\n"));
    ASSERT_EQ(testing::vdhost_check_config(path, &out), 1) << out;
    EXPECT_NE(out.find("config.shared_dir: create: true: \"" + dir_.file("link") +
                       "\" is a symbolic link"),
              std::string::npos)
        << out;
    VdhostProcess vdhost;
    EXPECT_FALSE(vdhost.start(dir_, config("      create: true\n"), {dir_.file("fs0.sock")},
                              std::chrono::seconds(3)));
    EXPECT_EQ(vdhost.stop(SIGKILL), 1) << vdhost.log();
    EXPECT_NE(::access(dir_.file("real/share").c_str(), F_OK), 0);
}

} // namespace
} // namespace vdh

// SPDX-License-Identifier: MIT
// `xattrmap:` through the real path: the vdhost binary with two virtio-fs devices, driven by
// the FUSE client (tools/fuse_client) over vhost-user, with the host's view checked with
// plain *xattr calls on the shared files.
//   - fs0 maps every guest name under user.virtiofs. and hides the rest (list form:
//     `:prefix:all::user.virtiofs.:`, `:bad:all:::`): a guest's security.foo and
//     trusted.foo live on the host as user.virtiofs.security.foo / .trusted.foo, list
//     back under the guest's names with an exact size probe, and the host's own user.*
//     attribute is invisible to the guest.
//   - fs1 uses the shorthand `:map:trusted.:user.virtiofs.:` as one string: the guest
//     cannot reach the mapped names directly (EPERM; ENODATA for getxattr), unmapped
//     names pass unchanged, and the host's own trusted.* is hidden.
// `vdhost --check-config` refuses a bad rule with file:line:column, the key and the rule.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "fuse_client/fuse_session.h"
#include "vdhost_share_fixture.h"

namespace vdh {
namespace {

using fuse_client::FuseSession;
using fuse_client::kRootNodeId;
using fuse_client::Reply;
using fuse_client::SessionOptions;
using testing::TempDir;
using testing::VdhostProcess;

std::vector<uint8_t> bytes_of(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    return std::vector<uint8_t>(b, b + n);
}

void append(std::vector<uint8_t>& v, const std::string& s, bool nul) {
    v.insert(v.end(), s.begin(), s.end());
    if (nul) {
        v.push_back(0);
    }
}

/// The reply's errno (0 on success), or -1 when there was no reply.
int reply_errno(const Result<Reply>& r) {
    return r ? -r->header.error : -1;
}

/// The host's value of \p name on \p path, or "E<errno>".
std::string host_get(const std::string& path, const std::string& name) {
    char buf[256];
    ssize_t n = ::lgetxattr(path.c_str(), name.c_str(), buf, sizeof(buf));
    return n < 0 ? "E" + std::to_string(errno) : std::string(buf, static_cast<size_t>(n));
}

/// The host's names on \p path, '|'-separated, sorted as the file system lists them.
std::string host_list(const std::string& path) {
    char buf[4096];
    ssize_t n = ::llistxattr(path.c_str(), buf, sizeof(buf));
    std::string s = n < 0 ? "E" + std::to_string(errno) : std::string(buf, static_cast<size_t>(n));
    for (char& c : s) {
        c = c == '\0' ? '|' : c;
    }
    return s;
}

class VdhostXattrmap : public ::testing::Test {
  protected:
    void SetUp() override {
        share0_ = dir_.file("share0");
        share1_ = dir_.file("share1");
        ASSERT_EQ(::mkdir(share0_.c_str(), 0755), 0);
        ASSERT_EQ(::mkdir(share1_.c_str(), 0755), 0);
        std::ofstream(share0_ + "/f") << "x";
        std::ofstream(share1_ + "/f") << "x";
        if (::lsetxattr((share0_ + "/f").c_str(), "user.host_own", "h", 1, 0) != 0) {
            GTEST_SKIP() << "no user xattrs on " << dir_.path() << ": " << std::strerror(errno);
        }
    }

    void TearDown() override {
        sessions_.clear();
        if (HasFailure()) {
            ADD_FAILURE() << "vdhost log:\n" << vdhost_.log();
        }
        vdhost_.stop();
    }

    std::string config(const std::string& fs0_map, const std::string& fs1_map) {
        const std::string limit = "      fd_limit: 4096\n";
        return testing::host_yaml("[0]", dir_.file("ctl.sock")) +
               testing::virtiofs_device_yaml("fs0", dir_.file("fs0.sock"), "0", share0_,
                                             limit + fs0_map) +
               testing::virtiofs_device_yaml("fs1", dir_.file("fs1.sock"), "0", share1_,
                                             limit + fs1_map);
    }

    FuseSession* connect(const std::string& sock) {
        SessionOptions o;
        o.socket_path = sock;
        o.num_request_queues = 1;
        o.queue_size = 128;
        o.memory_bytes = 32ULL << 20;
        o.uid = 0; // a guest root: security.* and trusted.* are its to set
        o.gid = 0;
        auto s = FuseSession::connect(o);
        EXPECT_TRUE(s.has_value()) << "connect " << sock << ": " << (s ? 0 : s.error());
        if (!s) {
            return nullptr;
        }
        sessions_.push_back(std::move(*s));
        return sessions_.back().get();
    }

    static int setxattr(FuseSession* s, uint64_t node, const std::string& name,
                        const std::string& value) {
        // fuse_setxattr_in without SETXATTR_EXT (not negotiated): size, flags.
        const uint32_t head[2] = {static_cast<uint32_t>(value.size()), 0};
        std::vector<uint8_t> args = bytes_of(head, sizeof(head));
        append(args, name, true);
        append(args, value, false);
        return reply_errno(s->call(FUSE_SETXATTR, node, args, 64));
    }

    /// The value, or "E<errno>".
    static std::string getxattr(FuseSession* s, uint64_t node, const std::string& name) {
        const fuse_getxattr_in in{256, 0};
        std::vector<uint8_t> args = bytes_of(&in, sizeof(in));
        append(args, name, true);
        Result<Reply> r = s->call(FUSE_GETXATTR, node, args, 16 + 256);
        if (reply_errno(r) != 0) {
            return "E" + std::to_string(reply_errno(r));
        }
        return std::string(r->payload.begin(), r->payload.end());
    }

    static int removexattr(FuseSession* s, uint64_t node, const std::string& name) {
        std::vector<uint8_t> args;
        append(args, name, true);
        return reply_errno(s->call(FUSE_REMOVEXATTR, node, args, 64));
    }

    /// LISTXATTR with \p size: the size probe's answer (size 0), or the list with '|' for
    /// NUL; "E<errno>" on error.
    static std::string listxattr(FuseSession* s, uint64_t node, uint32_t size) {
        const fuse_getxattr_in in{size, 0};
        Result<Reply> r = s->call(FUSE_LISTXATTR, node, bytes_of(&in, sizeof(in)), 16 + 4096);
        if (reply_errno(r) != 0) {
            return "E" + std::to_string(reply_errno(r));
        }
        if (size == 0) {
            fuse_getxattr_out out{};
            if (r->payload.size() != sizeof(out)) {
                return "bad size reply";
            }
            std::memcpy(&out, r->payload.data(), sizeof(out));
            return std::to_string(out.size);
        }
        std::string list(r->payload.begin(), r->payload.end());
        for (char& c : list) {
            c = c == '\0' ? '|' : c;
        }
        return list;
    }

    TempDir dir_;
    VdhostProcess vdhost_;
    std::string share0_, share1_;
    std::vector<std::unique_ptr<FuseSession>> sessions_;
};

TEST_F(VdhostXattrmap, GuestNamesLiveUnderThePrefixAndHostNamesStayHidden) {
    const std::string fs0 = "      xattrmap:\n"
                            "        - \":prefix:all::user.virtiofs.:\"\n"
                            "        - \":bad:all:::\"\n";
    const std::string fs1 = "      xattr: true\n"
                            "      xattrmap: \":map:trusted.:user.virtiofs.:\"\n";
    const std::string yaml = config(fs0, fs1);
    ASSERT_TRUE(vdhost_.start(
        dir_, yaml, {dir_.file("fs0.sock"), dir_.file("fs1.sock"), dir_.file("ctl.sock")}))
        << vdhost_.log();
    const std::string f0 = share0_ + "/f";
    const std::string f1 = share1_ + "/f";

    // fs0: xattrmap alone turned xattr support on.
    FuseSession* s = connect(dir_.file("fs0.sock"));
    ASSERT_NE(s, nullptr);
    auto e = s->lookup(kRootNodeId, "f");
    ASSERT_TRUE(e.has_value()) << e.error();
    const uint64_t node = e->nodeid;
    ASSERT_EQ(setxattr(s, node, "security.foo", "label"), 0);
    ASSERT_EQ(setxattr(s, node, "trusted.foo", "t"), 0);
    EXPECT_EQ(host_get(f0, "user.virtiofs.security.foo"), "label");
    EXPECT_EQ(host_get(f0, "user.virtiofs.trusted.foo"), "t");
    EXPECT_EQ(host_get(f0, "security.foo"), "E" + std::to_string(ENODATA));
    EXPECT_EQ(host_get(f0, "trusted.foo"), "E" + std::to_string(ENODATA));
    EXPECT_EQ(getxattr(s, node, "security.foo"), "label");
    EXPECT_EQ(getxattr(s, node, "trusted.foo"), "t");
    // The host's own user.host_own: the guest's user.host_own is another (mapped) name.
    EXPECT_EQ(getxattr(s, node, "user.host_own"), "E" + std::to_string(ENODATA));

    // The list: the host has user.host_own too; the guest sees only its names, and the
    // size probe is that list's exact size (13 + 12 bytes), not the host list's.
    EXPECT_NE(host_list(f0).find("user.host_own|"), std::string::npos) << host_list(f0);
    EXPECT_EQ(listxattr(s, node, 0), "25");
    const std::string list = listxattr(s, node, 25);
    EXPECT_TRUE(list == "security.foo|trusted.foo|" || list == "trusted.foo|security.foo|") << list;
    EXPECT_EQ(listxattr(s, node, 24), "E" + std::to_string(ERANGE));

    ASSERT_EQ(removexattr(s, node, "trusted.foo"), 0);
    EXPECT_EQ(host_get(f0, "user.virtiofs.trusted.foo"), "E" + std::to_string(ENODATA));
    EXPECT_EQ(host_get(f0, "user.host_own"), "h");
    EXPECT_EQ(listxattr(s, node, 0), "13");
    EXPECT_EQ(listxattr(s, node, 100), "security.foo|");

    // fs1, the map shorthand with a key: trusted.* mapped, the rest passes, the mapped
    // names are out of the guest's direct reach, the host's own trusted.* is hidden.
    ASSERT_EQ(::lsetxattr(f1.c_str(), "trusted.host_own", "H", 1, 0), 0) << std::strerror(errno);
    FuseSession* s1 = connect(dir_.file("fs1.sock"));
    ASSERT_NE(s1, nullptr);
    auto e1 = s1->lookup(kRootNodeId, "f");
    ASSERT_TRUE(e1.has_value()) << e1.error();
    const uint64_t node1 = e1->nodeid;
    ASSERT_EQ(setxattr(s1, node1, "trusted.overlay.opaque", "y"), 0);
    ASSERT_EQ(setxattr(s1, node1, "user.plain", "p"), 0);
    EXPECT_EQ(host_get(f1, "user.virtiofs.trusted.overlay.opaque"), "y");
    EXPECT_EQ(host_get(f1, "user.plain"), "p");
    EXPECT_EQ(host_get(f1, "trusted.host_own"), "H");
    EXPECT_EQ(setxattr(s1, node1, "user.virtiofs.trusted.overlay.opaque", "n"), EPERM);
    EXPECT_EQ(removexattr(s1, node1, "user.virtiofs.trusted.overlay.opaque"), EPERM);
    EXPECT_EQ(getxattr(s1, node1, "user.virtiofs.trusted.overlay.opaque"),
              "E" + std::to_string(ENODATA));
    EXPECT_EQ(getxattr(s1, node1, "trusted.host_own"), "E" + std::to_string(ENODATA));
    const std::string list1 = listxattr(s1, node1, 4096);
    EXPECT_NE(list1.find("trusted.overlay.opaque|"), std::string::npos) << list1;
    EXPECT_NE(list1.find("user.plain|"), std::string::npos) << list1;
    EXPECT_EQ(list1.find("host_own"), std::string::npos) << list1;
    EXPECT_EQ(list1.find("user.virtiofs."), std::string::npos) << list1;
    EXPECT_EQ(listxattr(s1, node1, 0), std::to_string(list1.size()));
}

TEST_F(VdhostXattrmap, CheckConfigRefusesBadRulesWithPosition) {
    // A bad item of the list form: its own position and index.
    const std::string yaml = config("      xattrmap:\n"
                                    "        - \":prefix:all::user.virtiofs.:\"\n"
                                    "        - \":bda:all:::\"\n",
                                    "");
    const std::string path = dir_.file("check.yaml");
    std::ofstream(path) << yaml;
    std::string out;
    ASSERT_EQ(testing::vdhost_check_config(path, &out), 1) << out;
    size_t line = 1;
    for (size_t i = 0; i < yaml.find(":bda:"); ++i) {
        line += yaml[i] == '\n' ? 1 : 0;
    }
    EXPECT_NE(out.find(path + ":" + std::to_string(line) +
                       ":11: config.xattrmap: rule 2: unknown type \"bda\" (expected prefix, "
                       "ok, bad, unsupported or map)"),
              std::string::npos)
        << out;

    // xattr: false beside it is a contradiction.
    const std::string yaml2 = config("", "      xattr: false\n"
                                         "      xattrmap: \":map::user.virtiofs.:\"\n");
    std::ofstream(path, std::ios::trunc) << yaml2;
    ASSERT_EQ(testing::vdhost_check_config(path, &out), 1) << out;
    EXPECT_NE(out.find("config.xattrmap: needs xattr support, but config.xattr is false"),
              std::string::npos)
        << out;
}

} // namespace
} // namespace vdh

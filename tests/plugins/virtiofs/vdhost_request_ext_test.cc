// SPDX-License-Identifier: MIT
// Issue 10 items 2-4 through the real path: the vdhost binary with a share of
// `posix_acl: true` and `security_label: true`, driven by the FUSE client with hand-built
// requests that carry the request extensions a Linux 6.12 guest appends: a create through a
// secondary group (FUSE_EXT_GROUPS) and its absence (a 6.1 guest), default-ACL inheritance
// with the guest's umask (DONT_MASK), the ACL mask after chmod, a security label stored
// with the create, a malformed extension, and INIT refused to a guest without ACL support.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <memory>
#include <span>
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
using Bytes = std::vector<uint8_t>;

constexpr uint64_t kCreateSuppGroup = 1ULL << 34; // FUSE_CREATE_SUPP_GROUP
constexpr uint32_t kUser = 1000;
constexpr uint32_t kTeam = 3000;

void put(Bytes& b, const void* p, size_t n) {
    const auto* c = static_cast<const uint8_t*>(p);
    b.insert(b.end(), c, c + n);
}
void put32(Bytes& b, uint32_t v) {
    put(b, &v, 4);
}
void pad8(Bytes& b) {
    while (b.size() % 8 != 0) {
        b.push_back(0);
    }
}

/// FUSE_EXT_GROUPS with one group, as the kernel sends it.
Bytes groups_ext(uint32_t gid) {
    Bytes b;
    put32(b, 16);
    put32(b, 32);
    put32(b, 1);
    put32(b, gid);
    return b;
}

/// A security context extension (name NUL value, padded).
Bytes secctx_ext(const std::string& name, const std::string& value) {
    Bytes rec;
    put32(rec, static_cast<uint32_t>(value.size()));
    put32(rec, 0);
    put(rec, name.c_str(), name.size() + 1);
    put(rec, value.data(), value.size());
    pad8(rec);
    Bytes b;
    put32(b, static_cast<uint32_t>(8 + rec.size()));
    put32(b, 1);
    b.insert(b.end(), rec.begin(), rec.end());
    return b;
}

/// A whole request: header (len, total_extlen filled in), \p args, \p ext.
Bytes request(uint32_t opcode, uint64_t nodeid, uint32_t uid, uint32_t gid, const Bytes& args,
              const Bytes& ext = {}) {
    static uint64_t unique = 1000;
    fuse_in_header h{};
    h.len = static_cast<uint32_t>(sizeof(h) + args.size() + ext.size());
    h.opcode = opcode;
    h.unique = ++unique;
    h.nodeid = nodeid;
    h.uid = uid;
    h.gid = gid;
    h.pid = 1;
    h.total_extlen = static_cast<uint16_t>(ext.size() / 8);
    Bytes b;
    put(b, &h, sizeof(h));
    b.insert(b.end(), args.begin(), args.end());
    b.insert(b.end(), ext.begin(), ext.end());
    return b;
}

Bytes mkdir_args(const std::string& name, uint32_t mode, uint32_t umask) {
    Bytes b;
    fuse_mkdir_in in{mode, umask};
    put(b, &in, sizeof(in));
    put(b, name.c_str(), name.size() + 1);
    return b;
}

Bytes create_args(const std::string& name, uint32_t mode, uint32_t umask) {
    Bytes b;
    fuse_create_in in{O_RDWR, mode, umask, 0};
    put(b, &in, sizeof(in));
    put(b, name.c_str(), name.size() + 1);
    return b;
}

/// A POSIX ACL xattr value: version 2, {tag, perm, id} entries.
std::string acl_xattr(std::initializer_list<std::array<uint32_t, 3>> entries) {
    std::string v;
    uint32_t version = 2;
    v.append(reinterpret_cast<const char*>(&version), 4);
    for (const auto& e : entries) {
        uint16_t tag = static_cast<uint16_t>(e[0]);
        uint16_t perm = static_cast<uint16_t>(e[1]);
        v.append(reinterpret_cast<const char*>(&tag), 2);
        v.append(reinterpret_cast<const char*>(&perm), 2);
        v.append(reinterpret_cast<const char*>(&e[2]), 4);
    }
    return v;
}

int acl_perm(const std::string& v, uint16_t tag) {
    for (size_t off = 4; off + 8 <= v.size(); off += 8) {
        uint16_t t;
        uint16_t perm;
        std::memcpy(&t, v.data() + off, 2);
        std::memcpy(&perm, v.data() + off + 2, 2);
        if (t == tag) {
            return perm;
        }
    }
    return -1;
}

std::string host_xattr(const std::string& path, const char* name) {
    char buf[1024];
    ssize_t n = ::lgetxattr(path.c_str(), name, buf, sizeof(buf));
    return n < 0 ? "<errno " + std::to_string(errno) + ">" : std::string(buf, size_t(n));
}

class VdhostRequestExt : public ::testing::Test {
  protected:
    void SetUp() override {
        if (::geteuid() != 0) {
            GTEST_SKIP() << "needs root (credential switching, security.* xattrs)";
        }
        share_ = dir_.file("share");
        ASSERT_EQ(::mkdir(share_.c_str(), 0777), 0);
        ASSERT_EQ(::chmod(share_.c_str(), 0777), 0);
        ASSERT_EQ(::mkdir((share_ + "/team").c_str(), 0770), 0);
        ASSERT_EQ(::chown((share_ + "/team").c_str(), 0, kTeam), 0);
        ASSERT_EQ(::chmod((share_ + "/team").c_str(), 0770), 0);
        ASSERT_EQ(::mkdir((share_ + "/acl").c_str(), 0777), 0);
        ASSERT_EQ(::chmod((share_ + "/acl").c_str(), 0777), 0);
        const std::string def = acl_xattr(
            {{0x01, 7, ~0u}, {0x02, 6, 1234}, {0x04, 5, ~0u}, {0x10, 7, ~0u}, {0x20, 5, ~0u}});
        if (::setxattr((share_ + "/acl").c_str(), "system.posix_acl_default", def.data(),
                       def.size(), 0) != 0) {
            GTEST_SKIP() << "no POSIX ACLs here";
        }
        sock_ = dir_.file("fs0.sock");
        ctl_ = dir_.file("ctl.sock");
        // sandbox: none keeps CAP_SYS_ADMIN, which security.* xattrs other than SELinux's
        // own need on a host without that security module (configs/README.md).
        const std::string yaml =
            "host:\n  poll_lcores: [0]\n  control_socket: " + ctl_ +
            "\n  idle_poll_us: 100\n  max_sleep_ms: 50\n  sandbox: none\ndevices:\n" +
            testing::virtiofs_device_yaml("fs0", sock_, "0", share_,
                                          "      posix_acl: true\n      security_label: true\n");
        ASSERT_TRUE(vdhost_.start(dir_, yaml, {sock_, ctl_})) << vdhost_.log();
    }

    void TearDown() override {
        session_.reset();
        if (HasFailure()) {
            ADD_FAILURE() << "vdhost log:\n" << vdhost_.log();
        }
    }

    /// A session whose INIT offers \p flags (default: a 6.12 guest's, with
    /// CREATE_SUPP_GROUP). Returns the connect error, or 0.
    int connect(uint64_t flags = fuse_client::kDefaultInitFlags | kCreateSuppGroup) {
        session_.reset();
        SessionOptions o;
        o.socket_path = sock_;
        o.queue_size = 64;
        o.init_flags = flags;
        auto s = FuseSession::connect(o);
        if (!s) {
            return s.error();
        }
        session_ = std::move(*s);
        return 0;
    }

    Reply send(const Bytes& req) {
        auto r = session_->send_raw(1, std::span<const uint8_t>(req.data(), req.size()), 4096);
        EXPECT_TRUE(r.has_value());
        return r ? *r : Reply{};
    }

    uint64_t lookup(const std::string& name) {
        auto e = session_->lookup(kRootNodeId, name);
        EXPECT_TRUE(e.has_value()) << name;
        return e ? e->nodeid : 0;
    }

    TempDir dir_;
    VdhostProcess vdhost_;
    std::string share_;
    std::string sock_;
    std::string ctl_;
    std::unique_ptr<FuseSession> session_;
};

TEST_F(VdhostRequestExt, InitNegotiatesTheFlagsAndRefusesAGuestWithoutAcls) {
    EXPECT_EQ(connect(fuse_client::kDefaultInitFlags & ~uint64_t(FUSE_POSIX_ACL)), EPROTO);
    ASSERT_EQ(connect(), 0);
    const uint64_t f = session_->negotiated_flags();
    EXPECT_NE(f & FUSE_POSIX_ACL, 0u);
    EXPECT_NE(f & FUSE_DONT_MASK, 0u);
    EXPECT_NE(f & FUSE_SETXATTR_EXT, 0u);
    EXPECT_NE(f & FUSE_SECURITY_CTX, 0u);
    EXPECT_NE(f & kCreateSuppGroup, 0u);
}

TEST_F(VdhostRequestExt, CreateThroughASecondaryGroup) {
    ASSERT_EQ(connect(), 0);
    const uint64_t team = lookup("team");
    // A 6.1 guest sends no group: the secondary group is unknown on the host.
    Reply r = send(request(FUSE_MKDIR, team, kUser, kUser, mkdir_args("d", 0755, 0)));
    EXPECT_EQ(r.header.error, -EACCES);
    r = send(request(FUSE_CREATE, team, kUser, kUser, create_args("f", 0644, 0)));
    EXPECT_EQ(r.header.error, -EACCES);
    // A 6.12 guest sends the directory's group the caller is in.
    r = send(request(FUSE_MKDIR, team, kUser, kUser, mkdir_args("d", 0755, 0), groups_ext(kTeam)));
    EXPECT_EQ(r.header.error, 0);
    r = send(
        request(FUSE_CREATE, team, kUser, kUser, create_args("f", 0644, 0), groups_ext(kTeam)));
    EXPECT_EQ(r.header.error, 0);
    struct stat st {};
    ASSERT_EQ(::stat((share_ + "/team/d").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, kUser);
    ASSERT_EQ(::stat((share_ + "/team/f").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, kUser);
    // A malformed extension fails the request and creates nothing.
    Bytes bad = groups_ext(kTeam);
    bad[8] = 2; // two groups in a record of one
    r = send(request(FUSE_MKDIR, team, kUser, kUser, mkdir_args("x", 0755, 0), bad));
    EXPECT_EQ(r.header.error, -EINVAL);
    EXPECT_NE(::access((share_ + "/team/x").c_str(), F_OK), 0);
}

TEST_F(VdhostRequestExt, DefaultAclInheritedUmaskOtherwiseAndChmodSetsTheMask) {
    ASSERT_EQ(connect(), 0);
    const uint64_t acl = lookup("acl");
    Reply r = send(request(FUSE_CREATE, acl, kUser, kUser, create_args("f", 0100666, 077)));
    ASSERT_EQ(r.header.error, 0);
    struct stat st {};
    ASSERT_EQ(::stat((share_ + "/acl/f").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0664u) << "default ACL, not the umask";
    EXPECT_EQ(acl_perm(host_xattr(share_ + "/acl/f", "system.posix_acl_access"), 0x02), 6);
    r = send(request(FUSE_CREATE, kRootNodeId, kUser, kUser, create_args("g", 0100666, 027)));
    ASSERT_EQ(r.header.error, 0);
    ASSERT_EQ(::stat((share_ + "/g").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0640u) << "no default ACL: the guest's umask";
    // chmod through SETATTR: the host kernel moves the ACL mask with the group bits.
    const uint64_t f = [&] {
        auto l = session_->lookup(acl, "f");
        return l ? l->nodeid : 0;
    }();
    ASSERT_NE(f, 0u);
    Bytes args;
    fuse_setattr_in in{};
    in.valid = FATTR_MODE;
    in.mode = S_IFREG | 0640;
    put(args, &in, sizeof(in));
    r = send(request(FUSE_SETATTR, f, 0, 0, args));
    ASSERT_EQ(r.header.error, 0);
    EXPECT_EQ(acl_perm(host_xattr(share_ + "/acl/f", "system.posix_acl_access"), 0x10), 4);
    // The ACL xattr reads back through GETXATTR.
    Bytes gx;
    fuse_getxattr_in gin{};
    gin.size = 1024;
    put(gx, &gin, sizeof(gin));
    put(gx, "system.posix_acl_access", 24);
    r = send(request(FUSE_GETXATTR, f, 0, 0, gx));
    ASSERT_EQ(r.header.error, 0);
    EXPECT_EQ(acl_perm(std::string(r.payload.begin(), r.payload.end()), 0x10), 4);
}

TEST_F(VdhostRequestExt, SecurityLabelIsStoredWithTheCreate) {
    ASSERT_EQ(connect(), 0);
    const std::string label("system_u:object_r:vdh_t:s0\0", 27);
    Reply r = send(request(FUSE_CREATE, kRootNodeId, kUser, kUser, create_args("lf", 0100644, 0),
                           secctx_ext("security.vdhtest", label)));
    ASSERT_EQ(r.header.error, 0);
    r = send(request(FUSE_MKDIR, kRootNodeId, kUser, kUser, mkdir_args("ld", 0755, 0),
                     secctx_ext("security.vdhtest", label)));
    ASSERT_EQ(r.header.error, 0);
    EXPECT_EQ(host_xattr(share_ + "/lf", "security.vdhtest"), label);
    EXPECT_EQ(host_xattr(share_ + "/ld", "security.vdhtest"), label);
    // A name outside security.* is refused and nothing is created.
    r = send(request(FUSE_MKDIR, kRootNodeId, kUser, kUser, mkdir_args("bad", 0755, 0),
                     secctx_ext("trusted.x", "v")));
    EXPECT_EQ(r.header.error, -EPERM);
    EXPECT_NE(::access((share_ + "/bad").c_str(), F_OK), 0);
}

} // namespace
} // namespace vdh

// SPDX-License-Identifier: MIT
// uid/gid translation (translate_uid / translate_gid) through the real path: the vdhost
// binary with the virtio-fs plugin, driven by the FUSE client as a guest whose headers say
// uid 0. A squashing share turns the guest root's setuid-root file into an unprivileged
// host file; a share with map and forbid-guest rules translates both ways (entries,
// GETATTR, READDIRPLUS, chown) and refuses forbidden ids with EPERM.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
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
using fuse_client::SessionOptions;
using testing::TempDir;
using testing::VdhostProcess;

/// The unprivileged host id every guest id is squashed to (nobody / nogroup).
constexpr uint32_t kNobody = 65534;

class VdhostTranslateIds : public ::testing::Test {
  protected:
    void SetUp() override {
        if (::geteuid() != 0) {
            GTEST_SKIP() << "needs root (vdhost switches to the translated credentials)";
        }
        squash_ = dir_.file("squash");
        mapped_ = dir_.file("mapped");
        // Squashed callers are unprivileged on the host: they need a writable share.
        for (const std::string& d : {squash_, mapped_}) {
            ASSERT_EQ(::mkdir(d.c_str(), 0777), 0);
            ASSERT_EQ(::chmod(d.c_str(), 0777), 0);
        }
        sock0_ = dir_.file("fs0.sock");
        sock1_ = dir_.file("fs1.sock");
        ctl_ = dir_.file("ctl.sock");
        const std::string limit = "      fd_limit: 4096\n";
        const std::string squash_rules =
            "      translate_uid: [\"squash-guest:0:65534:4294967295\"]\n"
            "      translate_gid: [\"squash-guest:0:65534:4294967295\"]\n";
        const std::string mapped_rules = "      translate_uid:\n"
                                         "        - map:0:70000:1000\n"
                                         "        - forbid-guest:1000:1\n"
                                         "        - squash-host:0:4000:1\n"
                                         "      translate_gid: [\"map:0:80000:1000\"]\n";
        const std::string yaml =
            testing::host_yaml("[0]", ctl_) +
            testing::virtiofs_device_yaml("fs0", sock0_, "0", squash_, limit + squash_rules) +
            testing::virtiofs_device_yaml("fs1", sock1_, "0", mapped_, limit + mapped_rules);
        ASSERT_TRUE(vdhost_.start(dir_, yaml, {sock0_, sock1_, ctl_})) << vdhost_.log();
    }

    void TearDown() override {
        sessions_.clear();
        if (HasFailure()) {
            ADD_FAILURE() << "vdhost log:\n" << vdhost_.log();
        }
    }

    /// A session whose every request header carries \p uid / \p gid (kept in sessions_).
    FuseSession* connect(const std::string& sock, uint32_t uid, uint32_t gid) {
        SessionOptions o;
        o.socket_path = sock;
        o.num_request_queues = 1;
        o.queue_size = 128;
        o.memory_bytes = 32ULL << 20;
        o.uid = uid;
        o.gid = gid;
        auto s = FuseSession::connect(o);
        EXPECT_TRUE(s.has_value()) << "connect " << sock << ": " << (s ? 0 : s.error());
        if (!s) {
            return nullptr;
        }
        sessions_.push_back(std::move(*s));
        return sessions_.back().get();
    }

    /// SETATTR of the owner (FATTR_UID and/or FATTR_GID per \p valid): the reply's errno
    /// (0 on success) and, on success, the attributes it returned.
    int chown(FuseSession& s, uint64_t nodeid, uint32_t valid, uint32_t uid, uint32_t gid,
              fuse_attr* out = nullptr) {
        fuse_setattr_in in{};
        in.valid = valid;
        in.uid = uid;
        in.gid = gid;
        auto r = s.call(FUSE_SETATTR, nodeid, testing::as_bytes(in),
                        sizeof(fuse_out_header) + sizeof(fuse_attr_out));
        EXPECT_TRUE(r.has_value());
        if (!r) {
            return -1;
        }
        if (r->header.error == 0 && out != nullptr && r->payload.size() >= sizeof(fuse_attr_out)) {
            fuse_attr_out a;
            std::memcpy(&a, r->payload.data(), sizeof(a));
            *out = a.attr;
        }
        return -r->header.error;
    }

    static struct stat host_stat(const std::string& path) {
        struct stat st {};
        EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
        return st;
    }

    TempDir dir_;
    VdhostProcess vdhost_;
    std::string squash_, mapped_, sock0_, sock1_, ctl_;
    std::vector<std::unique_ptr<FuseSession>> sessions_;
};

TEST_F(VdhostTranslateIds, SquashedRootCannotMakeASetuidRootFile) {
    FuseSession* s = connect(sock0_, 0, 0);
    ASSERT_NE(s, nullptr);
    auto c = s->create(kRootNodeId, "suid", O_CREAT | O_EXCL | O_RDWR, S_IFREG | 04755, 0);
    ASSERT_TRUE(c.has_value()) << c.error();
    // The host: owned by nobody, setuid bit kept (its owner may set it), so running it
    // gains nobody's rights, not root's.
    struct stat st = host_stat(squash_ + "/suid");
    EXPECT_EQ(st.st_uid, kNobody);
    EXPECT_EQ(st.st_gid, kNobody);
    EXPECT_EQ(st.st_mode & 07777, 04755u);
    EXPECT_NE(st.st_uid, 0u);
    // The guest: no host→guest rule covers 65534, so it sees the host ids as they are
    // (virtiofsd's identity for unmapped ids), in the CREATE entry and in GETATTR.
    EXPECT_EQ(c->entry.attr.uid, kNobody);
    EXPECT_EQ(c->entry.attr.gid, kNobody);
    auto a = s->getattr(c->entry.nodeid);
    ASSERT_TRUE(a.has_value()) << a.error();
    EXPECT_EQ(a->attr.uid, kNobody);
    EXPECT_EQ(a->attr.gid, kNobody);
    EXPECT_EQ(a->attr.mode & 07777, 04755u);
    EXPECT_TRUE(s->release(c->entry.nodeid, c->open.fh).has_value());

    // chown back to root is squashed as well: the file stays nobody's.
    fuse_attr out{};
    EXPECT_EQ(chown(*s, c->entry.nodeid, FATTR_UID | FATTR_GID, 0, 0, &out), 0);
    st = host_stat(squash_ + "/suid");
    EXPECT_EQ(st.st_uid, kNobody);
    EXPECT_EQ(st.st_gid, kNobody);
    EXPECT_EQ(out.uid, kNobody);

    // Any other guest user is squashed too (here: a directory of uid 1234). One frontend
    // per device: the first session goes first.
    sessions_.clear();
    FuseSession* u = connect(sock0_, 1234, 1234);
    ASSERT_NE(u, nullptr);
    auto d = u->mkdir(kRootNodeId, "d", 0755);
    ASSERT_TRUE(d.has_value()) << d.error();
    EXPECT_EQ(host_stat(squash_ + "/d").st_uid, kNobody);
}

TEST_F(VdhostTranslateIds, MappedShareTranslatesBothWaysAndForbids) {
    FuseSession* s = connect(sock1_, 0, 0);
    ASSERT_NE(s, nullptr);
    // Guest root → host 70000/80000; back to 0/0 for the guest.
    auto c = s->create(kRootNodeId, "f", O_CREAT | O_EXCL | O_RDWR, S_IFREG | 04755, 0);
    ASSERT_TRUE(c.has_value()) << c.error();
    EXPECT_TRUE(s->release(c->entry.nodeid, c->open.fh).has_value());
    struct stat st = host_stat(mapped_ + "/f");
    EXPECT_EQ(st.st_uid, 70000u);
    EXPECT_EQ(st.st_gid, 80000u);
    EXPECT_EQ(c->entry.attr.uid, 0u);
    EXPECT_EQ(c->entry.attr.gid, 0u);
    auto a = s->getattr(c->entry.nodeid);
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ(a->attr.uid, 0u);

    // A host-owned file (host root, squash-host to 4000; gid 0 is unmapped, as is).
    ASSERT_EQ(::close(::open((mapped_ + "/hostfile").c_str(), O_CREAT | O_WRONLY, 0644)), 0);
    auto h = s->lookup(kRootNodeId, "hostfile");
    ASSERT_TRUE(h.has_value()) << h.error();
    EXPECT_EQ(h->attr.uid, 4000u);
    EXPECT_EQ(h->attr.gid, 0u);

    // READDIRPLUS carries the same translated attributes.
    auto od = s->opendir(kRootNodeId);
    ASSERT_TRUE(od.has_value());
    auto ents = s->readdirplus(kRootNodeId, od->fh, 0);
    ASSERT_TRUE(ents.has_value()) << ents.error();
    int seen = 0;
    for (const auto& e : *ents) {
        if (e.name == "f") {
            EXPECT_EQ(e.entry.attr.uid, 0u);
            EXPECT_EQ(e.entry.attr.gid, 0u);
            ++seen;
        } else if (e.name == "hostfile") {
            EXPECT_EQ(e.entry.attr.uid, 4000u);
            ++seen;
        }
    }
    EXPECT_EQ(seen, 2);
    EXPECT_TRUE(s->releasedir(kRootNodeId, od->fh).has_value());

    // chown to guest 7/9 → host 70007/80009, shown back as 7/9.
    fuse_attr out{};
    EXPECT_EQ(chown(*s, h->nodeid, FATTR_UID | FATTR_GID, 7, 9, &out), 0);
    st = host_stat(mapped_ + "/hostfile");
    EXPECT_EQ(st.st_uid, 70007u);
    EXPECT_EQ(st.st_gid, 80009u);
    EXPECT_EQ(out.uid, 7u);
    EXPECT_EQ(out.gid, 9u);
    // forbid-guest: chown to guest uid 1000 fails and changes nothing.
    EXPECT_EQ(chown(*s, h->nodeid, FATTR_UID, 1000, 0), EPERM);
    EXPECT_EQ(host_stat(mapped_ + "/hostfile").st_uid, 70007u);

    // A caller with a forbidden uid cannot create (a new session: one frontend per device).
    sessions_.clear();
    FuseSession* f = connect(sock1_, 1000, 0);
    ASSERT_NE(f, nullptr);
    auto no = f->mkdir(kRootNodeId, "nope", 0755);
    ASSERT_FALSE(no.has_value());
    EXPECT_EQ(no.error(), EPERM);
    EXPECT_NE(::access((mapped_ + "/nope").c_str(), F_OK), 0);
}

// Bad rules through the real binary: `vdhost --check-config` names file, line, column and
// the item; posix_acl together with translation is refused naming both keys.
TEST(VdhostTranslateIdsConfig, CheckConfigPointsAtTheRule) {
    TempDir dir;
    const std::string share = dir.file("share");
    ASSERT_EQ(::mkdir(share.c_str(), 0755), 0);
    auto write = [&](const std::string& extra) {
        const std::string path = dir.file("vdhost.yaml");
        std::ofstream(path) << testing::host_yaml("[0]", dir.file("ctl.sock")) +
                                   testing::virtiofs_device_yaml("fs0", dir.file("fs0.sock"), "0",
                                                                 share, extra);
        return path;
    };
    std::string out;
    std::string path = write("      translate_gid:\n"
                             "        - squash-guest:0:65534:4294967295\n"
                             "        - map:0:1000:1\n");
    EXPECT_NE(testing::vdhost_check_config(path, &out), 0) << out;
    EXPECT_NE(out.find(path + ":15:11: config.translate_gid[1]: guest ids [0, 1) overlap those "
                              "of item 0 (\"squash-guest:0:65534:4294967295\"): rules must not "
                              "overlap"),
              std::string::npos)
        << out;
    path = write("      translate_uid: [\"map:0:100000:65536\"]\n      posix_acl: true\n");
    out.clear(); // run_command() appends
    EXPECT_NE(testing::vdhost_check_config(path, &out), 0) << out;
    EXPECT_NE(out.find(path + ":13:7: config.translate_uid: cannot be combined with "
                              "config.posix_acl: true (line 14)"),
              std::string::npos)
        << out;
    path = write("      translate_uid: [\"squash-guest:0:65534:4294967295\"]\n");
    out.clear();
    EXPECT_EQ(testing::vdhost_check_config(path, &out), 0) << out;
}

} // namespace
} // namespace vdh

// SPDX-License-Identifier: MIT
// Share profile parsing: every key, defaults, the derived capabilities/timeouts/open flags,
// and exact error messages (file positions survive because the config text keeps the
// file's layout, with the lines around the block blanked as the host does).
#include "share_profile.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "vdh/unique_fd.h"

namespace vdh::virtiofs {
namespace {

/// Three blanked lines (devices:, - name:, config:) then the block at column 7.
std::string block(const std::string& body) {
    return "        \n"
           "             \n"
           "           \n" +
           body;
}

std::string parse_error(const std::string& yaml, const std::string& device = "fs0") {
    std::string err;
    std::optional<ShareProfile> p = parse_share_profile(yaml, "dev.yaml", device, &err);
    EXPECT_FALSE(p.has_value());
    return err;
}

ShareProfile parse_ok(const std::string& yaml, const std::string& device = "fs0") {
    std::string err;
    std::optional<ShareProfile> p = parse_share_profile(yaml, "dev.yaml", device, &err);
    EXPECT_TRUE(p.has_value()) << err;
    return p.value_or(ShareProfile{});
}

TEST(ShareProfile, MinimalUsesDefaults) {
    ShareProfile p = parse_ok(block("      shared_dir: /srv/share\n"));
    EXPECT_EQ(p.shared_dir, "/srv/share");
    EXPECT_EQ(p.shared_dir_pos.line, 4);
    EXPECT_EQ(p.shared_dir_pos.column, 19);
    EXPECT_EQ(p.tag, "fs0");
    EXPECT_EQ(p.cache, CachePolicy::Auto);
    EXPECT_FALSE(p.writeback);
    EXPECT_FALSE(p.xattr);
    EXPECT_FALSE(p.readonly);
    EXPECT_TRUE(p.announce_submounts);
    EXPECT_EQ(p.inode_file_handles, FileHandleMode::Never);
    EXPECT_EQ(p.fd_limit, 16384u);
    EXPECT_EQ(p.inode_limit, 262144u);
    EXPECT_EQ(p.max_pages, 256u);
    EXPECT_TRUE(p.posix_locks);
    EXPECT_TRUE(p.flock);
    EXPECT_FALSE(p.entry_timeout_ms.has_value());
    EXPECT_FALSE(p.attr_timeout_ms.has_value());
    EXPECT_EQ(p.write_path, WritePath::Auto);
    EXPECT_FALSE(p.write_path_written);
    EXPECT_EQ(p.backend, BackendKind::Passthrough);
    EXPECT_FALSE(p.create);
}

TEST(ShareProfile, CreateKey) {
    EXPECT_TRUE(parse_ok(block("      shared_dir: /x\n      create: true\n")).create);
    EXPECT_FALSE(parse_ok(block("      shared_dir: /x\n      create: false\n")).create);
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      create: yes\n")),
              "dev.yaml:5:15: config.create: expected boolean (true or false), got \"yes\"");
}

TEST(ShareProfile, EveryKey) {
    ShareProfile p =
        parse_ok(block("      shared_dir: \"/data/with space\"\n"
                       "      tag: myfs\n"
                       "      cache: always\n"
                       "      writeback: true\n"
                       "      xattr: True\n"
                       "      readonly: TRUE\n"
                       "      announce_submounts: false\n"
                       "      inode_file_handles: prefer\n"
                       "      fd_limit: 4096\n"
                       "      inode_limit: 100000\n"
                       "      max_pages: 32\n"
                       "      posix_locks: false\n"
                       "      flock: false\n"
                       "      entry_timeout_ms: 1500\n"
                       "      attr_timeout_ms: 0\n"
                       "      backend: null\n"));
    EXPECT_EQ(p.shared_dir, "/data/with space");
    EXPECT_EQ(p.tag, "myfs");
    EXPECT_EQ(p.cache, CachePolicy::Always);
    EXPECT_TRUE(p.writeback);
    EXPECT_TRUE(p.xattr);
    EXPECT_TRUE(p.readonly);
    EXPECT_FALSE(p.announce_submounts);
    EXPECT_EQ(p.inode_file_handles, FileHandleMode::Prefer);
    EXPECT_EQ(p.fd_limit, 4096u);
    EXPECT_EQ(p.inode_limit, 100000u);
    EXPECT_EQ(p.max_pages, 32u);
    EXPECT_FALSE(p.posix_locks);
    EXPECT_FALSE(p.flock);
    EXPECT_EQ(p.entry_timeout_ms, 1500u);
    EXPECT_EQ(p.attr_timeout_ms, 0u);
    EXPECT_EQ(p.backend, BackendKind::Null);
}

TEST(ShareProfile, FlowStyleAndEnumValues) {
    // `    config: {...}` with the key blanked.
    ShareProfile p =
        parse_ok("            {shared_dir: /x, cache: metadata, inode_file_handles: mandatory}\n");
    EXPECT_EQ(p.cache, CachePolicy::Metadata);
    EXPECT_EQ(p.inode_file_handles, FileHandleMode::Mandatory);
    EXPECT_EQ(parse_ok(block("      shared_dir: /x\n      cache: never\n")).cache,
              CachePolicy::Never);
    EXPECT_EQ(parse_ok(block("      shared_dir: /x\n      backend: passthrough\n")).backend,
              BackendKind::Passthrough);
    // Quoted enum values are the same strings.
    EXPECT_EQ(parse_ok(block("      shared_dir: /x\n      backend: \"null\"\n")).backend,
              BackendKind::Null);
    EXPECT_EQ(parse_ok(block("      shared_dir: /x\n      cache: 'always'\n")).cache,
              CachePolicy::Always);
}

TEST(ShareProfile, LongDeviceNameIsCutForTheTag) {
    ShareProfile p = parse_ok(block("      shared_dir: /x\n"), std::string(50, 'n'));
    EXPECT_EQ(p.tag, std::string(36, 'n'));
}

TEST(ShareProfile, NoConfigBlock) {
    EXPECT_EQ(parse_error(""),
              "dev.yaml:1:1: config.shared_dir: missing required key (the device has no config: "
              "block)");
    EXPECT_EQ(parse_error("   \n\n      \n"),
              "dev.yaml:1:1: config.shared_dir: missing required key (the device has no config: "
              "block)");
}

TEST(ShareProfile, MissingSharedDir) {
    EXPECT_EQ(parse_error(block("      cache: auto\n      xattr: true\n")),
              "dev.yaml:4:7: config.shared_dir: missing required key");
}

TEST(ShareProfile, UnknownKeyListsExpectedKeys) {
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      cach: auto\n")),
              "dev.yaml:5:7: config.cach: unknown key (expected one of: shared_dir, create, tag, cache, "
              "writeback, xattr, readonly, announce_submounts, inode_file_handles, fd_limit, "
              "inode_limit, max_pages, posix_locks, flock, entry_timeout_ms, attr_timeout_ms, backend, "
              "write_path, posix_acl, security_label)");
}

TEST(ShareProfile, PosixAclAndSecurityLabel) {
    ShareProfile p = parse_ok(block("      shared_dir: /x\n"));
    EXPECT_FALSE(p.posix_acl);
    EXPECT_FALSE(p.security_label);
    EXPECT_FALSE(capabilities_from(p).posix_acl);
    p = parse_ok(block("      shared_dir: /x\n      posix_acl: true\n      security_label: true\n"));
    EXPECT_TRUE(p.posix_acl);
    EXPECT_TRUE(p.xattr) << "posix_acl implies xattr";
    EXPECT_TRUE(p.security_label);
    FsCapabilities c = capabilities_from(p);
    EXPECT_TRUE(c.posix_acl);
    EXPECT_TRUE(c.setxattr_ext);
    EXPECT_TRUE(c.xattr);
    EXPECT_TRUE(c.security_label);
    EXPECT_TRUE(parse_ok(block("      shared_dir: /x\n      xattr: true\n      posix_acl: true\n")).xattr);
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      xattr: false\n      posix_acl: true\n")),
              "dev.yaml:5:14: config.xattr: must not be false with posix_acl: true (ACLs are xattrs)");
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      posix_acl: yes please\n"))
                  .rfind("dev.yaml:5:18: config.posix_acl: ", 0),
              0u);
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      security_label: 1\n"))
                  .rfind("dev.yaml:5:23: config.security_label: ", 0),
              0u);
}

TEST(ShareProfile, DuplicateKey) {
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      xattr: true\n      xattr: false\n")),
              "dev.yaml:6:7: config.xattr: duplicate key (first at line 5)");
}

TEST(ShareProfile, WrongTypes) {
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      writeback: yes\n")),
              "dev.yaml:5:18: config.writeback: expected boolean (true or false), got \"yes\"");
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      xattr: \"true\"\n")),
              "dev.yaml:5:14: config.xattr: expected boolean (true or false), got quoted string "
              "\"true\"");
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      fd_limit: -1\n")),
              "dev.yaml:5:17: config.fd_limit: expected unsigned integer, got \"-1\"");
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      inode_limit: 1.5\n")),
              "dev.yaml:5:20: config.inode_limit: expected unsigned integer, got \"1.5\"");
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      max_pages: [1]\n")),
              "dev.yaml:5:18: config.max_pages: expected unsigned integer, got sequence");
    EXPECT_EQ(parse_error(block("      shared_dir: [/x]\n")),
              "dev.yaml:4:19: config.shared_dir: expected string, got sequence");
    // An empty value is reported at its key.
    EXPECT_EQ(parse_error(block("      shared_dir:\n      cache: auto\n")),
              "dev.yaml:4:7: config.shared_dir: expected string, got null");
    EXPECT_EQ(parse_error(block("      shared_dir: ~\n")),
              "dev.yaml:4:19: config.shared_dir: expected string, got null");
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      backend: ~\n")),
              "dev.yaml:5:16: config.backend: expected one of passthrough, null, got null");
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      cache: sometimes\n")),
              "dev.yaml:5:14: config.cache: expected one of never, auto, always, metadata, got "
              "\"sometimes\"");
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      inode_file_handles: {a: 1}\n")),
              "dev.yaml:5:27: config.inode_file_handles: expected one of never, prefer, "
              "mandatory, got mapping");
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      backend: nul\n")),
              "dev.yaml:5:16: config.backend: expected one of passthrough, null, got \"nul\"");
}

TEST(ShareProfile, OutOfRange) {
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      max_pages: 300\n")),
              "dev.yaml:5:18: config.max_pages: out of range: 300 (expected 1..256)");
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      max_pages: 0\n")),
              "dev.yaml:5:18: config.max_pages: out of range: 0 (expected 1..256)");
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      fd_limit: 10\n")),
              "dev.yaml:5:17: config.fd_limit: out of range: 10 (expected 64..1048576)");
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      inode_limit: 63\n")),
              "dev.yaml:5:20: config.inode_limit: out of range: 63 (expected 64..16777216)");
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      inode_limit: 16777217\n")),
              "dev.yaml:5:20: config.inode_limit: out of range: 16777217 (expected "
              "64..16777216)");
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      attr_timeout_ms: 4294967296\n")),
              "dev.yaml:5:24: config.attr_timeout_ms: out of range: 4294967296 (expected "
              "0..4294967295)");
}

TEST(ShareProfile, BadValues) {
    EXPECT_EQ(parse_error(block("      shared_dir: relative/path\n")),
              "dev.yaml:4:19: config.shared_dir: expected an absolute path, got "
              "\"relative/path\"");
    EXPECT_EQ(parse_error(block("      shared_dir: \"\"\n")),
              "dev.yaml:4:19: config.shared_dir: expected an absolute path, got \"\"");
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      tag: \"\"\n")),
              "dev.yaml:5:12: config.tag: expected 1..36 bytes, got 0");
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      tag: " + std::string(37, 't') + "\n")),
              "dev.yaml:5:12: config.tag: expected 1..36 bytes, got 37");
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      tag: \"a\\nb\"\n")),
              "dev.yaml:5:12: config.tag: must not contain a newline or NUL byte");
}

TEST(ShareProfile, NotAMapping) {
    EXPECT_EQ(parse_error("            just-a-string\n"),
              "dev.yaml:1:13: config: expected mapping, got \"just-a-string\"");
    EXPECT_EQ(parse_error(block("      - shared_dir: /x\n")),
              "dev.yaml:4:7: config: expected mapping, got sequence");
}

TEST(ShareProfile, YamlSyntaxErrorHasPosition) {
    std::string err = parse_error(block("      shared_dir: /x\n      cache: [auto\n"));
    EXPECT_EQ(err.rfind("dev.yaml:", 0), 0u) << err;
    EXPECT_NE(err.find(": config: "), std::string::npos) << err;
    EXPECT_EQ(err.find("dev.yaml:1:1:"), std::string::npos) << err;
}

TEST(ShareProfile, NullErrorPointerIsAllowed) {
    EXPECT_FALSE(parse_share_profile("", "x", "d", nullptr).has_value());
}

TEST(ShareProfile, TimeoutsFollowCachePolicy) {
    ShareProfile p;
    p.cache = CachePolicy::Never;
    EXPECT_EQ(entry_timeout(p), (FuseTimeout{0, 0}));
    EXPECT_EQ(attr_timeout(p), (FuseTimeout{0, 0}));
    p.cache = CachePolicy::Auto;
    EXPECT_EQ(entry_timeout(p), (FuseTimeout{1, 0}));
    EXPECT_EQ(attr_timeout(p), (FuseTimeout{1, 0}));
    p.cache = CachePolicy::Always;
    EXPECT_EQ(entry_timeout(p), (FuseTimeout{86400, 0}));
    p.cache = CachePolicy::Metadata;
    EXPECT_EQ(attr_timeout(p), (FuseTimeout{86400, 0}));
    p.entry_timeout_ms = 1500;
    p.attr_timeout_ms = 250;
    EXPECT_EQ(entry_timeout(p), (FuseTimeout{1, 500000000}));
    EXPECT_EQ(attr_timeout(p), (FuseTimeout{0, 250000000}));
}

TEST(ShareProfile, OpenFlagsFollowCachePolicy) {
    ShareProfile p;
    p.cache = CachePolicy::Never;
    EXPECT_EQ(open_flags_for(p, false), uint32_t(FOPEN_DIRECT_IO));
    EXPECT_EQ(open_flags_for(p, true), 0u);
    p.cache = CachePolicy::Auto;
    EXPECT_EQ(open_flags_for(p, false), 0u);
    EXPECT_EQ(open_flags_for(p, true), 0u);
    p.cache = CachePolicy::Always;
    EXPECT_EQ(open_flags_for(p, false), uint32_t(FOPEN_KEEP_CACHE));
    EXPECT_EQ(open_flags_for(p, true), uint32_t(FOPEN_CACHE_DIR));
    p.cache = CachePolicy::Metadata;
    EXPECT_EQ(open_flags_for(p, false), uint32_t(FOPEN_DIRECT_IO));
    EXPECT_EQ(open_flags_for(p, true), uint32_t(FOPEN_CACHE_DIR));
}

TEST(ShareProfile, Capabilities) {
    ShareProfile p;
    FsCapabilities c = capabilities_from(p);
    EXPECT_FALSE(c.writeback_cache);
    EXPECT_FALSE(c.xattr);
    EXPECT_TRUE(c.posix_locks);
    EXPECT_TRUE(c.flock_locks);
    EXPECT_TRUE(c.submounts);
    EXPECT_TRUE(c.readdirplus);
    EXPECT_FALSE(c.cache_symlinks);
    p.writeback = true;
    p.xattr = true;
    p.posix_locks = false;
    p.flock = false;
    p.announce_submounts = false;
    p.cache = CachePolicy::Never;
    c = capabilities_from(p);
    EXPECT_TRUE(c.writeback_cache);
    EXPECT_TRUE(c.xattr);
    EXPECT_FALSE(c.posix_locks);
    EXPECT_FALSE(c.flock_locks);
    EXPECT_FALSE(c.submounts);
    EXPECT_FALSE(c.readdirplus);
    p.cache = CachePolicy::Always;
    EXPECT_TRUE(capabilities_from(p).cache_symlinks);
}

TEST(ShareProfile, EnumNames) {
    EXPECT_STREQ(to_string(CachePolicy::Metadata), "metadata");
    EXPECT_STREQ(to_string(FileHandleMode::Prefer), "prefer");
    EXPECT_STREQ(to_string(BackendKind::Null), "null");
}

class SharedDirCheck : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/vdh-share-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        file_ = dir_ + "/file";
        auto fd =
            UniqueFd::from_syscall(::open(file_.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
        ASSERT_TRUE(fd.has_value());
    }
    void TearDown() override {
        std::string cmd = "rm -rf '" + dir_ + "'";
        ASSERT_EQ(std::system(cmd.c_str()), 0);
    }
    ShareProfile profile(const std::string& path) {
        return parse_ok(block("      shared_dir: " + path + "\n"));
    }
    ShareProfile creating(const std::string& path) {
        return parse_ok(block("      shared_dir: " + path + "\n      create: true\n"));
    }
    std::string dir_;
    std::string file_;
};

TEST_F(SharedDirCheck, AcceptsADirectory) {
    std::string err;
    EXPECT_TRUE(check_shared_dir(profile(dir_), "dev.yaml", &err)) << err;
}

TEST_F(SharedDirCheck, RejectsMissingPathAndFiles) {
    std::string err;
    EXPECT_FALSE(check_shared_dir(profile(dir_ + "/nope"), "dev.yaml", &err));
    EXPECT_EQ(err, "dev.yaml:4:19: config.shared_dir: cannot access \"" + dir_ +
                       "/nope\": No such file or directory (add `create: true` to the device's "
                       "config: block to have vdhost create it)");
    EXPECT_FALSE(check_shared_dir(profile(file_), "dev.yaml", &err));
    EXPECT_EQ(err, "dev.yaml:4:19: config.shared_dir: not a directory: \"" + file_ + "\"");
}

TEST_F(SharedDirCheck, CreateMakesMissingDirAndParents0755) {
    const std::string share = dir_ + "/a/b/share";
    std::string err;
    SharedDirState state{};
    // Without create: true, a missing directory stays an error.
    EXPECT_FALSE(prepare_shared_dir(profile(share), "dev.yaml", false, &state, &err));
    EXPECT_NE(err.find("create: true"), std::string::npos) << err;
    // Dry run: accepted, nothing created.
    ASSERT_TRUE(prepare_shared_dir(creating(share), "dev.yaml", true, &state, &err)) << err;
    EXPECT_EQ(state, SharedDirState::WillCreate);
    EXPECT_NE(::access((dir_ + "/a").c_str(), F_OK), 0);
    // Created with its parents, 0755 whatever the umask.
    mode_t old = ::umask(077);
    bool ok = prepare_shared_dir(creating(share), "dev.yaml", false, &state, &err);
    ::umask(old);
    ASSERT_TRUE(ok) << err;
    EXPECT_EQ(state, SharedDirState::Created);
    for (const std::string& d : {dir_ + "/a", dir_ + "/a/b", share}) {
        struct stat st {};
        ASSERT_EQ(::lstat(d.c_str(), &st), 0) << d;
        EXPECT_TRUE(S_ISDIR(st.st_mode)) << d;
        EXPECT_EQ(st.st_mode & 07777, 0755u) << d;
        EXPECT_EQ(st.st_uid, ::geteuid()) << d;
    }
    // Existing: taken as it is.
    ASSERT_TRUE(prepare_shared_dir(creating(share), "dev.yaml", false, &state, &err)) << err;
    EXPECT_EQ(state, SharedDirState::Exists);
}

TEST_F(SharedDirCheck, CreateRefusesFilesSymlinksAndWritableParents) {
    std::string err;
    SharedDirState state{};
    // A component that is a file.
    EXPECT_FALSE(prepare_shared_dir(creating(file_ + "/x"), "dev.yaml", false, &state, &err));
    EXPECT_EQ(err, "dev.yaml:4:19: config.shared_dir: create: true: \"" + file_ +
                       "\" exists and is not a directory")
        << err;
    // An existing file as the share itself: not a directory, create or not.
    EXPECT_FALSE(prepare_shared_dir(creating(file_), "dev.yaml", false, &state, &err));
    EXPECT_EQ(err, "dev.yaml:4:19: config.shared_dir: not a directory: \"" + file_ + "\"");
    // A symbolic link on the way (even to a good directory) is not followed.
    const std::string real = dir_ + "/real";
    ASSERT_EQ(::mkdir(real.c_str(), 0755), 0);
    ASSERT_EQ(::symlink(real.c_str(), (dir_ + "/link").c_str()), 0);
    EXPECT_FALSE(
        prepare_shared_dir(creating(dir_ + "/link/share"), "dev.yaml", false, &state, &err));
    EXPECT_NE(err.find("\"" + dir_ + "/link\" is a symbolic link"), std::string::npos) << err;
    EXPECT_NE(::access((real + "/share").c_str(), F_OK), 0);
    // The dry run finds the same.
    EXPECT_FALSE(
        prepare_shared_dir(creating(dir_ + "/link/share"), "dev.yaml", true, &state, &err));
    // A parent that group or others may write (no sticky bit): they could swap the share.
    const std::string open_dir = dir_ + "/open";
    ASSERT_EQ(::mkdir(open_dir.c_str(), 0755), 0);
    ASSERT_EQ(::chmod(open_dir.c_str(), 0777), 0);
    EXPECT_FALSE(
        prepare_shared_dir(creating(open_dir + "/share"), "dev.yaml", false, &state, &err));
    EXPECT_NE(err.find("has mode 0777: writable by group or others without the sticky bit"),
              std::string::npos)
        << err;
    EXPECT_NE(::access((open_dir + "/share").c_str(), F_OK), 0);
    // With the sticky bit (as /tmp), it is fine.
    ASSERT_EQ(::chmod(open_dir.c_str(), 01777), 0);
    EXPECT_TRUE(
        prepare_shared_dir(creating(open_dir + "/share"), "dev.yaml", false, &state, &err))
        << err;
    EXPECT_EQ(state, SharedDirState::Created);
    // A parent owned by another user.
    const std::string theirs = dir_ + "/theirs";
    ASSERT_EQ(::mkdir(theirs.c_str(), 0755), 0);
    if (::geteuid() == 0) {
        ASSERT_EQ(::chown(theirs.c_str(), 12345, 12345), 0);
        EXPECT_FALSE(
            prepare_shared_dir(creating(theirs + "/share"), "dev.yaml", false, &state, &err));
        EXPECT_NE(err.find("is owned by uid 12345"), std::string::npos) << err;
    }
}

TEST(ShareProfile, WritePathValues) {
    EXPECT_EQ(parse_ok(block("      shared_dir: /x\n      write_path: nowait\n")).write_path,
              WritePath::Nowait);
    EXPECT_EQ(parse_ok(block("      shared_dir: /x\n      write_path: inline\n")).write_path,
              WritePath::Inline);
    ShareProfile p = parse_ok(block("      shared_dir: /x\n      write_path: punt\n"));
    EXPECT_EQ(p.write_path, WritePath::Punt);
    EXPECT_TRUE(p.write_path_written);
    EXPECT_EQ(p.write_path_pos.line, 5);
    EXPECT_EQ(p.write_path_pos.column, 19);
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      write_path: fast\n")),
              "dev.yaml:5:19: config.write_path: expected one of auto, nowait, inline, punt, "
              "got \"fast\"");
}

TEST_F(SharedDirCheck, WritePathResolvesByProbing) {
    std::string err;
    ShareProfile p = profile(dir_);
    ASSERT_TRUE(resolve_write_path(p, "dev.yaml", &err)) << err;
    EXPECT_NE(p.write_path, WritePath::Auto);
    EXPECT_FALSE(p.write_path_reason.empty());
    ShareProfile punt = parse_ok(block("      shared_dir: " + dir_ + "\n      write_path: punt\n"));
    ASSERT_TRUE(resolve_write_path(punt, "dev.yaml", &err)) << err;
    EXPECT_EQ(punt.write_path, WritePath::Punt);
}

TEST_F(SharedDirCheck, WritePathErrorNamesTheKeyOrTheSharedDir) {
    // /proc is not a local page-cache filesystem: inline cannot be honoured there.
    std::string err;
    ShareProfile p = parse_ok(block("      shared_dir: /proc\n      write_path: inline\n"));
    EXPECT_FALSE(resolve_write_path(p, "dev.yaml", &err));
    EXPECT_EQ(err.rfind("dev.yaml:5:19: config.write_path: write_path: inline, but ", 0), 0u)
        << err;
    ShareProfile gone = profile(dir_ + "/nope");
    EXPECT_FALSE(resolve_write_path(gone, "dev.yaml", &err));
    EXPECT_EQ(err.rfind("dev.yaml:4:19: config.shared_dir: statfs ", 0), 0u) << err;
}

} // namespace
} // namespace vdh::virtiofs

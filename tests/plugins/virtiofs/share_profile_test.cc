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
#include <cstring>
#include <string>
#include <vector>

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
    EXPECT_FALSE(p.allow_mmap);
    EXPECT_FALSE(p.readdirplus.has_value());
    EXPECT_FALSE(p.preserve_noatime);
    EXPECT_FALSE(p.announce_tag);
    EXPECT_EQ(p.request_queues, 1u);
    EXPECT_EQ(p.xattrmap, nullptr);
    EXPECT_FALSE(p.allow_direct_io);
}

TEST(ShareProfile, CreateKey) {
    EXPECT_TRUE(parse_ok(block("      shared_dir: /x\n      create: true\n")).create);
    EXPECT_FALSE(parse_ok(block("      shared_dir: /x\n      create: false\n")).create);
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      create: yes\n")),
              "dev.yaml:5:15: config.create: expected boolean (true or false), got \"yes\"");
}

TEST(ShareProfile, AllowDirectIoKey) {
    EXPECT_TRUE(
        parse_ok(block("      shared_dir: /x\n      allow_direct_io: true\n")).allow_direct_io);
    EXPECT_FALSE(
        parse_ok(block("      shared_dir: /x\n      allow_direct_io: false\n")).allow_direct_io);
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      allow_direct_io: on\n")),
              "dev.yaml:5:24: config.allow_direct_io: expected boolean (true or false), got "
              "\"on\"");
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      allow_direct_io:\n")),
              "dev.yaml:5:7: config.allow_direct_io: expected boolean (true or false), got null");
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
              "write_path, translate_uid, translate_gid, allow_mmap, readdirplus, "
              "preserve_noatime, request_timing, announce_tag, request_queues, xattrmap, "
              "allow_direct_io, posix_acl, security_label)");
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

TEST(ShareProfile, XattrmapStringOrListImpliesXattr) {
    using passthrough::XattrMap;
    ShareProfile p =
        parse_ok(block("      shared_dir: /x\n      xattrmap: \":map::user.virtiofs.:\"\n"));
    ASSERT_NE(p.xattrmap, nullptr);
    EXPECT_TRUE(p.xattr); // as virtiofsd: --xattrmap turns xattr support on
    EXPECT_TRUE(capabilities_from(p).xattr);
    EXPECT_EQ(p.xattrmap->rules().size(), 2u); // the map shorthand, expanded

    // The list form, one rule per item (plain or quoted), with an explicit xattr: true.
    p = parse_ok(block("      shared_dir: /x\n"
                       "      xattr: true\n"
                       "      xattrmap:\n"
                       "        - \"/prefix/all/trusted./user.virtiofs./\"\n"
                       "        - '/bad/server//trusted./'\n"
                       "        - /bad/client/user.virtiofs.//\n"
                       "        - /ok/all///\n"));
    ASSERT_NE(p.xattrmap, nullptr);
    const std::vector<XattrMap::Rule> want = {
        {XattrMap::Type::Prefix, XattrMap::kClient | XattrMap::kServer, "trusted.",
         "user.virtiofs."},
        {XattrMap::Type::Bad, XattrMap::kServer, "", "trusted."},
        {XattrMap::Type::Bad, XattrMap::kClient, "user.virtiofs.", ""},
        {XattrMap::Type::Ok, XattrMap::kClient | XattrMap::kServer, "", ""},
    };
    EXPECT_EQ(p.xattrmap->rules(), want);

    // Several rules in one (block) string, as virtiofsd's option takes them.
    p = parse_ok(block("      shared_dir: /x\n"
                       "      xattrmap: |\n"
                       "        :prefix:all:security.:user.virtiofs.security.:\n"
                       "        :ok:all:::\n"));
    ASSERT_NE(p.xattrmap, nullptr);
    EXPECT_EQ(p.xattrmap->rules().size(), 2u);
}

TEST(ShareProfile, XattrmapErrorsPointAtTheRule) {
    // One string: the string's position, the rule's index in the message.
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n"
                                "      xattrmap: \":prefix:all::user.virtiofs.: :bda:all:::\"\n")),
              "dev.yaml:5:17: config.xattrmap: rule 2: unknown type \"bda\" (expected prefix, ok, "
              "bad, unsupported or map)");
    // A list: the offending item's position.
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n"
                                "      xattrmap:\n"
                                "        - \":prefix:all::user.virtiofs.:\"\n"
                                "        - \":bad:every:::\"\n")),
              "dev.yaml:7:11: config.xattrmap: rule 2: unknown scope \"every\" (expected client, "
              "server or all)");
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n"
                                "      xattrmap:\n"
                                "        - \":map::user.virtiofs.:\"\n"
                                "        - \":ok:all:::\"\n")),
              "dev.yaml:6:11: config.xattrmap: rule 1: a map rule must be the last rule (rule 2 "
              "follows it)");
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n"
                                "      xattrmap:\n"
                                "        - \":ok:all::: :bad:all:::\"\n")),
              "dev.yaml:6:11: config.xattrmap: rule 1: one rule per list item (text follows the "
              "rule's closing separator)");
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n"
                                "      xattrmap:\n"
                                "        - \":ok:all:::\"\n"
                                "        - [a]\n")),
              "dev.yaml:7:11: config.xattrmap: expected string, got sequence");
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n"
                                "      xattrmap: \":prefix:client:trusted.:user.vm.\"\n")),
              "dev.yaml:5:17: config.xattrmap: rule 1: incomplete rule: no ':' after its prepend "
              "field (a rule is :type:scope:key:prepend:)");
    // The whole map: at the value.
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      xattrmap: []\n")),
              "dev.yaml:5:17: config.xattrmap: no rules");
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n"
                                "      xattrmap: \":prefix:all::user.virtiofs.:\"\n")),
              "dev.yaml:5:17: config.xattrmap: the rules must match every name, but not all host "
              "(server) names: no server or all rule with an empty prepend (end with a catch-all "
              "rule such as \":ok:all:::\" or \":bad:all:::\")");
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      xattrmap: {a: 1}\n")),
              "dev.yaml:5:17: config.xattrmap: expected string or list of rule strings, got "
              "mapping");
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      xattrmap:\n")),
              "dev.yaml:5:7: config.xattrmap: expected string or list of rule strings, got null");
    // xattr: false contradicts it (in either order): at the xattrmap key.
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n"
                                "      xattr: false\n"
                                "      xattrmap: \":map::user.virtiofs.:\"\n")),
              "dev.yaml:6:7: config.xattrmap: needs xattr support, but config.xattr is false (line "
              "5): remove it or set it to true");
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n"
                                "      xattrmap: \":map::user.virtiofs.:\"\n"
                                "      xattr: false\n")),
              "dev.yaml:5:7: config.xattrmap: needs xattr support, but config.xattr is false (line "
              "6): remove it or set it to true");
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

TEST(ShareProfile, ParityKeys) {
    ShareProfile p = parse_ok(block("      shared_dir: /x\n"
                                    "      allow_mmap: true\n"
                                    "      readdirplus: false\n"
                                    "      preserve_noatime: true\n"));
    EXPECT_TRUE(p.allow_mmap);
    EXPECT_EQ(p.readdirplus, false);
    EXPECT_TRUE(p.preserve_noatime);
    EXPECT_TRUE(p.request_timing);
    p = parse_ok(block("      shared_dir: /x\n      request_timing: false\n"));
    EXPECT_FALSE(p.request_timing);
    p = parse_ok(block("      shared_dir: /x\n      cache: never\n      readdirplus: true\n"));
    EXPECT_EQ(p.readdirplus, true);
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      allow_mmap: on\n")),
              "dev.yaml:5:19: config.allow_mmap: expected boolean (true or false), got \"on\"");
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      readdirplus: 1\n")),
              "dev.yaml:5:20: config.readdirplus: expected boolean (true or false), got \"1\"");
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      preserve_noatime:\n")),
              "dev.yaml:5:7: config.preserve_noatime: expected boolean (true or false), got "
              "null");
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      readdirplus: true\n"
                                "      readdirplus: false\n")),
              "dev.yaml:6:7: config.readdirplus: duplicate key (first at line 5)");
}

TEST(ShareProfile, ReaddirplusDefaultFollowsCacheUnlessSet) {
    // virtiofsd: READDIRPLUS unless --cache=never; the key overrides either way.
    ShareProfile p;
    for (CachePolicy c : {CachePolicy::Auto, CachePolicy::Always, CachePolicy::Metadata}) {
        p.cache = c;
        EXPECT_TRUE(readdirplus_enabled(p)) << to_string(c);
        EXPECT_TRUE(capabilities_from(p).readdirplus) << to_string(c);
    }
    p.cache = CachePolicy::Never;
    EXPECT_FALSE(readdirplus_enabled(p));
    p.readdirplus = true;
    EXPECT_TRUE(readdirplus_enabled(p));
    EXPECT_TRUE(capabilities_from(p).readdirplus);
    p.cache = CachePolicy::Auto;
    p.readdirplus = false;
    EXPECT_FALSE(readdirplus_enabled(p));
    EXPECT_FALSE(capabilities_from(p).readdirplus);
}

TEST(ShareProfile, AllowMmapCapability) {
    ShareProfile p;
    EXPECT_FALSE(capabilities_from(p).direct_io_allow_mmap);
    p.allow_mmap = true;
    EXPECT_TRUE(capabilities_from(p).direct_io_allow_mmap);
}

TEST(ShareProfile, AnnounceTagKeys) {
    ShareProfile p = parse_ok(
        block("      shared_dir: /x\n      announce_tag: true\n      request_queues: 63\n"));
    EXPECT_TRUE(p.announce_tag);
    EXPECT_EQ(p.request_queues, 63u);
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      request_queues: 0\n")),
              "dev.yaml:5:23: config.request_queues: out of range: 0 (expected 1..63)");
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      request_queues: 64\n")),
              "dev.yaml:5:23: config.request_queues: out of range: 64 (expected 1..63)");
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      announce_tag: \"yes\"\n")),
              "dev.yaml:5:21: config.announce_tag: expected boolean (true or false), got quoted "
              "string \"yes\"");
}

TEST(ShareProfile, ConfigSpaceIsVirtioFsConfig) {
    ShareProfile p;
    p.tag = "fs0";
    uint8_t buf[48];
    std::memset(buf, 0xAA, sizeof(buf));
    // Without announce_tag: no config space, nothing written.
    EXPECT_EQ(config_space(p, 0, buf, 40), 0);
    EXPECT_EQ(buf[0], 0xAA);
    p.announce_tag = true;
    p.request_queues = 0x01020304; // out of the key's range, but shows the byte order
    EXPECT_EQ(config_space(p, 0, nullptr, 0), 40);
    ASSERT_EQ(config_space(p, 0, buf, 40), 40);
    uint8_t want[40] = {'f', 's', '0'};
    want[36] = 4;
    want[37] = 3;
    want[38] = 2;
    want[39] = 1;
    EXPECT_EQ(std::memcmp(buf, want, 40), 0);
    // A window reaching past the end: zero there.
    std::memset(buf, 0xAA, sizeof(buf));
    ASSERT_EQ(config_space(p, 38, buf, 8), 40);
    const uint8_t tail[8] = {2, 1, 0, 0, 0, 0, 0, 0};
    EXPECT_EQ(std::memcmp(buf, tail, 8), 0);
    EXPECT_EQ(buf[8], 0xAA);
    // An offset far beyond it (the frontend's choice): all zero, no overflow.
    ASSERT_EQ(config_space(p, UINT32_MAX - 2, buf, 8), 40);
    EXPECT_EQ(std::memcmp(buf, tail + 2, 6), 0);
    // A 36-byte tag fills the field without a NUL.
    p.tag = std::string(36, 't');
    ASSERT_EQ(config_space(p, 0, buf, 37), 40);
    EXPECT_EQ(std::string(reinterpret_cast<char*>(buf), 36), p.tag);
    EXPECT_EQ(buf[36], 4);
}

TEST(ShareProfile, TranslateUidAndGid) {
    using passthrough::IdMapKind;
    using passthrough::IdMapRule;
    ShareProfile p = parse_ok(block("      shared_dir: /x\n"
                                    "      translate_uid:\n"
                                    "        - squash-guest:0:65534:4294967295\n"
                                    "        - \"host:65534:0:1\"\n"
                                    "      translate_gid: [\"map:0:100000:65536\", "
                                    "forbid-guest:65536:1]\n"));
    ASSERT_EQ(p.translate_uid.size(), 2u);
    EXPECT_EQ(p.translate_uid[0], (IdMapRule{IdMapKind::SquashGuest, 0, 65534, 4294967295u}));
    EXPECT_EQ(p.translate_uid[1], (IdMapRule{IdMapKind::Host, 65534, 0, 1}));
    ASSERT_EQ(p.translate_gid.size(), 2u);
    EXPECT_EQ(p.translate_gid[0], (IdMapRule{IdMapKind::Map, 0, 100000, 65536}));
    EXPECT_EQ(p.translate_gid[1], (IdMapRule{IdMapKind::ForbidGuest, 65536, 0, 1}));
    // Default and an empty list: no translation.
    EXPECT_TRUE(parse_ok(block("      shared_dir: /x\n")).translate_uid.empty());
    EXPECT_TRUE(parse_ok(block("      shared_dir: /x\n      translate_gid: []\n"))
                    .translate_gid.empty());
}

TEST(ShareProfile, TranslateErrorsPointAtTheItem) {
    // Syntax: at the item, with its index.
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n"
                                "      translate_uid:\n"
                                "        - map:0:1000:1\n"
                                "        - sqash-guest:0:1:2\n")),
              "dev.yaml:7:11: config.translate_uid[1]: unknown type \"sqash-guest\" in "
              "\"sqash-guest:0:1:2\" (types: guest, host, squash-guest, squash-host, "
              "forbid-guest, map)");
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n"
                                "      translate_gid: [\"map:0:1000\"]\n")),
              "dev.yaml:5:23: config.translate_gid[0]: expected map:GUEST:HOST:COUNT (3 "
              "numbers), got 2 in \"map:0:1000\"");
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n"
                                "      translate_uid: [guest:0:1:2, \"guest:9:x:1\"]\n")),
              "dev.yaml:5:36: config.translate_uid[1]: \"x\" is not a number 0..4294967295 (in "
              "\"guest:9:x:1\")");
    // Ranges: overlap with an earlier item, overflow, count 0.
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n"
                                "      translate_uid:\n"
                                "        - squash-guest:0:65534:1000\n"
                                "        - forbid-guest:0:1\n")),
              "dev.yaml:7:11: config.translate_uid[1]: guest ids [0, 1) overlap those of item 0 "
              "(\"squash-guest:0:65534:1000\"): rules must not overlap");
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n"
                                "      translate_gid:\n"
                                "        - squash-guest:1:65534:4294967295\n")),
              "dev.yaml:6:11: config.translate_gid[0]: range overflow in "
              "\"squash-guest:1:65534:4294967295\": guest ids [1, 4294967296) end past "
              "4294967295");
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      translate_uid: [\"map:0:0:0\"]\n")),
              "dev.yaml:5:23: config.translate_uid[0]: count is 0 in \"map:0:0:0\": the rule "
              "maps nothing");
    // Types: not a list, an item that is not a string.
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      translate_uid: map:0:0:1\n")),
              "dev.yaml:5:22: config.translate_uid: expected sequence of virtiofsd rule strings "
              "(e.g. [\"map:1000:100000:1\"]), got \"map:0:0:1\"");
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      translate_uid: [map:0:0:1, [1]]\n")),
              "dev.yaml:5:34: config.translate_uid[1]: expected string, got sequence");
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n      translate_uid:\n")),
              "dev.yaml:5:7: config.translate_uid: expected sequence of virtiofsd rule strings "
              "(e.g. [\"map:1000:100000:1\"]), got null");
}

TEST(ShareProfile, TranslateTooManyRulesPointsAtTheFirstExtra) {
    std::string yaml = block("      shared_dir: /x\n      translate_uid:\n");
    for (int i = 0; i < 65; ++i) {
        yaml += "        - guest:" + std::to_string(i) + ":" + std::to_string(1000 + i) + ":1\n";
    }
    EXPECT_EQ(parse_error(yaml),
              "dev.yaml:70:11: config.translate_uid[64]: too many rules: 65 (at most 64)");
}

TEST(ShareProfile, TranslateWithPosixAclIsRefused) {
    // As virtiofsd (--translate-uid conflicts with --posix-acl). Named: both keys, at the
    // translation key, whichever comes first in the block.
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n"
                                "      posix_acl: true\n"
                                "      translate_gid: [\"map:0:1000:1\"]\n")),
              "dev.yaml:6:7: config.translate_gid: cannot be combined with config.posix_acl: "
              "true (line 5): ACL entries hold host ids that translation does not rewrite, so "
              "the guest would read and set wrong owners (virtiofsd refuses this too)");
    EXPECT_EQ(parse_error(block("      shared_dir: /x\n"
                                "      translate_uid: [\"squash-guest:0:65534:4294967295\"]\n"
                                "      posix_acl: true\n")),
              "dev.yaml:5:7: config.translate_uid: cannot be combined with config.posix_acl: "
              "true (line 6): ACL entries hold host ids that translation does not rewrite, so "
              "the guest would read and set wrong owners (virtiofsd refuses this too)");
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

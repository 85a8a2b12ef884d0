// SPDX-License-Identifier: MIT
// Tests of host/src/virtiofsd_compat/compat_options.cc: every class of virtiofsd option
// (mapped, accepted and ignored, rejected), conflicts, `-o a,b=c` lists with libvirt's ",,"
// escape, and the vdhost config written from them, parsed back with vdhost's own loader.
#include "compat_options.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config.h"

namespace vdh::compat {
namespace {

CompatOptions parse_ok(const std::vector<std::string>& args) {
    std::string err;
    auto o = parse_compat_args(args, &err);
    EXPECT_TRUE(o.has_value()) << err;
    return o.value_or(CompatOptions{});
}

std::string parse_err(const std::vector<std::string>& args) {
    std::string err;
    auto o = parse_compat_args(args, &err);
    EXPECT_FALSE(o.has_value());
    return err;
}

bool ignored(const CompatOptions& o, const std::string& opt) {
    for (const auto& i : o.ignored) {
        if (i.option == opt) {
            return true;
        }
    }
    return false;
}

TEST(CompatOptions, RustSpellingsMapToVdhostKeys) {
    CompatOptions o =
        parse_ok({"--shared-dir", "/srv/share", "--socket-path=/run/fs.sock", "--socket-group",
                  "kvm", "--tag", "myfs", "--cache=always", "--xattr", "--readonly", "--writeback",
                  "--no-announce-submounts", "--inode-file-handles=mandatory", "--sandbox",
                  "chroot", "--seccomp=log", "--log-level", "warn", "--allow-direct-io"});
    EXPECT_EQ(o.action, CompatAction::Run);
    EXPECT_EQ(o.shared_dir, "/srv/share");
    EXPECT_EQ(o.socket_path, "/run/fs.sock");
    EXPECT_EQ(o.socket_group, "kvm");
    EXPECT_EQ(o.tag, "myfs");
    EXPECT_EQ(o.cache, "always");
    EXPECT_EQ(o.xattr, true);
    EXPECT_EQ(o.readonly, true);
    EXPECT_EQ(o.writeback, true);
    EXPECT_EQ(o.announce_submounts, false);
    EXPECT_EQ(o.inode_file_handles, "mandatory");
    EXPECT_EQ(o.sandbox, "chroot");
    EXPECT_EQ(o.seccomp, "log");
    EXPECT_EQ(o.log_level, "warning");
    EXPECT_EQ(o.allow_direct_io, true);
    EXPECT_TRUE(o.ignored.empty());
}

TEST(CompatOptions, DefaultsAreVirtiofsds) {
    CompatOptions o = parse_ok({"--fd=3", "--shared-dir=/s"});
    EXPECT_EQ(o.fd, 3);
    EXPECT_EQ(o.cache, "auto");
    EXPECT_EQ(o.sandbox, "namespace");
    EXPECT_EQ(o.seccomp, "kill");
    EXPECT_EQ(o.inode_file_handles, "never");
    EXPECT_FALSE(o.xattr.has_value());
    EXPECT_FALSE(o.allow_direct_io.has_value()); // the plugin's default: off, as virtiofsd
    // A bare --inode-file-handles means prefer; fallback is prefer's old name.
    EXPECT_EQ(parse_ok({"--fd=3", "--shared-dir=/s", "--inode-file-handles"}).inode_file_handles,
              "prefer");
    EXPECT_EQ(
        parse_ok({"--fd=3", "--shared-dir=/s", "--inode-file-handles=fallback"}).inode_file_handles,
        "prefer");
}

TEST(CompatOptions, COptionListsWithLibvirtCommaEscape) {
    // libvirt 9.0 without separate-options: one -o list, commas in the path doubled.
    CompatOptions o = parse_ok({"--fd=7", "-o",
                                "source=/srv/a,,b,cache=none,sandbox=chroot,xattr,flock,"
                                "no_posix_lock,allow_direct_io",
                                "--thread-pool-size=16", "-d"});
    EXPECT_EQ(o.fd, 7);
    EXPECT_EQ(o.shared_dir, "/srv/a,b");
    EXPECT_EQ(o.cache, "never");
    EXPECT_EQ(o.sandbox, "chroot");
    EXPECT_EQ(o.xattr, true);
    EXPECT_EQ(o.flock, true);
    EXPECT_EQ(o.posix_locks, false);
    EXPECT_EQ(o.allow_direct_io, true);
    EXPECT_EQ(o.log_level, "debug");
    EXPECT_TRUE(ignored(o, "--thread-pool-size"));
    // -oITEM glued, repeated -o, and the remaining -o keys.
    o = parse_ok({"-osource=/s", "-o", "no_xattr,writeback,announce_submounts,timeout=1.5", "-o",
                  "log_level=err,no_flock,posix_lock,no_writeback,no_allow_direct_io",
                  "--socket-path=/r.sock"});
    EXPECT_EQ(o.shared_dir, "/s");
    EXPECT_EQ(o.xattr, false);
    EXPECT_EQ(o.writeback, false);
    EXPECT_EQ(o.announce_submounts, true);
    EXPECT_EQ(o.timeout_ms, 1500u);
    EXPECT_EQ(o.log_level, "err");
    EXPECT_EQ(o.flock, false);
    EXPECT_EQ(o.posix_locks, true);
    EXPECT_EQ(o.allow_direct_io, false);
}

TEST(CompatOptions, AcceptedAndIgnoredWithReasons) {
    CompatOptions o = parse_ok(
        {"--fd=3",
         "--shared-dir=/s",
         "--thread-pool-size",
         "0",
         "--rlimit-nofile=100000",
         "--syslog",
         "-f",
         "--killpriv-v2",
         "--no-killpriv-v2",
         "--migration-mode=file-handles",
         "--migration-on-error",
         "guest-error",
         "--migration-verify-handles",
         "--migration-confirm-paths",
         "--seccomp=trap",
         "-o",
         "max_idle_threads=4,"
         "killpriv_v2,no_killpriv_v2,allow_root"});
    for (const char* opt : {"--thread-pool-size",
                            "--rlimit-nofile",
                            "--syslog",
                            "-f",
                            "--killpriv-v2",
                            "--no-killpriv-v2",
                            "--migration-mode",
                            "--migration-on-error",
                            "--migration-verify-handles",
                            "--migration-confirm-paths",
                            "--seccomp=trap",
                            "-o max_idle_threads",
                            "-o killpriv_v2",
                            "-o no_killpriv_v2",
                            "-o allow_root"}) {
        EXPECT_TRUE(ignored(o, opt)) << opt;
    }
    for (const auto& i : o.ignored) {
        EXPECT_FALSE(i.reason.empty()) << i.option;
    }
    EXPECT_EQ(o.seccomp, "kill"); // trap acts as kill
    // --socket-group means nothing for an inherited socket.
    o = parse_ok({"--fd=3", "--shared-dir=/s", "--socket-group=kvm"});
    EXPECT_TRUE(ignored(o, "--socket-group"));
    EXPECT_TRUE(o.socket_group.empty());
}

TEST(CompatOptions, ParityOptionsMapToProfileKeys) {
    CompatOptions o = parse_ok({"--fd=3", "--shared-dir=/s"});
    EXPECT_FALSE(o.allow_mmap.has_value());
    EXPECT_FALSE(o.readdirplus.has_value());
    EXPECT_FALSE(o.preserve_noatime.has_value());
    o = parse_ok({"--fd=3", "--shared-dir=/s", "--allow-mmap", "--preserve-noatime",
                  "--no-readdirplus"});
    EXPECT_EQ(o.allow_mmap, true);
    EXPECT_EQ(o.preserve_noatime, true);
    EXPECT_EQ(o.readdirplus, false);
    EXPECT_TRUE(o.ignored.empty());
    EXPECT_EQ(parse_ok({"--fd=3", "-o", "source=/s,readdirplus"}).readdirplus, true);
    EXPECT_EQ(parse_ok({"--fd=3", "-o", "source=/s,no_readdirplus"}).readdirplus, false);
}

TEST(CompatOptions, UnsupportedOptionsAreRejectedByName) {
    const std::vector<std::string> base{"--fd=3", "--shared-dir=/s"};
    auto with = [&](std::vector<std::string> extra) {
        std::vector<std::string> a = base;
        a.insert(a.end(), extra.begin(), extra.end());
        return parse_err(a);
    };
    EXPECT_EQ(with({"--daemonize"}), "--daemonize is not supported yet");
    EXPECT_EQ(with({"--modcaps=+sys_admin"}), "--modcaps is not supported yet");
    EXPECT_EQ(with({"--translate-uid=map:0:1000:1"}), "--translate-uid is not supported yet");
    EXPECT_EQ(with({"--translate-gid", "map:0:1000:1"}), "--translate-gid is not supported yet");
    EXPECT_EQ(with({"--uid-map=:0:100000:65536:"}), "--uid-map is not supported yet");
    EXPECT_EQ(with({"--gid-map=:0:100000:65536:"}), "--gid-map is not supported yet");
    EXPECT_EQ(with({"-o", "modcaps=-chown"}), "-o modcaps is not supported yet");
}

TEST(CompatOptions, XattrmapIsPassedToTheShareProfile) {
    EXPECT_EQ(parse_ok({"--fd=3", "--shared-dir=/s", "--xattrmap", ":map::user.virtiofs.:"})
                  .xattrmap,
              ":map::user.virtiofs.:");
    EXPECT_EQ(parse_ok({"--fd=3", "-o", "source=/s,xattrmap=/ok/all///"}).xattrmap, "/ok/all///");
    EXPECT_EQ(parse_err({"--fd=3", "--shared-dir=/s", "--xattrmap=:a:", "-o", "xattrmap=:b:"}),
              "-o xattrmap: the xattr map is given twice");
    EXPECT_EQ(parse_err({"--fd=3", "--shared-dir=/s", "-o", "xattrmap"}),
              "-o xattrmap needs a value (xattrmap=...)");
}

TEST(CompatOptions, PosixAclAndSecurityLabelMapToTheirKeys) {
    CompatOptions o = parse_ok({"--fd=3", "--shared-dir=/s", "--posix-acl", "--security-label"});
    EXPECT_EQ(o.posix_acl, true);
    EXPECT_EQ(o.security_label, true);
    const std::string y = build_vdhost_config(o);
    EXPECT_NE(y.find("      posix_acl: true\n"), std::string::npos) << y;
    EXPECT_NE(y.find("      security_label: true\n"), std::string::npos) << y;
    o = parse_ok({"-o", "source=/s,posix_acl,no_security_label", "--fd=3"});
    EXPECT_EQ(o.posix_acl, true);
    EXPECT_EQ(o.security_label, false);
    o = parse_ok({"-o", "source=/s,no_posix_acl,security_label", "--fd=3"});
    EXPECT_EQ(o.posix_acl, false);
    EXPECT_EQ(o.security_label, true);
    o = parse_ok({"--fd=3", "--shared-dir=/s"});
    EXPECT_FALSE(o.posix_acl.has_value());
    EXPECT_EQ(build_vdhost_config(o).find("posix_acl"), std::string::npos);
}

TEST(CompatOptions, BadValuesConflictsAndMissingOptions) {
    EXPECT_EQ(parse_err({"--fd=3"}), "--shared-dir (or -o source=) is required");
    EXPECT_EQ(parse_err({"--shared-dir=/s"}), "--socket-path or --fd is required");
    EXPECT_EQ(parse_err({"--shared-dir=/s", "--fd=3", "--socket-path=/r.sock"}),
              "--fd and --socket-path cannot be used together");
    EXPECT_EQ(parse_err({"--shared-dir=/a", "-o", "source=/b", "--fd=3"}),
              "-o source: the shared directory or socket is given twice (\"/a\" and \"/b\")");
    EXPECT_EQ(parse_err({"--shared-dir=/s", "--fd=x"}),
              "--fd: expected a non-negative integer, got \"x\"");
    EXPECT_EQ(parse_err({"--shared-dir=/s", "--fd=3", "--cache=sometimes"}),
              "--cache: unknown cache mode \"sometimes\" (expected never, auto, always, "
              "metadata; or none)");
    EXPECT_EQ(parse_err({"--shared-dir=/s", "--fd=3", "--sandbox=jail"}),
              "--sandbox: unknown sandbox \"jail\" (expected namespace, chroot or none)");
    EXPECT_EQ(parse_err({"--shared-dir=/s", "--fd=3", "--seccomp=allow"}),
              "--seccomp: unknown seccomp action \"allow\" (expected none, kill, log or trap)");
    EXPECT_EQ(parse_err({"--shared-dir=/s", "--fd=3", "--log-level=loud"}),
              "--log-level: unknown log level \"loud\" (expected error, warn, info, debug, "
              "trace, off; or err)");
    EXPECT_EQ(parse_err({"--shared-dir=/s", "--fd=3", "--inode-file-handles=always"}),
              "--inode-file-handles: unknown mode \"always\" (expected never, prefer or "
              "mandatory)");
    EXPECT_EQ(parse_err({"--shared-dir=/s", "--fd=3", "--xattr=yes"}), "--xattr takes no value");
    EXPECT_EQ(parse_err({"--shared-dir=/s", "--fd"}), "--fd needs a value");
    EXPECT_EQ(parse_err({"--shared-dir=/s", "--fd=3", "--thread-pool-size=-1"}),
              "--thread-pool-size: expected a non-negative integer, got \"-1\"");
    EXPECT_EQ(parse_err({"--shared-dir=/s", "--fd=3", "--tag=" + std::string(37, 't')}),
              "--tag: a tag has 1 to 36 bytes, got 37");
    EXPECT_EQ(parse_err({"--shared-dir=/s", "--fd=3", "--frobnicate"}),
              "unknown option --frobnicate");
    EXPECT_EQ(parse_err({"--shared-dir=/s", "--fd=3", "-o", "frob"}), "unknown option -o frob");
    EXPECT_EQ(parse_err({"--shared-dir=/s", "--fd=3", "-o", "cache"}),
              "-o cache needs a value (cache=...)");
    EXPECT_EQ(parse_err({"--shared-dir=/s", "--fd=3", "-o", "xattr=1"}), "-o xattr takes no value");
    EXPECT_EQ(parse_err({"--shared-dir=/s", "--fd=3", "-o", "timeout=soon"}),
              "-o timeout: expected a number of seconds, got \"soon\"");
    EXPECT_EQ(parse_err({"--shared-dir=/s", "--fd=3", "stray"}), "unexpected argument \"stray\"");
    EXPECT_EQ(parse_err({"-x"}), "unknown option -x");
}

TEST(CompatOptions, InformationalActionsNeedNoShare) {
    EXPECT_EQ(parse_ok({"--print-capabilities"}).action, CompatAction::PrintCapabilities);
    EXPECT_EQ(parse_ok({"-V"}).action, CompatAction::Version);
    EXPECT_EQ(parse_ok({"--version"}).action, CompatAction::Version);
    EXPECT_EQ(parse_ok({"-h"}).action, CompatAction::Help);
    EXPECT_EQ(parse_ok({"--help"}).action, CompatAction::Help);
    EXPECT_EQ(capabilities_json(),
              "{\n  \"type\": \"fs\",\n  \"features\": [\n    \"separate-options\"\n  ]\n}\n");
}

TEST(CompatOptions, WrittenConfigLoadsInVdhostWithEveryMappedKey) {
    CompatOptions o = parse_ok({"--shared-dir",
                                "/srv/we\"ird\\ path,x",
                                "--socket-path",
                                "/tmp/vdh-compat-test.sock",
                                "--socket-group",
                                "0",
                                "--tag",
                                "t1",
                                "--cache",
                                "metadata",
                                "--xattr",
                                "--readonly",
                                "--writeback",
                                "--announce-submounts",
                                "--sandbox",
                                "none",
                                "--seccomp",
                                "none",
                                "--log-level",
                                "debug",
                                "--inode-file-handles=prefer",
                                "--allow-mmap",
                                "--preserve-noatime",
                                "--allow-direct-io",
                                "-o",
                                "no_flock,posix_lock,no_readdirplus",
                                "-o",
                                "timeout=2",
                                "--xattrmap",
                                ":prefix:all::user.virtiofs.:\n:bad:all:::"});
    const std::string yaml = build_vdhost_config(o);
    ConfigError err;
    auto cfg = parse_config(yaml, "gen.yaml", 4, &err);
    ASSERT_TRUE(cfg.has_value()) << err.message << "\n" << yaml;
    EXPECT_EQ(cfg->host.log_level, "debug");
    EXPECT_EQ(cfg->host.sandbox, SandboxMode::None);
    EXPECT_EQ(cfg->host.seccomp, SeccompMode::None);
    ASSERT_EQ(cfg->devices.size(), 1u);
    const DeviceConfig& d = cfg->devices[0];
    EXPECT_EQ(d.type, "virtiofs");
    EXPECT_EQ(d.socket, "/tmp/vdh-compat-test.sock");
    EXPECT_EQ(d.socket_mode, 0660u);
    EXPECT_TRUE(d.has_socket_group);
    EXPECT_EQ(d.socket_gid, 0u);
    // The plugin's block, as the plugin reads it.
    for (const char* line :
         {"shared_dir: \"/srv/we\\\"ird\\\\ path,x\"", "tag: \"t1\"", "cache: metadata",
          "inode_file_handles: prefer", "xattr: true", "writeback: true", "readonly: true",
          "announce_submounts: true", "flock: false", "posix_locks: true", "entry_timeout_ms: 2000",
          "attr_timeout_ms: 2000", "allow_mmap: true", "readdirplus: false",
          "preserve_noatime: true", "xattrmap: \":prefix:all::user.virtiofs.:\\x0a:bad:all:::\"",
          "allow_direct_io: true"}) {
        EXPECT_NE(d.config_text.find(line), std::string::npos) << line << "\n" << d.config_text;
    }
}

} // namespace
} // namespace vdh::compat

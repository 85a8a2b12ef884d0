// SPDX-License-Identifier: MIT
// Byte-exact tests of FuseDispatcher: hand-built request buffers (split across iovecs in
// various ways) go in, reply bytes and the Filesystem calls made are checked. Covers INIT
// negotiation, every opcode of filesystem.h, framing and argument errors, and the
// asynchronous paths through a fake IoEngine completed by the test.
#include "fuse/fuse_dispatcher.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fuse_test_util.h"
#include "vdh/unique_fd.h"

namespace vdh::virtiofs {
namespace {

using test::Bytes;
using test::bytes_of;
using test::cat;
using test::Chain;
using test::Completions;
using test::FakeDirent;
using test::FakeEngine;
using test::FakeFs;
using test::init_in;
using test::kNode;
using test::kUnique;
using test::Msg;
using test::read_in;
using test::Rec;
using test::reply;
using test::str_bytes;

/// Little-endian field encoders for hand-written expected bytes.
Bytes le16(uint16_t v) {
    return {uint8_t(v), uint8_t(v >> 8)};
}
Bytes le32(uint32_t v) {
    return {uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)};
}
Bytes le64(uint64_t v) {
    return cat({le32(uint32_t(v)), le32(uint32_t(v >> 32))});
}
Bytes zeros(size_t n) {
    return Bytes(n, 0);
}

constexpr uint32_t kMiB = 1u << 20;

/// The flags a 6.1 guest offers (protocol 7.38).
constexpr uint32_t kGuestFlags = 0x7bfffffb;
/// What we enable from kGuestFlags with default FsCapabilities, worked out by hand:
/// ASYNC_READ 0x1 | POSIX_LOCKS 0x2 | ATOMIC_O_TRUNC 0x8 | EXPORT_SUPPORT 0x10 |
/// BIG_WRITES 0x20 | DONT_MASK 0x40 | FLOCK_LOCKS 0x400 | AUTO_INVAL_DATA 0x1000 |
/// DO_READDIRPLUS 0x2000 | READDIRPLUS_AUTO 0x4000 | ASYNC_DIO 0x8000 |
/// PARALLEL_DIROPS 0x40000 | MAX_PAGES 0x400000 | HANDLE_KILLPRIV_V2 0x10000000 |
/// INIT_EXT 0x40000000.
constexpr uint32_t kDefaultEnabled = 0x5044F47B;

/// Expected INIT reply, field by field (independent of struct fuse_init_out).
Bytes init_reply_bytes(uint32_t minor, uint32_t readahead, uint32_t flags, uint32_t flags2) {
    return cat({le32(80), le32(0), le64(kUnique), le32(7), le32(minor), le32(readahead),
                le32(flags), le16(65535), le16(49149), le32(1048576), le32(1), le16(256), le16(0),
                le32(flags2), zeros(28)});
}

fuse_entry_out sample_entry() {
    fuse_entry_out e{};
    e.nodeid = 42;
    e.generation = 7;
    e.entry_valid = 1;
    e.attr_valid = 2;
    e.entry_valid_nsec = 3;
    e.attr_valid_nsec = 4;
    e.attr.ino = 1234;
    e.attr.size = 5678;
    e.attr.blocks = 16;
    e.attr.mode = S_IFREG | 0644;
    e.attr.nlink = 1;
    e.attr.uid = 1000;
    e.attr.gid = 1001;
    e.attr.blksize = 4096;
    return e;
}

fuse_attr_out sample_attr() {
    fuse_attr_out a{};
    a.attr_valid = 9;
    a.attr_valid_nsec = 10;
    a.attr = sample_entry().attr;
    return a;
}

fuse_open_out sample_open() {
    fuse_open_out o{};
    o.fh = 0xabcdef;
    o.open_flags = FOPEN_KEEP_CACHE;
    return o;
}

class FuseDispatcherTest : public ::testing::Test {
protected:
    void SetUp() override {
        Completions::list().clear();
        cfg.done = &Completions::done;
        fs.entry = sample_entry();
        fs.attr = sample_attr();
        fs.open_out = sample_open();
    }

    FuseDispatcher& disp() {
        if (!d) {
            d = std::make_unique<FuseDispatcher>(fs, cfg);
        }
        return *d;
    }

    void TearDown() override { drop_held_file(); }

    /// The host never reuses a request's ctx before that request completed; these tests
    /// do (the fake engine never completes), so the open-file reference an async request
    /// took (FuseRequestCtx::file_ref) is dropped here before the ctx is reused or freed.
    void drop_held_file() {
        if (ctx.file_held) {
            ctx.file_held = false;
            using Ref = std::shared_ptr<const void>;
            std::launder(reinterpret_cast<Ref*>(ctx.file_ref))->~Ref();
        }
    }

    int64_t send(Chain& ch, IoEngine* engine = nullptr) {
        drop_held_file();
        return disp().handle(ch.req(), &ctx, engine);
    }

    /// Sends \p m with one out buffer of \p out bytes; checks that the return value is the
    /// header's len and nothing was written past it; returns the reply bytes.
    Bytes call(const Msg& m, size_t out = 4096) {
        Chain ch(m.build(), {out});
        int64_t n = send(ch);
        EXPECT_GE(n, 16);
        if (n < 16) {
            return {};
        }
        Bytes r = ch.out(static_cast<size_t>(n));
        fuse_out_header h;
        std::memcpy(&h, r.data(), sizeof(h));
        EXPECT_EQ(h.len, static_cast<uint32_t>(n));
        EXPECT_TRUE(ch.untouched_from(static_cast<size_t>(n)));
        return r;
    }

    /// INIT as a 6.1 guest would send it; checks it succeeded.
    void init(uint32_t flags = kGuestFlags, uint32_t flags2 = 0) {
        Bytes r = call(Msg(FUSE_INIT, 0).add(init_in(7, 38, flags, flags2)));
        ASSERT_EQ(r.size(), 80u);
        ASSERT_TRUE(disp().initialized());
        fs.calls.clear();
    }

    Bytes error_reply(int err) { return reply(kUnique, -err); }

    FakeFs fs;
    FakeEngine engine;
    FuseDispatcherConfig cfg;
    std::unique_ptr<FuseDispatcher> d;
    FuseRequestCtx ctx{};
};

// ---- INIT and the session -------------------------------------------------------------------

TEST_F(FuseDispatcherTest, InitNegotiatesLinux61Guest) {
    Bytes r = call(Msg(FUSE_INIT, 0).add(init_in(7, 38, kGuestFlags, 0x1)));
    EXPECT_EQ(r, init_reply_bytes(38, 131072, kDefaultEnabled, 0));
    EXPECT_EQ(fs.init_count, 1);
    EXPECT_EQ(fs.init_minor, 38u);
    EXPECT_EQ(fs.init_want, kDefaultEnabled);
    EXPECT_TRUE(disp().initialized());
    EXPECT_EQ(disp().negotiated_minor(), 38u);
}

TEST_F(FuseDispatcherTest, InitNegotiatesLinux612GuestWithFlags2) {
    // 6.12 speaks 7.41 and offers SECURITY_CTX, CREATE_SUPP_GROUP, EXPIRE_ONLY,
    // DIRECT_IO_ALLOW_MMAP, NO_EXPORT_SUPPORT, HAS_RESEND and ALLOW_IDMAP in flags2.
    const uint32_t flags2 = 0x1DD;
    fs.caps.writeback_cache = true;
    fs.caps.submounts = true;
    fs.caps.xattr = true;
    fs.caps.setxattr_ext = true;
    Bytes r = call(Msg(FUSE_INIT, 0).add(init_in(7, 41, kGuestFlags, flags2, 65536)));
    // + WRITEBACK_CACHE 0x10000, SUBMOUNTS 0x8000000, SETXATTR_EXT 0x20000000; flags2:
    // CREATE_SUPP_GROUP (bit 34 = flags2 0x4) only.
    EXPECT_EQ(r, init_reply_bytes(38, 65536, 0x7845F47B, 0x4));
    EXPECT_EQ(fs.init_minor, 38u);
    EXPECT_EQ(fs.init_want, 0x7845F47Bu | (1ULL << 34));
}

TEST_F(FuseDispatcherTest, InitKeepsHighFlagsWhenEnabled) {
    // Of the high flags only CREATE_SUPP_GROUP (flags2 0x4) is on by default.
    Bytes r = call(Msg(FUSE_INIT, 0).add(init_in(7, 38, kGuestFlags, 0xFFFFFFFF)));
    EXPECT_EQ(r, init_reply_bytes(38, 131072, kDefaultEnabled, 0x4));
}

TEST_F(FuseDispatcherTest, InitPosixAclEnablesAclDontMaskAndSetxattrExt) {
    fs.caps.xattr = true;
    fs.caps.posix_acl = true;
    Bytes r = call(Msg(FUSE_INIT, 0).add(init_in(7, 41, kGuestFlags, 0x1DD)));
    // kDefaultEnabled + POSIX_ACL 0x100000 + SETXATTR_EXT 0x20000000 (DONT_MASK 0x40 is
    // always on); flags2 CREATE_SUPP_GROUP.
    EXPECT_EQ(r, init_reply_bytes(38, 131072, 0x7054F47B, 0x4));
    EXPECT_EQ(fs.init_want, 0x7054F47Bu | (1ULL << 34));
}

TEST_F(FuseDispatcherTest, InitPosixAclFailsWhenTheGuestLacksAnyOfTheThreeFlags) {
    fs.caps.xattr = true;
    fs.caps.posix_acl = true;
    for (uint32_t missing : {uint32_t(FUSE_POSIX_ACL), uint32_t(FUSE_DONT_MASK),
                             uint32_t(FUSE_SETXATTR_EXT)}) {
        SCOPED_TRACE(missing);
        EXPECT_EQ(call(Msg(FUSE_INIT, 0).add(init_in(7, 38, kGuestFlags & ~missing))),
                  error_reply(EPROTO));
        EXPECT_FALSE(disp().initialized());
    }
    EXPECT_EQ(fs.init_count, 0);
    // Without xattr the profile cannot have ACLs: nothing is asked of the guest.
    fs.caps.xattr = false;
    EXPECT_EQ(call(Msg(FUSE_INIT, 0).add(init_in(7, 38, kGuestFlags & ~FUSE_POSIX_ACL))),
              init_reply_bytes(38, 131072, kDefaultEnabled & ~FUSE_POSIX_ACL, 0));
}

TEST_F(FuseDispatcherTest, InitSecurityLabelNeedsAnExtensionCapableGuest) {
    fs.caps.security_label = true;
    // 7.41 (Linux 6.12): SECURITY_CTX (flags2 0x1) and CREATE_SUPP_GROUP (0x4).
    EXPECT_EQ(call(Msg(FUSE_INIT, 0).add(init_in(7, 41, kGuestFlags, 0x1DD))),
              init_reply_bytes(38, 131072, kDefaultEnabled, 0x5));
    // 7.37 (Linux 6.1) appends the context without total_extlen: not offered.
    EXPECT_EQ(call(Msg(FUSE_INIT, 0).add(init_in(7, 37, kGuestFlags, 0x1))),
              init_reply_bytes(37, 131072, kDefaultEnabled, 0));
    EXPECT_EQ(fs.init_want >> 32, 0u);
}

TEST_F(FuseDispatcherTest, InitEnablesDirectIoAllowMmapWhenAllowed) {
    // allow_mmap: DIRECT_IO_ALLOW_MMAP is bit 36, i.e. bit 4 of flags2 (0x10), enabled
    // when a 6.12 guest (flags2 0x1DD) offers it; CREATE_SUPP_GROUP (0x4) is always on.
    fs.caps.direct_io_allow_mmap = true;
    Bytes r = call(Msg(FUSE_INIT, 0).add(init_in(7, 41, kGuestFlags, 0x1DD, 65536)));
    EXPECT_EQ(r, init_reply_bytes(38, 65536, kDefaultEnabled, 0x14));
    EXPECT_EQ(fs.init_want, (uint64_t{1} << 36) | (uint64_t{1} << 34) | kDefaultEnabled);
}

TEST_F(FuseDispatcherTest, InitDirectIoAllowMmapNeedsGuestOffer) {
    fs.caps.direct_io_allow_mmap = true;
    // A 6.1 guest offers no flags2 bit: nothing in flags2.
    EXPECT_EQ(call(Msg(FUSE_INIT, 0).add(init_in(7, 38, kGuestFlags, 0))),
              init_reply_bytes(38, 131072, kDefaultEnabled, 0));
    // flags2 without INIT_EXT does not count.
    EXPECT_EQ(call(Msg(FUSE_INIT, 0).add(init_in(7, 41, kGuestFlags & ~FUSE_INIT_EXT, 0x10))),
              init_reply_bytes(38, 131072, kDefaultEnabled & ~FUSE_INIT_EXT, 0));
}

TEST_F(FuseDispatcherTest, InitWithoutAllowMmapLeavesItOff) {
    // Default capabilities: the guest's DIRECT_IO_ALLOW_MMAP offer is declined.
    Bytes r = call(Msg(FUSE_INIT, 0).add(init_in(7, 41, kGuestFlags, 0x10)));
    EXPECT_EQ(r, init_reply_bytes(38, 131072, kDefaultEnabled, 0));
    EXPECT_EQ(fs.init_want & (uint64_t{1} << 36), 0u);
}

TEST_F(FuseDispatcherTest, InitWithoutReaddirplus) {
    // readdirplus: false (or cache: never): DO_READDIRPLUS 0x2000 and READDIRPLUS_AUTO
    // 0x4000 are not offered.
    fs.caps.readdirplus = false;
    Bytes r = call(Msg(FUSE_INIT, 0).add(init_in(7, 38, kGuestFlags)));
    EXPECT_EQ(r, init_reply_bytes(38, 131072, 0x5044947B, 0));
    EXPECT_EQ(kDefaultEnabled & ~uint32_t{0x6000}, 0x5044947Bu);
    EXPECT_EQ(fs.init_want, 0x5044947Bu);
}

TEST_F(FuseDispatcherTest, InitWithoutInitExtIgnoresFlags2) {
    const uint32_t flags = kGuestFlags & ~FUSE_INIT_EXT;
    Bytes r = call(Msg(FUSE_INIT, 0).add(init_in(7, 38, flags, 0xFFFFFFFF)));
    EXPECT_EQ(r, init_reply_bytes(38, 131072, kDefaultEnabled & ~FUSE_INIT_EXT, 0));
}

TEST_F(FuseDispatcherTest, InitAcceptsShortOldStruct) {
    // A 7.31 guest (Linux 5.4) sends the 16-byte fuse_init_in.
    fuse_init_in in = init_in(7, 31, FUSE_ASYNC_READ | FUSE_MAX_PAGES | FUSE_EXPORT_SUPPORT);
    Bytes r = call(Msg(FUSE_INIT, 0).add_prefix(in, 16));
    EXPECT_EQ(
        r, init_reply_bytes(31, 131072, FUSE_ASYNC_READ | FUSE_MAX_PAGES | FUSE_EXPORT_SUPPORT, 0));
    EXPECT_EQ(fs.init_minor, 31u);
}

TEST_F(FuseDispatcherTest, InitHonoursConfiguredMaxPages) {
    cfg.max_pages = 32;
    Bytes r = call(Msg(FUSE_INIT, 0).add(init_in(7, 38, kGuestFlags)));
    fuse_init_out out;
    std::memcpy(&out, r.data() + 16, sizeof(out));
    EXPECT_EQ(out.max_pages, 32);
    EXPECT_EQ(out.max_write, 32u * 4096);
}

TEST_F(FuseDispatcherTest, InitRejectsOldMajorAndMinor) {
    EXPECT_EQ(call(Msg(FUSE_INIT, 0).add(init_in(6, 38, kGuestFlags))), error_reply(EPROTO));
    EXPECT_EQ(call(Msg(FUSE_INIT, 0).add(init_in(7, 26, kGuestFlags))), error_reply(EPROTO));
    EXPECT_FALSE(disp().initialized());
    EXPECT_EQ(fs.init_count, 0);
}

TEST_F(FuseDispatcherTest, InitNewerMajorGetsOurVersionOnly) {
    Bytes r = call(Msg(FUSE_INIT, 0).add(init_in(8, 1, kGuestFlags)));
    EXPECT_EQ(r, cat({le32(80), le32(0), le64(kUnique), le32(7), le32(38), zeros(56)}));
    EXPECT_FALSE(disp().initialized());
    // The guest then retries with major 7.
    init();
}

TEST_F(FuseDispatcherTest, InitTruncatedIsInvalid) {
    EXPECT_EQ(call(Msg(FUSE_INIT, 0).add_prefix(init_in(7, 38, 0), 7)), error_reply(EINVAL));
    EXPECT_FALSE(disp().initialized());
}

TEST_F(FuseDispatcherTest, InitReplyNeedsRoom) {
    EXPECT_EQ(call(Msg(FUSE_INIT, 0).add(init_in(7, 38, kGuestFlags)), 79), error_reply(EINVAL));
    EXPECT_FALSE(disp().initialized());
}

TEST_F(FuseDispatcherTest, InitOnLiveSessionEndsItAndStartsAFreshOne) {
    // A guest reset: QEMU restarts the vrings without a disconnect and the new driver sends
    // INIT while the old session (its node ids, handles, locks) is still live.
    init();
    EXPECT_EQ(call(Msg(FUSE_LOOKUP, 1).name("a")), reply(kUnique, 0, bytes_of(sample_entry())));
    EXPECT_EQ(fs.destroy_count, 0);
    // The second INIT (another guest, other flags) gets a full, fresh negotiation.
    EXPECT_EQ(call(Msg(FUSE_INIT, 0).add(init_in(7, 31, FUSE_ASYNC_READ | FUSE_MAX_PAGES))),
              init_reply_bytes(31, 131072, FUSE_ASYNC_READ | FUSE_MAX_PAGES, 0));
    EXPECT_EQ(fs.destroy_count, 1);               // the old session was ended...
    EXPECT_EQ(fs.destroys_before_last_init, 1);   // ...before the new one started
    EXPECT_EQ(fs.init_count, 2);
    EXPECT_EQ(fs.init_minor, 31u);
    EXPECT_EQ(disp().negotiated_flags(), uint64_t(FUSE_ASYNC_READ | FUSE_MAX_PAGES));
    EXPECT_TRUE(disp().initialized());
    EXPECT_EQ(disp().stats().session_resets, 1u);
    EXPECT_EQ(call(Msg(FUSE_LOOKUP, 1).name("a")), reply(kUnique, 0, bytes_of(sample_entry())));
}

TEST_F(FuseDispatcherTest, VersionOnlyInitOnLiveSessionKeepsIt) {
    init();
    // major > 7 only asks for our version: nothing is negotiated, the session stays.
    EXPECT_EQ(call(Msg(FUSE_INIT, 0).add(init_in(8, 0, 0))).size(), 80u);
    EXPECT_EQ(fs.destroy_count, 0);
    EXPECT_TRUE(disp().initialized());
}

TEST_F(FuseDispatcherTest, RevokeEndsTheSessionAndEveryLaterRequestGetsEio) {
    init();
    disp().revoke();
    EXPECT_EQ(fs.destroy_count, 1); // the guest's inodes, handles and fds are dropped
    EXPECT_FALSE(disp().initialized());
    EXPECT_EQ(call(Msg(FUSE_GETATTR).add(fuse_getattr_in{})), error_reply(EIO));
    // A new INIT cannot start a session on a revoked share either.
    EXPECT_EQ(call(Msg(FUSE_INIT).add(init_in(7, 38, kGuestFlags))), error_reply(EIO));
    EXPECT_EQ(fs.init_count, 1);
    Chain ch(Msg(FUSE_FORGET).add(fuse_forget_in{3}).build(), {});
    EXPECT_EQ(send(ch), 0);
    EXPECT_TRUE(fs.calls.empty());
}

TEST_F(FuseDispatcherTest, RequestsBeforeInitGetEio) {
    EXPECT_EQ(call(Msg(FUSE_LOOKUP, 1).name("a")), error_reply(EIO));
    EXPECT_EQ(call(Msg(FUSE_GETATTR).add(fuse_getattr_in{})), error_reply(EIO));
    EXPECT_EQ(call(Msg(FUSE_DESTROY)), error_reply(EIO));
    // FORGET has no reply even then, and must not reach the backend.
    Chain ch(Msg(FUSE_FORGET).add(fuse_forget_in{3}).build(), {});
    EXPECT_EQ(send(ch), 0);
    EXPECT_TRUE(fs.calls.empty());
}

TEST_F(FuseDispatcherTest, DestroyEndsSessionAndAllowsNewInit) {
    init();
    EXPECT_EQ(call(Msg(FUSE_DESTROY, 0)), reply(kUnique, 0));
    EXPECT_EQ(fs.destroy_count, 1);
    EXPECT_FALSE(disp().initialized());
    EXPECT_EQ(call(Msg(FUSE_LOOKUP, 1).name("a")), error_reply(EIO));
    init(); // remount on the same device
    EXPECT_EQ(fs.init_count, 2);
}

TEST_F(FuseDispatcherTest, EndSessionDestroysOnce) {
    disp().end_session(); // not initialized: nothing to drop
    EXPECT_EQ(fs.destroy_count, 0);
    init();
    disp().end_session();
    disp().end_session();
    EXPECT_EQ(fs.destroy_count, 1);
    EXPECT_FALSE(disp().initialized());
}

// ---- Framing ----------------------------------------------------------------------------------

TEST_F(FuseDispatcherTest, TruncatedHeaderReturnsChainUnanswered) {
    init();
    Bytes in = Msg(FUSE_GETATTR).add(fuse_getattr_in{}).build();
    in.resize(39);
    Chain ch(in, {4096});
    EXPECT_EQ(send(ch), -EINVAL);
    EXPECT_TRUE(ch.untouched_from(0));
    EXPECT_EQ(disp().stats().malformed, 1u);
}

TEST_F(FuseDispatcherTest, LenMismatchIsInvalid) {
    init();
    // len says more than the chain holds (oversized request) ...
    EXPECT_EQ(call(Msg(FUSE_GETATTR).add(fuse_getattr_in{}).len(4096)), error_reply(EINVAL));
    // ... or less.
    EXPECT_EQ(call(Msg(FUSE_GETATTR).add(fuse_getattr_in{}).len(40)), error_reply(EINVAL));
    EXPECT_TRUE(fs.calls.empty());
}

TEST_F(FuseDispatcherTest, LenMismatchWithoutRoomForReply) {
    init();
    Chain ch(Msg(FUSE_GETATTR).add(fuse_getattr_in{}).len(100).build(), {15});
    EXPECT_EQ(send(ch), -EINVAL);
    EXPECT_TRUE(ch.untouched_from(0));
}

TEST_F(FuseDispatcherTest, OutTooSmallForHeader) {
    init();
    Chain ch(Msg(FUSE_GETATTR).add(fuse_getattr_in{}).build(), {8, 7});
    EXPECT_EQ(send(ch), -EINVAL);
    EXPECT_TRUE(ch.untouched_from(0));
    EXPECT_TRUE(fs.calls.empty());
}

TEST_F(FuseDispatcherTest, OutTooSmallForReplyStructIsInvalidAndBackendUntouched) {
    init();
    // LOOKUP would take a lookup count; with no room for the entry it must not be called.
    EXPECT_EQ(call(Msg(FUSE_LOOKUP).name("a"), 16 + 127), error_reply(EINVAL));
    EXPECT_EQ(call(Msg(FUSE_GETATTR).add(fuse_getattr_in{}), 16 + 103), error_reply(EINVAL));
    EXPECT_EQ(call(Msg(FUSE_CREATE).add(fuse_create_in{}).name("f"), 16 + 143),
              error_reply(EINVAL));
    EXPECT_TRUE(fs.calls.empty());
}

TEST_F(FuseDispatcherTest, HeaderAndArgsSplitAcrossIovecs) {
    init();
    Bytes in = Msg(FUSE_LOOKUP, 9).name("some-name").build();
    for (std::vector<size_t> cuts :
         {std::vector<size_t>{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, std::vector<size_t>{3, 17, 13, 9},
          std::vector<size_t>{39, 2, 0, 3}, std::vector<size_t>{40, 5}}) {
        fs.calls.clear();
        Chain ch(in, {5, 11, 64, 64}, cuts);
        ASSERT_EQ(send(ch), 144);
        EXPECT_EQ(ch.out(144), reply(kUnique, 0, bytes_of(sample_entry())));
        ASSERT_EQ(fs.calls.size(), 1u);
        EXPECT_EQ(fs.last().nodeid, 9u);
        EXPECT_EQ(fs.last().s[0], "some-name");
    }
}

TEST_F(FuseDispatcherTest, ExtensionBytesAreNotArguments) {
    init();
    // 8 bytes of extension after the name (total_extlen counts 8-byte units).
    Bytes r = call(Msg(FUSE_LOOKUP).name("abc").raw("\x10\0\0\0\x20\0\0\0", 8).extlen(1));
    EXPECT_EQ(r, reply(kUnique, 0, bytes_of(sample_entry())));
    EXPECT_EQ(fs.last().s[0], "abc");
    // More extension than there is payload.
    EXPECT_EQ(call(Msg(FUSE_LOOKUP).name("abc").extlen(2)), error_reply(EINVAL));
    // The extension swallows the name's NUL: the name is no longer terminated.
    EXPECT_EQ(call(Msg(FUSE_LOOKUP).name("abcdefg").extlen(1)), error_reply(EINVAL));
}

TEST_F(FuseDispatcherTest, UnsupportedOpcodesGetEnosys) {
    init();
    for (uint32_t op : {uint32_t(FUSE_BMAP), uint32_t(FUSE_IOCTL), uint32_t(FUSE_POLL),
                        uint32_t(FUSE_SETUPMAPPING), uint32_t(FUSE_REMOVEMAPPING), kFuseOpStatx,
                        kFuseOpCopyFileRange64, uint32_t(CUSE_INIT), 7u, 19u, 999u}) {
        SCOPED_TRACE(op);
        EXPECT_EQ(call(Msg(op).raw(zeros(64).data(), 64)), error_reply(ENOSYS));
    }
    EXPECT_TRUE(fs.calls.empty());
    EXPECT_EQ(disp().stats().unsupported, 11u);
}

// request_timing (FuseDispatcherConfig::time_requests): on, each request lands in its
// opcode's latency histogram; off, the histograms stay empty and the counters still count.
TEST_F(FuseDispatcherTest, RequestTimingFillsTheLatencyHistogramOnlyWhenOn) {
    for (bool on : {true, false}) {
        SCOPED_TRACE(on);
        d.reset();
        cfg.time_requests = on;
        init();
        for (int i = 0; i < 3; ++i) {
            call(Msg(FUSE_GETATTR).add(fuse_getattr_in{}));
        }
        FuseStats s = disp().stats();
        uint64_t timed = 0;
        for (uint64_t n : s.latency[FUSE_GETATTR]) {
            timed += n;
        }
        EXPECT_EQ(s.requests[FUSE_GETATTR], 3u);
        EXPECT_EQ(timed, on ? 3u : 0u);
        EXPECT_EQ(s.latency_cycles[FUSE_GETATTR] != 0, on);
    }
}

TEST_F(FuseDispatcherTest, QueueWithoutScratchGetsEioForNamedOps) {
    init();
    Chain ch(Msg(FUSE_LOOKUP).name("a").build(), {4096}, {}, /*queue=*/7);
    ASSERT_EQ(send(ch), 16);
    EXPECT_EQ(ch.out(16), error_reply(EIO));
    EXPECT_TRUE(fs.calls.empty());
}

// ---- Argument validation ----------------------------------------------------------------------

TEST_F(FuseDispatcherTest, TruncatedArgumentsPerOpcode) {
    fs.caps.xattr = true;
    init();
    struct Case {
        uint32_t op;
        size_t size;
    };
    const Case cases[] = {
        {FUSE_GETATTR, 16},
        {FUSE_SETATTR, 88},
        {FUSE_MKNOD, 16},
        {FUSE_MKDIR, 8},
        {FUSE_RENAME, 8},
        {FUSE_RENAME2, 16},
        {FUSE_LINK, 8},
        {FUSE_OPEN, 8},
        {FUSE_READ, 40},
        {FUSE_WRITE, 40},
        {FUSE_RELEASE, 24},
        {FUSE_FSYNC, 16},
        {FUSE_SETXATTR, 8},
        {FUSE_GETXATTR, 8},
        {FUSE_LISTXATTR, 8},
        {FUSE_FLUSH, 24},
        {FUSE_OPENDIR, 8},
        {FUSE_READDIR, 40},
        {FUSE_READDIRPLUS, 40},
        {FUSE_RELEASEDIR, 24},
        {FUSE_FSYNCDIR, 16},
        {FUSE_GETLK, 48},
        {FUSE_SETLK, 48},
        {FUSE_SETLKW, 48},
        {FUSE_ACCESS, 8},
        {FUSE_CREATE, 16},
        {FUSE_FALLOCATE, 32},
        {FUSE_LSEEK, 24},
        {FUSE_COPY_FILE_RANGE, 56},
        {FUSE_SYNCFS, 8},
        {FUSE_TMPFILE, 16},
    };
    const Bytes fill(128, 0);
    for (const Case& c : cases) {
        SCOPED_TRACE(fuse_opcode_name(c.op));
        EXPECT_EQ(call(Msg(c.op).raw(fill.data(), c.size - 1)), error_reply(EINVAL));
    }
    // Name-only requests with no name at all.
    for (uint32_t op : {FUSE_LOOKUP, FUSE_UNLINK, FUSE_RMDIR, FUSE_REMOVEXATTR}) {
        SCOPED_TRACE(fuse_opcode_name(op));
        EXPECT_EQ(call(Msg(op)), error_reply(EINVAL));
    }
    EXPECT_TRUE(fs.calls.empty());
    EXPECT_EQ(disp().stats().malformed, std::size(cases) + 4);
}

TEST_F(FuseDispatcherTest, TruncatedNoReplyRequestsAreDropped) {
    init();
    for (uint32_t op : {FUSE_FORGET, FUSE_BATCH_FORGET, FUSE_INTERRUPT}) {
        SCOPED_TRACE(fuse_opcode_name(op));
        Chain ch(Msg(op).raw("1234567", 7).build(), {});
        EXPECT_EQ(send(ch), 0);
    }
    EXPECT_TRUE(fs.calls.empty());
    EXPECT_EQ(disp().stats().malformed, 3u);
}

TEST_F(FuseDispatcherTest, LongerFixedArgumentsAreAccepted) {
    init();
    // A newer guest may append fields; the known prefix is used.
    fuse_getattr_in in{};
    in.getattr_flags = FUSE_GETATTR_FH;
    in.fh = 99;
    Bytes r = call(Msg(FUSE_GETATTR).add(in).raw(zeros(16).data(), 16));
    EXPECT_EQ(r, reply(kUnique, 0, bytes_of(sample_attr())));
    EXPECT_EQ(fs.last().u, (std::vector<uint64_t>{1, 99}));
}

TEST_F(FuseDispatcherTest, BadNamesAreInvalid) {
    init();
    fuse_mknod_in mknod{};
    fuse_mkdir_in mkdir{};
    fuse_create_in create{};
    fuse_rename_in rename{};
    fuse_rename2_in rename2{};
    fuse_link_in link{};
    // Each builder gets the bytes of one bad name (with or without NUL).
    const std::vector<std::pair<const char*, std::function<Msg(std::string_view)>>> ops = {
        {"LOOKUP", [](std::string_view n) { return std::move(Msg(FUSE_LOOKUP).raw(n)); }},
        {"UNLINK", [](std::string_view n) { return std::move(Msg(FUSE_UNLINK).raw(n)); }},
        {"RMDIR", [](std::string_view n) { return std::move(Msg(FUSE_RMDIR).raw(n)); }},
        {"MKNOD", [&](std::string_view n) { return std::move(Msg(FUSE_MKNOD).add(mknod).raw(n)); }},
        {"MKDIR", [&](std::string_view n) { return std::move(Msg(FUSE_MKDIR).add(mkdir).raw(n)); }},
        {"CREATE",
         [&](std::string_view n) { return std::move(Msg(FUSE_CREATE).add(create).raw(n)); }},
        {"LINK", [&](std::string_view n) { return std::move(Msg(FUSE_LINK).add(link).raw(n)); }},
        {"SYMLINK name",
         [](std::string_view n) { return std::move(Msg(FUSE_SYMLINK).raw(n).name("target")); }},
        {"RENAME old",
         [&](std::string_view n) {
             return std::move(Msg(FUSE_RENAME).add(rename).raw(n).name("b"));
         }},
        {"RENAME new",
         [&](std::string_view n) {
             return std::move(Msg(FUSE_RENAME).add(rename).name("a").raw(n));
         }},
        {"RENAME2 old",
         [&](std::string_view n) {
             return std::move(Msg(FUSE_RENAME2).add(rename2).raw(n).name("b"));
         }},
        {"RENAME2 new",
         [&](std::string_view n) {
             return std::move(Msg(FUSE_RENAME2).add(rename2).name("a").raw(n));
         }},
    };
    const std::string_view bad[] = {
        std::string_view("\0", 1),    // empty
        std::string_view("a/b\0", 4), // slash
        std::string_view("/\0", 2),   // slash only
        std::string_view("abc", 3),   // no NUL
    };
    for (const auto& [label, make] : ops) {
        for (std::string_view n : bad) {
            SCOPED_TRACE(std::string(label) + " [" + std::string(n) + "]");
            // An unterminated name followed by more arguments swallows them; the request
            // then lacks its last string, which is just as invalid.
            EXPECT_EQ(call(make(n)), error_reply(EINVAL));
        }
    }
    EXPECT_TRUE(fs.calls.empty());
    // A SYMLINK target without NUL.
    EXPECT_EQ(call(Msg(FUSE_SYMLINK).name("l").raw("tgt", 3)), error_reply(EINVAL));
    EXPECT_TRUE(fs.calls.empty());
}

TEST_F(FuseDispatcherTest, DotNamesGoToTheBackend) {
    init();
    EXPECT_EQ(call(Msg(FUSE_LOOKUP).name(".")), reply(kUnique, 0, bytes_of(sample_entry())));
    EXPECT_EQ(call(Msg(FUSE_LOOKUP).name("..")), reply(kUnique, 0, bytes_of(sample_entry())));
    ASSERT_EQ(fs.calls.size(), 2u);
    EXPECT_EQ(fs.calls[0].s[0], ".");
    EXPECT_EQ(fs.calls[1].s[0], "..");
}

// ---- Metadata opcodes ---------------------------------------------------------------------------

void expect_ctx(const Rec& r) {
    EXPECT_EQ(r.rc.unique, kUnique);
    EXPECT_EQ(r.rc.uid, test::kUid);
    EXPECT_EQ(r.rc.gid, test::kGid);
    EXPECT_EQ(r.rc.pid, test::kPid);
}

TEST_F(FuseDispatcherTest, Lookup) {
    init();
    EXPECT_EQ(call(Msg(FUSE_LOOKUP, FUSE_ROOT_ID).name("file.txt")),
              reply(kUnique, 0, bytes_of(sample_entry())));
    ASSERT_EQ(fs.calls.size(), 1u);
    EXPECT_EQ(fs.last().op, "lookup");
    EXPECT_EQ(fs.last().nodeid, FUSE_ROOT_ID);
    EXPECT_EQ(fs.last().s[0], "file.txt");
    expect_ctx(fs.last());
    fs.fail = ENOENT;
    EXPECT_EQ(call(Msg(FUSE_LOOKUP).name("missing")), error_reply(ENOENT));
}

TEST_F(FuseDispatcherTest, ErrorReplyBytes) {
    init();
    fs.fail = ENOENT;
    Bytes r = call(Msg(FUSE_LOOKUP).name("x"));
    EXPECT_EQ(r, cat({le32(16), le32(uint32_t(-ENOENT)), le64(kUnique)}));
    EXPECT_EQ(r, (Bytes{0x10, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33,
                        0x22, 0x11}));
}

TEST_F(FuseDispatcherTest, Forget) {
    init();
    Chain ch(Msg(FUSE_FORGET, 33).add(fuse_forget_in{7}).build(), {}, {}, /*queue=*/0);
    EXPECT_EQ(send(ch), 0);
    ASSERT_EQ(fs.calls.size(), 1u);
    EXPECT_EQ(fs.last().op, "forget");
    EXPECT_EQ(fs.last().nodeid, 33u);
    EXPECT_EQ(fs.last().u[0], 7u);
}

TEST_F(FuseDispatcherTest, BatchForget) {
    init();
    fuse_forget_one a{10, 1};
    fuse_forget_one b{11, 2};
    fuse_forget_one c{12, 3};
    Chain ch(Msg(FUSE_BATCH_FORGET, 0).add(fuse_batch_forget_in{3, 0}).add(a).add(b).add(c).build(),
             {}, {45, 7}, 0);
    EXPECT_EQ(send(ch), 0);
    ASSERT_EQ(fs.calls.size(), 3u);
    for (size_t i = 0; i < 3; ++i) {
        EXPECT_EQ(fs.calls[i].op, "forget");
        EXPECT_EQ(fs.calls[i].nodeid, 10 + i);
        EXPECT_EQ(fs.calls[i].u[0], 1 + i);
    }
}

TEST_F(FuseDispatcherTest, BatchForgetCountBeyondPayloadForgetsNothing) {
    init();
    fuse_forget_one a{10, 1};
    fuse_forget_one b{11, 2};
    Chain ch(Msg(FUSE_BATCH_FORGET, 0).add(fuse_batch_forget_in{3, 0}).add(a).add(b).build(), {});
    EXPECT_EQ(send(ch), 0);
    EXPECT_TRUE(fs.calls.empty());
    Chain huge(Msg(FUSE_BATCH_FORGET, 0).add(fuse_batch_forget_in{0xFFFFFFFF, 0}).add(a).build(),
               {});
    EXPECT_EQ(send(huge), 0);
    EXPECT_TRUE(fs.calls.empty());
    EXPECT_EQ(disp().stats().malformed, 2u);
}

TEST_F(FuseDispatcherTest, GetattrWithAndWithoutFh) {
    init();
    EXPECT_EQ(call(Msg(FUSE_GETATTR).add(fuse_getattr_in{0, 0, 55})),
              reply(kUnique, 0, bytes_of(sample_attr())));
    EXPECT_EQ(fs.last().u, (std::vector<uint64_t>{0, 0}));
    EXPECT_EQ(call(Msg(FUSE_GETATTR).add(fuse_getattr_in{FUSE_GETATTR_FH, 0, 55})),
              reply(kUnique, 0, bytes_of(sample_attr())));
    EXPECT_EQ(fs.last().u, (std::vector<uint64_t>{1, 55}));
    EXPECT_EQ(fs.last().nodeid, kNode);
}

TEST_F(FuseDispatcherTest, Setattr) {
    init();
    fuse_setattr_in in{};
    in.valid = FATTR_MODE | FATTR_SIZE | FATTR_FH;
    in.fh = 3;
    in.size = 100;
    in.mode = 0600;
    in.uid = 1;
    in.gid = 2;
    EXPECT_EQ(call(Msg(FUSE_SETATTR).add(in)), reply(kUnique, 0, bytes_of(sample_attr())));
    EXPECT_EQ(fs.last().op, "setattr");
    EXPECT_EQ(fs.last().u,
              (std::vector<uint64_t>{FATTR_MODE | FATTR_SIZE | FATTR_FH, 3, 100, 0600, 1, 2}));
}

TEST_F(FuseDispatcherTest, Readlink) {
    init();
    fs.link_target = "../some/target";
    EXPECT_EQ(call(Msg(FUSE_READLINK)), reply(kUnique, 0, str_bytes("../some/target")));
    EXPECT_EQ(fs.last().u[0], 4096u - 16);
}

TEST_F(FuseDispatcherTest, ReadlinkIntoSplitBuffers) {
    init();
    fs.link_target = "a-rather-long-target";
    Chain ch(Msg(FUSE_READLINK).build(), {16, 3, 5, 4096});
    ASSERT_EQ(send(ch), 16 + 20);
    EXPECT_EQ(ch.out(36), reply(kUnique, 0, str_bytes("a-rather-long-target")));
    EXPECT_TRUE(ch.untouched_from(36));
}

TEST_F(FuseDispatcherTest, Symlink) {
    init();
    EXPECT_EQ(call(Msg(FUSE_SYMLINK, 8).name("link").name("/abs/target")),
              reply(kUnique, 0, bytes_of(sample_entry())));
    EXPECT_EQ(fs.last().op, "symlink");
    EXPECT_EQ(fs.last().nodeid, 8u);
    EXPECT_EQ(fs.last().s, (std::vector<std::string>{"link", "/abs/target"}));
}

TEST_F(FuseDispatcherTest, Mknod) {
    init();
    EXPECT_EQ(call(Msg(FUSE_MKNOD).add(fuse_mknod_in{S_IFIFO | 0644, 0x0801, 022, 0}).name("fifo")),
              reply(kUnique, 0, bytes_of(sample_entry())));
    EXPECT_EQ(fs.last().op, "mknod");
    EXPECT_EQ(fs.last().u, (std::vector<uint64_t>{S_IFIFO | 0644, 0x0801, 022}));
    EXPECT_EQ(fs.last().s[0], "fifo");
    expect_ctx(fs.last());
}

TEST_F(FuseDispatcherTest, Mkdir) {
    init();
    EXPECT_EQ(call(Msg(FUSE_MKDIR).add(fuse_mkdir_in{0755, 027}).name("dir")),
              reply(kUnique, 0, bytes_of(sample_entry())));
    EXPECT_EQ(fs.last().op, "mkdir");
    EXPECT_EQ(fs.last().u, (std::vector<uint64_t>{0755, 027}));
    EXPECT_EQ(fs.last().s[0], "dir");
}

TEST_F(FuseDispatcherTest, UnlinkAndRmdir) {
    init();
    EXPECT_EQ(call(Msg(FUSE_UNLINK).name("f")), reply(kUnique, 0));
    EXPECT_EQ(fs.last().op, "unlink");
    EXPECT_EQ(fs.last().s[0], "f");
    EXPECT_EQ(call(Msg(FUSE_RMDIR).name("d")), reply(kUnique, 0));
    EXPECT_EQ(fs.last().op, "rmdir");
    EXPECT_EQ(fs.last().s[0], "d");
    fs.fail = ENOTEMPTY;
    EXPECT_EQ(call(Msg(FUSE_RMDIR).name("d")), error_reply(ENOTEMPTY));
}

TEST_F(FuseDispatcherTest, RenameAndRename2) {
    init();
    EXPECT_EQ(call(Msg(FUSE_RENAME, 5).add(fuse_rename_in{6}).name("old").name("new")),
              reply(kUnique, 0));
    EXPECT_EQ(fs.last().op, "rename");
    EXPECT_EQ(fs.last().nodeid, 5u);
    EXPECT_EQ(fs.last().u, (std::vector<uint64_t>{6, 0}));
    EXPECT_EQ(fs.last().s, (std::vector<std::string>{"old", "new"}));
    EXPECT_EQ(
        call(Msg(FUSE_RENAME2, 5).add(fuse_rename2_in{7, RENAME_EXCHANGE, 0}).name("a").name("b")),
        reply(kUnique, 0));
    EXPECT_EQ(fs.last().u, (std::vector<uint64_t>{7, RENAME_EXCHANGE}));
    EXPECT_EQ(fs.last().s, (std::vector<std::string>{"a", "b"}));
    // Missing second name.
    EXPECT_EQ(call(Msg(FUSE_RENAME).add(fuse_rename_in{6}).name("old")), error_reply(EINVAL));
}

TEST_F(FuseDispatcherTest, Link) {
    init();
    EXPECT_EQ(call(Msg(FUSE_LINK, 3).add(fuse_link_in{77}).name("hard")),
              reply(kUnique, 0, bytes_of(sample_entry())));
    EXPECT_EQ(fs.last().op, "link");
    EXPECT_EQ(fs.last().nodeid, 77u); // the existing inode
    EXPECT_EQ(fs.last().u[0], 3u);    // the new parent
    EXPECT_EQ(fs.last().s[0], "hard");
}

TEST_F(FuseDispatcherTest, OpenAndOpendir) {
    init();
    EXPECT_EQ(call(Msg(FUSE_OPEN).add(fuse_open_in{O_RDWR | O_APPEND, 0})),
              reply(kUnique, 0, bytes_of(sample_open())));
    EXPECT_EQ(fs.last().op, "open");
    EXPECT_EQ(fs.last().u[0], uint64_t(O_RDWR | O_APPEND));
    EXPECT_EQ(call(Msg(FUSE_OPENDIR).add(fuse_open_in{O_RDONLY | O_DIRECTORY, 0})),
              reply(kUnique, 0, bytes_of(sample_open())));
    EXPECT_EQ(fs.last().op, "opendir");
    EXPECT_EQ(fs.last().u[0], uint64_t(O_RDONLY | O_DIRECTORY));
}

TEST_F(FuseDispatcherTest, Create) {
    init();
    EXPECT_EQ(
        call(Msg(FUSE_CREATE).add(fuse_create_in{O_CREAT | O_WRONLY, 0100644, 022, 0}).name("new")),
        reply(kUnique, 0, cat({bytes_of(sample_entry()), bytes_of(sample_open())})));
    EXPECT_EQ(fs.last().op, "create");
    EXPECT_EQ(fs.last().u, (std::vector<uint64_t>{O_CREAT | O_WRONLY, 0100644, 022}));
    EXPECT_EQ(fs.last().s[0], "new");
}

TEST_F(FuseDispatcherTest, TmpfileIgnoresTheDentryName) {
    init();
    // The kernel sends the placeholder dentry name "/" after fuse_create_in.
    EXPECT_EQ(call(Msg(FUSE_TMPFILE).add(fuse_create_in{O_RDWR, 0100600, 077, 0}).name("/")),
              reply(kUnique, 0, cat({bytes_of(sample_entry()), bytes_of(sample_open())})));
    EXPECT_EQ(fs.last().op, "tmpfile");
    EXPECT_EQ(fs.last().u, (std::vector<uint64_t>{O_RDWR, 0100600, 077}));
}

TEST_F(FuseDispatcherTest, Statfs) {
    init();
    fuse_statfs_out st{};
    st.st.blocks = 1000;
    st.st.bfree = 500;
    st.st.bsize = 4096;
    st.st.namelen = 255;
    st.st.frsize = 4096;
    fs.statfs_out = st;
    EXPECT_EQ(call(Msg(FUSE_STATFS)), reply(kUnique, 0, bytes_of(st)));
    EXPECT_EQ(fs.last().op, "statfs");
}

TEST_F(FuseDispatcherTest, ReleaseFlushReleasedirAccess) {
    init();
    EXPECT_EQ(call(Msg(FUSE_RELEASE).add(fuse_release_in{9, O_RDWR, FUSE_RELEASE_FLUSH, 0x55})),
              reply(kUnique, 0));
    EXPECT_EQ(fs.last().op, "release");
    EXPECT_EQ(fs.last().u, (std::vector<uint64_t>{9, O_RDWR, FUSE_RELEASE_FLUSH, 0x55}));
    EXPECT_EQ(call(Msg(FUSE_FLUSH).add(fuse_flush_in{9, 0, 0, 0x66})), reply(kUnique, 0));
    EXPECT_EQ(fs.last().op, "flush");
    EXPECT_EQ(fs.last().u, (std::vector<uint64_t>{9, 0x66}));
    EXPECT_EQ(call(Msg(FUSE_RELEASEDIR).add(fuse_release_in{4, 0, 0, 0})), reply(kUnique, 0));
    EXPECT_EQ(fs.last().op, "releasedir");
    EXPECT_EQ(fs.last().u[0], 4u);
    EXPECT_EQ(call(Msg(FUSE_ACCESS).add(fuse_access_in{R_OK | X_OK, 0})), reply(kUnique, 0));
    EXPECT_EQ(fs.last().op, "access");
    EXPECT_EQ(fs.last().u[0], uint64_t(R_OK | X_OK));
    fs.fail = EACCES;
    EXPECT_EQ(call(Msg(FUSE_ACCESS).add(fuse_access_in{W_OK, 0})), error_reply(EACCES));
}

TEST_F(FuseDispatcherTest, Lseek) {
    init();
    fs.lseek_result = 8192;
    EXPECT_EQ(call(Msg(FUSE_LSEEK).add(fuse_lseek_in{3, 100, SEEK_DATA, 0})),
              reply(kUnique, 0, le64(8192)));
    EXPECT_EQ(fs.last().u, (std::vector<uint64_t>{3, 100, SEEK_DATA}));
}

// ---- Directories ------------------------------------------------------------------------------

Bytes dirent_bytes(uint64_t ino, uint64_t off, uint32_t type, std::string_view name) {
    Bytes b = cat({le64(ino), le64(off), le32(uint32_t(name.size())), le32(type), str_bytes(name)});
    b.resize((b.size() + 7) & ~size_t(7), 0);
    return b;
}

TEST_F(FuseDispatcherTest, Readdir) {
    init();
    fs.dir = {{".", 1, DT_DIR, {}}, {"..", 1, DT_DIR, {}}, {"file.txt", 20, DT_REG, {}}};
    Bytes r = call(Msg(FUSE_READDIR).add(read_in(4, 0, 4096)));
    EXPECT_EQ(r, reply(kUnique, 0,
                       cat({dirent_bytes(1, 1, DT_DIR, "."), dirent_bytes(1, 2, DT_DIR, ".."),
                            dirent_bytes(20, 3, DT_REG, "file.txt")})));
    EXPECT_EQ(fs.last().u, (std::vector<uint64_t>{4, 0, 0}));
    // From offset 2 only the last entry.
    EXPECT_EQ(call(Msg(FUSE_READDIR).add(read_in(4, 2, 4096))),
              reply(kUnique, 0, dirent_bytes(20, 3, DT_REG, "file.txt")));
    // At the end: an empty reply.
    EXPECT_EQ(call(Msg(FUSE_READDIR).add(read_in(4, 3, 4096))), reply(kUnique, 0));
}

TEST_F(FuseDispatcherTest, ReaddirRespectsRequestedSize) {
    init();
    fs.dir = {{"a", 2, DT_REG, {}}, {"b", 3, DT_REG, {}}};
    // 32 bytes per record; 63 fits one.
    EXPECT_EQ(call(Msg(FUSE_READDIR).add(read_in(4, 0, 63))),
              reply(kUnique, 0, dirent_bytes(2, 1, DT_REG, "a")));
    // Smaller than one record: nothing (the guest reads that as the end).
    EXPECT_EQ(call(Msg(FUSE_READDIR).add(read_in(4, 0, 31))), reply(kUnique, 0));
    // The out buffer also bounds it.
    EXPECT_EQ(call(Msg(FUSE_READDIR).add(read_in(4, 0, 4096)), 16 + 40),
              reply(kUnique, 0, dirent_bytes(2, 1, DT_REG, "a")));
}

TEST_F(FuseDispatcherTest, ReaddirplusFillsExactly) {
    init();
    fuse_entry_out e1 = sample_entry();
    fuse_entry_out e2 = sample_entry();
    e2.nodeid = 43;
    e2.attr.ino = 1235;
    fs.dir = {{"a", 1234, DT_REG, e1}, {"bb", 1235, DT_REG, e2}, {"ccc", 1236, DT_REG, e1}};
    // Each record is 152 + name rounded up to 8 = 160 bytes: 320 holds exactly two.
    Chain ch(Msg(FUSE_READDIRPLUS).add(read_in(4, 0, 320)).build(), {16, 100, 150, 4096});
    ASSERT_EQ(send(ch), 16 + 320);
    EXPECT_EQ(ch.out(336), reply(kUnique, 0,
                                 cat({bytes_of(e1), dirent_bytes(1234, 1, DT_REG, "a"),
                                      bytes_of(e2), dirent_bytes(1235, 2, DT_REG, "bb")})));
    EXPECT_TRUE(ch.untouched_from(336));
    EXPECT_EQ(fs.added, 2u);
    EXPECT_EQ(fs.last().u, (std::vector<uint64_t>{4, 0, 1}));
}

TEST_F(FuseDispatcherTest, ReaddirErrorOnlyWhenNothingWritten) {
    init();
    fs.fail = EBADF;
    EXPECT_EQ(call(Msg(FUSE_READDIR).add(read_in(4, 0, 4096))), error_reply(EBADF));
}

// ---- Extended attributes ---------------------------------------------------------------------

TEST_F(FuseDispatcherTest, XattrOpsAreEnosysWhenDisabled) {
    init();
    EXPECT_EQ(call(Msg(FUSE_GETXATTR).add(fuse_getxattr_in{0, 0}).name("user.a")),
              error_reply(ENOSYS));
    EXPECT_EQ(call(Msg(FUSE_LISTXATTR).add(fuse_getxattr_in{0, 0})), error_reply(ENOSYS));
    EXPECT_EQ(call(Msg(FUSE_SETXATTR)
                       .add_prefix(fuse_setxattr_in{1, 0, 0, 0}, 8)
                       .name("user.a")
                       .raw("v", 1)),
              error_reply(ENOSYS));
    EXPECT_EQ(call(Msg(FUSE_REMOVEXATTR).name("user.a")), error_reply(ENOSYS));
    EXPECT_TRUE(fs.calls.empty());
}

TEST_F(FuseDispatcherTest, GetxattrSizeAndValue) {
    fs.caps.xattr = true;
    init();
    fs.xattr_value = "some value";
    EXPECT_EQ(call(Msg(FUSE_GETXATTR).add(fuse_getxattr_in{0, 0}).name("user.k")),
              reply(kUnique, 0, cat({le32(10), le32(0)})));
    EXPECT_EQ(fs.last().u[0], 0u);
    EXPECT_EQ(fs.last().s[0], "user.k");
    EXPECT_EQ(call(Msg(FUSE_GETXATTR).add(fuse_getxattr_in{64, 0}).name("user.k")),
              reply(kUnique, 0, str_bytes("some value")));
    EXPECT_EQ(fs.last().u[0], 64u);
    EXPECT_EQ(call(Msg(FUSE_GETXATTR).add(fuse_getxattr_in{4, 0}).name("user.k")),
              error_reply(ERANGE));
    // Value written through split out buffers (scratch path).
    Chain ch(Msg(FUSE_GETXATTR).add(fuse_getxattr_in{64, 0}).name("user.k").build(), {16, 3, 4096});
    ASSERT_EQ(send(ch), 26);
    EXPECT_EQ(ch.out(26), reply(kUnique, 0, str_bytes("some value")));
    EXPECT_TRUE(ch.untouched_from(26));
    // Empty name.
    EXPECT_EQ(call(Msg(FUSE_GETXATTR).add(fuse_getxattr_in{64, 0}).name("")), error_reply(EINVAL));
}

TEST_F(FuseDispatcherTest, ListxattrSizeAndValue) {
    fs.caps.xattr = true;
    init();
    fs.xattr_list = std::string("user.a\0user.b\0", 14);
    EXPECT_EQ(call(Msg(FUSE_LISTXATTR).add(fuse_getxattr_in{0, 0})),
              reply(kUnique, 0, cat({le32(14), le32(0)})));
    EXPECT_EQ(call(Msg(FUSE_LISTXATTR).add(fuse_getxattr_in{100, 0})),
              reply(kUnique, 0, str_bytes(fs.xattr_list)));
    Chain ch(Msg(FUSE_LISTXATTR).add(fuse_getxattr_in{100, 0}).build(), {20, 1, 1, 200});
    ASSERT_EQ(send(ch), 30);
    EXPECT_EQ(ch.out(30), reply(kUnique, 0, str_bytes(fs.xattr_list)));
}

TEST_F(FuseDispatcherTest, SetxattrCompatLayout) {
    fs.caps.xattr = true;
    init(); // guest offers SETXATTR_EXT but the backend did not ask for it: 8-byte struct
    EXPECT_EQ(call(Msg(FUSE_SETXATTR)
                       .add_prefix(fuse_setxattr_in{5, XATTR_CREATE, 0, 0}, 8)
                       .name("user.key")
                       .raw("v\0lue", 5)),
              reply(kUnique, 0));
    EXPECT_EQ(fs.last().op, "setxattr");
    EXPECT_EQ(fs.last().u, (std::vector<uint64_t>{5, XATTR_CREATE, 0}));
    EXPECT_EQ(fs.last().s, (std::vector<std::string>{"user.key", std::string("v\0lue", 5)}));
    // Value shorter than the size says.
    EXPECT_EQ(call(Msg(FUSE_SETXATTR)
                       .add_prefix(fuse_setxattr_in{6, 0, 0, 0}, 8)
                       .name("user.key")
                       .raw("abc", 3)),
              error_reply(EINVAL));
}

TEST_F(FuseDispatcherTest, SetxattrExtendedLayout) {
    fs.caps.xattr = true;
    fs.caps.setxattr_ext = true;
    init();
    EXPECT_EQ(call(Msg(FUSE_SETXATTR)
                       .add(fuse_setxattr_in{3, 0, FUSE_SETXATTR_ACL_KILL_SGID, 0})
                       .name("system.posix_acl_access")
                       .raw("xyz", 3)),
              reply(kUnique, 0));
    EXPECT_EQ(fs.last().u, (std::vector<uint64_t>{3, 0, FUSE_SETXATTR_ACL_KILL_SGID}));
    EXPECT_EQ(fs.last().s, (std::vector<std::string>{"system.posix_acl_access", "xyz"}));
}

TEST_F(FuseDispatcherTest, Removexattr) {
    fs.caps.xattr = true;
    init();
    EXPECT_EQ(call(Msg(FUSE_REMOVEXATTR).name("user.gone")), reply(kUnique, 0));
    EXPECT_EQ(fs.last().op, "removexattr");
    EXPECT_EQ(fs.last().s[0], "user.gone");
}

// ---- Locks ------------------------------------------------------------------------------------

fuse_lk_in lk_in(uint32_t type, uint32_t lk_flags = 0) {
    fuse_lk_in in{};
    in.fh = 6;
    in.owner = 0x0123;
    in.lk.start = 10;
    in.lk.end = 20;
    in.lk.type = type;
    in.lk.pid = 99;
    in.lk_flags = lk_flags;
    return in;
}

TEST_F(FuseDispatcherTest, GetlkAndSetlk) {
    init();
    fuse_lk_out out{};
    out.lk.start = 1;
    out.lk.end = 2;
    out.lk.type = F_WRLCK;
    out.lk.pid = 1234;
    fs.lk_out = out;
    EXPECT_EQ(call(Msg(FUSE_GETLK).add(lk_in(F_RDLCK))), reply(kUnique, 0, bytes_of(out)));
    EXPECT_EQ(fs.last().u, (std::vector<uint64_t>{6, 0x0123, 10, 20, F_RDLCK, 0}));
    EXPECT_EQ(call(Msg(FUSE_SETLK).add(lk_in(F_WRLCK, FUSE_LK_FLOCK))), reply(kUnique, 0));
    EXPECT_EQ(fs.last().u, (std::vector<uint64_t>{6, 0x0123, 10, 20, F_WRLCK, FUSE_LK_FLOCK, 0}));
    fs.setlk_error = EAGAIN;
    EXPECT_EQ(call(Msg(FUSE_SETLK).add(lk_in(F_WRLCK))), error_reply(EAGAIN));
}

TEST_F(FuseDispatcherTest, LocksNotNegotiatedAreEnosys) {
    fs.caps.posix_locks = false;
    fs.caps.flock_locks = false;
    init();
    EXPECT_EQ(call(Msg(FUSE_GETLK).add(lk_in(F_RDLCK))), error_reply(ENOSYS));
    EXPECT_EQ(call(Msg(FUSE_SETLK).add(lk_in(F_RDLCK, FUSE_LK_FLOCK))), error_reply(ENOSYS));
    EXPECT_EQ(call(Msg(FUSE_SETLKW).add(lk_in(F_RDLCK))), error_reply(ENOSYS));
    EXPECT_TRUE(fs.calls.empty());
}

TEST_F(FuseDispatcherTest, SetlkwWithoutEngineNeverWaitsOnTheLcore) {
    init();
    EXPECT_EQ(call(Msg(FUSE_SETLKW).add(lk_in(F_WRLCK))), reply(kUnique, 0));
    EXPECT_EQ(fs.last().op, "setlk");
    EXPECT_EQ(fs.last().u.back(), 0u); // sleep = false
    fs.setlk_error = EAGAIN;
    EXPECT_EQ(call(Msg(FUSE_SETLKW).add(lk_in(F_WRLCK))), error_reply(EINTR));
    fs.setlk_error = EDEADLK;
    EXPECT_EQ(call(Msg(FUSE_SETLKW).add(lk_in(F_WRLCK))), error_reply(EDEADLK));
}

TEST_F(FuseDispatcherTest, InterruptWakesLockAndSendsNoReply) {
    init();
    Chain ch(Msg(FUSE_INTERRUPT, 0, 0x99).add(fuse_interrupt_in{kUnique}).build(), {4096});
    EXPECT_EQ(send(ch), 0);
    EXPECT_TRUE(ch.untouched_from(0));
    ASSERT_EQ(fs.calls.size(), 1u);
    EXPECT_EQ(fs.last().op, "interrupt_lock");
    EXPECT_EQ(fs.last().u[0], kUnique);
}

// ---- Synchronous I/O --------------------------------------------------------------------------

TEST_F(FuseDispatcherTest, ReadIntoMultipleIovecs) {
    init();
    fs.file_data = "0123456789abcdefghijklmnopqrstuvwxyz";
    Chain ch(Msg(FUSE_READ).add(read_in(3, 4, 20)).build(), {10, 6, 5, 7, 100});
    ASSERT_EQ(send(ch), 36);
    EXPECT_EQ(ch.out(36), reply(kUnique, 0, str_bytes("456789abcdefghijklmn")));
    EXPECT_TRUE(ch.untouched_from(36));
    // read(fh 3, offset 4, 20 bytes in 3 iovecs: 5 + 7 + 8)
    EXPECT_EQ(fs.last().u, (std::vector<uint64_t>{3, 4, 20, 3}));
}

TEST_F(FuseDispatcherTest, ShortReadAndReadError) {
    init();
    fs.file_data = "short";
    EXPECT_EQ(call(Msg(FUSE_READ).add(read_in(3, 0, 4096)), 16 + 4096),
              reply(kUnique, 0, str_bytes("short")));
    fs.fail = EIO;
    EXPECT_EQ(call(Msg(FUSE_READ).add(read_in(3, 0, 10))), error_reply(EIO));
}

TEST_F(FuseDispatcherTest, ReadWithoutCtxUsesQueueScratch) {
    init();
    fs.file_data = "data";
    Chain ch(Msg(FUSE_READ).add(read_in(3, 0, 4)).build(), {64});
    ASSERT_EQ(disp().handle(ch.req(), nullptr), 20);
    EXPECT_EQ(ch.out(20), reply(kUnique, 0, str_bytes("data")));
}

TEST_F(FuseDispatcherTest, ReadTooManyIovecsIsInvalid) {
    init();
    std::vector<size_t> out(1 + kMaxIoIovs + 1, 1);
    out[0] = 16;
    Chain ch(Msg(FUSE_READ).add(read_in(3, 0, kMaxIoIovs + 1)).build(), out);
    ASSERT_EQ(send(ch), 16);
    EXPECT_EQ(ch.out(16), error_reply(EINVAL));
    EXPECT_TRUE(fs.calls.empty());
}

fuse_write_in write_in(uint64_t fh, uint64_t offset, uint32_t size, uint32_t flags = 0) {
    fuse_write_in in{};
    in.fh = fh;
    in.offset = offset;
    in.size = size;
    in.write_flags = flags;
    return in;
}

TEST_F(FuseDispatcherTest, WriteFromSplitBuffers) {
    init();
    Bytes in = Msg(FUSE_WRITE)
                   .add(write_in(2, 100, 11, FUSE_WRITE_KILL_SUIDGID))
                   .raw("hello world")
                   .build();
    Chain ch(in, {24}, {40, 40, 3, 4});
    ASSERT_EQ(send(ch), 24);
    EXPECT_EQ(ch.out(24), reply(kUnique, 0, cat({le32(11), le32(0)})));
    EXPECT_EQ(fs.last().op, "write");
    EXPECT_EQ(fs.last().u, (std::vector<uint64_t>{2, 100, 11, FUSE_WRITE_KILL_SUIDGID, 3}));
    EXPECT_EQ(fs.written, "hello world");
}

TEST_F(FuseDispatcherTest, WriteSizeBeyondPayloadIsInvalid) {
    init();
    EXPECT_EQ(call(Msg(FUSE_WRITE).add(write_in(2, 0, 12)).raw("hello world")),
              error_reply(EINVAL));
    EXPECT_EQ(call(Msg(FUSE_WRITE).add(write_in(2, 0, 5)).raw("hello")),
              reply(kUnique, 0, cat({le32(5), le32(0)})));
    // No room for fuse_write_out.
    EXPECT_EQ(call(Msg(FUSE_WRITE).add(write_in(2, 0, 5)).raw("hello"), 23), error_reply(EINVAL));
    EXPECT_EQ(fs.count("write"), 1u);
}

TEST_F(FuseDispatcherTest, SyncFsyncFallocateCopySyncfsFsyncdir) {
    init();
    EXPECT_EQ(call(Msg(FUSE_FSYNC).add(fuse_fsync_in{8, FUSE_FSYNC_FDATASYNC, 0})),
              reply(kUnique, 0));
    EXPECT_EQ(fs.last().op, "fsync");
    EXPECT_EQ(fs.last().u, (std::vector<uint64_t>{8, 1}));
    EXPECT_EQ(call(Msg(FUSE_FSYNCDIR).add(fuse_fsync_in{9, 0, 0})), reply(kUnique, 0));
    EXPECT_EQ(fs.last().op, "fsyncdir");
    EXPECT_EQ(fs.last().u, (std::vector<uint64_t>{9, 0}));
    EXPECT_EQ(
        call(Msg(FUSE_FALLOCATE).add(fuse_fallocate_in{8, 4096, 8192, FALLOC_FL_KEEP_SIZE, 0})),
        reply(kUnique, 0));
    EXPECT_EQ(fs.last().op, "fallocate");
    EXPECT_EQ(fs.last().u, (std::vector<uint64_t>{8, 4096, 8192, FALLOC_FL_KEEP_SIZE}));
    fs.copy_result = 4000;
    fuse_copy_file_range_in cin{1, 2, 3, 4, 5, 4000, 0};
    EXPECT_EQ(call(Msg(FUSE_COPY_FILE_RANGE, 11).add(cin)),
              reply(kUnique, 0, cat({le32(4000), le32(0)})));
    EXPECT_EQ(fs.last().op, "copy_file_range");
    EXPECT_EQ(fs.last().nodeid, 11u);
    EXPECT_EQ(fs.last().u, (std::vector<uint64_t>{1, 2, 3, 4, 5, 4000, 0}));
    EXPECT_EQ(call(Msg(FUSE_SYNCFS).add(fuse_syncfs_in{0})), reply(kUnique, 0));
    EXPECT_EQ(fs.last().op, "syncfs");
    fs.fail = ENOSPC;
    EXPECT_EQ(call(Msg(FUSE_FALLOCATE).add(fuse_fallocate_in{8, 0, 1, 0, 0})), error_reply(ENOSPC));
}

TEST_F(FuseDispatcherTest, CopyFileRangeIsChunked) {
    init();
    // A 4 GiB (and a 1 TiB) request moves at most kMaxCopyChunk (4 MiB); the short count
    // goes back and the guest asks again for the rest.
    fs.copy_result = 4u << 20;
    for (uint64_t len : {0xFFFFFFFFull, 1ULL << 40}) {
        fuse_copy_file_range_in cin{1, 2, 3, 4, 5, len, 0};
        EXPECT_EQ(call(Msg(FUSE_COPY_FILE_RANGE).add(cin)),
                  reply(kUnique, 0, cat({le32(4u << 20), le32(0)})));
        EXPECT_EQ(fs.last().u[5], 4u << 20);
    }
    // Shorter requests are passed on unchanged.
    fuse_copy_file_range_in small{1, 2, 3, 4, 5, (4u << 20) - 1, 0};
    call(Msg(FUSE_COPY_FILE_RANGE).add(small));
    EXPECT_EQ(fs.last().u[5], (4u << 20) - 1);
    // Through the engine: the worker sees the capped length too.
    fuse_copy_file_range_in huge{1, 2, 3, 4, 5, 1ULL << 33, 0};
    Chain ch(Msg(FUSE_COPY_FILE_RANGE).add(huge).build(), {4096});
    ASSERT_EQ(send(ch, &engine), VDH_ASYNC);
    EXPECT_EQ(fs.last().u[5], (4u << 20) - 1); // nothing ran on the lcore
    engine.subs.back().fn(engine.subs.back().ctx);
    EXPECT_EQ(fs.last().op, "copy_file_range");
    EXPECT_EQ(fs.last().u[5], 4u << 20);
    EXPECT_EQ(ch.out(24), reply(kUnique, 0, cat({le32(4u << 20), le32(0)})));
}

TEST_F(FuseDispatcherTest, WriteBeyondMaxWriteIsEinval) {
    init(); // max_pages 256: max_write 1 MiB
    // Twice the negotiated max_write, with the whole payload present.
    const uint32_t big = 2u << 20;
    Bytes in = Msg(FUSE_WRITE).add(write_in(2, 0, big)).raw(std::string(big, 'x')).build();
    Chain ch(in, {4096});
    ASSERT_EQ(send(ch, &engine), 16);
    EXPECT_EQ(ch.out(16), error_reply(EINVAL));
    EXPECT_TRUE(ch.untouched_from(16));
    // One byte over is refused as well; exactly max_write is served.
    Chain over(
        Msg(FUSE_WRITE).add(write_in(2, 0, kMiB + 1)).raw(std::string(kMiB + 1, 'y')).build(),
        {4096});
    ASSERT_EQ(send(over, &engine), 16);
    EXPECT_EQ(over.out(16), error_reply(EINVAL));
    EXPECT_TRUE(fs.calls.empty());
    EXPECT_TRUE(engine.subs.empty());
    EXPECT_EQ(disp().stats().oversize, 2u);
    Chain fits(Msg(FUSE_WRITE).add(write_in(2, 0, kMiB)).raw(std::string(kMiB, 'z')).build(),
               {4096});
    ASSERT_EQ(send(fits, &engine), VDH_ASYNC);
}

TEST_F(FuseDispatcherTest, ReadBeyondNegotiatedMaximumIsEinval) {
    cfg.max_pages = 2; // max_read = max_write = 8192
    init();
    Chain ch(Msg(FUSE_READ).add(read_in(9, 0, 8193)).build(), {20000});
    ASSERT_EQ(send(ch, &engine), 16);
    EXPECT_EQ(ch.out(16), error_reply(EINVAL));
    EXPECT_TRUE(ch.untouched_from(16));
    Chain huge(Msg(FUSE_READ).add(read_in(9, 0, UINT32_MAX)).build(), {20000});
    ASSERT_EQ(send(huge, &engine), 16);
    EXPECT_EQ(huge.out(16), error_reply(EINVAL));
    EXPECT_TRUE(fs.calls.empty());
    EXPECT_TRUE(engine.subs.empty());
    Chain w(Msg(FUSE_WRITE).add(write_in(2, 0, 8193)).raw(std::string(8193, 'w')).build(), {64});
    ASSERT_EQ(send(w, &engine), 16);
    EXPECT_EQ(w.out(16), error_reply(EINVAL));
    EXPECT_EQ(disp().stats().oversize, 3u);
    Chain fits(Msg(FUSE_READ).add(read_in(9, 0, 8192)).build(), {20000});
    ASSERT_EQ(send(fits, &engine), VDH_ASYNC);
    ASSERT_EQ(engine.subs.size(), 1u);
}

// ---- Asynchronous I/O -------------------------------------------------------------------------

TEST_F(FuseDispatcherTest, AsyncReadWritesStraightIntoGuestBuffers) {
    init();
    Chain ch(Msg(FUSE_READ).add(read_in(9, 4096, 300)).build(), {10, 6, 100, 4000});
    ASSERT_EQ(send(ch, &engine), VDH_ASYNC);
    ASSERT_EQ(engine.subs.size(), 1u);
    const test::Submission& s = engine.subs[0];
    EXPECT_EQ(s.op, "readv");
    EXPECT_EQ(s.fd, 77);
    EXPECT_EQ(s.off, 4096u);
    ASSERT_EQ(s.iov.size(), 2u);
    EXPECT_EQ(s.iov[0].iov_base, ch.out_bufs()[2].data());
    EXPECT_EQ(s.iov[0].iov_len, 100u);
    EXPECT_EQ(s.iov[1].iov_base, ch.out_bufs()[3].data());
    EXPECT_EQ(s.iov[1].iov_len, 200u);
    EXPECT_EQ(fs.count("read"), 0u);
    EXPECT_EQ(fs.last().op, "io_fd");
    EXPECT_EQ(fs.last().u, (std::vector<uint64_t>{9, 0, 0}));
    EXPECT_TRUE(ch.untouched_from(0)); // nothing written before completion
    EXPECT_TRUE(Completions::list().empty());

    // The "device" reads 250 bytes (short read) and completes.
    Bytes data(250);
    for (size_t i = 0; i < data.size(); ++i) {
        data[i] = uint8_t(i * 7);
    }
    std::memcpy(s.iov[0].iov_base, data.data(), 100);
    std::memcpy(s.iov[1].iov_base, data.data() + 100, 150);
    FuseDispatcher::complete(s.ctx, 250);
    ASSERT_EQ(Completions::list().size(), 1u);
    EXPECT_EQ(Completions::list()[0].token, &ch);
    EXPECT_EQ(Completions::list()[0].written, 266);
    EXPECT_EQ(ch.out(266), reply(kUnique, 0, data));
    EXPECT_EQ(disp().stats().async_submitted, 1u);
}

TEST_F(FuseDispatcherTest, AsyncReadErrorAndOverlongResult) {
    init();
    Chain ch(Msg(FUSE_READ).add(read_in(9, 0, 100)).build(), {4096});
    ASSERT_EQ(send(ch, &engine), VDH_ASYNC);
    disp().complete_io(static_cast<FuseRequestCtx*>(engine.subs[0].ctx), -EIO);
    ASSERT_EQ(Completions::list().size(), 1u);
    EXPECT_EQ(Completions::list()[0].written, 16);
    EXPECT_EQ(ch.out(16), error_reply(EIO));
    EXPECT_TRUE(ch.untouched_from(16));

    Chain ch2(Msg(FUSE_READ).add(read_in(9, 0, 100)).build(), {4096});
    ASSERT_EQ(send(ch2, &engine), VDH_ASYNC);
    FuseDispatcher::complete(engine.subs[1].ctx, 101); // more than asked: never passed on
    EXPECT_EQ(ch2.out(16), error_reply(EIO));
}

TEST_F(FuseDispatcherTest, EngineRefusalFallsBackToSync) {
    init();
    engine.accept = false;
    fs.file_data = "abc";
    Chain ch(Msg(FUSE_READ).add(read_in(9, 0, 100)).build(), {4096});
    ASSERT_EQ(send(ch, &engine), 19);
    EXPECT_EQ(ch.out(19), reply(kUnique, 0, str_bytes("abc")));
    EXPECT_EQ(fs.count("read"), 1u);
    EXPECT_EQ(disp().stats().async_fallbacks, 1u);
    EXPECT_EQ(disp().stats().async_submitted, 0u);
    EXPECT_TRUE(Completions::list().empty());
}

TEST_F(FuseDispatcherTest, IoFdFailureFallsBackToSync) {
    init();
    fs.io_fd_error = EBADF;
    fs.fail = EBADF;
    Chain ch(Msg(FUSE_READ).add(read_in(9, 0, 100)).build(), {4096});
    ASSERT_EQ(send(ch, &engine), 16);
    EXPECT_EQ(ch.out(16), error_reply(EBADF));
    EXPECT_TRUE(engine.subs.empty());
}

TEST_F(FuseDispatcherTest, NoDoneCallbackMeansSynchronous) {
    cfg.done = nullptr;
    init();
    fs.file_data = "abc";
    Chain ch(Msg(FUSE_READ).add(read_in(9, 0, 3)).build(), {4096});
    ASSERT_EQ(send(ch, &engine), 19);
    EXPECT_TRUE(engine.subs.empty());
}

TEST_F(FuseDispatcherTest, ConfiguredEngineIsTheDefault) {
    cfg.engine = &engine;
    init();
    Chain ch(Msg(FUSE_FSYNC).add(fuse_fsync_in{8, 0, 0}).build(), {4096});
    ASSERT_EQ(disp().handle(ch.req(), &ctx), VDH_ASYNC);
    ASSERT_EQ(engine.subs.size(), 1u);
    EXPECT_EQ(engine.subs[0].op, "fsync");
}

TEST_F(FuseDispatcherTest, AsyncWriteUsesGuestBuffersAndPreparesFirst) {
    init();
    Bytes in = Msg(FUSE_WRITE)
                   .add(write_in(2, 64, 11, FUSE_WRITE_KILL_SUIDGID))
                   .raw("hello world")
                   .build();
    Chain ch(in, {8, 8, 8, 100}, {40, 45, 6});
    ASSERT_EQ(send(ch, &engine), VDH_ASYNC);
    ASSERT_EQ(engine.subs.size(), 1u);
    const test::Submission& s = engine.subs[0];
    EXPECT_EQ(s.op, "writev");
    EXPECT_EQ(s.off, 64u);
    std::string data;
    for (const iovec& v : s.iov) {
        data.append(static_cast<const char*>(v.iov_base), v.iov_len);
    }
    EXPECT_EQ(data, "hello world");
    // No copy: the iovecs point into the chain.
    ASSERT_EQ(s.iov.size(), 2u);
    EXPECT_EQ(s.iov[0].iov_base, ch.in_bufs()[1].data() + 40);
    EXPECT_EQ(s.iov[0].iov_len, 5u);
    EXPECT_EQ(s.iov[1].iov_base, ch.in_bufs()[2].data());
    EXPECT_EQ(s.iov[1].iov_len, 6u);
    // One handle lookup: io_fd() takes the write flags and does the pre-write step itself.
    ASSERT_EQ(fs.calls.size(), 1u);
    EXPECT_EQ(fs.calls[0].op, "io_fd");
    EXPECT_EQ(fs.calls[0].u, (std::vector<uint64_t>{2, 1, FUSE_WRITE_KILL_SUIDGID}));
    FuseDispatcher::complete(s.ctx, 11);
    ASSERT_EQ(Completions::list().size(), 1u);
    EXPECT_EQ(Completions::list()[0].written, 24);
    // The 24 reply bytes span three 8-byte buffers.
    EXPECT_EQ(ch.out(24), reply(kUnique, 0, cat({le32(11), le32(0)})));
    EXPECT_TRUE(ch.untouched_from(24));
}

TEST_F(FuseDispatcherTest, AsyncWritePrepareFailureIsReplied) {
    init();
    fs.prepare_error = EPERM;
    Chain ch(Msg(FUSE_WRITE).add(write_in(2, 0, 3)).raw("abc").build(), {4096});
    ASSERT_EQ(send(ch, &engine), 16);
    EXPECT_EQ(ch.out(16), error_reply(EPERM));
    EXPECT_TRUE(engine.subs.empty());
}

TEST_F(FuseDispatcherTest, AsyncFsyncAndFallocate) {
    init();
    FuseRequestCtx ctx_b{};
    Chain a(Msg(FUSE_FSYNC).add(fuse_fsync_in{8, FUSE_FSYNC_FDATASYNC, 0}).build(), {4096});
    ASSERT_EQ(send(a, &engine), VDH_ASYNC);
    Chain b(
        Msg(FUSE_FALLOCATE, kNode, 0x77)
            .add(fuse_fallocate_in{8, 4096, 8192, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0})
            .build(),
        {4096});
    ASSERT_EQ(disp().handle(b.req(), &ctx_b, &engine), VDH_ASYNC);
    ASSERT_EQ(engine.subs.size(), 2u);
    EXPECT_EQ(engine.subs[0].op, "fsync");
    EXPECT_EQ(engine.subs[0].fd, 77);
    EXPECT_TRUE(engine.subs[0].datasync);
    EXPECT_EQ(engine.subs[1].op, "fallocate");
    EXPECT_EQ(engine.subs[1].mode, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
    EXPECT_EQ(engine.subs[1].off, 4096u);
    EXPECT_EQ(engine.subs[1].len, 8192u);
    ASSERT_EQ(fs.calls.size(), 2u);
    EXPECT_EQ(fs.calls[0].u, (std::vector<uint64_t>{8, 0, 0})); // fsync: any fd
    EXPECT_EQ(fs.calls[1].u, (std::vector<uint64_t>{8, 1, 0})); // fallocate: a write fd
    // Completions in any order.
    FuseDispatcher::complete(engine.subs[1].ctx, -ENOSPC);
    FuseDispatcher::complete(engine.subs[0].ctx, 0);
    ASSERT_EQ(Completions::list().size(), 2u);
    EXPECT_EQ(Completions::list()[0].token, &b);
    EXPECT_EQ(Completions::list()[1].token, &a);
    EXPECT_EQ(b.out(16), reply(0x77, -ENOSPC));
    EXPECT_EQ(a.out(16), reply(kUnique, 0));
    EXPECT_TRUE(a.untouched_from(16));
    EXPECT_TRUE(b.untouched_from(16));
}

TEST_F(FuseDispatcherTest, SetlkwRunsOnWorkerAndCanBeInterrupted) {
    init();
    Chain ch(Msg(FUSE_SETLKW).add(lk_in(F_WRLCK)).build(), {4096});
    ASSERT_EQ(send(ch, &engine), VDH_ASYNC);
    ASSERT_EQ(engine.subs.size(), 1u);
    EXPECT_EQ(engine.subs[0].op, "run_blocking");
    EXPECT_TRUE(fs.calls.empty()); // nothing ran on the lcore

    FuseRequestCtx other{};
    Chain intr(Msg(FUSE_INTERRUPT, 0, 0x99).add(fuse_interrupt_in{kUnique}).build(), {4096});
    EXPECT_EQ(disp().handle(intr.req(), &other, &engine), 0);
    EXPECT_EQ(fs.last().op, "interrupt_lock");

    // The worker runs the call; the backend reports the wait was interrupted.
    fs.setlk_error = EINTR;
    engine.subs[0].fn(engine.subs[0].ctx);
    EXPECT_EQ(fs.last().op, "setlk");
    EXPECT_EQ(fs.last().u.back(), 1u); // sleep = true
    expect_ctx(fs.last());
    ASSERT_EQ(Completions::list().size(), 1u);
    EXPECT_EQ(Completions::list()[0].written, 16);
    EXPECT_EQ(ch.out(16), error_reply(EINTR));
}

TEST_F(FuseDispatcherTest, BlockingCallsOnWorker) {
    init();
    fs.copy_result = 12345;
    Chain c1(
        Msg(FUSE_COPY_FILE_RANGE, 11).add(fuse_copy_file_range_in{1, 2, 3, 4, 5, 20000, 0}).build(),
        {12, 12});
    ASSERT_EQ(send(c1, &engine), VDH_ASYNC);
    engine.subs.back().fn(engine.subs.back().ctx);
    EXPECT_EQ(fs.last().op, "copy_file_range");
    EXPECT_EQ(Completions::list().back().written, 24);
    EXPECT_EQ(c1.out(24), reply(kUnique, 0, cat({le32(12345), le32(0)})));

    Chain c2(Msg(FUSE_SYNCFS).add(fuse_syncfs_in{0}).build(), {16});
    ASSERT_EQ(send(c2, &engine), VDH_ASYNC);
    engine.subs.back().fn(engine.subs.back().ctx);
    EXPECT_EQ(fs.last().op, "syncfs");
    EXPECT_EQ(c2.out(16), reply(kUnique, 0));

    Chain c3(Msg(FUSE_FSYNCDIR).add(fuse_fsync_in{4, FUSE_FSYNC_FDATASYNC, 0}).build(), {16});
    ASSERT_EQ(send(c3, &engine), VDH_ASYNC);
    engine.subs.back().fn(engine.subs.back().ctx);
    EXPECT_EQ(fs.last().op, "fsyncdir");
    EXPECT_EQ(fs.last().u, (std::vector<uint64_t>{4, 1}));
    EXPECT_EQ(c3.out(16), reply(kUnique, 0));
    EXPECT_EQ(Completions::list().size(), 3u);
}

TEST_F(FuseDispatcherTest, BlockingCallsNeverRunOnTheLcoreWhenThePoolIsFull) {
    init();
    engine.accept = false; // the pool takes nothing (full or stopping)
    Chain lk(Msg(FUSE_SETLKW).add(lk_in(F_WRLCK)).build(), {16});
    ASSERT_EQ(send(lk, &engine), 16);
    EXPECT_EQ(lk.out(16), error_reply(EINTR)); // what an interrupted lock wait returns
    Chain sync(Msg(FUSE_SYNCFS).add(fuse_syncfs_in{0}).build(), {16});
    ASSERT_EQ(send(sync, &engine), 16);
    EXPECT_EQ(sync.out(16), error_reply(EAGAIN));
    Chain dir(Msg(FUSE_FSYNCDIR).add(fuse_fsync_in{4, 0, 0}).build(), {16});
    ASSERT_EQ(send(dir, &engine), 16);
    EXPECT_EQ(dir.out(16), error_reply(EAGAIN));
    Chain copy(Msg(FUSE_COPY_FILE_RANGE).add(fuse_copy_file_range_in{1, 2, 3, 4, 5, 100, 0})
                   .build(),
               {24});
    ASSERT_EQ(send(copy, &engine), 16);
    EXPECT_EQ(copy.out(16), error_reply(EAGAIN));
    EXPECT_TRUE(copy.untouched_from(16));
    EXPECT_TRUE(fs.calls.empty()); // nothing ran on the calling (lcore) thread
    EXPECT_EQ(disp().stats().blocking_refused, 4u);
    EXPECT_EQ(disp().stats().async_fallbacks, 0u);
    EXPECT_EQ(disp().stats().async_submitted, 0u);
    EXPECT_TRUE(Completions::list().empty());
}

// ---- The hiprio queue -------------------------------------------------------------------------

TEST_F(FuseDispatcherTest, HiprioQueueTakesOnlyForgetsAndInterrupts) {
    // INIT on hiprio is refused like everything else that is not a forget or interrupt.
    Chain i0(Msg(FUSE_INIT, 0).add(init_in(7, 38, kGuestFlags)).build(), {4096}, {}, 0);
    ASSERT_EQ(send(i0, &engine), 16);
    EXPECT_EQ(i0.out(16), error_reply(EINVAL));
    EXPECT_FALSE(disp().initialized());
    init();
    struct Case {
        Bytes in;
        size_t out;
    };
    const std::vector<Case> refused = {
        {Msg(FUSE_LOOKUP, 1).name("a").build(), 4096},
        {Msg(FUSE_GETATTR).add(fuse_getattr_in{}).build(), 4096},
        {Msg(FUSE_READ).add(read_in(9, 0, 100)).build(), 4096},
        {Msg(FUSE_WRITE).add(write_in(2, 0, 3)).raw("abc").build(), 4096},
        {Msg(FUSE_SETLKW).add(lk_in(F_WRLCK)).build(), 4096},
        {Msg(FUSE_SYNCFS).add(fuse_syncfs_in{0}).build(), 4096},
        {Msg(FUSE_COPY_FILE_RANGE).add(fuse_copy_file_range_in{1, 2, 3, 4, 5, 9, 0}).build(), 4096},
        {Msg(FUSE_DESTROY, 0).build(), 4096},
        {Msg(FUSE_INIT, 0).add(init_in(7, 38, kGuestFlags)).build(), 4096},
        {Msg(999).build(), 4096},
    };
    for (const Case& k : refused) {
        Chain ch(k.in, {k.out}, {}, 0);
        ASSERT_EQ(send(ch, &engine), 16);
        EXPECT_EQ(ch.out(16), error_reply(EINVAL));
        EXPECT_TRUE(ch.untouched_from(16));
    }
    // No reply wanted: dropped.
    Chain nr(Msg(FUSE_NOTIFY_REPLY).build(), {}, {}, 0);
    EXPECT_EQ(send(nr, &engine), 0);
    EXPECT_TRUE(fs.calls.empty());
    EXPECT_TRUE(engine.subs.empty());
    EXPECT_EQ(fs.destroy_count, 0);
    EXPECT_EQ(fs.init_count, 1);
    EXPECT_EQ(disp().stats().hiprio_rejected, refused.size() + 2);

    // What hiprio is for still works.
    Chain f(Msg(FUSE_FORGET, 33).add(fuse_forget_in{7}).build(), {}, {}, 0);
    EXPECT_EQ(send(f, &engine), 0);
    EXPECT_EQ(fs.last().op, "forget");
    fuse_batch_forget_in b{1, 0};
    Chain bf(Msg(FUSE_BATCH_FORGET).add(b).add(fuse_forget_one{34, 2}).build(), {}, {}, 0);
    EXPECT_EQ(send(bf, &engine), 0);
    EXPECT_EQ(fs.last().nodeid, 34u);
    Chain in(Msg(FUSE_INTERRUPT, 0, 0x99).add(fuse_interrupt_in{kUnique}).build(), {}, {}, 0);
    EXPECT_EQ(send(in, &engine), 0);
    EXPECT_EQ(fs.last().op, "interrupt_lock");
}

// ---- Open files of asynchronous requests --------------------------------------------------------

/// Whether \p fd is an open descriptor of this process.
bool fd_open(int fd) {
    return ::fcntl(fd, F_GETFD) != -1;
}

TEST_F(FuseDispatcherTest, AsyncIoHoldsTheOpenFileUntilItsCompletion) {
    // Finding 6: the fd handed to the engine must stay open (its number unused) after
    // RELEASE until the completion was reaped, and be closed after.
    char path[] = "/tmp/vdh_disp_fd_XXXXXX";
    const int raw = ::mkstemp(path);
    ASSERT_GE(raw, 0);
    ::unlink(path);
    // The "backend's" open file: closes the fd when the last reference goes.
    auto file = std::make_shared<UniqueFd>(raw);
    fs.io_fd_value = raw;
    fs.io_keep = file;
    std::weak_ptr<UniqueFd> watch = file;
    file.reset();
    init();

    const std::vector<Bytes> ops = {
        Msg(FUSE_READ).add(read_in(9, 0, 100)).build(),
        Msg(FUSE_WRITE).add(write_in(9, 0, 3)).raw("abc").build(),
        Msg(FUSE_FSYNC).add(fuse_fsync_in{9, 0, 0}).build(),
        Msg(FUSE_FALLOCATE).add(fuse_fallocate_in{9, 0, 4096, 0, 0}).build(),
    };
    std::vector<std::unique_ptr<Chain>> chains;
    std::vector<FuseRequestCtx> ctxs(ops.size());
    for (size_t i = 0; i < ops.size(); ++i) {
        chains.push_back(std::make_unique<Chain>(ops[i], std::vector<size_t>{4096}));
        ASSERT_EQ(disp().handle(chains[i]->req(), &ctxs[i], &engine), VDH_ASYNC);
        EXPECT_EQ(engine.subs[i].fd, raw);
    }
    // RELEASE: the backend drops its own reference to the open file.
    EXPECT_EQ(call(Msg(FUSE_RELEASE).add(fuse_release_in{9, 0, 0, 0})), reply(kUnique, 0));
    fs.io_keep.reset();
    EXPECT_EQ(watch.use_count(), 4); // one per request in flight
    EXPECT_TRUE(fd_open(raw));
    for (size_t i = 0; i + 1 < ops.size(); ++i) {
        FuseDispatcher::complete(engine.subs[i].ctx, 0);
        EXPECT_TRUE(fd_open(raw)) << i;
    }
    EXPECT_EQ(watch.use_count(), 1);
    FuseDispatcher::complete(engine.subs.back().ctx, 0);
    // Reaped: the last reference went with the completion, and the fd with it.
    EXPECT_TRUE(watch.expired());
    EXPECT_FALSE(fd_open(raw));
    EXPECT_EQ(Completions::list().size(), ops.size());
}

TEST_F(FuseDispatcherTest, RefusedAsyncIoLetsGoOfTheOpenFile) {
    init();
    std::weak_ptr<const void> watch = fs.io_keep;
    engine.accept = false;
    fs.file_data = "abc";
    Chain ch(Msg(FUSE_READ).add(read_in(9, 0, 100)).build(), {4096});
    ASSERT_EQ(send(ch, &engine), 19); // done synchronously
    EXPECT_EQ(watch.use_count(), 1);  // only the backend's own reference is left
    engine.accept = true;
    Chain a(Msg(FUSE_READ).add(read_in(9, 0, 100)).build(), {4096});
    ASSERT_EQ(send(a, &engine), VDH_ASYNC);
    EXPECT_EQ(watch.use_count(), 2);
    FuseDispatcher::complete(engine.subs[0].ctx, 3);
    EXPECT_EQ(watch.use_count(), 1);
}

// ---- Statistics -------------------------------------------------------------------------------

TEST_F(FuseDispatcherTest, CountsRequestsErrorsAndMalformed) {
    init();
    call(Msg(FUSE_LOOKUP).name("a"));
    call(Msg(FUSE_LOOKUP).name("a/b"));
    fs.fail = ENOENT;
    call(Msg(FUSE_LOOKUP).name("c"));
    call(Msg(1000));
    const FuseStats st = disp().stats();
    EXPECT_EQ(st.requests[FUSE_INIT], 1u);
    EXPECT_EQ(st.requests[FUSE_LOOKUP], 3u);
    EXPECT_EQ(st.requests[0], 1u); // opcode >= 64
    EXPECT_EQ(st.malformed, 1u);
    EXPECT_EQ(st.errors, 3u); // EINVAL, ENOENT, ENOSYS
    EXPECT_EQ(st.unsupported, 1u);
}

TEST_F(FuseDispatcherTest, ConcurrentQueuesCountEveryRequest) {
    // Queues 1 and 2 have their own blocks (one thread each, as one lcore per queue);
    // queues 40 and 41 are beyond num_queues and share the atomic block. No count is lost
    // and the snapshot sums them all.
    cfg.num_queues = 3;
    init();
    constexpr int kEach = 20000;
    const Bytes bmap = Msg(FUSE_BMAP).add(fuse_bmap_in{}).build();
    std::vector<std::thread> ts;
    for (uint16_t q : {1, 2, 40, 41}) {
        ts.emplace_back([&, q] {
            FuseRequestCtx own{};
            for (int i = 0; i < kEach; ++i) {
                Chain ch(bmap, {64}, {}, q);
                EXPECT_EQ(disp().handle(ch.req(), &own), 16);
            }
        });
    }
    for (auto& t : ts) {
        t.join();
    }
    const FuseStats st = disp().stats();
    EXPECT_EQ(st.requests[FUSE_BMAP], 4u * kEach);
    EXPECT_EQ(st.unsupported, 4u * kEach);
    EXPECT_EQ(st.errors, 4u * kEach);
    EXPECT_EQ(st.total_requests(), 4u * kEach + 1); // + INIT
}

TEST_F(FuseDispatcherTest, CompletionsOnOtherThreadsCountInTheSharedBlock) {
    init();
    fs.file_data = "abc";
    Chain ch(Msg(FUSE_READ).add(read_in(9, 0, 3)).build(), {4096});
    ASSERT_EQ(send(ch, &engine), VDH_ASYNC);
    ASSERT_EQ(engine.subs.size(), 1u);
    std::thread other([&] { FuseDispatcher::complete(engine.subs[0].ctx, -EIO); });
    other.join();
    const FuseStats st = disp().stats();
    EXPECT_EQ(st.errors, 1u);
    EXPECT_EQ(st.async_submitted, 1u);
    EXPECT_EQ(ch.out(16), error_reply(EIO));
}

TEST(FuseWire, OpcodeNames) {
    EXPECT_STREQ(fuse_opcode_name(FUSE_LOOKUP), "LOOKUP");
    EXPECT_STREQ(fuse_opcode_name(FUSE_TMPFILE), "TMPFILE");
    EXPECT_STREQ(fuse_opcode_name(kFuseOpStatx), "STATX");
    EXPECT_EQ(fuse_opcode_name(7), nullptr);
    EXPECT_FALSE(fuse_opcode_has_reply(FUSE_FORGET));
    EXPECT_FALSE(fuse_opcode_has_reply(FUSE_BATCH_FORGET));
    EXPECT_FALSE(fuse_opcode_has_reply(FUSE_INTERRUPT));
    EXPECT_TRUE(fuse_opcode_has_reply(FUSE_DESTROY));
    EXPECT_GE(kFuseRequestCtxSize, sizeof(iovec) * (kMaxIoIovs + kMaxReplyIovs));
}

} // namespace
} // namespace vdh::virtiofs

namespace vdh::virtiofs {
namespace {

// ---- Request extensions (CREATE_SUPP_GROUP, SECURITY_CTX) -----------------------------------

/// A FUSE_EXT_GROUPS extension as the kernel builds it: {16, 32}, nr_groups, groups.
Bytes groups_ext(std::vector<uint32_t> gids, uint32_t size = 0, uint32_t nr = UINT32_MAX) {
    Bytes body = le32(nr == UINT32_MAX ? uint32_t(gids.size()) : nr);
    for (uint32_t g : gids) {
        body = cat({body, le32(g)});
    }
    while ((8 + body.size()) % 8 != 0) {
        body.push_back(0);
    }
    return cat({le32(size != 0 ? size : uint32_t(8 + body.size())), le32(32), body});
}

/// A security context extension: {size, nr_secctx}, fuse_secctx{value size, 0}, name NUL,
/// value, zero padding to 8.
Bytes secctx_ext(std::string_view name, std::string_view value) {
    Bytes rec = cat({le32(uint32_t(value.size())), le32(0), str_bytes(name), zeros(1),
                     str_bytes(value)});
    while (rec.size() % 8 != 0) {
        rec.push_back(0);
    }
    return cat({le32(uint32_t(8 + rec.size())), le32(1), rec});
}

class FuseExtTest : public FuseDispatcherTest {
protected:
    /// INIT as Linux 6.12 (7.41) with CREATE_SUPP_GROUP and SECURITY_CTX offered.
    void init612(bool label) {
        fs.caps.security_label = label;
        Bytes r = call(Msg(FUSE_INIT, 0).add(init_in(7, 41, kGuestFlags, 0x1DD)));
        ASSERT_EQ(r.size(), 80u);
        fs.calls.clear();
    }
    /// \p m with \p ext appended as its request extensions.
    static Msg with_ext(Msg m, const Bytes& ext) {
        m.raw(ext.data(), ext.size());
        m.extlen(uint16_t(ext.size() / 8));
        return m;
    }
    Msg mkdir_msg() { return std::move(Msg(FUSE_MKDIR).add(fuse_mkdir_in{0755, 022}).name("d")); }
};

TEST_F(FuseExtTest, SuppGroupReachesEveryCreateType) {
    init612(false);
    const Bytes ext = groups_ext({4321});
    ASSERT_EQ(ext, cat({le32(16), le32(32), le32(1), le32(4321)}));
    const Bytes entry = bytes_of(sample_entry());
    const Bytes create = cat({entry, bytes_of(sample_open())});
    struct Case {
        const char* op;
        Msg msg;
        Bytes reply;
    };
    std::vector<Case> cases = {
        {"mkdir", mkdir_msg(), entry},
        {"mknod", std::move(Msg(FUSE_MKNOD).add(fuse_mknod_in{S_IFIFO | 0644, 0, 022, 0}).name("p")),
         entry},
        {"symlink", std::move(Msg(FUSE_SYMLINK).name("l").name("target")), entry},
        {"create", std::move(Msg(FUSE_CREATE).add(fuse_create_in{O_RDWR, 0100644, 022, 0}).name("f")),
         create},
        {"tmpfile", std::move(Msg(FUSE_TMPFILE).add(fuse_create_in{O_RDWR, 0100600, 022, 0}).name("/")),
         create},
    };
    for (Case& k : cases) {
        SCOPED_TRACE(k.op);
        EXPECT_EQ(call(with_ext(k.msg, ext)), reply(kUnique, 0, k.reply));
        ASSERT_EQ(fs.last().op, k.op);
        EXPECT_TRUE(fs.last().rc.has_supp_group);
        EXPECT_EQ(fs.last().rc.supp_group, 4321u);
        EXPECT_EQ(fs.last().rc.uid, test::kUid);
        EXPECT_FALSE(fs.last().rc.has_secctx);
        // The same request without the extension (a 6.1 guest, or a caller whose group
        // is the primary one): no group.
        EXPECT_EQ(call(k.msg), reply(kUnique, 0, k.reply));
        EXPECT_FALSE(fs.last().rc.has_supp_group);
    }
    EXPECT_EQ(fs.last().s.size(), 0u); // tmpfile has no name argument
    EXPECT_EQ(fs.calls[0].s[0], "d");
}

TEST_F(FuseExtTest, SecurityContextAndGroupTogether) {
    init612(true);
    const Bytes ext = cat({secctx_ext("security.selinux", std::string("u:r:t:s0\0", 9)),
                           groups_ext({77})});
    // 8 header + 8 fuse_secctx + 17 name + 9 value = 42 -> 48; + 16 groups.
    ASSERT_EQ(ext.size(), 64u);
    EXPECT_EQ(call(with_ext(std::move(Msg(FUSE_CREATE)
                                          .add(fuse_create_in{O_WRONLY, 0100640, 0, 0})
                                          .name("new")),
                            ext)),
              reply(kUnique, 0, cat({bytes_of(sample_entry()), bytes_of(sample_open())})));
    const Rec& r = fs.last();
    EXPECT_EQ(r.op, "create");
    EXPECT_EQ(r.s[0], "new");
    EXPECT_TRUE(r.rc.has_secctx);
    EXPECT_EQ(r.secctx_name, "security.selinux");
    EXPECT_EQ(r.secctx_value, std::string("u:r:t:s0\0", 9));
    EXPECT_TRUE(r.rc.has_supp_group);
    EXPECT_EQ(r.rc.supp_group, 77u);
    // No security module in the guest: a header with no context.
    EXPECT_EQ(call(with_ext(mkdir_msg(), cat({le32(8), le32(0)}))),
              reply(kUnique, 0, bytes_of(sample_entry())));
    EXPECT_FALSE(fs.last().rc.has_secctx);
    EXPECT_FALSE(fs.last().rc.has_supp_group);
    // A context value the size of its record exactly (no padding).
    EXPECT_EQ(call(with_ext(mkdir_msg(), secctx_ext("security.x", "abcdef"))),
              reply(kUnique, 0, bytes_of(sample_entry())));
    EXPECT_EQ(fs.last().secctx_value, "abcdef");
}

TEST_F(FuseExtTest, MalformedExtensionsFailTheRequestWithEinval) {
    init612(true);
    const Bytes good_sec = secctx_ext("security.selinux", "ctx");
    std::vector<std::pair<const char*, Bytes>> bad = {
        {"header too short", cat({le32(4), le32(32)})},
        {"size zero", cat({le32(0), le32(32), zeros(8)})},
        {"size not a multiple of 8", cat({le32(12), le32(32), le32(1), zeros(4)})},
        {"size past the end", cat({le32(24), le32(32), le32(1), le32(5)})},
        {"groups count zero", groups_ext({}, 16, 0)},
        {"groups count two", groups_ext({1, 2})},
        {"groups count larger than the record", groups_ext({1}, 16, 3)},
        {"groups record longer than its count", groups_ext({1}, 24)},
        {"groups twice", cat({groups_ext({1}), groups_ext({2})})},
        {"unknown type", cat({le32(16), le32(33), zeros(8)})},
        {"secctx twice", cat({good_sec, good_sec})},
        {"two contexts", cat({le32(8), le32(2)})},
        {"context record with trailing bytes",
         cat({le32(uint32_t(good_sec.size()) + 8), le32(1), Bytes(good_sec.begin() + 8, good_sec.end()),
              zeros(8)})},
        {"context value past its record", cat({le32(24), le32(1), le32(100), le32(0), str_bytes("s.x"), zeros(5)})},
        {"context name unterminated", cat({le32(24), le32(1), le32(0), le32(0), str_bytes("security")})},
        {"context name empty", cat({le32(24), le32(1), le32(0), le32(0), zeros(8)})},
        {"context value too large", cat({le32(24), le32(1), le32(65537), le32(0), str_bytes("s.x"), zeros(5)})},
        {"context with nothing after its header", cat({le32(8), le32(1)})},
        {"header of no context with bytes after it", cat({le32(16), le32(0), zeros(8)})},
    };
    for (auto& [what, ext] : bad) {
        SCOPED_TRACE(what);
        ASSERT_EQ(ext.size() % 8, 0u);
        fs.calls.clear();
        EXPECT_EQ(call(with_ext(mkdir_msg(), ext)), error_reply(EINVAL));
        EXPECT_EQ(call(with_ext(std::move(Msg(FUSE_CREATE)
                                              .add(fuse_create_in{O_RDWR, 0100644, 0, 0})
                                              .name("f")),
                                ext)),
                  error_reply(EINVAL));
        EXPECT_TRUE(fs.calls.empty());
    }
    // A context name longer than XATTR_NAME_MAX.
    EXPECT_EQ(call(with_ext(mkdir_msg(), secctx_ext(std::string(256, 'n'), "v"))),
              error_reply(EINVAL));
    // The extension cut by total_extlen: its declared size runs past what is there.
    Bytes cut = groups_ext({5});
    EXPECT_EQ(call(Msg(FUSE_MKDIR).add(fuse_mkdir_in{0755, 0}).name("d").raw(cut.data(), 8).extlen(1)),
              error_reply(EINVAL));
    EXPECT_TRUE(fs.calls.empty());
}

TEST_F(FuseExtTest, ExtensionsInitDidNotEnableAreMalformed) {
    init612(false); // no SECURITY_CTX
    EXPECT_EQ(call(with_ext(mkdir_msg(), secctx_ext("security.selinux", "c"))),
              error_reply(EINVAL));
    // A 6.1 guest never negotiated CREATE_SUPP_GROUP: a group extension is malformed too.
    call(Msg(FUSE_INIT, 0).add(init_in(7, 37, kGuestFlags)));
    fs.calls.clear();
    EXPECT_EQ(call(with_ext(mkdir_msg(), groups_ext({9}))), error_reply(EINVAL));
    EXPECT_TRUE(fs.calls.empty());
}

TEST_F(FuseExtTest, LargestContextFitsAndOneByteMoreDoesNot) {
    init612(true);
    const std::string value(65536, 'v');
    EXPECT_EQ(call(with_ext(mkdir_msg(), secctx_ext("security.big", value))),
              reply(kUnique, 0, bytes_of(sample_entry())));
    EXPECT_EQ(fs.last().secctx_value, value);
    // More extension bytes than we take at all (kMaxExtBytes): refused before decoding.
    Bytes huge = cat({le32(uint32_t(kMaxExtBytes + 8)), le32(33), zeros(kMaxExtBytes)});
    EXPECT_EQ(call(with_ext(mkdir_msg(), huge)), error_reply(EINVAL));
}

} // namespace
} // namespace vdh::virtiofs

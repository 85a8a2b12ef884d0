// SPDX-License-Identifier: MIT
// parse_request_ext() on its own: results point into the caller's bytes at any alignment,
// the context is left untouched on error, and every byte past the given size is ignored
// (the dispatcher tests cover the wire cases through whole requests).
#include "fuse/request_ext.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

namespace vdh::virtiofs {
namespace {

void put32(std::vector<char>& b, uint32_t v) {
    const char* p = reinterpret_cast<const char*>(&v);
    b.insert(b.end(), p, p + 4);
}

/// A security context extension ("security.t" = "lbl") then a group extension (77).
std::vector<char> both() {
    std::vector<char> b;
    put32(b, 8 + 24); // header + fuse_secctx 8 + "security.t\0" 11 + "lbl" 3 = 22 -> 24
    put32(b, 1);
    put32(b, 3);
    put32(b, 0);
    const char name[] = "security.t";
    b.insert(b.end(), name, name + sizeof(name));
    b.insert(b.end(), {'l', 'b', 'l', 0, 0});
    put32(b, 16);
    put32(b, 32);
    put32(b, 1);
    put32(b, 77);
    return b;
}

TEST(RequestExt, DecodesAtAnyAlignmentAndPointsIntoTheBuffer) {
    const std::vector<char> ext = both();
    ASSERT_EQ(ext.size(), 48u);
    for (size_t shift = 0; shift < 8; ++shift) {
        SCOPED_TRACE(shift);
        std::vector<char> buf(shift, 'x');
        buf.insert(buf.end(), ext.begin(), ext.end());
        RequestCtx rc;
        ASSERT_EQ(parse_request_ext(buf.data() + shift, ext.size(), {true, true}, &rc), 0);
        EXPECT_TRUE(rc.has_supp_group);
        EXPECT_EQ(rc.supp_group, 77u);
        ASSERT_TRUE(rc.has_secctx);
        EXPECT_EQ(rc.secctx_name, "security.t");
        EXPECT_EQ(rc.secctx_size, 3u);
        EXPECT_EQ(std::string(static_cast<const char*>(rc.secctx_value), 3), "lbl");
        EXPECT_GE(rc.secctx_name.data(), buf.data());
        EXPECT_LT(rc.secctx_name.data(), buf.data() + buf.size());
    }
}

TEST(RequestExt, ErrorLeavesTheContextAsItWas) {
    std::vector<char> ext = both();
    ext[40] = 2; // nr_groups 2 in a record of one, after a valid context
    RequestCtx rc;
    rc.uid = 5;
    EXPECT_EQ(parse_request_ext(ext.data(), ext.size(), {true, true}, &rc), EINVAL);
    EXPECT_FALSE(rc.has_secctx) << "the valid context before the bad record is not kept";
    EXPECT_FALSE(rc.has_supp_group);
    EXPECT_EQ(rc.uid, 5u);
    // Not negotiated: malformed too.
    ext = both();
    EXPECT_EQ(parse_request_ext(ext.data(), ext.size(), {true, false}, &rc), EINVAL);
    EXPECT_EQ(parse_request_ext(ext.data(), ext.size(), {false, true}, &rc), EINVAL);
    EXPECT_FALSE(rc.has_secctx);
}

TEST(RequestExt, NothingPastTheSizeIsRead) {
    std::vector<char> ext = both();
    RequestCtx rc;
    // Only the context: the group record after it is outside the given size.
    ASSERT_EQ(parse_request_ext(ext.data(), 32, {true, true}, &rc), 0);
    EXPECT_TRUE(rc.has_secctx);
    EXPECT_FALSE(rc.has_supp_group);
    // A size that cuts a header or a record in two is malformed.
    for (size_t n : {4u, 12u, 31u, 36u, 44u}) {
        SCOPED_TRACE(n);
        RequestCtx r2;
        EXPECT_EQ(parse_request_ext(ext.data(), n, {true, true}, &r2), EINVAL);
    }
    // Empty: nothing.
    RequestCtx r3;
    EXPECT_EQ(parse_request_ext(ext.data(), 0, {true, true}, &r3), 0);
    EXPECT_FALSE(r3.has_secctx || r3.has_supp_group);
}

} // namespace
} // namespace vdh::virtiofs

// SPDX-License-Identifier: MIT
// XattrMap: parsing of virtiofsd's rule syntax (each rule kind, the map shorthand's
// expansion, malformed rules with their rule index and offset), the first-match order, and
// the mapping both ways (guest names to host names, host listxattr lists to the guest's).

#include "xattr_map.h"

#include <gtest/gtest.h>

#include <string>

namespace vdh::virtiofs::passthrough {
namespace {

using Rule = XattrMap::Rule;
using Type = XattrMap::Type;
constexpr uint8_t kAll = XattrMap::kClient | XattrMap::kServer;

XattrMap parsed(std::string_view text) {
    XattrMapError e;
    auto m = XattrMap::parse(text, &e);
    EXPECT_TRUE(m.has_value()) << text << ": rule " << e.rule << " at " << e.offset << ": "
                               << e.message;
    return m ? std::move(*m) : XattrMap{};
}

XattrMapError parse_error(std::string_view text) {
    XattrMapError e;
    auto m = XattrMap::parse(text, &e);
    EXPECT_FALSE(m.has_value()) << text;
    return e;
}

/// to_host's result: the host name, or "E<errno>".
std::string host(const XattrMap& m, std::string_view guest) {
    char out[XATTR_NAME_MAX + 1];
    Status s = m.to_host(guest, out);
    if (!s) {
        return "E" + std::to_string(s.error());
    }
    return out;
}

/// to_guest's result: the guest name, or "-" when hidden.
std::string guest(const XattrMap& m, std::string_view host_name) {
    auto g = m.to_guest(host_name);
    return g ? std::string(*g) : "-";
}

/// list_to_guest over a list written with '|' for NUL.
std::string guest_list(const XattrMap& m, std::string list) {
    for (char& c : list) {
        c = c == '|' ? '\0' : c;
    }
    char out[256];
    Result<size_t> measured = m.list_to_guest(list.data(), list.size(), nullptr, 0);
    Result<size_t> r = m.list_to_guest(list.data(), list.size(), out, sizeof(out));
    EXPECT_TRUE(measured.has_value() && r.has_value());
    if (!measured || !r) {
        return "error";
    }
    EXPECT_EQ(*measured, *r); // the size probe reports exactly what the list will be
    std::string s(out, *r);
    for (char& c : s) {
        c = c == '\0' ? '|' : c;
    }
    return s;
}

TEST(XattrMapParse, PrefixOkBadUnsupportedWithEachScope) {
    XattrMap m = parsed(":prefix:client:trusted.:user.virtiofs.: /ok/server//user./\n"
                        "\t:bad:all:security.:security.: |unsupported|client|system.||"
                        " :ok:all:::");
    const std::vector<Rule> want = {
        {Type::Prefix, XattrMap::kClient, "trusted.", "user.virtiofs."},
        {Type::Ok, XattrMap::kServer, "", "user."},
        {Type::Bad, kAll, "security.", "security."},
        {Type::Unsupported, XattrMap::kClient, "system.", ""},
        {Type::Ok, kAll, "", ""},
    };
    EXPECT_EQ(m.rules(), want);
}

TEST(XattrMapParse, MapShorthandWithKeyExpandsToPrefixBadOk) {
    XattrMap m = parsed("  :map:trusted.:user.virtiofs.:  ");
    const std::vector<Rule> want = {
        {Type::Prefix, kAll, "trusted.", "user.virtiofs."},
        {Type::Bad, kAll, "user.virtiofs.", "trusted."},
        {Type::Ok, kAll, "", ""},
    };
    EXPECT_EQ(m.rules(), want);
}

TEST(XattrMapParse, MapShorthandWithoutKeyPrefixesEverything) {
    XattrMap m = parsed("/prefix/client/a./b./ /map//user.virtiofs./");
    const std::vector<Rule> want = {
        {Type::Prefix, XattrMap::kClient, "a.", "b."},
        {Type::Prefix, kAll, "", "user.virtiofs."},
        {Type::Bad, kAll, "", ""},
    };
    EXPECT_EQ(m.rules(), want);
}

TEST(XattrMapParse, MalformedRulesNameRuleAndOffset) {
    XattrMapError e = parse_error(":ok:all::: :prefx:all:::");
    EXPECT_EQ(e.rule, 2u);
    EXPECT_EQ(e.offset, 12u); // the type field
    EXPECT_NE(e.message.find("unknown type \"prefx\""), std::string::npos) << e.message;

    e = parse_error(":ok:all::: /bad/everyone///");
    EXPECT_EQ(e.rule, 2u);
    EXPECT_EQ(e.offset, 16u); // the scope field
    EXPECT_NE(e.message.find("unknown scope \"everyone\""), std::string::npos) << e.message;

    e = parse_error(":prefix:client:trusted.:user.vm.");
    EXPECT_EQ(e.rule, 1u);
    EXPECT_NE(e.message.find("incomplete rule: no ':' after its prepend field"), std::string::npos)
        << e.message;

    e = parse_error(":prefix:all");
    EXPECT_NE(e.message.find("after its scope field"), std::string::npos) << e.message;

    e = parse_error(":map::user.virtiofs.: :ok:all:::");
    EXPECT_EQ(e.rule, 1u); // the map rule is at fault
    EXPECT_NE(e.message.find("map rule must be the last rule (rule 2 follows it)"),
              std::string::npos)
        << e.message;

    e = parse_error(":map:a.:b.: :map:c.:d.:");
    EXPECT_EQ(e.rule, 1u);

    e = parse_error(std::string_view(":ok:all:a\0b::", 13));
    EXPECT_NE(e.message.find("NUL"), std::string::npos) << e.message;

    e = parse_error(":prefix:client::" + std::string(255, 'p') + ": :ok:all:::");
    EXPECT_NE(e.message.find("longer than an xattr name"), std::string::npos) << e.message;
}

TEST(XattrMapParse, EmptyOrUnterminatedMapsAreRefused) {
    XattrMapError e = parse_error(" \n\t ");
    EXPECT_EQ(e.rule, 0u);
    EXPECT_EQ(e.message, "no rules");

    // No rule matches every guest name ("security.x" would match nothing).
    e = parse_error(":prefix:all:trusted.:user.virtiofs.: :ok:server:::");
    EXPECT_EQ(e.rule, 0u);
    EXPECT_NE(e.message.find("guest (client) names"), std::string::npos) << e.message;

    // Every guest name is mapped, but host names outside user.virtiofs. match nothing.
    e = parse_error(":prefix:all::user.virtiofs.:");
    EXPECT_NE(e.message.find("host (server) names"), std::string::npos) << e.message;
}

TEST(XattrMapParseList, OneRulePerItem) {
    XattrMapError e;
    auto m = XattrMap::parse_list({":prefix:all:trusted.:user.virtiofs.:", " /ok/all/// "}, &e);
    ASSERT_TRUE(m.has_value()) << e.message;
    ASSERT_EQ(m->rules().size(), 2u);
    EXPECT_EQ(m->rules()[1], (Rule{Type::Ok, kAll, "", ""}));

    EXPECT_FALSE(XattrMap::parse_list({":ok:all::: :bad:all:::"}, &e));
    EXPECT_EQ(e.rule, 1u);
    EXPECT_EQ(e.offset, 11u);
    EXPECT_NE(e.message.find("one rule per list item"), std::string::npos) << e.message;

    EXPECT_FALSE(XattrMap::parse_list({":ok:client:::", "  "}, &e));
    EXPECT_EQ(e.rule, 2u);
    EXPECT_EQ(e.message, "empty rule");

    EXPECT_FALSE(XattrMap::parse_list({":map::user.virtiofs.:", ":ok:all:::"}, &e));
    EXPECT_EQ(e.rule, 1u);

    EXPECT_FALSE(XattrMap::parse_list({":ok:all:::", ":bad:all:x:y"}, &e));
    EXPECT_EQ(e.rule, 2u);
    EXPECT_EQ(e.offset, 12u);

    EXPECT_FALSE(XattrMap::parse_list({}, &e));
    EXPECT_EQ(e.message, "no rules");
}

TEST(XattrMapClient, PrefixClientScopeOnlyMapsGuestNames) {
    XattrMap m = parsed(":prefix:client:trusted.:user.virtiofs.: :ok:all:::");
    EXPECT_EQ(host(m, "trusted.overlay.x"), "user.virtiofs.trusted.overlay.x");
    EXPECT_EQ(host(m, "user.a"), "user.a");
    // A client-only rule does not strip on the way back.
    EXPECT_EQ(guest(m, "user.virtiofs.trusted.overlay.x"), "user.virtiofs.trusted.overlay.x");
}

TEST(XattrMapServer, PrefixServerScopeOnlyStripsHostNames) {
    XattrMap m = parsed(":prefix:server::user.virtiofs.: :ok:all:::");
    EXPECT_EQ(guest(m, "user.virtiofs.security.foo"), "security.foo");
    EXPECT_EQ(guest(m, "user.other"), "user.other");
    EXPECT_EQ(host(m, "security.foo"), "security.foo"); // no client rule prefixes it
}

TEST(XattrMapAll, PrefixAllBothWaysAndBadHidesOrRefuses) {
    XattrMap m = parsed(":prefix:all::user.virtiofs.: :bad:all:::");
    EXPECT_EQ(host(m, "security.selinux"), "user.virtiofs.security.selinux");
    EXPECT_EQ(host(m, "trusted.foo"), "user.virtiofs.trusted.foo");
    EXPECT_EQ(guest(m, "user.virtiofs.trusted.foo"), "trusted.foo");
    EXPECT_EQ(guest(m, "user.host_only"), "-");   // bad: hidden
    EXPECT_EQ(guest(m, "security.selinux"), "-"); // the host's own label: hidden
    EXPECT_EQ(guest(m, "user.virtiofs."), "-");   // would be an empty guest name
}

TEST(XattrMapClient, OkBadUnsupported) {
    XattrMap m = parsed("/ok/client/user.// /bad/client/trusted.// "
                        "/unsupported/client/system.// /bad/all///");
    EXPECT_EQ(host(m, "user.x"), "user.x");
    EXPECT_EQ(host(m, "trusted.x"), "E" + std::to_string(EPERM));
    EXPECT_EQ(host(m, "system.posix_acl_access"), "E" + std::to_string(ENOTSUP));
    EXPECT_EQ(host(m, "security.x"), "E" + std::to_string(EPERM));
    // Names are checked as the unmapped path checks them.
    EXPECT_EQ(host(m, ""), "E" + std::to_string(ERANGE));
    EXPECT_EQ(host(m, std::string_view("user.a\0b", 8)), "E" + std::to_string(EINVAL));
}

TEST(XattrMapOrder, FirstMatchingRuleWins) {
    // The same names with the rules in two orders.
    XattrMap a = parsed(":bad:client:user.secret:: :prefix:client:user.:host.: :ok:all:::");
    XattrMap b = parsed(":prefix:client:user.:host.: :bad:client:user.secret:: :ok:all:::");
    EXPECT_EQ(host(a, "user.secret.k"), "E" + std::to_string(EPERM));
    EXPECT_EQ(host(b, "user.secret.k"), "host.user.secret.k");
    EXPECT_EQ(host(a, "user.k"), "host.user.k");

    // A server rule is skipped for guest names and the reverse.
    XattrMap c = parsed(":bad:server::user.: :bad:client:trusted.:: :ok:all:::");
    EXPECT_EQ(host(c, "user.k"), "user.k");
    EXPECT_EQ(guest(c, "user.k"), "-");
    EXPECT_EQ(guest(c, "trusted.k"), "trusted.k");
    EXPECT_EQ(host(c, "trusted.k"), "E" + std::to_string(EPERM));
}

TEST(XattrMapMap, ShorthandWithKeyKeepsGuestAndHostApart) {
    XattrMap m = parsed(":map:trusted.:user.virtiofs.:");
    EXPECT_EQ(host(m, "trusted.foo"), "user.virtiofs.trusted.foo");
    EXPECT_EQ(host(m, "user.virtiofs.trusted.foo"), "E" + std::to_string(EPERM));
    EXPECT_EQ(host(m, "user.plain"), "user.plain");
    EXPECT_EQ(guest(m, "user.virtiofs.trusted.foo"), "trusted.foo");
    EXPECT_EQ(guest(m, "trusted.host_own"), "-");
    EXPECT_EQ(guest(m, "user.plain"), "user.plain");
}

TEST(XattrMapMap, ShorthandWithoutKeyPrefixesEverythingAndHidesTheRest) {
    XattrMap m = parsed("/map//user.virtiofs./");
    EXPECT_EQ(host(m, "security.foo"), "user.virtiofs.security.foo");
    EXPECT_EQ(host(m, "user.virtiofs.x"), "user.virtiofs.user.virtiofs.x");
    EXPECT_EQ(guest(m, "user.virtiofs.security.foo"), "security.foo");
    EXPECT_EQ(guest(m, "user.host"), "-");
}

TEST(XattrMapHostName, TooLongOnceMappedIsErange) {
    XattrMap m = parsed(":map::user.virtiofs.:");
    const std::string fits(XATTR_NAME_MAX - 14, 'a'); // 14 = strlen("user.virtiofs.")
    EXPECT_EQ(host(m, fits), "user.virtiofs." + fits);
    EXPECT_EQ(host(m, fits + "b"), "E" + std::to_string(ERANGE));
}

TEST(XattrMapList, FiltersStripsAndMeasures) {
    XattrMap m = parsed(":map::user.virtiofs.:");
    EXPECT_EQ(guest_list(m, "user.virtiofs.security.foo|user.host|user.virtiofs.trusted.bar|"),
              "security.foo|trusted.bar|");
    EXPECT_EQ(guest_list(m, "user.host|security.selinux|"), ""); // nothing left: length 0
    EXPECT_EQ(guest_list(m, ""), "");
    // A last name without its NUL, and empty names, as a hostile list could have.
    EXPECT_EQ(guest_list(m, "||user.virtiofs.a||user.virtiofs.b"), "a|b|");
}

TEST(XattrMapList, ErangeWhenTheGuestListDoesNotFit) {
    XattrMap m = parsed(":map::user.virtiofs.:");
    const std::string list("user.virtiofs.security.foo\0user.virtiofs.trusted.bar\0", 53);
    char out[64];
    Result<size_t> size = m.list_to_guest(list.data(), list.size(), nullptr, 0);
    ASSERT_TRUE(size.has_value());
    EXPECT_EQ(*size, 25u); // "security.foo\0trusted.bar\0"
    Result<size_t> exact = m.list_to_guest(list.data(), list.size(), out, 25);
    ASSERT_TRUE(exact.has_value());
    EXPECT_EQ(std::string(out, *exact), std::string("security.foo\0trusted.bar\0", 25));
    Result<size_t> small = m.list_to_guest(list.data(), list.size(), out, 24);
    ASSERT_FALSE(small.has_value());
    EXPECT_EQ(small.error(), ERANGE);
}

TEST(XattrNameToHost, WithoutAMapOnlyChecksAndCopies) {
    char out[XATTR_NAME_MAX + 1];
    ASSERT_TRUE(xattr_name_to_host(nullptr, "security.selinux", out).has_value());
    EXPECT_STREQ(out, "security.selinux");
    EXPECT_EQ(xattr_name_to_host(nullptr, std::string(XATTR_NAME_MAX + 1, 'x'), out).error(),
              ERANGE);
    EXPECT_EQ(xattr_name_to_host(nullptr, std::string_view("a\0b", 3), out).error(), EINVAL);
    XattrMap m = parsed(":map::user.virtiofs.:");
    ASSERT_TRUE(xattr_name_to_host(&m, "security.selinux", out).has_value());
    EXPECT_STREQ(out, "user.virtiofs.security.selinux");
}

} // namespace
} // namespace vdh::virtiofs::passthrough

// SPDX-License-Identifier: MIT
// IdMap (id_map.h): parsing virtiofsd-syntax rules, each translation type in both
// directions, identity outside the rules, overlap refusal, squash, forbid, and the range
// edges (count overflow at 2^32, the 4294967295 "no id" value, count 0, too many rules).
#include "id_map.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace vdh::virtiofs::passthrough {
namespace {

IdMapRule rule(std::string_view text) {
    std::string err;
    auto r = parse_id_map_rule(text, &err);
    EXPECT_TRUE(r.has_value()) << text << ": " << err;
    return r.value_or(IdMapRule{});
}

std::string parse_error(std::string_view text) {
    std::string err;
    auto r = parse_id_map_rule(text, &err);
    EXPECT_FALSE(r.has_value()) << text;
    return err;
}

IdMap build(const std::vector<std::string_view>& texts) {
    std::vector<IdMapRule> rules;
    for (auto t : texts) {
        rules.push_back(rule(t));
    }
    size_t bad = 99;
    std::string err;
    auto m = IdMap::build(rules, &bad, &err);
    EXPECT_TRUE(m.has_value()) << "rule " << bad << ": " << err;
    return m.value_or(IdMap{});
}

/// The build error and the index of the offending rule.
std::pair<size_t, std::string> build_error(const std::vector<std::string_view>& texts) {
    std::vector<IdMapRule> rules;
    for (auto t : texts) {
        rules.push_back(rule(t));
    }
    size_t bad = 99;
    std::string err;
    auto m = IdMap::build(rules, &bad, &err);
    EXPECT_FALSE(m.has_value());
    return {bad, err};
}

/// to_host() as a value: -1 (as int64) for forbidden.
int64_t host_of(const IdMap& m, uint32_t guest) {
    uint32_t h = 12345;
    return m.to_host(guest, &h) ? int64_t{h} : -1;
}

TEST(IdMapParse, EachTypeWithItsFields) {
    EXPECT_EQ(rule("guest:1:2:3"), (IdMapRule{IdMapKind::Guest, 1, 2, 3}));
    EXPECT_EQ(rule("host:4:5:6"), (IdMapRule{IdMapKind::Host, 4, 5, 6}));
    EXPECT_EQ(rule("squash-guest:0:65534:4294967295"),
              (IdMapRule{IdMapKind::SquashGuest, 0, 65534, 4294967295u}));
    EXPECT_EQ(rule("squash-host:7:8:9"), (IdMapRule{IdMapKind::SquashHost, 7, 8, 9}));
    EXPECT_EQ(rule("forbid-guest:1000:10"), (IdMapRule{IdMapKind::ForbidGuest, 1000, 0, 10}));
    EXPECT_EQ(rule("map:1000:100000:65536"), (IdMapRule{IdMapKind::Map, 1000, 100000, 65536}));
}

TEST(IdMapParse, VirtiofsdLeniency) {
    // Any non-alphanumeric separator other than '-' and '_', the same throughout; type in
    // any case; a '+' sign (Rust's u32 parser takes it).
    EXPECT_EQ(rule("MAP/0/1/2"), (IdMapRule{IdMapKind::Map, 0, 1, 2}));
    EXPECT_EQ(rule("Squash-Guest,0,1,+2"), (IdMapRule{IdMapKind::SquashGuest, 0, 1, 2}));
}

TEST(IdMapParse, ToStringRoundTrips) {
    for (auto t : {"guest:1:2:3", "host:4:5:6", "squash-guest:0:65534:4294967295",
                   "squash-host:7:8:9", "forbid-guest:1000:10", "map:1000:100000:65536"}) {
        EXPECT_EQ(to_string(rule(t)), t);
    }
}

TEST(IdMapParse, Errors) {
    EXPECT_EQ(parse_error("mapp:0:1:2"),
              "unknown type \"mapp\" in \"mapp:0:1:2\" (types: guest, host, squash-guest, "
              "squash-host, forbid-guest, map)");
    EXPECT_EQ(parse_error(""),
              "unknown type \"\" in \"\" (types: guest, host, squash-guest, squash-host, "
              "forbid-guest, map)");
    EXPECT_EQ(parse_error("map"), "expected map:GUEST:HOST:COUNT, got \"map\"");
    EXPECT_EQ(parse_error("map:0:1"),
              "expected map:GUEST:HOST:COUNT (3 numbers), got 2 in \"map:0:1\"");
    EXPECT_EQ(parse_error("forbid-guest:0:1:2"),
              "expected forbid-guest:FROM_GUEST:COUNT (2 numbers), got 3 in "
              "\"forbid-guest:0:1:2\"");
    EXPECT_EQ(parse_error("guest:0:x:1"),
              "\"x\" is not a number 0..4294967295 (in \"guest:0:x:1\")");
    EXPECT_EQ(parse_error("guest:0:4294967296:1"),
              "\"4294967296\" is not a number 0..4294967295 (in \"guest:0:4294967296:1\")");
    EXPECT_EQ(parse_error("guest:0::1"), "\"\" is not a number 0..4294967295 (in \"guest:0::1\")");
    EXPECT_EQ(parse_error("guest:0:-1:1"),
              "\"-1\" is not a number 0..4294967295 (in \"guest:0:-1:1\")");
    // Mixed separators: the first one splits, the rest stay in a field.
    EXPECT_EQ(parse_error("map:0/1:2"), "\"0/1\" is not a number 0..4294967295 (in \"map:0/1:2\")");
    // A leading blank ends an empty type.
    EXPECT_NE(parse_error(" map:0:1:2").find("unknown type \"\""), std::string::npos);
}

TEST(IdMap, EmptyIsIdentity) {
    IdMap m;
    EXPECT_TRUE(m.identity());
    EXPECT_EQ(host_of(m, 0), 0);
    EXPECT_EQ(host_of(m, 4294967295u), 4294967295);
    EXPECT_EQ(m.to_guest(1000), 1000u);
    EXPECT_TRUE(build({}).identity());
}

TEST(IdMap, GuestIsOneToOneGuestToHostOnly) {
    IdMap m = build({"guest:1000:5000:10"});
    EXPECT_FALSE(m.identity());
    EXPECT_EQ(host_of(m, 999), 999);
    EXPECT_EQ(host_of(m, 1000), 5000);
    EXPECT_EQ(host_of(m, 1009), 5009);
    EXPECT_EQ(host_of(m, 1010), 1010);
    // Not the reverse direction: host 5000 is the guest's 5000.
    EXPECT_EQ(m.to_guest(5000), 5000u);
    EXPECT_EQ(m.to_guest(1000), 1000u);
}

TEST(IdMap, HostIsOneToOneHostToGuestOnly) {
    IdMap m = build({"host:5000:1000:10"});
    EXPECT_EQ(m.to_guest(4999), 4999u);
    EXPECT_EQ(m.to_guest(5000), 1000u);
    EXPECT_EQ(m.to_guest(5009), 1009u);
    EXPECT_EQ(m.to_guest(5010), 5010u);
    EXPECT_EQ(host_of(m, 1000), 1000);
}

TEST(IdMap, SquashGuestMapsEveryGuestIdToOneHostId) {
    IdMap m = build({"squash-guest:0:65534:4294967295"});
    EXPECT_EQ(host_of(m, 0), 65534);
    EXPECT_EQ(host_of(m, 1000), 65534);
    EXPECT_EQ(host_of(m, 4294967294u), 65534);
    // The range ends before 4294967295 (FROM + COUNT must fit in 32 bits); that value
    // stays itself, and credential switching refuses it (credentials.cc).
    EXPECT_EQ(host_of(m, 4294967295u), 4294967295);
    // No host→guest rule: host ids come back unchanged (virtiofsd).
    EXPECT_EQ(m.to_guest(65534), 65534u);
    EXPECT_EQ(m.to_guest(0), 0u);
}

TEST(IdMap, SquashHostMapsHostIdsToOneGuestId) {
    IdMap m = build({"squash-host:100:0:50"});
    EXPECT_EQ(m.to_guest(99), 99u);
    EXPECT_EQ(m.to_guest(100), 0u);
    EXPECT_EQ(m.to_guest(149), 0u);
    EXPECT_EQ(m.to_guest(150), 150u);
    EXPECT_EQ(host_of(m, 0), 0);
}

TEST(IdMap, ForbidGuestFailsOnlyItsRange) {
    IdMap m = build({"forbid-guest:0:1", "forbid-guest:1000:2"});
    EXPECT_EQ(host_of(m, 0), -1);
    EXPECT_EQ(host_of(m, 1), 1);
    EXPECT_EQ(host_of(m, 999), 999);
    EXPECT_EQ(host_of(m, 1000), -1);
    EXPECT_EQ(host_of(m, 1001), -1);
    EXPECT_EQ(host_of(m, 1002), 1002);
    EXPECT_EQ(m.to_guest(0), 0u); // host→guest is untouched
}

TEST(IdMap, MapIsBidirectional) {
    IdMap m = build({"map:0:100000:65536"});
    EXPECT_EQ(host_of(m, 0), 100000);
    EXPECT_EQ(host_of(m, 65535), 165535);
    EXPECT_EQ(host_of(m, 65536), 65536);
    EXPECT_EQ(m.to_guest(100000), 0u);
    EXPECT_EQ(m.to_guest(165535), 65535u);
    EXPECT_EQ(m.to_guest(99999), 99999u);
    EXPECT_EQ(m.to_guest(165536), 165536u);
}

TEST(IdMap, SeveralRulesInBothDirections) {
    // virtiofsd's documented rootless pattern plus a forbidden range and a 1:1 window.
    IdMap m = build({"forbid-guest:2000:1000", "map:1000:1000:1", "squash-guest:0:501:1000",
                     "host:501:0:1", "squash-guest:3000:501:4294964295"});
    EXPECT_EQ(host_of(m, 0), 501);
    EXPECT_EQ(host_of(m, 999), 501);
    EXPECT_EQ(host_of(m, 1000), 1000);
    EXPECT_EQ(host_of(m, 1001), 1001); // uncovered: identity
    EXPECT_EQ(host_of(m, 2000), -1);
    EXPECT_EQ(host_of(m, 2999), -1);
    EXPECT_EQ(host_of(m, 3000), 501);
    EXPECT_EQ(host_of(m, 4294967294u), 501);
    EXPECT_EQ(m.to_guest(501), 0u);
    EXPECT_EQ(m.to_guest(1000), 1000u);
    EXPECT_EQ(m.to_guest(0), 0u);
}

TEST(IdMap, OverlapsInOneDirectionAreRefused) {
    // As virtiofsd: an id is covered by at most one rule per direction.
    auto [bad, err] = build_error({"map:0:100:10", "guest:5:200:1"});
    EXPECT_EQ(bad, 1u);
    EXPECT_EQ(err, "guest ids [5, 6) overlap those of item 0 (\"map:0:100:10\"): rules must "
                   "not overlap");
    std::tie(bad, err) = build_error({"squash-guest:0:1:100", "forbid-guest:99:1"});
    EXPECT_EQ(bad, 1u);
    EXPECT_NE(err.find("guest ids [99, 100) overlap those of item 0"), std::string::npos);
    std::tie(bad, err) = build_error({"host:50:0:10", "map:0:59:1"});
    EXPECT_EQ(bad, 1u);
    EXPECT_EQ(err, "host ids [59, 60) overlap those of item 0 (\"host:50:0:10\"): rules must "
                   "not overlap");
    std::tie(bad, err) = build_error({"squash-host:0:0:4294967295", "squash-host:7:0:1"});
    EXPECT_EQ(bad, 1u);
}

TEST(IdMap, AdjacentAndCrossDirectionRangesAreFine) {
    // [0, 10) and [10, 20) touch but do not overlap; guest and host ranges are separate.
    IdMap m = build({"guest:0:100:10", "guest:10:200:10", "host:0:7:10"});
    EXPECT_EQ(host_of(m, 9), 109);
    EXPECT_EQ(host_of(m, 10), 200);
    EXPECT_EQ(m.to_guest(9), 16u);
    EXPECT_EQ(m.to_guest(10), 10u);
}

TEST(IdMap, RangeEdges) {
    // FROM + COUNT = 2^32 - 1 is the largest range (virtiofsd's checked_add in u32).
    IdMap m = build({"guest:1:0:4294967294"});
    EXPECT_EQ(host_of(m, 4294967294u), 4294967293);
    auto [bad, err] = build_error({"guest:0:0:1", "squash-guest:1:0:4294967295"});
    EXPECT_EQ(bad, 1u);
    EXPECT_EQ(err, "range overflow in \"squash-guest:1:0:4294967295\": guest ids [1, 4294967296) "
                   "end past 4294967295");
    std::tie(bad, err) = build_error({"host:4294967295:0:1"});
    EXPECT_EQ(bad, 0u);
    EXPECT_NE(err.find("host ids [4294967295, 4294967296)"), std::string::npos) << err;
    std::tie(bad, err) = build_error({"forbid-guest:4294967000:296"});
    EXPECT_NE(err.find("range overflow"), std::string::npos) << err;
    // A 1:1 target range must not wrap around to 0 (root) either.
    std::tie(bad, err) = build_error({"guest:0:4294967000:296"});
    EXPECT_EQ(err, "range overflow in \"guest:0:4294967000:296\": target ids [4294967000, "
                   "4294967296) end past 4294967295");
    std::tie(bad, err) = build_error({"map:0:4294967294:2"});
    EXPECT_NE(err.find("target ids"), std::string::npos) << err;
    std::tie(bad, err) = build_error({"squash-guest:0:4294967295:1"});
    EXPECT_EQ(err, "cannot squash to 4294967295 in \"squash-guest:0:4294967295:1\": that value "
                   "means \"no id\"");
    std::tie(bad, err) = build_error({"map:0:0:1", "host:5:6:0"});
    EXPECT_EQ(bad, 1u);
    EXPECT_EQ(err, "count is 0 in \"host:5:6:0\": the rule maps nothing");
    // The largest squash target and wrap-free arithmetic at the top of the id space.
    IdMap top = build({"squash-host:4294967294:4294967294:1", "guest:4294967293:4294967293:1"});
    EXPECT_EQ(top.to_guest(4294967294u), 4294967294u);
    EXPECT_EQ(host_of(top, 4294967293u), 4294967293);
}

TEST(IdMap, TooManyRules) {
    std::vector<IdMapRule> rules;
    for (uint32_t i = 0; i <= IdMap::kMaxRules; ++i) {
        rules.push_back(IdMapRule{IdMapKind::Guest, i, i + 1000, 1});
    }
    size_t bad = 0;
    std::string err;
    EXPECT_FALSE(IdMap::build(rules, &bad, &err).has_value());
    EXPECT_EQ(bad, IdMap::kMaxRules);
    EXPECT_EQ(err, "too many rules: 65 (at most 64)");
    rules.pop_back();
    auto m = IdMap::build(rules, &bad, &err);
    ASSERT_TRUE(m.has_value()) << err;
    EXPECT_EQ(host_of(*m, 63), 1063);
}

} // namespace
} // namespace vdh::virtiofs::passthrough

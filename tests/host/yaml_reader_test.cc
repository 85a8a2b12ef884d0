// SPDX-License-Identifier: MIT
// Tests of vdh/yaml_reader.h, the YAML reader of the host config and of plugin profiles:
// key checks (unknown, duplicate, non-string, not a mapping) in file order, the typed
// getters' accepted spellings, ranges and messages, and run()'s "FILE:LINE:COL: KEY:
// message" for getter failures, yaml-cpp syntax errors and the result on success.
#include "vdh/yaml_reader.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace vdh::yaml {
namespace {

/// Runs \p read on the document \p text; returns the error ("" on success).
template <typename Read> std::string error_of(const std::string& text, Read read) {
    std::string error;
    auto r = run("t.yaml", "yaml", &error, [&] {
        read(YAML::Load(text));
        return 0;
    });
    return r ? "" : error;
}

TEST(YamlReader, MappingKeysAreCheckedInFileOrder) {
    std::vector<std::string> keys;
    auto visit = [&](const YAML::Node& root) {
        for_each_entry(root, "config", {"a", "b"}, [&](const Entry& e) {
            keys.push_back(e.key);
            (void)parse_uint(e.value, child_path("config", e.key), 0, 9);
        });
    };
    EXPECT_EQ(error_of("a: 1\nb: 2\n", visit), "");
    EXPECT_EQ(keys, (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(error_of("a: 1\nc: 2\n", visit),
              "t.yaml:2:1: config.c: unknown key (expected one of: a, b)");
    EXPECT_EQ(error_of("b: 1\nx: 1\na: 1\nb: 2\n", visit),
              "t.yaml:2:1: config.x: unknown key (expected one of: a, b)");
    EXPECT_EQ(error_of("a: 1\nb: 2\na: 3\n", visit),
              "t.yaml:3:1: config.a: duplicate key (first at line 1)");
    // A bad value before an unknown key is reported first (file order).
    EXPECT_EQ(error_of("a: 10\nc: 1\n", visit),
              "t.yaml:1:4: config.a: out of range: 10 (expected 0..9)");
    EXPECT_EQ(error_of("[a, b]\n", visit), "t.yaml:1:1: config: expected mapping, got sequence");
    EXPECT_EQ(error_of("? [x]\n: 1\n", visit),
              "t.yaml:1:3: config: expected string key, got sequence");
}

TEST(YamlReader, ReadMappingChecksEveryKeyBeforeAnyValue) {
    auto read = [](const YAML::Node& root) {
        auto entries = read_mapping(root, "", {"a", "b"});
        for (const Entry& e : entries) {
            (void)parse_uint(e.value, e.key, 0, 9);
        }
        const Entry* b = find_entry(entries, "b");
        if (b == nullptr) {
            fail(root, "b", "missing required key");
        }
    };
    EXPECT_EQ(error_of("a: 1\nb: 2\n", read), "");
    EXPECT_EQ(error_of("a: 10\nc: 1\n", read),
              "t.yaml:2:1: c: unknown key (expected one of: a, b)");
    EXPECT_EQ(error_of("a: 1\n", read), "t.yaml:1:1: b: missing required key");
    EXPECT_EQ(error_of("7\n", read), "t.yaml:1:1: (root): expected mapping, got \"7\"");
}

TEST(YamlReader, Scalars) {
    auto value = [](const char* text) { return YAML::Load(text); };
    EXPECT_TRUE(parse_bool(value("true"), "k"));
    EXPECT_TRUE(parse_bool(value("TRUE"), "k"));
    EXPECT_FALSE(parse_bool(value("False"), "k"));
    EXPECT_EQ(error_of("yes", [](const YAML::Node& n) { (void)parse_bool(n, "k.b"); }),
              "t.yaml:1:1: k.b: expected boolean (true or false), got \"yes\"");
    EXPECT_EQ(error_of("\"true\"", [](const YAML::Node& n) { (void)parse_bool(n, "k"); }),
              "t.yaml:1:1: k: expected boolean (true or false), got quoted string \"true\"");

    EXPECT_EQ(parse_uint(value("42"), "k", 1, 64), 42u);
    EXPECT_EQ(error_of("-1", [](const YAML::Node& n) { (void)parse_uint(n, "k"); }),
              "t.yaml:1:1: k: expected unsigned integer, got \"-1\"");
    EXPECT_EQ(error_of("'5'", [](const YAML::Node& n) { (void)parse_uint(n, "k"); }),
              "t.yaml:1:1: k: expected unsigned integer, got quoted string \"5\"");
    EXPECT_EQ(error_of("99999999999999999999",
                       [](const YAML::Node& n) { (void)parse_uint(n, "k", 0, 10); }),
              "t.yaml:1:1: k: out of range: 99999999999999999999 (expected 0..10)");

    EXPECT_EQ(parse_string(value("'x y'"), "k"), "x y");
    EXPECT_EQ(parse_string_list(value("[a, 'b']"), "k"), (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(error_of("[a, [b]]", [](const YAML::Node& n) { (void)parse_string_list(n, "k.l"); }),
              "t.yaml:1:5: k.l[1]: expected string, got sequence");
    EXPECT_EQ(error_of("a", [](const YAML::Node& n) { (void)parse_string_list(n, "k"); }),
              "t.yaml:1:1: k: expected sequence, got \"a\"");

    EXPECT_EQ(parse_enum(value("prefer"), "k", {"never", "prefer"}), 1u);
    EXPECT_EQ(error_of("sometimes",
                       [](const YAML::Node& n) {
                           (void)parse_enum(n, "k", {"never", "prefer"});
                       }),
              "t.yaml:1:1: k: expected one of never, prefer, got \"sometimes\"");
}

TEST(YamlReader, Sizes) {
    auto size = [](const char* text) { return parse_size(YAML::Load(text), "k"); };
    EXPECT_EQ(size("4096"), 4096u);
    EXPECT_EQ(size("512B"), 512u);
    EXPECT_EQ(size("64KiB"), 65536u);
    EXPECT_EQ(size("64K"), 65536u);
    EXPECT_EQ(size("'1 MiB'"), 1048576u);
    EXPECT_EQ(size("2MB"), 2000000u);
    EXPECT_EQ(size("3GiB"), 3ULL << 30);
    EXPECT_EQ(size("1TB"), 1000000000000ULL);
    auto bad = [](const char* text, uint64_t lo = 0, uint64_t hi = UINT64_MAX) {
        return error_of(text,
                        [&](const YAML::Node& n) { (void)parse_size(n, "config.s", lo, hi); });
    };
    EXPECT_EQ(bad("12 parsecs"),
              "t.yaml:1:1: config.s: expected size in bytes such as 4096, 64KiB or 1MiB, got "
              "\"12 parsecs\"");
    EXPECT_EQ(bad("KiB"), "t.yaml:1:1: config.s: expected size in bytes such as 4096, 64KiB or "
                          "1MiB, got \"KiB\"");
    EXPECT_EQ(bad("[1]"), "t.yaml:1:1: config.s: expected size in bytes such as 4096, 64KiB or "
                          "1MiB, got sequence");
    EXPECT_EQ(bad("2MiB", 512, 1048576),
              "t.yaml:1:1: config.s: out of range: 2MiB = 2097152 bytes (expected 512..1048576)");
    EXPECT_EQ(bad("20000000TiB"), "t.yaml:1:1: config.s: out of range: 20000000TiB (expected "
                                  "0..18446744073709551615)");
}

TEST(YamlReader, Durations) {
    auto ms = [](const char* text) { return parse_duration_ms(YAML::Load(text), "k"); };
    EXPECT_EQ(ms("250"), 250u);
    EXPECT_EQ(ms("250ms"), 250u);
    EXPECT_EQ(ms("5s"), 5000u);
    EXPECT_EQ(ms("'2 min'"), 120000u);
    EXPECT_EQ(ms("1h"), 3600000u);
    auto bad = [](const char* text, uint64_t lo = 0, uint64_t hi = UINT64_MAX) {
        return error_of(text,
                        [&](const YAML::Node& n) { (void)parse_duration_ms(n, "t.d", lo, hi); });
    };
    EXPECT_EQ(bad("5 fortnights"),
              "t.yaml:1:1: t.d: expected duration such as 250ms, 5s or 2min, got \"5 fortnights\"");
    EXPECT_EQ(bad("-5s"),
              "t.yaml:1:1: t.d: expected duration such as 250ms, 5s or 2min, got \"-5s\"");
    EXPECT_EQ(bad("2min", 10, 60000),
              "t.yaml:1:1: t.d: out of range: 2min = 120000 ms (expected 10..60000 ms)");
}

TEST(YamlReader, RunReportsSyntaxErrorsAndPassesResults) {
    std::string error = "untouched";
    auto ok = run("f.yaml", "config", &error, [] { return 7; });
    ASSERT_TRUE(ok.has_value());
    EXPECT_EQ(*ok, 7);
    EXPECT_EQ(error, "untouched");
    auto bad = run("f.yaml", "config", &error, [] { return YAML::Load("a: [1, 2\n").size(); });
    EXPECT_FALSE(bad.has_value());
    EXPECT_EQ(error.rfind("f.yaml:", 0), 0u) << error;
    EXPECT_NE(error.find(": config: "), std::string::npos) << error;
    EXPECT_FALSE(run("f.yaml", "config", nullptr, []() -> int {
                     fail(SourcePos{3, 4}, "k", "no");
                 }).has_value());
    run("f.yaml", "config", &error, []() -> int { fail(SourcePos{3, 4}, "k.x", "no"); });
    EXPECT_EQ(error, "f.yaml:3:4: k.x: no");
}

TEST(YamlReader, NullTokens) {
    EXPECT_TRUE(null_token_at("a: null\n", 3));
    EXPECT_TRUE(null_token_at("a: ~", 3));
    EXPECT_FALSE(null_token_at("a: ~", 3, false));
    EXPECT_TRUE(null_token_at("{a: NULL}", 4));
    EXPECT_FALSE(null_token_at("a: nullx", 3));
    EXPECT_FALSE(null_token_at("a:", 3));
}

} // namespace
} // namespace vdh::yaml

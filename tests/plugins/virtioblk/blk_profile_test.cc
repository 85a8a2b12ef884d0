// SPDX-License-Identifier: MIT
// Unit tests of the disk profile parser: defaults, every key, and every bad value refused
// with "FILE:LINE:COL: config.KEY: message" pointing at the value.
#include "blk_profile.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <string>

namespace vdh::virtioblk {
namespace {

std::optional<BlkProfile> parse(const std::string& yaml, std::string* err) {
    return parse_blk_profile(yaml, "disk.yaml", "vm1-disk-with-a-long-name", err);
}

/// Parses \p yaml, expects an error, and returns it.
std::string error_of(const std::string& yaml) {
    std::string err;
    EXPECT_FALSE(parse(yaml, &err).has_value()) << yaml;
    return err;
}

TEST(BlkProfile, Defaults) {
    std::string err;
    auto p = parse("path: /var/lib/disk.img\n", &err);
    ASSERT_TRUE(p.has_value()) << err;
    EXPECT_EQ(p->path, "/var/lib/disk.img");
    EXPECT_EQ(p->path_pos.line, 1);
    EXPECT_EQ(p->path_pos.column, 7);
    EXPECT_FALSE(p->readonly);
    EXPECT_EQ(p->block_size, 512u);
    EXPECT_FALSE(p->direct);
    EXPECT_TRUE(p->discard);
    EXPECT_TRUE(p->write_zeroes);
    EXPECT_EQ(p->num_queues, 1u);
    EXPECT_EQ(p->serial, "vm1-disk-with-a-long"); // the device name cut to 20 bytes
}

TEST(BlkProfile, EveryKey) {
    std::string err;
    auto p = parse("path: /dev/vdb\nreadonly: true\nblock_size: 4096\ndirect: true\n"
                   "discard: false\nwrite_zeroes: false\nnum_queues: 16\n"
                   "serial: \"12345678901234567890\"\n",
                   &err);
    ASSERT_TRUE(p.has_value()) << err;
    EXPECT_EQ(p->path, "/dev/vdb");
    EXPECT_TRUE(p->readonly);
    EXPECT_EQ(p->block_size, 4096u);
    EXPECT_EQ(p->block_size_pos.line, 3);
    EXPECT_TRUE(p->direct);
    EXPECT_FALSE(p->discard);
    EXPECT_FALSE(p->write_zeroes);
    EXPECT_EQ(p->num_queues, 16u);
    EXPECT_EQ(p->serial, "12345678901234567890");
    p = parse("{path: /d, serial: \"\"}", &err);
    ASSERT_TRUE(p.has_value()) << err;
    EXPECT_EQ(p->serial, "");
}

TEST(BlkProfile, PositionsAreFilePositions) {
    // The host blanks the rest of the file but keeps the layout: a block at line 7, col 7.
    const std::string yaml = "\n\n\n\n\n\n      path: /d\n      block_size: 3000\n";
    EXPECT_EQ(error_of(yaml),
              "disk.yaml:8:19: config.block_size: expected a power of two, got 3000");
}

TEST(BlkProfile, BadKeysNameFileLineColumnAndKey) {
    EXPECT_EQ(error_of(""), "disk.yaml:1:1: config.path: missing required key (the device "
                            "has no config: block)");
    EXPECT_EQ(error_of("readonly: true\n"), "disk.yaml:1:1: config.path: missing required key");
    EXPECT_EQ(error_of("path: /d\nsize: 1\n"),
              "disk.yaml:2:1: config.size: unknown key (expected one of: path, readonly, "
              "block_size, direct, discard, write_zeroes, num_queues, serial, write_path)");
    EXPECT_EQ(error_of("path: /d\npath: /e\n"),
              "disk.yaml:2:1: config.path: duplicate key (first at line 1)");
    EXPECT_EQ(error_of("path: disk.img\n"),
              "disk.yaml:1:7: config.path: expected an absolute path, got \"disk.img\"");
    EXPECT_EQ(error_of("path: [/d]\n"),
              "disk.yaml:1:7: config.path: expected string, got sequence");
    EXPECT_EQ(error_of("path:\n"), "disk.yaml:1:1: config.path: expected string, got null");
    EXPECT_EQ(error_of("path: /d\nreadonly: yes\n"),
              "disk.yaml:2:11: config.readonly: expected boolean (true or false), got \"yes\"");
    EXPECT_EQ(error_of("path: /d\ndirect: 1\n"),
              "disk.yaml:2:9: config.direct: expected boolean (true or false), got \"1\"");
    EXPECT_EQ(error_of("path: /d\ndiscard: \"true\"\n"),
              "disk.yaml:2:10: config.discard: expected boolean (true or false), got quoted "
              "string \"true\"");
    EXPECT_EQ(error_of("path: /d\nwrite_zeroes: {}\n"),
              "disk.yaml:2:15: config.write_zeroes: expected boolean (true or false), got "
              "mapping");
    EXPECT_EQ(error_of("path: /d\nblock_size: 256\n"),
              "disk.yaml:2:13: config.block_size: out of range: 256 (expected 512..65536)");
    EXPECT_EQ(error_of("path: /d\nblock_size: 131072\n"),
              "disk.yaml:2:13: config.block_size: out of range: 131072 (expected 512..65536)");
    EXPECT_EQ(error_of("path: /d\nblock_size: 1536\n"),
              "disk.yaml:2:13: config.block_size: expected a power of two, got 1536");
    EXPECT_EQ(error_of("path: /d\nblock_size: 4k\n"),
              "disk.yaml:2:13: config.block_size: expected unsigned integer, got \"4k\"");
    EXPECT_EQ(error_of("path: /d\nnum_queues: 0\n"),
              "disk.yaml:2:13: config.num_queues: out of range: 0 (expected 1..16)");
    EXPECT_EQ(error_of("path: /d\nnum_queues: 17\n"),
              "disk.yaml:2:13: config.num_queues: out of range: 17 (expected 1..16)");
    EXPECT_EQ(error_of("path: /d\nnum_queues: -1\n"),
              "disk.yaml:2:13: config.num_queues: expected unsigned integer, got \"-1\"");
    EXPECT_EQ(error_of("path: /d\nserial: \"123456789012345678901\"\n"),
              "disk.yaml:2:9: config.serial: expected at most 20 bytes, got 21");
    EXPECT_EQ(error_of("path: /d\nserial: [a]\n"),
              "disk.yaml:2:9: config.serial: expected string, got sequence");
    EXPECT_EQ(error_of("- path\n"), "disk.yaml:1:1: config: expected mapping, got sequence");
    EXPECT_EQ(error_of("path: /d\n? [a]\n: 1\n"),
              "disk.yaml:2:3: config: expected string key, got sequence");
    const std::string syntax = error_of("path: /d\nreadonly: [true\n");
    EXPECT_EQ(syntax.rfind("disk.yaml:3:1: config: ", 0), 0u) << syntax;
}

} // namespace
} // namespace vdh::virtioblk

namespace vdh::virtioblk {
namespace {

TEST(BlkProfile, ExampleConfigParses) {
    // configs/virtioblk.yaml's device block, as the host would hand it over.
    const YAML::Node root =
        YAML::LoadFile(std::string(VDH_SOURCE_ROOT) + "/configs/virtioblk.yaml");
    const YAML::Node dev = root["devices"][0];
    ASSERT_EQ(dev["type"].as<std::string>(), "virtioblk");
    YAML::Emitter out;
    out << dev["config"];
    std::string err;
    auto p = parse_blk_profile(out.c_str(), "virtioblk.yaml", dev["name"].as<std::string>(), &err);
    ASSERT_TRUE(p.has_value()) << err;
    EXPECT_EQ(p->num_queues, 2u);
    EXPECT_EQ(p->serial, "blk0");
}

} // namespace
} // namespace vdh::virtioblk

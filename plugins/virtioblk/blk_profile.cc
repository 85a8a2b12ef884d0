// SPDX-License-Identifier: MIT
// Disk profile parsing (see blk_profile.h), read with vdh/yaml_reader.h. yaml-cpp and the
// reader throw; every exception is caught in parse_blk_profile() (yaml::run) and becomes
// "ORIGIN:LINE:COL: config.KEY: message" (positions are file positions because the config
// text keeps the file's layout).
#include "blk_profile.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <utility>

#include "vdh/yaml_reader.h"

namespace vdh::virtioblk {

namespace {

using yaml::fail;
using yaml::fail_type;
using yaml::Failure;
using yaml::parse_bool;
using yaml::parse_string;
using yaml::parse_uint;
using yaml::quoted;

constexpr std::string_view kRoot = "config";
constexpr size_t kMaxPathBytes = 4095;
constexpr uint64_t kMinBlockSize = 512;
constexpr uint64_t kMaxBlockSize = 65536;

/// Every key, in the order the error message lists them.
constexpr std::array<std::string_view, 9> kKeys = {
    "path",         "readonly",   "block_size", "direct",     "discard",
    "write_zeroes", "num_queues", "serial",     "write_path",
};

/// Where \p n is, as the profile records it.
SourcePos pos_of(const YAML::Node& n) {
    const yaml::SourcePos p = yaml::pos_of(n);
    return SourcePos{p.line, p.column};
}

std::string key_path(std::string_view key) {
    return std::string(kRoot) + "." + std::string(key);
}

std::string parse_path(const YAML::Node& v, const std::string& path) {
    std::string p = parse_string(v, path);
    if (p.empty() || p[0] != '/') {
        fail(v, path, "expected an absolute path, got " + quoted(p));
    }
    if (p.find('\0') != std::string::npos) {
        fail(v, path, "path contains a NUL byte");
    }
    if (p.size() > kMaxPathBytes) {
        fail(v, path,
             "path too long: " + std::to_string(p.size()) + " bytes (at most " +
                 std::to_string(kMaxPathBytes) + ")");
    }
    return p;
}

std::string parse_serial(const YAML::Node& v, const std::string& path) {
    std::string s = parse_string(v, path);
    if (s.size() > kMaxSerialBytes) {
        fail(v, path,
             "expected at most " + std::to_string(kMaxSerialBytes) + " bytes, got " +
                 std::to_string(s.size()));
    }
    if (s.find('\0') != std::string::npos) {
        fail(v, path, "must not contain a NUL byte");
    }
    return s;
}

class ProfileParser {
  public:
    ProfileParser(std::string_view yaml, std::string_view device_name)
        : yaml_(yaml), device_name_(device_name) {}

    BlkProfile parse() {
        BlkProfile p;
        p.serial = std::string(device_name_.substr(0, kMaxSerialBytes));
        const bool blank = std::all_of(yaml_.begin(), yaml_.end(), [](char c) {
            return c == ' ' || c == '\t' || c == '\r' || c == '\n';
        });
        if (blank) {
            fail(yaml::SourcePos{}, key_path("path"),
                 "missing required key (the device has no config: block)");
        }
        YAML::Node root = YAML::Load(std::string(yaml_));
        if (!root.IsMap()) {
            fail_type(root, std::string(kRoot), "mapping");
        }
        bool have_path = false;
        yaml::for_each_entry(root, std::string(kRoot), kKeys, [&](const yaml::Entry& e) {
            const YAML::Node& v = e.value;
            try {
                parse_value(p, e.key, v, key_path(e.key));
            } catch (Failure& f) {
                // An empty value's mark is wherever the next token is; point at its key.
                if (v.IsNull()) {
                    f.pos = yaml::pos_of(e.key_node);
                }
                throw;
            }
            have_path = have_path || e.key == "path";
        });
        if (!have_path) {
            fail(root, key_path("path"), "missing required key");
        }
        return p;
    }

  private:
    static void parse_value(BlkProfile& p, const std::string& name, const YAML::Node& v,
                            const std::string& path) {
        if (name == "path") {
            p.path = parse_path(v, path);
            p.path_pos = pos_of(v);
        } else if (name == "readonly") {
            p.readonly = parse_bool(v, path);
        } else if (name == "block_size") {
            const uint64_t b = parse_uint(v, path, kMinBlockSize, kMaxBlockSize);
            if ((b & (b - 1)) != 0) {
                fail(v, path, "expected a power of two, got " + std::to_string(b));
            }
            p.block_size = static_cast<uint32_t>(b);
            p.block_size_pos = pos_of(v);
        } else if (name == "direct") {
            p.direct = parse_bool(v, path);
        } else if (name == "discard") {
            p.discard = parse_bool(v, path);
        } else if (name == "write_zeroes") {
            p.write_zeroes = parse_bool(v, path);
        } else if (name == "num_queues") {
            p.num_queues = static_cast<uint32_t>(parse_uint(v, path, 1, kMaxQueues));
        } else if (name == "write_path") {
            if (!v.IsScalar()) {
                fail_type(v, path, "string");
            }
            const std::string& s = v.Scalar();
            if (s == "auto") {
                p.write_path = WritePath::Auto;
            } else if (s == "nowait") {
                p.write_path = WritePath::Nowait;
            } else if (s == "inline") {
                p.write_path = WritePath::Inline;
            } else if (s == "punt") {
                p.write_path = WritePath::Punt;
            } else {
                fail(v, path, "expected one of auto, nowait, inline, punt, got \"" + s + "\"");
            }
            p.write_path_pos = pos_of(v);
            p.write_path_written = true;
        } else { // serial
            p.serial = parse_serial(v, path);
        }
    }

    std::string_view yaml_;
    std::string_view device_name_;
};

} // namespace

std::string profile_error(std::string_view origin, SourcePos pos, std::string_view key,
                          std::string_view message) {
    return yaml::format_error(origin, yaml::SourcePos{pos.line, pos.column}, key, message);
}

std::optional<BlkProfile> parse_blk_profile(std::string_view yaml, std::string_view origin,
                                            std::string_view device_name, std::string* error) {
    return yaml::run(origin, kRoot, error,
                     [&] { return ProfileParser(yaml, device_name).parse(); });
}

} // namespace vdh::virtioblk

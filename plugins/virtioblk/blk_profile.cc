// SPDX-License-Identifier: MIT
// Disk profile parsing (see blk_profile.h). yaml-cpp throws; every exception is caught in
// parse_blk_profile() and becomes "ORIGIN:LINE:COL: config.KEY: message" (positions are
// file positions because the config text keeps the file's layout).
#include "blk_profile.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <exception>
#include <utility>
#include <vector>

#include "vdh/yaml_util.h"

namespace vdh::virtioblk {

namespace {

using yaml_messages::describe;
using yaml_messages::quoted;

constexpr std::string_view kRoot = "config";
constexpr size_t kMaxPathBytes = 4095;
constexpr uint64_t kMinBlockSize = 512;
constexpr uint64_t kMaxBlockSize = 65536;
constexpr std::string_view kIntTag = "tag:yaml.org,2002:int";
constexpr std::string_view kBoolTag = "tag:yaml.org,2002:bool";

/// Every key, in the order the error message lists them.
constexpr std::array<std::string_view, 9> kKeys = {
    "path",         "readonly",   "block_size", "direct",     "discard",
    "write_zeroes", "num_queues", "serial",     "write_path",
};

/// Thrown inside this file only.
struct Failure {
    SourcePos pos;
    std::string key;
    std::string message;
};

SourcePos pos_of(const YAML::Mark& m) {
    if (m.is_null()) {
        return SourcePos{};
    }
    return SourcePos{m.line + 1, m.column + 1};
}

[[noreturn]] void fail(const YAML::Node& at, std::string key, std::string message) {
    throw Failure{pos_of(at.Mark()), std::move(key), std::move(message)};
}

std::string key_path(std::string_view key) {
    return std::string(kRoot) + "." + std::string(key);
}

[[noreturn]] void fail_type(const YAML::Node& n, const std::string& path,
                            std::string_view expected) {
    fail(n, path, "expected " + std::string(expected) + ", got " + describe(n));
}

std::string join_keys() {
    std::string out;
    for (std::string_view s : kKeys) {
        out += out.empty() ? "" : ", ";
        out += s;
    }
    return out;
}

std::string parse_string(const YAML::Node& n, const std::string& path) {
    if (!n.IsScalar()) {
        fail_type(n, path, "string");
    }
    return n.Scalar();
}

bool parse_bool(const YAML::Node& n, const std::string& path) {
    // YAML 1.2 core schema booleans only, unquoted ("yes"/"on" are strings there).
    if (n.IsScalar() && (n.Tag() == "?" || n.Tag() == kBoolTag)) {
        const std::string& s = n.Scalar();
        if (s == "true" || s == "True" || s == "TRUE") {
            return true;
        }
        if (s == "false" || s == "False" || s == "FALSE") {
            return false;
        }
    }
    fail_type(n, path, "boolean (true or false)");
}

uint64_t parse_uint(const YAML::Node& n, const std::string& path, uint64_t lo, uint64_t hi) {
    if (!n.IsScalar() || (n.Tag() != "?" && n.Tag() != kIntTag)) {
        fail_type(n, path, "unsigned integer");
    }
    const std::string& s = n.Scalar();
    uint64_t v = 0;
    yaml_messages::Decimal d = yaml_messages::parse_decimal(s, &v);
    if (d == yaml_messages::Decimal::NotDecimal) {
        fail_type(n, path, "unsigned integer");
    }
    if (d == yaml_messages::Decimal::Overflow || v < lo || v > hi) {
        fail(n, path,
             "out of range: " + s + " (expected " + std::to_string(lo) + ".." + std::to_string(hi) +
                 ")");
    }
    return v;
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
            throw Failure{SourcePos{}, key_path("path"),
                          "missing required key (the device has no config: block)"};
        }
        YAML::Node root = YAML::Load(std::string(yaml_));
        if (!root.IsMap()) {
            fail_type(root, std::string(kRoot), "mapping");
        }
        std::vector<YAML::Node> seen;
        bool have_path = false;
        for (auto it = root.begin(); it != root.end(); ++it) {
            const YAML::Node k = it->first;
            const YAML::Node v = it->second;
            if (!k.IsScalar()) {
                fail_type(k, std::string(kRoot), "string key");
            }
            const std::string& name = k.Scalar();
            const std::string path = key_path(name);
            if (std::find(kKeys.begin(), kKeys.end(), name) == kKeys.end()) {
                fail(k, path, "unknown key (expected one of: " + join_keys() + ")");
            }
            for (const YAML::Node& prev : seen) {
                if (prev.Scalar() == name) {
                    fail(k, path,
                         "duplicate key (first at line " +
                             std::to_string(pos_of(prev.Mark()).line) + ")");
                }
            }
            seen.push_back(k);
            try {
                parse_value(p, name, v, path);
            } catch (Failure& f) {
                // An empty value's mark is wherever the next token is; point at its key.
                if (v.IsNull()) {
                    f.pos = pos_of(k.Mark());
                }
                throw;
            }
            have_path = have_path || name == "path";
        }
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
            p.path_pos = pos_of(v.Mark());
        } else if (name == "readonly") {
            p.readonly = parse_bool(v, path);
        } else if (name == "block_size") {
            const uint64_t b = parse_uint(v, path, kMinBlockSize, kMaxBlockSize);
            if ((b & (b - 1)) != 0) {
                fail(v, path, "expected a power of two, got " + std::to_string(b));
            }
            p.block_size = static_cast<uint32_t>(b);
            p.block_size_pos = pos_of(v.Mark());
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
            p.write_path_pos = pos_of(v.Mark());
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
    return std::string(origin) + ":" + std::to_string(pos.line) + ":" + std::to_string(pos.column) +
           ": " + std::string(key) + ": " + std::string(message);
}

std::optional<BlkProfile> parse_blk_profile(std::string_view yaml, std::string_view origin,
                                            std::string_view device_name, std::string* error) {
    std::string message;
    try {
        return ProfileParser(yaml, device_name).parse();
    } catch (const Failure& f) {
        message = profile_error(origin, f.pos, f.key, f.message);
    } catch (const YAML::Exception& e) {
        message = profile_error(origin, pos_of(e.mark), kRoot, e.msg);
    } catch (const std::exception& e) {
        message =
            profile_error(origin, SourcePos{}, kRoot, std::string("internal error: ") + e.what());
    }
    if (error != nullptr) {
        *error = std::move(message);
    }
    return std::nullopt;
}

} // namespace vdh::virtioblk

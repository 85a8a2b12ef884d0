// SPDX-License-Identifier: MIT
// Helpers for YAML config parsing shared by the host's config loader and plugins that
// parse their own `config:` block: error wording (so every "expected X, got Y" reads the
// same) and strict scalar parsing. Cold path only (allocates); needs yaml-cpp. A plugin
// parsing a whole block uses vdh/yaml_reader.h, built on these.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace vdh::yaml_messages {

/// Longest value shown in a message before it is cut with "...".
inline constexpr size_t kMaxShownValue = 40;

/// \p s in double quotes, escaped, shortened for messages.
inline std::string quoted(std::string_view s) {
    std::string out = "\"";
    size_t n = 0;
    for (char c : s) {
        if (n++ == kMaxShownValue) {
            out += "...";
            break;
        }
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (c == '\n') {
            out += "\\n";
        } else if (static_cast<unsigned char>(c) < 0x20) {
            out += '?';
        } else {
            out += c;
        }
    }
    return out + "\"";
}

/// What a node is, for "expected X, got Y" messages.
inline std::string describe(const YAML::Node& n) {
    switch (n.Type()) {
    case YAML::NodeType::Null:
        return "null";
    case YAML::NodeType::Sequence:
        return "sequence";
    case YAML::NodeType::Map:
        return "mapping";
    case YAML::NodeType::Scalar:
        if (n.Tag() == "!") {
            return "quoted string " + quoted(n.Scalar());
        }
        return quoted(n.Scalar());
    case YAML::NodeType::Undefined:
        break;
    }
    return "nothing";
}

/// Outcome of parse_decimal().
enum class Decimal { Ok, NotDecimal, Overflow };

/// Parses \p s as a plain decimal unsigned integer (digits only: no sign, no prefix, no
/// spaces) into \p out.
inline Decimal parse_decimal(std::string_view s, uint64_t* out) {
    if (s.empty()) {
        return Decimal::NotDecimal;
    }
    uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') {
            return Decimal::NotDecimal;
        }
        auto digit = static_cast<uint64_t>(c - '0');
        if (v > (UINT64_MAX - digit) / 10) {
            return Decimal::Overflow;
        }
        v = v * 10 + digit;
    }
    *out = v;
    return Decimal::Ok;
}

} // namespace vdh::yaml_messages

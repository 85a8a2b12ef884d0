// SPDX-License-Identifier: MIT
// The YAML reader of the host's config loader and of every plugin that parses its own
// `config:` block: file positions, mapping key checks (unknown keys, duplicate keys) and
// typed getters (booleans, unsigned integers in a range, sizes, durations, strings, lists,
// one-of names). A getter that refuses a value throws yaml::Failure {position, key path,
// message}; yaml::run() turns that (and anything yaml-cpp throws) into the one error format
// "FILE:LINE:COL: KEY: message". Positions are file positions: the host hands a plugin its
// block with the file's line/column layout. Header-only, cold path (allocates, throws
// inside run()); needs yaml-cpp.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "vdh/yaml_util.h"

namespace vdh::yaml {

using yaml_messages::describe;
using yaml_messages::quoted;

/// 1-based position in the config file.
struct SourcePos {
    int line = 1;
    int column = 1;
};

/// A refused value: thrown by the getters, caught by run().
struct Failure {
    SourcePos pos;
    std::string key; ///< key path, e.g. "devices[0].queue_size_max" or "config.fd_limit"
    std::string message;
};

inline SourcePos pos_of(const YAML::Mark& m) {
    if (m.is_null()) {
        return SourcePos{};
    }
    return SourcePos{m.line + 1, m.column + 1};
}

inline SourcePos pos_of(const YAML::Node& n) {
    return pos_of(n.Mark());
}

[[noreturn]] inline void fail(SourcePos pos, std::string key, std::string message) {
    throw Failure{pos, std::move(key), std::move(message)};
}

[[noreturn]] inline void fail(const YAML::Node& at, std::string key, std::string message) {
    fail(pos_of(at), std::move(key), std::move(message));
}

/// "expected EXPECTED, got WHAT_IT_IS" at \p n.
[[noreturn]] inline void fail_type(const YAML::Node& n, const std::string& path,
                                   std::string_view expected) {
    fail(n, path, "expected " + std::string(expected) + ", got " + describe(n));
}

/// "PARENT.KEY" ("KEY" at the root, where \p parent is empty).
inline std::string child_path(const std::string& parent, std::string_view key) {
    if (parent.empty()) {
        return std::string(key);
    }
    return parent + "." + std::string(key);
}

/// "PARENT[I]".
inline std::string index_path(const std::string& parent, size_t i) {
    return parent + "[" + std::to_string(i) + "]";
}

/// "ORIGIN:LINE:COL: KEY: message".
inline std::string format_error(std::string_view origin, SourcePos pos, std::string_view key,
                                std::string_view message) {
    return std::string(origin) + ":" + std::to_string(pos.line) + ":" + std::to_string(pos.column) +
           ": " + std::string(key) + ": " + std::string(message);
}

/// \p items joined with \p sep.
template <typename Range> std::string join(const Range& items, std::string_view sep) {
    std::string out;
    for (std::string_view s : items) {
        out += out.empty() ? "" : std::string(sep);
        out += s;
    }
    return out;
}

/// Runs \p parse (which reads with this header's getters). Returns its result, or nullopt
/// with \p error (if not null) set to "ORIGIN:LINE:COL: KEY: message": a Failure's own
/// position and key; yaml-cpp's syntax errors at their mark under \p yaml_key; anything
/// else as an internal error.
template <typename Parse>
auto run(std::string_view origin, std::string_view yaml_key, std::string* error, Parse parse)
    -> std::optional<std::invoke_result_t<Parse>> {
    std::string message;
    try {
        return parse();
    } catch (const Failure& f) {
        message = format_error(origin, f.pos, f.key, f.message);
    } catch (const YAML::Exception& e) {
        message = format_error(origin, pos_of(e.mark), yaml_key, e.msg);
    } catch (const std::exception& e) {
        message =
            format_error(origin, SourcePos{}, yaml_key, std::string("internal error: ") + e.what());
    }
    if (error != nullptr) {
        *error = std::move(message);
    }
    return std::nullopt;
}

// ---- mappings ------------------------------------------------------------------------------

/// One key of a mapping, in file order.
struct Entry {
    std::string key;
    YAML::Node key_node;
    YAML::Node value;
};

/// Walks the mapping \p map at \p path ("" for the document root) in file order: each key
/// must be a string from \p known and appear once; \p visit(const Entry&) runs for each key
/// right after its check, so errors come in file order. Refuses a node that is not a
/// mapping.
template <typename Visit>
void for_each_entry(const YAML::Node& map, const std::string& path,
                    std::span<const std::string_view> known, Visit&& visit) {
    const std::string where = path.empty() ? "(root)" : path;
    if (!map.IsMap()) {
        fail_type(map, where, "mapping");
    }
    std::vector<std::pair<std::string, YAML::Node>> seen; // key, key node
    for (const auto& kv : map) {
        YAML::Node k = kv.first; // a copy: the iterator's value is a temporary proxy
        if (!k.IsScalar()) {
            fail_type(k, where, "string key");
        }
        const std::string& name = k.Scalar();
        const std::string key_path = child_path(path, name);
        bool is_known = false;
        for (std::string_view s : known) {
            is_known = is_known || s == name;
        }
        if (!is_known) {
            fail(k, key_path, "unknown key (expected one of: " + join(known, ", ") + ")");
        }
        for (const auto& [prev, prev_node] : seen) {
            if (prev == name) {
                fail(k, key_path,
                     "duplicate key (first at line " + std::to_string(pos_of(prev_node).line) +
                         ")");
            }
        }
        seen.emplace_back(name, k);
        visit(Entry{name, k, kv.second});
    }
}

template <typename Visit>
void for_each_entry(const YAML::Node& map, const std::string& path,
                    std::initializer_list<std::string_view> known, Visit&& visit) {
    for_each_entry(map, path, std::span<const std::string_view>(known.begin(), known.size()),
                   std::forward<Visit>(visit));
}

/// for_each_entry() collecting the entries: every key is checked before any value is read.
inline std::vector<Entry> read_mapping(const YAML::Node& map, const std::string& path,
                                       std::span<const std::string_view> known) {
    std::vector<Entry> entries;
    for_each_entry(map, path, known, [&entries](const Entry& e) { entries.push_back(e); });
    return entries;
}

inline std::vector<Entry> read_mapping(const YAML::Node& map, const std::string& path,
                                       std::initializer_list<std::string_view> known) {
    return read_mapping(map, path, std::span<const std::string_view>(known.begin(), known.size()));
}

/// The entry of \p key, or null.
inline const Entry* find_entry(const std::vector<Entry>& entries, std::string_view key) {
    for (const Entry& e : entries) {
        if (e.key == key) {
            return &e;
        }
    }
    return nullptr;
}

/// Whether \p text holds a null written out at \p offset: `null`, `Null`, `NULL` (and `~`
/// when \p tilde) followed by the end, a space, a flow indicator or a comment. Tells an
/// explicit null from an empty value, whose mark is wherever the next token is.
inline bool null_token_at(std::string_view text, size_t offset, bool tilde = true) {
    if (offset >= text.size()) {
        return false;
    }
    const std::string_view rest = text.substr(offset);
    constexpr std::string_view kEnd = " \t\r\n,]}#";
    for (std::string_view lit : {"null", "Null", "NULL", "~"}) {
        if (lit == "~" && !tilde) {
            continue;
        }
        if (rest.substr(0, lit.size()) == lit &&
            (rest.size() == lit.size() || kEnd.find(rest[lit.size()]) != std::string_view::npos)) {
            return true;
        }
    }
    return false;
}

// ---- scalars -------------------------------------------------------------------------------

inline constexpr std::string_view kIntTag = "tag:yaml.org,2002:int";
inline constexpr std::string_view kBoolTag = "tag:yaml.org,2002:bool";

/// Any scalar, as written (quoted or not).
inline std::string parse_string(const YAML::Node& n, const std::string& path) {
    if (!n.IsScalar()) {
        fail_type(n, path, "string");
    }
    return n.Scalar();
}

/// A sequence of strings; errors at the item ("PATH[I]").
inline std::vector<std::string> parse_string_list(const YAML::Node& n, const std::string& path) {
    if (!n.IsSequence()) {
        fail_type(n, path, "sequence");
    }
    std::vector<std::string> out;
    for (size_t i = 0; i < n.size(); ++i) {
        out.push_back(parse_string(n[i], index_path(path, i)));
    }
    return out;
}

/// A YAML 1.2 core schema boolean, unquoted: true/True/TRUE, false/False/FALSE ("yes" and
/// "on" are strings there).
inline bool parse_bool(const YAML::Node& n, const std::string& path) {
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

/// "out of range: VALUE (expected LO..HI)" at \p n.
[[noreturn]] inline void fail_range(const YAML::Node& n, const std::string& path,
                                    std::string_view value, uint64_t lo, uint64_t hi) {
    fail(n, path,
         "out of range: " + std::string(value) + " (expected " + std::to_string(lo) + ".." +
             std::to_string(hi) + ")");
}

/// A plain decimal unsigned integer (unquoted, digits only) in [lo, hi].
inline uint64_t parse_uint(const YAML::Node& n, const std::string& path, uint64_t lo = 0,
                           uint64_t hi = UINT64_MAX) {
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
        fail_range(n, path, s, lo, hi);
    }
    return v;
}

/// One of \p names (YAML spelling, plain or quoted); returns its index.
inline size_t parse_enum(const YAML::Node& n, const std::string& path,
                         std::initializer_list<std::string_view> names) {
    if (n.IsScalar()) {
        size_t i = 0;
        for (std::string_view name : names) {
            if (n.Scalar() == name) {
                return i;
            }
            ++i;
        }
    }
    fail_type(n, path, "one of " + join(names, ", "));
}

/// A number with a unit suffix: digits, optional spaces, then one of \p units (the empty
/// unit included only if listed); the value is the number times the unit's factor.
struct Unit {
    std::string_view name;
    uint64_t factor;
};

/// Parses \p s as digits and a unit of \p units into \p out; false when malformed or
/// beyond 2^64-1 (\p overflow set then).
inline bool parse_with_unit(std::string_view s, std::span<const Unit> units, uint64_t* out,
                            bool* overflow) {
    *overflow = false;
    size_t i = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
        ++i;
    }
    uint64_t v = 0;
    yaml_messages::Decimal d = yaml_messages::parse_decimal(s.substr(0, i), &v);
    if (d == yaml_messages::Decimal::NotDecimal) {
        return false;
    }
    std::string_view unit = s.substr(i);
    while (!unit.empty() && unit.front() == ' ') {
        unit.remove_prefix(1);
    }
    for (const Unit& u : units) {
        if (unit == u.name) {
            if (d == yaml_messages::Decimal::Overflow || (v != 0 && u.factor > UINT64_MAX / v)) {
                *overflow = true;
                return false;
            }
            *out = v * u.factor;
            return true;
        }
    }
    return false;
}

/// Byte units of sizes: none or B (bytes), K/KiB, M/MiB, G/GiB, T/TiB (powers of 1024),
/// KB, MB, GB, TB (powers of 1000).
inline constexpr Unit kSizeUnits[] = {
    {"", 1},
    {"B", 1},
    {"K", 1ULL << 10},
    {"KiB", 1ULL << 10},
    {"KB", 1000},
    {"M", 1ULL << 20},
    {"MiB", 1ULL << 20},
    {"MB", 1000000},
    {"G", 1ULL << 30},
    {"GiB", 1ULL << 30},
    {"GB", 1000000000},
    {"T", 1ULL << 40},
    {"TiB", 1ULL << 40},
    {"TB", 1000000000000ULL},
};

/// A size in bytes in [lo, hi]: a plain integer, or a number with a byte unit
/// (kSizeUnits: 4096, 64KiB, "1 MiB", 2MB).
inline uint64_t parse_size(const YAML::Node& n, const std::string& path, uint64_t lo = 0,
                           uint64_t hi = UINT64_MAX) {
    constexpr std::string_view kExpected = "size in bytes such as 4096, 64KiB or 1MiB";
    if (!n.IsScalar()) {
        fail_type(n, path, kExpected);
    }
    uint64_t v = 0;
    bool overflow = false;
    if (!parse_with_unit(n.Scalar(), kSizeUnits, &v, &overflow)) {
        if (!overflow) {
            fail_type(n, path, kExpected);
        }
        fail_range(n, path, n.Scalar(), lo, hi);
    }
    if (v < lo || v > hi) {
        fail(n, path,
             "out of range: " + n.Scalar() + " = " + std::to_string(v) + " bytes (expected " +
                 std::to_string(lo) + ".." + std::to_string(hi) + ")");
    }
    return v;
}

/// Units of durations: none or ms (milliseconds), s, min, h.
inline constexpr Unit kDurationUnits[] = {
    {"", 1}, {"ms", 1}, {"s", 1000}, {"min", 60000}, {"h", 3600000},
};

/// A duration in milliseconds in [lo_ms, hi_ms]: a plain integer (milliseconds) or a number
/// with a unit (kDurationUnits: 250, 250ms, 5s, "2 min", 1h).
inline uint64_t parse_duration_ms(const YAML::Node& n, const std::string& path, uint64_t lo_ms = 0,
                                  uint64_t hi_ms = UINT64_MAX) {
    constexpr std::string_view kExpected = "duration such as 250ms, 5s or 2min";
    if (!n.IsScalar()) {
        fail_type(n, path, kExpected);
    }
    uint64_t v = 0;
    bool overflow = false;
    if (!parse_with_unit(n.Scalar(), kDurationUnits, &v, &overflow)) {
        if (!overflow) {
            fail_type(n, path, kExpected);
        }
        fail_range(n, path, n.Scalar(), lo_ms, hi_ms);
    }
    if (v < lo_ms || v > hi_ms) {
        fail(n, path,
             "out of range: " + n.Scalar() + " = " + std::to_string(v) + " ms (expected " +
                 std::to_string(lo_ms) + ".." + std::to_string(hi_ms) + " ms)");
    }
    return v;
}

} // namespace vdh::yaml

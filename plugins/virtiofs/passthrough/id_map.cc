// SPDX-License-Identifier: MIT
// Parsing of virtiofsd-syntax translation rules and building an IdMap from them (see
// id_map.h). Cold path: config time only, allocates.
#include "id_map.h"

#include <array>
#include <cctype>
#include <utility>
#include <vector>

namespace vdh::virtiofs::passthrough {

namespace {

constexpr uint64_t kIdSpace = uint64_t{1} << 32;
constexpr uint32_t kNoId = UINT32_MAX; ///< (uid_t)-1: "no id" / "unchanged" in chown

struct KindName {
    IdMapKind kind;
    std::string_view name;
    size_t numbers;
};

constexpr std::array<KindName, 6> kKinds = {{
    {IdMapKind::Guest, "guest", 3},
    {IdMapKind::Host, "host", 3},
    {IdMapKind::SquashGuest, "squash-guest", 3},
    {IdMapKind::SquashHost, "squash-host", 3},
    {IdMapKind::ForbidGuest, "forbid-guest", 2},
    {IdMapKind::Map, "map", 3},
}};

const KindName& kind_name(IdMapKind k) {
    for (const KindName& n : kKinds) {
        if (n.kind == k) {
            return n;
        }
    }
    return kKinds.back();
}

std::string quote(std::string_view s) {
    return "\"" + std::string(s) + "\"";
}

/// A decimal u32 as Rust's u32::from_str takes it: an optional '+', then digits.
bool parse_u32(std::string_view s, uint32_t* out) {
    if (!s.empty() && s[0] == '+') {
        s.remove_prefix(1);
    }
    if (s.empty()) {
        return false;
    }
    uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') {
            return false;
        }
        v = v * 10 + static_cast<uint64_t>(c - '0');
        if (v > UINT32_MAX) {
            return false;
        }
    }
    *out = static_cast<uint32_t>(v);
    return true;
}

std::string syntax_of(const KindName& k) {
    switch (k.kind) {
    case IdMapKind::Guest:
        return "guest:FROM_GUEST:TO_HOST:COUNT";
    case IdMapKind::Host:
        return "host:FROM_HOST:TO_GUEST:COUNT";
    case IdMapKind::SquashGuest:
        return "squash-guest:FROM_GUEST:TO_HOST:COUNT";
    case IdMapKind::SquashHost:
        return "squash-host:FROM_HOST:TO_GUEST:COUNT";
    case IdMapKind::ForbidGuest:
        return "forbid-guest:FROM_GUEST:COUNT";
    case IdMapKind::Map:
        return "map:GUEST:HOST:COUNT";
    }
    return "";
}

std::string range_text(uint64_t first, uint64_t count) {
    return "[" + std::to_string(first) + ", " + std::to_string(first + count) + ")";
}

} // namespace

std::optional<IdMapRule> parse_id_map_rule(std::string_view text, std::string* error) {
    size_t i = 0;
    std::string type;
    while (i < text.size()) {
        const unsigned char c = static_cast<unsigned char>(text[i]);
        if (std::isalnum(c) == 0 && c != '-' && c != '_') {
            break;
        }
        type += static_cast<char>(std::tolower(c));
        ++i;
    }
    const KindName* kind = nullptr;
    for (const KindName& k : kKinds) {
        if (k.name == type) {
            kind = &k;
        }
    }
    if (kind == nullptr) {
        std::string names;
        for (const KindName& k : kKinds) {
            names += (names.empty() ? "" : ", ") + std::string(k.name);
        }
        *error = "unknown type " + quote(type) + " in " + quote(text) + " (types: " + names + ")";
        return std::nullopt;
    }
    if (i == text.size()) {
        *error = "expected " + syntax_of(*kind) + ", got " + quote(text);
        return std::nullopt;
    }
    const char sep = text[i];
    std::vector<uint32_t> numbers;
    std::string_view rest = text.substr(i + 1);
    while (true) {
        const size_t end = rest.find(sep);
        std::string_view field = rest.substr(0, end);
        uint32_t v = 0;
        if (!parse_u32(field, &v)) {
            *error = quote(field) + " is not a number 0..4294967295 (in " + quote(text) + ")";
            return std::nullopt;
        }
        numbers.push_back(v);
        if (end == std::string_view::npos) {
            break;
        }
        rest.remove_prefix(end + 1);
    }
    if (numbers.size() != kind->numbers) {
        *error = "expected " + syntax_of(*kind) + " (" + std::to_string(kind->numbers) +
                 " numbers), got " + std::to_string(numbers.size()) + " in " + quote(text);
        return std::nullopt;
    }
    IdMapRule r;
    r.kind = kind->kind;
    r.from = numbers[0];
    if (kind->numbers == 2) {
        r.count = numbers[1];
    } else {
        r.to = numbers[1];
        r.count = numbers[2];
    }
    return r;
}

std::string to_string(const IdMapRule& r) {
    const std::string head = std::string(kind_name(r.kind).name) + ":" + std::to_string(r.from);
    if (r.kind == IdMapKind::ForbidGuest) {
        return head + ":" + std::to_string(r.count);
    }
    return head + ":" + std::to_string(r.to) + ":" + std::to_string(r.count);
}

std::optional<IdMap> IdMap::build(const std::vector<IdMapRule>& rules, size_t* bad_index,
                                  std::string* error) {
    IdMap map;
    if (rules.size() > kMaxRules) {
        *bad_index = kMaxRules;
        *error = "too many rules: " + std::to_string(rules.size()) + " (at most " +
                 std::to_string(kMaxRules) + ")";
        return std::nullopt;
    }
    // Adds one direction's range, refusing overlaps with earlier ones (virtiofsd).
    auto add = [&](std::vector<Range>& dir, const char* what, Range r) -> bool {
        for (const Range& o : dir) {
            const uint64_t a0 = r.first, a1 = a0 + r.count;
            const uint64_t b0 = o.first, b1 = b0 + o.count;
            if (a0 < b1 && b0 < a1) {
                *error = std::string(what) + " ids " + range_text(a0, r.count) +
                         " overlap those of item " + std::to_string(o.rule) + " (" +
                         quote(to_string(rules[o.rule])) + "): rules must not overlap";
                return false;
            }
        }
        dir.push_back(r);
        return true;
    };
    for (size_t i = 0; i < rules.size(); ++i) {
        const IdMapRule& rule = rules[i];
        *bad_index = i;
        if (rule.count == 0) {
            *error = "count is 0 in " + quote(to_string(rule)) + ": the rule maps nothing";
            return std::nullopt;
        }
        const bool from_guest = rule.kind != IdMapKind::Host && rule.kind != IdMapKind::SquashHost;
        if (uint64_t{rule.from} + rule.count >= kIdSpace) {
            *error = "range overflow in " + quote(to_string(rule)) + ": " +
                     (from_guest ? "guest" : "host") + " ids " + range_text(rule.from, rule.count) +
                     " end past 4294967295";
            return std::nullopt;
        }
        const bool squash =
            rule.kind == IdMapKind::SquashGuest || rule.kind == IdMapKind::SquashHost;
        if (squash && rule.to == kNoId) {
            *error = "cannot squash to 4294967295 in " + quote(to_string(rule)) +
                     ": that value means \"no id\"";
            return std::nullopt;
        }
        if (!squash && rule.kind != IdMapKind::ForbidGuest &&
            uint64_t{rule.to} + rule.count >= kIdSpace) {
            *error = "range overflow in " + quote(to_string(rule)) + ": target ids " +
                     range_text(rule.to, rule.count) + " end past 4294967295";
            return std::nullopt;
        }
        const auto idx = static_cast<uint32_t>(i);
        bool ok = true;
        switch (rule.kind) {
        case IdMapKind::Guest:
            ok = add(map.to_host_, "guest", Range{rule.from, rule.count, rule.to, Op::Shift, idx});
            break;
        case IdMapKind::Host:
            ok = add(map.to_guest_, "host", Range{rule.from, rule.count, rule.to, Op::Shift, idx});
            break;
        case IdMapKind::SquashGuest:
            ok = add(map.to_host_, "guest", Range{rule.from, rule.count, rule.to, Op::Squash, idx});
            break;
        case IdMapKind::SquashHost:
            ok = add(map.to_guest_, "host", Range{rule.from, rule.count, rule.to, Op::Squash, idx});
            break;
        case IdMapKind::ForbidGuest:
            ok = add(map.to_host_, "guest", Range{rule.from, rule.count, 0, Op::Fail, idx});
            break;
        case IdMapKind::Map:
            ok =
                add(map.to_host_, "guest", Range{rule.from, rule.count, rule.to, Op::Shift, idx}) &&
                add(map.to_guest_, "host", Range{rule.to, rule.count, rule.from, Op::Shift, idx});
            break;
        }
        if (!ok) {
            return std::nullopt;
        }
    }
    return map;
}

} // namespace vdh::virtiofs::passthrough

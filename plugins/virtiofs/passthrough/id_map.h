// SPDX-License-Identifier: MIT
// IdMap: uid or gid translation between guest and host with the Rust virtiofsd's
// --translate-uid / --translate-gid rules (guest, host, squash-guest, squash-host,
// forbid-guest, map). Rules are parsed and the map built once, at config time (allocates);
// translating is a linear scan of a few ranges with no allocation and no locks, done per
// request on the poll lcores. One IdMap translates uids or gids, not both.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vdh::virtiofs::passthrough {

/// The rule types, as virtiofsd names them (TYPE:A:B:C; forbid-guest is TYPE:A:B).
enum class IdMapKind : uint8_t {
    Guest,       ///< guest:FROM_GUEST:TO_HOST:COUNT, guest→host 1:1
    Host,        ///< host:FROM_HOST:TO_GUEST:COUNT, host→guest 1:1
    SquashGuest, ///< squash-guest:FROM_GUEST:TO_HOST:COUNT, n guest ids → one host id
    SquashHost,  ///< squash-host:FROM_HOST:TO_GUEST:COUNT, n host ids → one guest id
    ForbidGuest, ///< forbid-guest:FROM_GUEST:COUNT, these guest ids fail with EPERM
    Map,         ///< map:GUEST:HOST:COUNT, 1:1 in both directions
};

/// One rule. \p from is the first source id (a host id for Host and SquashHost, else a
/// guest id); \p to the first target id, or the single target of a squash (0 and unused
/// for ForbidGuest; for Map: the first host id).
struct IdMapRule {
    IdMapKind kind = IdMapKind::Map;
    uint32_t from = 0;
    uint32_t to = 0;
    uint32_t count = 0;
    bool operator==(const IdMapRule&) const = default;
};

/// Parses one rule in virtiofsd's syntax: a type (letters, digits, '-' or '_'; any case),
/// then decimal numbers each after one separator, the first non-type character, the same
/// one throughout ("map:0:1000:1", "map/0/1000/1"). Only the syntax is checked here;
/// ranges are checked by IdMap::build(). On error returns nullopt and sets \p error.
std::optional<IdMapRule> parse_id_map_rule(std::string_view text, std::string* error);

/// The rule in virtiofsd's syntax, with ':' separators.
std::string to_string(const IdMapRule& rule);

/// Rules for one id type (uids or gids) in both directions. Ids no rule covers map to
/// themselves (virtiofsd). Copyable; an empty map is the identity.
class IdMap {
  public:
    /// Most rules per map (bounds the per-request scan).
    static constexpr size_t kMaxRules = 64;

    IdMap() = default;

    /// Builds the map from \p rules, in order. Refused, as by virtiofsd, are rules whose
    /// source ranges overlap an earlier rule's in the same direction (so the one rule
    /// covering an id decides it) and a source range past 4294967295 (the end is
    /// exclusive: FROM + COUNT must fit in 32 bits). Also refused, where virtiofsd would
    /// wrap around or silently do nothing: a target range past 4294967294, a squash to
    /// 4294967295 (the "no id" value), a count of 0, and more than kMaxRules rules. On
    /// error returns nullopt, sets \p error and \p bad_index (the offending rule).
    static std::optional<IdMap> build(const std::vector<IdMapRule>& rules, size_t* bad_index,
                                      std::string* error);

    /// No rule at all: every id maps to itself.
    bool identity() const noexcept { return to_host_.empty() && to_guest_.empty(); }

    /// The host id for guest id \p guest (credentials, SETATTR's uid/gid). False when a
    /// forbid-guest rule covers it: the request fails with EPERM.
    bool to_host(uint32_t guest, uint32_t* host) const noexcept {
        for (const Range& r : to_host_) {
            if (guest - r.first < r.count) {
                if (r.op == Op::Fail) {
                    return false;
                }
                *host = r.op == Op::Squash ? r.target : r.target + (guest - r.first);
                return true;
            }
        }
        *host = guest;
        return true;
    }

    /// The guest id for host id \p host (every attribute returned). Never fails: there is
    /// no forbid rule in this direction.
    uint32_t to_guest(uint32_t host) const noexcept {
        for (const Range& r : to_guest_) {
            if (host - r.first < r.count) {
                return r.op == Op::Squash ? r.target : r.target + (host - r.first);
            }
        }
        return host;
    }

  private:
    enum class Op : uint8_t { Shift, Squash, Fail };
    /// Source ids [first, first + count) → target (+ offset for Shift).
    struct Range {
        uint32_t first = 0;
        uint32_t count = 0;
        uint32_t target = 0;
        Op op = Op::Shift;
        uint32_t rule = 0; ///< index of the rule it came from (for overlap messages)
    };

    std::vector<Range> to_host_;
    std::vector<Range> to_guest_;
};

} // namespace vdh::virtiofs::passthrough

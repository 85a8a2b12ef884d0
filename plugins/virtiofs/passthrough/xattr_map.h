// SPDX-License-Identifier: MIT
// XattrMap: the share's xattr name mapping (`xattrmap:`), with the Rust virtiofsd's rules
// and syntax (doc/xattr-mapping.md). A rule is `<sep>type<sep>scope<sep>key<sep>prepend<sep>`,
// its separator being its first non-blank character; rules are separated by blanks and
// tried in order, the first that matches decides:
//   - type: prefix (guest names matching key get prepend put in front; host names matching
//     prepend lose it), ok (passed unchanged), bad (guest: EPERM, ENODATA for getxattr;
//     host: hidden), unsupported (guest: ENOTSUP; host: hidden);
//   - scope: client (guest names, matched on key), server (host names from listxattr,
//     matched on prepend), all (both);
//   - `<sep>map<sep>key<sep>prepend<sep>` is shorthand for prefix(all, key, prepend), then
//     bad for what would collide (host names under key, guest names under prepend) and ok
//     for the rest, or, with an empty key, bad for every name not under prepend. At most
//     one, and it must be the last rule.
// Parsing is cold (config time, std::string); matching is hot (per xattr request): it
// allocates nothing and writes into caller buffers.
#pragma once

#include <linux/limits.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vdh/result.h"

namespace vdh::virtiofs::passthrough {

/// A parse error: which rule (1-based, as written; 0 when about the map as a whole),
/// where in the parsed text (byte offset), and what.
struct XattrMapError {
    size_t rule = 0;
    size_t offset = 0;
    std::string message;
};

class XattrMap {
  public:
    enum class Type : uint8_t { Prefix, Ok, Bad, Unsupported };
    static constexpr uint8_t kClient = 1; ///< scope bit: guest names (get/set/remove)
    static constexpr uint8_t kServer = 2; ///< scope bit: host names (listxattr)

    struct Rule {
        Type type = Type::Ok;
        uint8_t scope = 0;   ///< kClient | kServer
        std::string key;     ///< matched against guest names
        std::string prepend; ///< matched against host names; what prefix rules put in front
        bool operator==(const Rule&) const = default;
    };

    /// Parses a whole map written as one string (virtiofsd's --xattrmap value).
    static std::optional<XattrMap> parse(std::string_view text, XattrMapError* error);
    /// Parses a map written as a list, one rule per item (\p error's offset is within its
    /// item; its rule is the item's 1-based index).
    static std::optional<XattrMap> parse_list(const std::vector<std::string_view>& items,
                                              XattrMapError* error);

    /// The expanded rules (map shorthand replaced by what it stands for), in order.
    const std::vector<Rule>& rules() const noexcept { return rules_; }

    /// The host name for guest name \p guest, NUL-terminated into \p out. Errors: EPERM (a
    /// bad rule), ENOTSUP (an unsupported rule), ERANGE (empty, or longer than
    /// XATTR_NAME_MAX once mapped), EINVAL (a NUL byte). Hot path: no allocation.
    Status to_host(std::string_view guest, char (&out)[XATTR_NAME_MAX + 1]) const noexcept;

    /// The guest's name for host name \p host (a suffix of it), or nullopt when a rule hides
    /// it (bad or unsupported, or a prefix rule that would leave an empty name).
    std::optional<std::string_view> to_guest(std::string_view host) const noexcept;

    /// Rewrites a host listxattr result (\p host, \p host_len bytes of NUL-terminated names)
    /// into the guest's list: hidden names dropped, prefixes stripped. Returns the guest
    /// list's length. \p out_size 0 only measures (\p out may be null); otherwise ERANGE
    /// when the guest list is longer than \p out_size (nothing useful in \p out then).
    /// \p out must not overlap \p host. Hot path: no allocation.
    Result<size_t> list_to_guest(const char* host, size_t host_len, char* out,
                                 size_t out_size) const noexcept;

  private:
    /// First rule of \p scope matching \p name, or null (never, once parsed: parse()
    /// refuses a map without a catch-all rule for each direction).
    const Rule* find(uint8_t scope, std::string_view name) const noexcept;
    /// Adds one rule read from \p text at \p *pos (blanks before it already skipped).
    bool add_rule(std::string_view text, size_t* pos, size_t index, XattrMapError* error);
    /// Refuses an empty map or one that leaves some names of one direction unmatched.
    bool check_complete(XattrMapError* error) const;

    std::vector<Rule> rules_;
    bool ends_with_map_ = false;
    size_t map_rule_ = 0; ///< the map rule's index as written, when ends_with_map_
};

/// The host name for guest xattr name \p guest under \p map (null: no mapping; the name is
/// only checked and copied), NUL-terminated into \p out. Errors as XattrMap::to_host. For
/// every caller that names an xattr on the guest's behalf (the xattr ops, security labels
/// set at create time). Hot path: no allocation.
Status xattr_name_to_host(const XattrMap* map, std::string_view guest,
                          char (&out)[XATTR_NAME_MAX + 1]) noexcept;

} // namespace vdh::virtiofs::passthrough

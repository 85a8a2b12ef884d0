// SPDX-License-Identifier: MIT
// XattrMap parsing (cold, config time) and matching (hot, per xattr request); see
// xattr_map.h for the rules.
#include "xattr_map.h"

#include <cstring>

namespace vdh::virtiofs::passthrough {

namespace {

bool is_blank(char c) {
    // Rust's is_ascii_whitespace, as virtiofsd skips between rules.
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

size_t skip_blanks(std::string_view text, size_t pos) {
    while (pos < text.size() && is_blank(text[pos])) {
        ++pos;
    }
    return pos;
}

std::string shown(std::string_view s) {
    return "\"" + std::string(s) + "\"";
}

Status copy_name(std::string_view a, std::string_view b, char (&out)[XATTR_NAME_MAX + 1]) {
    const size_t n = a.size() + b.size();
    if (n == 0 || n > XATTR_NAME_MAX) {
        return make_err(ERANGE);
    }
    // An empty view may have a null data(): memcpy must not see it, even for 0 bytes.
    if (!a.empty()) {
        std::memcpy(out, a.data(), a.size());
    }
    if (!b.empty()) {
        std::memcpy(out + a.size(), b.data(), b.size());
    }
    out[n] = '\0';
    return ok();
}

} // namespace

std::optional<XattrMap> XattrMap::parse(std::string_view text, XattrMapError* error) {
    XattrMap map;
    size_t pos = skip_blanks(text, 0);
    size_t index = 0;
    while (pos < text.size()) {
        ++index;
        if (map.ends_with_map_) {
            *error = XattrMapError{map.map_rule_, pos,
                                   "a map rule must be the last rule (rule " +
                                       std::to_string(index) + " follows it)"};
            return std::nullopt;
        }
        if (!map.add_rule(text, &pos, index, error)) {
            return std::nullopt;
        }
        pos = skip_blanks(text, pos);
    }
    if (!map.check_complete(error)) {
        error->offset = text.size();
        return std::nullopt;
    }
    return map;
}

std::optional<XattrMap> XattrMap::parse_list(const std::vector<std::string_view>& items,
                                             XattrMapError* error) {
    XattrMap map;
    for (size_t i = 0; i < items.size(); ++i) {
        const std::string_view text = items[i];
        const size_t index = i + 1;
        size_t pos = skip_blanks(text, 0);
        if (pos == text.size()) {
            *error = XattrMapError{index, pos, "empty rule"};
            return std::nullopt;
        }
        if (map.ends_with_map_) {
            *error = XattrMapError{map.map_rule_, 0,
                                   "a map rule must be the last rule (rule " +
                                       std::to_string(index) + " follows it)"};
            return std::nullopt;
        }
        if (!map.add_rule(text, &pos, index, error)) {
            return std::nullopt;
        }
        pos = skip_blanks(text, pos);
        if (pos != text.size()) {
            *error = XattrMapError{index, pos,
                                   "one rule per list item (text follows the rule's closing "
                                   "separator)"};
            return std::nullopt;
        }
    }
    if (!map.check_complete(error)) {
        return std::nullopt;
    }
    return map;
}

bool XattrMap::add_rule(std::string_view text, size_t* pos, size_t index, XattrMapError* error) {
    const size_t start = *pos;
    const char sep = text[start];
    size_t p = start + 1;
    const std::string sep_shown = std::string(1, sep);
    // The next field: everything up to the next separator, which it consumes.
    auto field = [&](const char* what, std::string_view* out) {
        const size_t end = text.find(sep, p);
        if (end == std::string_view::npos) {
            *error = XattrMapError{index, text.size(),
                                   std::string("incomplete rule: no '") + sep_shown +
                                       "' after its " + what + " field (a rule is " + sep_shown +
                                       "type" + sep_shown + "scope" + sep_shown + "key" +
                                       sep_shown + "prepend" + sep_shown + ")"};
            return false;
        }
        *out = text.substr(p, end - p);
        p = end + 1;
        return true;
    };
    if (sep == '\0') {
        *error = XattrMapError{index, start, "a NUL byte cannot be a separator"};
        return false;
    }
    std::string_view type_text;
    if (!field("type", &type_text)) {
        return false;
    }
    const size_t type_at = start + 1;
    Rule rule;
    bool is_map = false;
    if (type_text == "prefix") {
        rule.type = Type::Prefix;
    } else if (type_text == "ok") {
        rule.type = Type::Ok;
    } else if (type_text == "bad") {
        rule.type = Type::Bad;
    } else if (type_text == "unsupported") {
        rule.type = Type::Unsupported;
    } else if (type_text == "map") {
        is_map = true;
    } else {
        *error = XattrMapError{index, type_at,
                               "unknown type " + shown(type_text) +
                                   " (expected prefix, ok, bad, unsupported or map)"};
        return false;
    }
    if (is_map) {
        rule.scope = kClient | kServer;
    } else {
        const size_t scope_at = p;
        std::string_view scope_text;
        if (!field("scope", &scope_text)) {
            return false;
        }
        if (scope_text == "client") {
            rule.scope = kClient;
        } else if (scope_text == "server") {
            rule.scope = kServer;
        } else if (scope_text == "all") {
            rule.scope = kClient | kServer;
        } else {
            *error = XattrMapError{index, scope_at,
                                   "unknown scope " + shown(scope_text) +
                                       " (expected client, server or all)"};
            return false;
        }
    }
    std::string_view key;
    std::string_view prepend;
    if (!field("key", &key) || !field("prepend", &prepend)) {
        return false;
    }
    if (key.find('\0') != std::string_view::npos || prepend.find('\0') != std::string_view::npos) {
        *error = XattrMapError{index, start, "a key or prefix contains a NUL byte"};
        return false;
    }
    if (prepend.size() >= XATTR_NAME_MAX || key.size() > XATTR_NAME_MAX) {
        *error = XattrMapError{index, start,
                               "a key or prefix longer than an xattr name can be (" +
                                   std::to_string(XATTR_NAME_MAX) + " bytes)"};
        return false;
    }
    *pos = p;
    rule.key = std::string(key);
    rule.prepend = std::string(prepend);
    if (!is_map) {
        rules_.push_back(std::move(rule));
        return true;
    }
    // The map shorthand (virtiofsd's expansion).
    ends_with_map_ = true;
    map_rule_ = index;
    rules_.push_back(Rule{Type::Prefix, kClient | kServer, rule.key, rule.prepend});
    if (rule.key.empty()) {
        // Every guest name is prefixed; host names without the prefix are hidden.
        rules_.push_back(Rule{Type::Bad, kClient | kServer, "", ""});
    } else {
        // Host names under key would alias mapped ones: hidden; guest names under prepend
        // would reach mapped ones directly: refused. The rest passes.
        rules_.push_back(Rule{Type::Bad, kClient | kServer, rule.prepend, rule.key});
        rules_.push_back(Rule{Type::Ok, kClient | kServer, "", ""});
    }
    return true;
}

bool XattrMap::check_complete(XattrMapError* error) const {
    if (rules_.empty()) {
        *error = XattrMapError{0, 0, "no rules"};
        return false;
    }
    bool client_end = false;
    bool server_end = false;
    for (const Rule& r : rules_) {
        client_end = client_end || ((r.scope & kClient) != 0 && r.key.empty());
        server_end = server_end || ((r.scope & kServer) != 0 && r.prepend.empty());
    }
    if (client_end && server_end) {
        return true;
    }
    const char* side = !client_end ? "guest (client) names: no client or all rule with an "
                                     "empty key"
                                   : "host (server) names: no server or all rule with an "
                                     "empty prepend";
    *error = XattrMapError{0, 0,
                           std::string("the rules must match every name, but not all ") + side +
                               " (end with a catch-all rule such as \":ok:all:::\" or "
                               "\":bad:all:::\")"};
    return false;
}

const XattrMap::Rule* XattrMap::find(uint8_t scope, std::string_view name) const noexcept {
    for (const Rule& r : rules_) {
        if ((r.scope & scope) == 0) {
            continue;
        }
        const std::string& match = scope == kClient ? r.key : r.prepend;
        if (name.starts_with(match)) {
            return &r;
        }
    }
    return nullptr;
}

Status XattrMap::to_host(std::string_view guest, char (&out)[XATTR_NAME_MAX + 1]) const noexcept {
    if (guest.find('\0') != std::string_view::npos) {
        return make_err(EINVAL);
    }
    if (guest.empty()) {
        return make_err(ERANGE);
    }
    const Rule* r = find(kClient, guest);
    if (r == nullptr) {
        return make_err(EPERM); // unreachable: parse() refuses maps without a catch-all
    }
    switch (r->type) {
    case Type::Ok:
        return copy_name(guest, {}, out);
    case Type::Bad:
        return make_err(EPERM);
    case Type::Unsupported:
        return make_err(ENOTSUP);
    case Type::Prefix:
        return copy_name(r->prepend, guest, out);
    }
    return make_err(EPERM);
}

std::optional<std::string_view> XattrMap::to_guest(std::string_view host) const noexcept {
    const Rule* r = find(kServer, host);
    if (r == nullptr) {
        return std::nullopt;
    }
    switch (r->type) {
    case Type::Ok:
        return host;
    case Type::Bad:
    case Type::Unsupported:
        return std::nullopt;
    case Type::Prefix:
        // "user.virtiofs." itself would list as an empty name, which the guest kernel
        // takes for a corrupt list (EIO for the whole listxattr): hidden instead.
        if (host.size() == r->prepend.size()) {
            return std::nullopt;
        }
        return host.substr(r->prepend.size());
    }
    return std::nullopt;
}

Result<size_t> XattrMap::list_to_guest(const char* host, size_t host_len, char* out,
                                       size_t out_size) const noexcept {
    size_t len = 0;
    size_t at = 0;
    while (at < host_len) {
        const void* nul = std::memchr(host + at, '\0', host_len - at);
        const size_t end =
            nul != nullptr ? static_cast<size_t>(static_cast<const char*>(nul) - host) : host_len;
        const std::string_view name(host + at, end - at);
        at = end + 1;
        if (name.empty()) {
            continue;
        }
        const std::optional<std::string_view> g = to_guest(name);
        if (!g) {
            continue;
        }
        if (out_size != 0) {
            if (g->size() + 1 > out_size - len) {
                return make_err(ERANGE);
            }
            std::memcpy(out + len, g->data(), g->size());
            out[len + g->size()] = '\0';
        }
        len += g->size() + 1;
    }
    return len;
}

Status xattr_name_to_host(const XattrMap* map, std::string_view guest,
                          char (&out)[XATTR_NAME_MAX + 1]) noexcept {
    if (map != nullptr) {
        return map->to_host(guest, out);
    }
    if (guest.find('\0') != std::string_view::npos) {
        return make_err(EINVAL);
    }
    return copy_name(guest, {}, out);
}

} // namespace vdh::virtiofs::passthrough

// SPDX-License-Identifier: MIT
// JSON text for the control socket's replies: a string literal, and the {"error":...} reply.
// Cold path only (allocates).
#pragma once

#include <cstdio>
#include <string>

namespace vdh {

/// \p s as a JSON string literal, quotes included.
inline std::string json_string(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (c == '\n') {
            out += "\\n";
        } else if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof(buf), "\\u%04x", c);
            out += buf;
        } else {
            out += c;
        }
    }
    return out + "\"";
}

/// {"error":MESSAGE}
inline std::string json_error(const std::string& message) {
    return "{\"error\":" + json_string(message) + "}";
}

} // namespace vdh

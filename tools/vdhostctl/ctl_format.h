// SPDX-License-Identifier: MIT
// vdhostctl's output: the control socket's JSON replies as tables, and the YAML of a
// device built from command-line flags.
#pragma once

#include <string>
#include <vector>

namespace vdh::ctl {

/// A `list` reply as a table (NAME TYPE STATE GUEST LCORES ORIGIN SOCKET). Throws
/// std::runtime_error on a reply it cannot read.
std::string format_list(const std::string& json);

/// A `stats` reply as a table: one row per device (state, sessions, requests, errors,
/// bytes), then one per queue; only device \p only when not empty.
std::string format_stats(const std::string& json, const std::string& only);

/// A `reload` reply: what was added, removed, replaced, kept and refused (with reasons).
std::string format_reload(const std::string& json);

/// The error text of a reply ({"error":...}), or "" when it is not an error.
std::string reply_error(const std::string& json);

/// True when a reload reply refused something or failed.
bool reload_incomplete(const std::string& json);

/// A device entry in YAML from flags: name, type, socket, lcore (may be empty) and the
/// plugin's settings as KEY=VALUE (VALUE is a YAML scalar or flow collection).
std::string device_yaml(const std::string& name, const std::string& type,
                        const std::string& socket, const std::string& lcore,
                        const std::vector<std::string>& settings);

} // namespace vdh::ctl

// SPDX-License-Identifier: MIT
// Control socket commands (see control_commands.h).
#include "control_commands.h"

#include <unistd.h>

#include <sstream>
#include <vector>

#include "config.h"
#include "runtime.h"

namespace vdh {
namespace {

std::string quote(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
        }
        if (c == '\n') {
            out += "\\n";
        } else if (static_cast<unsigned char>(c) < 0x20) {
            out += ' ';
        } else {
            out += c;
        }
    }
    return out + "\"";
}

std::string error(const std::string& m) { return "{\"error\":" + quote(m) + "}"; }

std::vector<std::string> words(const std::string& line) {
    std::istringstream in(line);
    std::vector<std::string> w;
    for (std::string s; in >> s;) {
        w.push_back(s);
    }
    return w;
}

} // namespace

std::string run_control_command(Runtime& rt, const std::string& line, const std::string& body) {
    std::vector<std::string> w = words(line);
    if (w.empty()) {
        return error("empty command (expected ping, stats, list, add, remove or reload)");
    }
    const std::string& cmd = w[0];
    if (cmd == "ping" && w.size() == 1) {
        return "{\"pong\":true}";
    }
    if (cmd == "stats" && w.size() == 1) {
        return rt.stats_json();
    }
    if (cmd == "list" && w.size() == 1) {
        return rt.list_json();
    }
    if (cmd == "remove") {
        if (w.size() != 2) {
            return error("usage: remove NAME");
        }
        std::string err;
        if (!rt.remove(w[1], &err)) {
            return error(err);
        }
        return "{\"removed\":" + quote(w[1]) + "}";
    }
    if (cmd == "add") {
        if (w.size() > 2 || body.empty()) {
            return error("usage: add [ORIGIN] with the device's YAML as the body");
        }
        std::string origin = w.size() == 2 ? w[1] : "add";
        ConfigError cerr;
        unsigned cpus = static_cast<unsigned>(sysconf(_SC_NPROCESSORS_ONLN));
        auto dev = parse_device_snippet(body, origin, rt.config().host, cpus, &cerr);
        if (!dev) {
            return error(cerr.message);
        }
        std::string err;
        if (!rt.add(*dev, DeviceOrigin::Control, &err)) {
            return error(err);
        }
        return "{\"added\":" + quote(dev->name) + "}";
    }
    if (cmd == "qos") {
        return rt.qos(line);
    }
    if (cmd == "reload" && w.size() == 1) {
        return rt.reload(rt.config().path).json();
    }
    return error("unknown command \"" + line.substr(0, 64) +
                 "\" (expected ping, stats, list, add, remove or reload)");
}

} // namespace vdh

// SPDX-License-Identifier: MIT
// Control socket commands (see control_commands.h).
#include "control_commands.h"

#include <unistd.h>

#include <sstream>
#include <vector>

#include "config.h"
#include "json_text.h"
#include "runtime.h"

namespace vdh {
namespace {

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
        return json_error("empty command (expected ping, stats, list, add, remove or reload)");
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
            return json_error("usage: remove NAME");
        }
        std::string err;
        if (!rt.remove(w[1], &err)) {
            return json_error(err);
        }
        return "{\"removed\":" + json_string(w[1]) + "}";
    }
    if (cmd == "add") {
        if (w.size() > 2 || body.empty()) {
            return json_error("usage: add [ORIGIN] with the device's YAML as the body");
        }
        std::string origin = w.size() == 2 ? w[1] : "add";
        ConfigError cerr;
        unsigned cpus = static_cast<unsigned>(sysconf(_SC_NPROCESSORS_ONLN));
        auto dev = parse_device_snippet(body, origin, rt.config().host, cpus, &cerr);
        if (!dev) {
            return json_error(cerr.message);
        }
        std::string err;
        if (!rt.add(*dev, DeviceOrigin::Control, &err)) {
            return json_error(err);
        }
        return "{\"added\":" + json_string(dev->name) + "}";
    }
    if (cmd == "qos") {
        return rt.qos(line);
    }
    if (cmd == "reload" && w.size() == 1) {
        return rt.reload(rt.config().path).json();
    }
    return json_error("unknown command \"" + line.substr(0, 64) +
                 "\" (expected ping, stats, list, add, remove or reload)");
}

} // namespace vdh

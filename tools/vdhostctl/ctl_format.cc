// SPDX-License-Identifier: MIT
// Tables of the control socket's replies, and device YAML from flags (see ctl_format.h).
#include "ctl_format.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <sstream>
#include <stdexcept>

namespace vdh::ctl {
namespace {

YAML::Node parse(const std::string& json) {
    try {
        return YAML::Load(json); // JSON is YAML's flow style
    } catch (const YAML::Exception& e) {
        throw std::runtime_error("cannot read the reply: " + e.msg);
    }
}

std::string str(const YAML::Node& n) { return n && n.IsScalar() ? n.Scalar() : ""; }

unsigned long long num(const YAML::Node& n) {
    return n && n.IsScalar() ? std::stoull(n.Scalar()) : 0;
}

/// Left-aligned columns, two spaces apart.
std::string table(const std::vector<std::vector<std::string>>& rows) {
    std::vector<size_t> w;
    for (const auto& r : rows) {
        w.resize(std::max(w.size(), r.size()), 0);
        for (size_t i = 0; i < r.size(); ++i) {
            w[i] = std::max(w[i], r[i].size());
        }
    }
    std::string out;
    for (const auto& r : rows) {
        std::string line;
        for (size_t i = 0; i < r.size(); ++i) {
            line += r[i];
            if (i + 1 < r.size()) {
                line += std::string(w[i] - r[i].size() + 2, ' ');
            }
        }
        out += line + "\n";
    }
    return out;
}

std::string human_bytes(unsigned long long b) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = static_cast<double>(b);
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        ++u;
    }
    std::ostringstream o;
    o.precision(u == 0 ? 0 : 1);
    o << std::fixed << v << " " << units[u];
    return o.str();
}

} // namespace

std::string reply_error(const std::string& json) {
    YAML::Node n = parse(json);
    return n.IsMap() && n["error"] ? str(n["error"]) : "";
}

std::string format_list(const std::string& json) {
    YAML::Node n = parse(json);
    std::vector<std::vector<std::string>> rows = {
        {"NAME", "TYPE", "STATE", "GUEST", "LCORES", "ORIGIN", "SOCKET"}};
    for (const auto& d : n["devices"]) {
        std::string lcores;
        for (const auto& l : d["lcores"]) {
            lcores += (lcores.empty() ? "" : ",") + l.Scalar();
        }
        rows.push_back({str(d["name"]), str(d["type"]), str(d["state"]),
                        str(d["connected"]) == "true" ? "yes" : "no", lcores, str(d["origin"]),
                        str(d["socket"])});
    }
    return table(rows);
}

std::string format_stats(const std::string& json, const std::string& only) {
    YAML::Node n = parse(json);
    std::vector<std::vector<std::string>> devs = {
        {"DEVICE", "STATE", "SESSIONS", "REQUESTS", "ERRORS", "IN", "OUT", "STUCK"}};
    std::vector<std::vector<std::string>> queues = {
        {"DEVICE", "QUEUE", "CPU", "REQUESTS", "BATCHES", "INFLIGHT", "BAD_CHAINS", "KICKS",
         "NOTIFIES"}};
    bool found = only.empty();
    for (const auto& d : n["devices"]) {
        std::string name = str(d["name"]);
        if (!only.empty() && name != only) {
            continue;
        }
        found = true;
        unsigned long long req = 0, errs = 0, in = 0, out = 0;
        for (const auto& q : d["queues"]) {
            req += num(q["requests"]);
            errs += num(q["errors"]);
            in += num(q["bytes_in"]);
            out += num(q["bytes_out"]);
            queues.push_back({name, str(q["index"]), str(q["cpu"]), str(q["requests"]),
                              str(q["batches"]), str(q["inflight"]), str(q["bad_chains"]),
                              str(q["kicks"]), str(q["notifies"])});
        }
        devs.push_back({name, str(d["state"]), str(d["sessions"]), std::to_string(req),
                        std::to_string(errs), human_bytes(in), human_bytes(out),
                        str(d["stuck_requests"])});
    }
    if (!found) {
        throw std::runtime_error("no device named \"" + only + "\"");
    }
    std::string s = table(devs);
    if (queues.size() > 1) {
        s += "\n" + table(queues);
    }
    if (only.empty() && n["lcores"] && n["lcores"].size() > 0) {
        std::vector<std::vector<std::string>> lc = {{"LCORE", "CPU", "LOOPS", "SLEEPS"}};
        for (const auto& l : n["lcores"]) {
            lc.push_back({str(l["lcore"]), str(l["cpu"]), str(l["loops"]), str(l["sleeps"])});
        }
        s += "\n" + table(lc);
    }
    return s;
}

bool reload_incomplete(const std::string& json) {
    YAML::Node n = parse(json);
    return !n.IsMap() || n["error"] || (n["refused"] && n["refused"].size() > 0);
}

std::string format_reload(const std::string& json) {
    YAML::Node n = parse(json);
    if (n["error"]) {
        return "reload failed, nothing changed: " + str(n["error"]) + "\n";
    }
    std::string s;
    for (const char* k : {"added", "removed", "replaced", "qos_changed"}) {
        std::string names;
        for (const auto& x : n[k]) {
            names += (names.empty() ? "" : ", ") + x.Scalar();
        }
        s += std::string(k) + ": " + (names.empty() ? "-" : names) + "\n";
    }
    s += "unchanged: " + str(n["unchanged"]) + "\n";
    for (const auto& x : n["refused"]) {
        s += "refused: " + x.Scalar() + "\n";
    }
    return s;
}

std::string device_yaml(const std::string& name, const std::string& type,
                        const std::string& socket, const std::string& lcore,
                        const std::vector<std::string>& settings) {
    YAML::Emitter e;
    e << YAML::BeginMap;
    e << YAML::Key << "name" << YAML::Value << name;
    e << YAML::Key << "type" << YAML::Value << type;
    e << YAML::Key << "socket" << YAML::Value << socket;
    if (!lcore.empty()) {
        e << YAML::Key << "lcore" << YAML::Value << YAML::Load(lcore);
    }
    if (!settings.empty()) {
        e << YAML::Key << "config" << YAML::Value << YAML::BeginMap;
        for (const std::string& kv : settings) {
            size_t eq = kv.find('=');
            if (eq == std::string::npos || eq == 0) {
                throw std::runtime_error("--set " + kv + ": expected KEY=VALUE");
            }
            YAML::Node v;
            try {
                v = YAML::Load(kv.substr(eq + 1));
            } catch (const YAML::Exception& x) {
                throw std::runtime_error("--set " + kv + ": " + x.msg);
            }
            e << YAML::Key << kv.substr(0, eq) << YAML::Value << v;
        }
        e << YAML::EndMap;
    }
    e << YAML::EndMap;
    return std::string(e.c_str()) + "\n";
}

} // namespace vdh::ctl

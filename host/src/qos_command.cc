// SPDX-License-Identifier: MIT
// `qos NAME [key=value...]` for the control socket. Cold path.
#include "qos_command.h"

#include <sstream>

#include "device.h"
#include "qos_config.h"
#include "vdh/yaml_util.h"

namespace vdh {
namespace {

std::string error_json(const std::string& message) {
    std::string out = "{\"error\":\"";
    for (char c : message) {
        if (c == '"' || c == '\\') {
            out += '\\';
        }
        out += static_cast<unsigned char>(c) < 0x20 ? ' ' : c;
    }
    return out + "\"}";
}

bool parse_count(const std::string& v, uint64_t* out) {
    return yaml_messages::parse_decimal(v, out) == yaml_messages::Decimal::Ok;
}

} // namespace

std::string qos_command(const std::string& command, const std::vector<Device*>& devices) {
    std::istringstream in(command);
    std::string word;
    std::string name;
    in >> word >> name;
    if (word != "qos" || name.empty()) {
        return error_json("usage: qos DEVICE [iops=N] [bandwidth=RATE] [burst_ms=N]");
    }
    Device* dev = nullptr;
    for (Device* d : devices) {
        if (d->name() == name) {
            dev = d;
        }
    }
    if (dev == nullptr) {
        return error_json("no device named " + name);
    }
    QosConfig c = dev->qos();
    bool changed = false;
    std::string arg;
    while (in >> arg) {
        auto eq = arg.find('=');
        std::string key = arg.substr(0, eq);
        std::string value = eq == std::string::npos ? "" : arg.substr(eq + 1);
        uint64_t v = 0;
        if (key == "iops" && parse_count(value, &v)) {
            c.iops = v;
        } else if (key == "burst_ms" && parse_count(value, &v) && v <= UINT32_MAX) {
            c.burst_ms = static_cast<uint32_t>(v);
        } else if (key == "bandwidth") {
            std::string why;
            if (!parse_byte_rate(value, &v, &why)) {
                return error_json("bandwidth: " + why);
            }
            c.bandwidth = v;
        } else {
            return error_json("bad argument " + arg +
                              " (expected iops=N, bandwidth=RATE or burst_ms=N)");
        }
        changed = true;
    }
    if (std::string why = qos_check(c); !why.empty()) {
        return error_json(why);
    }
    if (changed) {
        dev->set_qos(c);
    }
    return "{\"device\":\"" + name + "\",\"qos\":" + qos_json(dev->qos()) + "}";
}

} // namespace vdh

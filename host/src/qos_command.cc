// SPDX-License-Identifier: MIT
// `qos NAME [key=value...]` for the control socket. Cold path.
#include "qos_command.h"

#include <sstream>

#include "device.h"
#include "json_text.h"
#include "qos_config.h"
#include "vdh/yaml_util.h"

namespace vdh {
namespace {

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
        return json_error("usage: qos DEVICE [iops=N] [bandwidth=RATE] [burst_ms=N]");
    }
    Device* dev = nullptr;
    for (Device* d : devices) {
        if (d->name() == name) {
            dev = d;
        }
    }
    if (dev == nullptr) {
        return json_error("no device named " + name);
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
                return json_error("bandwidth: " + why);
            }
            c.bandwidth = v;
        } else {
            return json_error("bad argument " + arg +
                              " (expected iops=N, bandwidth=RATE or burst_ms=N)");
        }
        changed = true;
    }
    if (std::string why = qos_check(c); !why.empty()) {
        return json_error(why);
    }
    if (changed) {
        dev->set_qos(c);
    }
    return "{\"device\":\"" + name + "\",\"qos\":" + qos_json(dev->qos()) + "}";
}

} // namespace vdh

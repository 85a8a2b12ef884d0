// SPDX-License-Identifier: MIT
// The /vdhost/... DPDK telemetry commands (see dpdk_telemetry.h).
#include "dpdk_telemetry.h"

#include <rte_cycles.h>
#include <rte_telemetry.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <map>

#include "poll_lcore.h"

namespace vdh {
namespace {

std::atomic<const MetricsRegistry*> g_registry{nullptr};

uint64_t to_u64(double v) { return v <= 0 ? 0 : static_cast<uint64_t>(std::llround(v)); }

int cmd_lcores(const char* /*cmd*/, const char* /*params*/, rte_tel_data* d) {
    rte_tel_data_start_dict(d);
    const MetricsRegistry* reg = g_registry.load(std::memory_order_acquire);
    if (reg == nullptr) {
        return 0;
    }
    // lcore samples: busy/idle seconds, loops, sleeps, labelled lcore and cpu.
    std::map<std::string, rte_tel_data*> per_lcore;
    std::vector<std::string> order;
    const double hz = static_cast<double>(rte_get_tsc_hz());
    for (const MetricSample& s : reg->collect_lcores()) {
        const std::string& id = s.labels.at(0).second;
        rte_tel_data*& c = per_lcore[id];
        if (c == nullptr) {
            c = rte_tel_data_alloc();
            if (c == nullptr) {
                return -ENOMEM;
            }
            rte_tel_data_start_dict(c);
            rte_tel_data_add_dict_u64(c, "cpu", std::stoull(s.labels.at(1).second));
            rte_tel_data_add_dict_u64(c, "tsc_hz", static_cast<uint64_t>(hz));
            order.push_back(id);
        }
        std::string key = s.name.substr(sizeof("vdhost_lcore_") - 1);
        if (key.size() > 14 && key.compare(key.size() - 14, 14, "_seconds_total") == 0) {
            key = key.substr(0, key.size() - 14) + "_cycles"; // busy_cycles, idle_cycles
            rte_tel_data_add_dict_u64(c, key.c_str(), to_u64(s.value * hz));
        } else {
            rte_tel_data_add_dict_u64(c, telemetry_key(key).c_str(), to_u64(s.value));
        }
    }
    for (const std::string& id : order) {
        rte_tel_data_add_dict_container(d, telemetry_key(id).c_str(), per_lcore[id], 0);
    }
    return 0;
}

int cmd_devices(const char* /*cmd*/, const char* /*params*/, rte_tel_data* d) {
    rte_tel_data_start_array(d, RTE_TEL_STRING_VAL);
    const MetricsRegistry* reg = g_registry.load(std::memory_order_acquire);
    if (reg == nullptr) {
        return 0;
    }
    for (const std::string& n : reg->device_names()) {
        rte_tel_data_add_array_string(d, n.c_str());
    }
    return 0;
}

int cmd_device(const char* /*cmd*/, const char* params, rte_tel_data* d) {
    const MetricsRegistry* reg = g_registry.load(std::memory_order_acquire);
    if (reg == nullptr || params == nullptr || *params == '\0') {
        return -EINVAL;
    }
    std::vector<MetricSample> samples;
    if (!reg->collect_device(params, &samples)) {
        return -ENODEV;
    }
    fill_telemetry_device(samples, d);
    return 0;
}

} // namespace

std::string telemetry_key(const std::string& s) {
    std::string k = s.substr(0, RTE_TEL_MAX_STRING_LEN - 1);
    for (char& ch : k) {
        const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                        (ch >= '0' && ch <= '9') || ch == '_' || ch == '/';
        if (!ok) {
            ch = '_';
        }
    }
    return k;
}

void fill_telemetry_device(const std::vector<MetricSample>& samples, rte_tel_data* d) {
    rte_tel_data_start_dict(d);
    // family key → its dict (families with labels besides device), in first-seen order.
    std::vector<std::pair<std::string, rte_tel_data*>> families;
    auto family = [&](const std::string& key) -> rte_tel_data* {
        for (auto& [k, c] : families) {
            if (k == key) {
                return c;
            }
        }
        rte_tel_data* c = rte_tel_data_alloc();
        if (c != nullptr) {
            rte_tel_data_start_dict(c);
            families.emplace_back(key, c);
        }
        return c;
    };
    for (const MetricSample& s : samples) {
        std::string name = s.name.rfind("vdhost_", 0) == 0 ? s.name.substr(7) : s.name;
        std::string sub;
        for (const auto& [k, v] : s.labels) {
            if (k == "device") {
                continue;
            }
            sub += (sub.empty() ? "" : "/") + v;
        }
        if (s.kind == MetricKind::Gauge && name == "device_info") {
            for (const auto& [k, v] : s.labels) {
                if (k != "device") {
                    rte_tel_data_add_dict_string(d, telemetry_key(k).c_str(), v.c_str());
                }
            }
            continue;
        }
        auto put = [&](const std::string& fam, uint64_t v) {
            if (sub.empty()) {
                rte_tel_data_add_dict_u64(d, telemetry_key(fam).c_str(), v);
            } else if (rte_tel_data* c = family(fam)) {
                rte_tel_data_add_dict_u64(c, telemetry_key(sub).c_str(), v);
            }
        };
        if (s.kind == MetricKind::Histogram) {
            std::string base = name.size() > 8 && name.compare(name.size() - 8, 8, "_seconds") == 0
                                   ? name.substr(0, name.size() - 8)
                                   : name;
            put(base + "_count", to_u64(s.value));
            put(base + "_sum_ns", to_u64(s.sum * 1e9));
        } else {
            put(name, to_u64(s.value));
        }
    }
    for (auto& [k, c] : families) {
        rte_tel_data_add_dict_container(d, telemetry_key(k).c_str(), c, 0);
    }
}

bool register_telemetry_commands(const MetricsRegistry* reg, std::string* err) {
    g_registry.store(reg, std::memory_order_release);
    static bool registered = false;
    if (registered) {
        return true;
    }
    struct Cmd {
        const char* name;
        telemetry_cb fn;
        const char* help;
    };
    const Cmd cmds[] = {
        {"/vdhost/lcores", cmd_lcores,
         "Poll lcores: cpu, busy and idle TSC cycles, loops, sleeps. No parameters"},
        {"/vdhost/devices", cmd_devices, "Names of the vdhost devices. No parameters"},
        {"/vdhost/device", cmd_device,
         "One device's counters and latency summaries. Parameter: device name"},
    };
    for (const Cmd& c : cmds) {
        int rc = rte_telemetry_register_cmd(c.name, c.fn, c.help);
        if (rc != 0) {
            *err = std::string("cannot register telemetry command ") + c.name + ": " +
                   std::to_string(rc);
            return false;
        }
    }
    registered = true;
    return true;
}

} // namespace vdh

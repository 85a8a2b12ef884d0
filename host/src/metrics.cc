// SPDX-License-Identifier: MIT
// Reading the host's counters into MetricSamples, and the Prometheus text format.
#include "metrics.h"

#include <rte_cycles.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "device.h"
#include "poll_lcore.h"
#include "queue_runtime.h"

namespace vdh {
namespace {

using Labels = std::vector<std::pair<std::string, std::string>>;

void add(std::vector<MetricSample>& out, const char* name, const char* help, MetricKind kind,
         Labels labels, double v) {
    MetricSample s;
    s.name = name;
    s.help = help;
    s.kind = kind;
    s.labels = std::move(labels);
    s.value = v;
    out.push_back(std::move(s));
}

/// Parses a plugin's `k="v",k2="v2"` label text (values without '"' or '\\').
void parse_labels(const char* text, Labels& out) {
    if (text == nullptr) {
        return;
    }
    std::string s(text);
    size_t i = 0;
    while (i < s.size()) {
        size_t eq = s.find('=', i);
        if (eq == std::string::npos || eq + 1 >= s.size() || s[eq + 1] != '"') {
            return;
        }
        size_t end = s.find('"', eq + 2);
        if (end == std::string::npos) {
            return;
        }
        out.emplace_back(s.substr(i, eq - i), s.substr(eq + 2, end - eq - 2));
        i = end + 1;
        if (i < s.size() && s[i] == ',') {
            ++i;
        }
    }
}

struct EmitCtx {
    std::vector<MetricSample>* out;
    const std::string* device;
};

void emit_plugin_metric(void* p, const vdh_metric* m) {
    auto* c = static_cast<EmitCtx*>(p);
    if (m == nullptr || m->name == nullptr) {
        return;
    }
    MetricSample s;
    s.name = std::string("vdhost_") + m->name;
    s.help = m->help != nullptr ? m->help : "";
    s.kind = m->kind == VDH_METRIC_HISTOGRAM ? MetricKind::Histogram
             : m->kind == VDH_METRIC_GAUGE   ? MetricKind::Gauge
                                             : MetricKind::Counter;
    s.labels.emplace_back("device", *c->device);
    parse_labels(m->labels, s.labels);
    s.value = static_cast<double>(m->value);
    if (s.kind == MetricKind::Histogram) {
        s.sum = m->sum;
        for (uint32_t i = 0; i < m->n_buckets && m->bucket_le != nullptr && m->buckets != nullptr;
             ++i) {
            s.buckets.emplace_back(m->bucket_le[i], m->buckets[i]);
        }
    }
    c->out->push_back(std::move(s));
}

std::string format_double(double v) {
    if (std::isinf(v)) {
        return v > 0 ? "+Inf" : "-Inf";
    }
    if (v == std::floor(v) && std::fabs(v) < 1e15) {
        char b[32];
        std::snprintf(b, sizeof(b), "%.0f", v);
        return b;
    }
    char b[32];
    std::snprintf(b, sizeof(b), "%.9g", v);
    return b;
}

void write_labels(std::string& o, const Labels& labels, const char* extra_name = nullptr,
                  const std::string& extra_value = {}) {
    if (labels.empty() && extra_name == nullptr) {
        return;
    }
    o += '{';
    bool first = true;
    for (const auto& [k, v] : labels) {
        o += first ? "" : ",";
        o += k + "=\"" + prometheus_escape(v) + "\"";
        first = false;
    }
    if (extra_name != nullptr) {
        o += first ? "" : ",";
        o += std::string(extra_name) + "=\"" + extra_value + "\"";
    }
    o += '}';
}

const char* type_name(MetricKind k) {
    switch (k) {
    case MetricKind::Counter: return "counter";
    case MetricKind::Gauge: return "gauge";
    case MetricKind::Histogram: return "histogram";
    }
    return "untyped";
}

} // namespace

std::string prometheus_escape(const std::string& v) {
    std::string o;
    o.reserve(v.size());
    for (char ch : v) {
        if (ch == '\\') {
            o += "\\\\";
        } else if (ch == '"') {
            o += "\\\"";
        } else if (ch == '\n') {
            o += "\\n";
        } else {
            o += ch;
        }
    }
    return o;
}

void collect_lcore_metrics(const PollLcore& l, double tsc_hz, std::vector<MetricSample>& out) {
    Labels lb = {{"lcore", std::to_string(l.lcore_id())}, {"cpu", std::to_string(l.cpu())}};
    const double hz = tsc_hz > 0 ? tsc_hz : 1;
    add(out, "vdhost_lcore_busy_seconds_total",
        "Time the poll lcore spent in passes that found work", MetricKind::Counter, lb,
        static_cast<double>(l.busy_cycles()) / hz);
    add(out, "vdhost_lcore_idle_seconds_total",
        "Time the poll lcore spent in passes without work, spinning or asleep",
        MetricKind::Counter, lb, static_cast<double>(l.idle_cycles()) / hz);
    add(out, "vdhost_lcore_loops_total", "Poll loop passes", MetricKind::Counter, lb,
        static_cast<double>(l.loops()));
    add(out, "vdhost_lcore_sleeps_total", "Sleeps on kick eventfds", MetricKind::Counter, lb,
        static_cast<double>(l.sleeps()));
}

void collect_device_metrics(const Device& d, std::vector<MetricSample>& out) {
    const std::string& name = d.name();
    add(out, "vdhost_device_info", "Device type and state (value 1)", MetricKind::Gauge,
        {{"device", name}, {"type", d.config().type}, {"state", device_state_name(d.state())}},
        1);
    const uint16_t nq = d.queues_seen();
    struct Field {
        const char* name;
        const char* help;
        std::atomic<uint64_t> QueueStats::*f;
    };
    static const Field fields[] = {
        {"vdhost_queue_requests_total", "Requests completed", &QueueStats::requests},
        {"vdhost_queue_read_bytes_total", "Guest-to-device bytes of completed requests",
         &QueueStats::bytes_in},
        {"vdhost_queue_written_bytes_total", "Device-to-guest bytes written",
         &QueueStats::bytes_out},
        {"vdhost_queue_errors_total", "Requests the plugin failed with an errno",
         &QueueStats::errors},
        {"vdhost_queue_async_total", "Requests the plugin completed later", &QueueStats::async},
        {"vdhost_queue_batches_total", "Passes that took requests", &QueueStats::batches},
        {"vdhost_queue_ring_full_total",
         "Passes that stopped at their limit with requests still waiting in the ring",
         &QueueStats::ring_full},
        {"vdhost_queue_bad_chains_total", "Malformed descriptor chains refused",
         &QueueStats::bad_chains},
        {"vdhost_queue_broken_total", "Times the ring was found corrupt", &QueueStats::broken},
        {"vdhost_queue_kicks_total", "Guest kicks seen while sleeping", &QueueStats::kicks},
        {"vdhost_queue_notifies_total", "Interrupts sent to the guest", &QueueStats::notifies},
    };
    for (const Field& f : fields) {
        for (uint16_t q = 0; q < nq; ++q) {
            const QueueStats& s = d.queue_stats(q);
            add(out, f.name, f.help, MetricKind::Counter,
                {{"device", name}, {"queue", std::to_string(q)}},
                static_cast<double>((s.*(f.f)).load(std::memory_order_relaxed)));
        }
    }
    const vdh_device_ops* ops = d.ops();
    if (ops != nullptr && d.plugin_dev() != nullptr && VDH_OPS_HAS(ops, metrics)) {
        EmitCtx c{&out, &name};
        ops->metrics(d.plugin_dev(), emit_plugin_metric, &c);
    }
}

std::string format_prometheus(const std::vector<MetricSample>& samples) {
    // Families in order of first appearance; each family's samples in their order.
    std::vector<const std::string*> order;
    std::map<std::string, std::vector<const MetricSample*>> by_family;
    for (const MetricSample& s : samples) {
        auto& v = by_family[s.name];
        if (v.empty()) {
            order.push_back(&s.name);
        }
        v.push_back(&s);
    }
    std::string o;
    for (const std::string* fam : order) {
        const auto& v = by_family[*fam];
        o += "# HELP " + *fam + " " + v.front()->help + "\n";
        o += "# TYPE " + *fam + " " + type_name(v.front()->kind) + "\n";
        for (const MetricSample* s : v) {
            if (s->kind != MetricKind::Histogram) {
                o += *fam;
                write_labels(o, s->labels);
                o += " " + format_double(s->value) + "\n";
                continue;
            }
            for (const auto& [le, n] : s->buckets) {
                o += *fam + "_bucket";
                write_labels(o, s->labels, "le", format_double(le));
                o += " " + std::to_string(n) + "\n";
            }
            o += *fam + "_bucket";
            write_labels(o, s->labels, "le", "+Inf");
            o += " " + format_double(s->value) + "\n";
            o += *fam + "_sum";
            write_labels(o, s->labels);
            o += " " + format_double(s->sum) + "\n";
            o += *fam + "_count";
            write_labels(o, s->labels);
            o += " " + format_double(s->value) + "\n";
        }
    }
    return o;
}

void MetricsRegistry::add_lcore(const PollLcore* l) {
    std::lock_guard<std::mutex> g(mu_);
    lcores_.push_back(l);
}

void MetricsRegistry::remove_lcore(const PollLcore* l) {
    std::lock_guard<std::mutex> g(mu_);
    lcores_.erase(std::remove(lcores_.begin(), lcores_.end(), l), lcores_.end());
}

void MetricsRegistry::add_device(const Device* d) {
    std::lock_guard<std::mutex> g(mu_);
    devices_.push_back(d);
}

void MetricsRegistry::remove_device(const Device* d) {
    std::lock_guard<std::mutex> g(mu_);
    devices_.erase(std::remove(devices_.begin(), devices_.end(), d), devices_.end());
}

void MetricsRegistry::clear() {
    std::lock_guard<std::mutex> g(mu_);
    lcores_.clear();
    devices_.clear();
}

std::vector<MetricSample> MetricsRegistry::collect_lcores() const {
    std::vector<MetricSample> out;
    const double hz = static_cast<double>(rte_get_tsc_hz());
    std::lock_guard<std::mutex> g(mu_);
    for (const PollLcore* l : lcores_) {
        collect_lcore_metrics(*l, hz, out);
    }
    return out;
}

std::vector<MetricSample> MetricsRegistry::collect() const {
    std::vector<MetricSample> out = collect_lcores();
    std::lock_guard<std::mutex> g(mu_);
    for (const Device* d : devices_) {
        collect_device_metrics(*d, out);
    }
    return out;
}

bool MetricsRegistry::collect_device(const std::string& name,
                                     std::vector<MetricSample>* out) const {
    std::lock_guard<std::mutex> g(mu_);
    for (const Device* d : devices_) {
        if (d->name() == name) {
            collect_device_metrics(*d, *out);
            return true;
        }
    }
    return false;
}

std::vector<std::string> MetricsRegistry::device_names() const {
    std::lock_guard<std::mutex> g(mu_);
    std::vector<std::string> v;
    for (const Device* d : devices_) {
        v.push_back(d->name());
    }
    return v;
}

} // namespace vdh

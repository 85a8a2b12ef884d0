// SPDX-License-Identifier: MIT
// Metrics: the registry of what the host reports (poll lcores and devices, added and
// removed at run time) and the samples read from them: per lcore busy and idle time, per
// queue transport counters, and each plugin's own metrics (vdh_device_ops::metrics). Readers
// are DPDK's telemetry thread (dpdk_telemetry.h) and the Prometheus endpoint
// (metrics_server.h); they only load counters the poll lcores store, and take only this
// registry's lock and the device's statistics lock, never one a poll lcore takes.
// Not for the formatting of the control socket's JSON (Device::stats_json).
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace vdh {

class Device;
class PollLcore;

enum class MetricKind : uint8_t { Counter, Gauge, Histogram };

/// One sample: a family name ("vdhost_queue_requests_total"), its labels and value.
struct MetricSample {
    std::string name;
    std::string help;
    MetricKind kind = MetricKind::Counter;
    /// label name → value, in order (device first for device metrics).
    std::vector<std::pair<std::string, std::string>> labels;
    double value = 0;  ///< counter/gauge; histogram: number of observations
    double sum = 0;    ///< histogram only
    /// Histogram only: (upper bound, cumulative count), increasing bounds; +Inf implied.
    std::vector<std::pair<double, uint64_t>> buckets;
};

/// Appends lcore \p l's samples (labels lcore, cpu).
void collect_lcore_metrics(const PollLcore& l, double tsc_hz, std::vector<MetricSample>& out);
/// Appends device \p d's samples: state, per-queue counters and the plugin's metrics.
void collect_device_metrics(const Device& d, std::vector<MetricSample>& out);

/// Prometheus text exposition format 0.0.4: samples grouped by family (in the order each
/// family first appears), one HELP and TYPE line per family.
std::string format_prometheus(const std::vector<MetricSample>& samples);

/// A label value escaped for the exposition format (\\, " and line breaks).
std::string prometheus_escape(const std::string& v);

/// What the host reports. Any thread.
class MetricsRegistry {
public:
    void add_lcore(const PollLcore* l);
    void remove_lcore(const PollLcore* l);
    /// A device is reported from add_device() until remove_device() returns; remove it
    /// before destroying it.
    void add_device(const Device* d);
    void remove_device(const Device* d);
    /// Forgets everything (waits for readers in progress).
    void clear();

    /// Every sample (lcores, then devices in the order they were added).
    std::vector<MetricSample> collect() const;
    /// Lcore samples only.
    std::vector<MetricSample> collect_lcores() const;
    /// Samples of the device named \p name; false if there is none.
    bool collect_device(const std::string& name, std::vector<MetricSample>* out) const;
    std::vector<std::string> device_names() const;

private:
    mutable std::mutex mu_; ///< guards the lists (and keeps a device alive while read). Leaf.
    std::vector<const PollLcore*> lcores_;
    std::vector<const Device*> devices_;
};

} // namespace vdh

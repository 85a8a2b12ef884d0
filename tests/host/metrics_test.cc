// SPDX-License-Identifier: MIT
// Tests of host/src/metrics.cc: the Prometheus text format (families grouped once, labels
// escaped, histograms as _bucket/_sum/_count) and the lcore samples.
#include "metrics.h"

#include <gtest/gtest.h>

namespace vdh {
namespace {

MetricSample counter(const std::string& name, std::vector<std::pair<std::string, std::string>> l,
                     double v) {
    MetricSample s;
    s.name = name;
    s.help = "help of " + name;
    s.kind = MetricKind::Counter;
    s.labels = std::move(l);
    s.value = v;
    return s;
}

TEST(Metrics, FamiliesAreGroupedWithOneHelpAndTypeLine) {
    // Two devices report the same family: their samples must be one group.
    std::vector<MetricSample> v = {
        counter("vdhost_a_total", {{"device", "fs0"}}, 1),
        counter("vdhost_b_total", {{"device", "fs0"}}, 2),
        counter("vdhost_a_total", {{"device", "fs1"}}, 3),
    };
    EXPECT_EQ(format_prometheus(v),
              "# HELP vdhost_a_total help of vdhost_a_total\n"
              "# TYPE vdhost_a_total counter\n"
              "vdhost_a_total{device=\"fs0\"} 1\n"
              "vdhost_a_total{device=\"fs1\"} 3\n"
              "# HELP vdhost_b_total help of vdhost_b_total\n"
              "# TYPE vdhost_b_total counter\n"
              "vdhost_b_total{device=\"fs0\"} 2\n");
}

TEST(Metrics, LabelValuesAreEscaped) {
    EXPECT_EQ(prometheus_escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    std::vector<MetricSample> v = {counter("vdhost_x", {{"device", "q\""}}, 5)};
    EXPECT_NE(format_prometheus(v).find("vdhost_x{device=\"q\\\"\"} 5\n"), std::string::npos);
}

TEST(Metrics, UnlabelledSampleHasNoBraces) {
    std::vector<MetricSample> v = {counter("vdhost_y_total", {}, 12345678901.0)};
    EXPECT_NE(format_prometheus(v).find("\nvdhost_y_total 12345678901\n"), std::string::npos);
}

TEST(Metrics, HistogramHasCumulativeBucketsInfSumAndCount) {
    MetricSample h;
    h.name = "vdhost_fuse_request_duration_seconds";
    h.help = "latency";
    h.kind = MetricKind::Histogram;
    h.labels = {{"device", "fs0"}, {"opcode", "READ"}};
    h.value = 7;
    h.sum = 0.5;
    h.buckets = {{0.001, 2}, {0.25, 6}};
    EXPECT_EQ(format_prometheus({h}),
              "# HELP vdhost_fuse_request_duration_seconds latency\n"
              "# TYPE vdhost_fuse_request_duration_seconds histogram\n"
              "vdhost_fuse_request_duration_seconds_bucket{device=\"fs0\",opcode=\"READ\","
              "le=\"0.001\"} 2\n"
              "vdhost_fuse_request_duration_seconds_bucket{device=\"fs0\",opcode=\"READ\","
              "le=\"0.25\"} 6\n"
              "vdhost_fuse_request_duration_seconds_bucket{device=\"fs0\",opcode=\"READ\","
              "le=\"+Inf\"} 7\n"
              "vdhost_fuse_request_duration_seconds_sum{device=\"fs0\",opcode=\"READ\"} 0.5\n"
              "vdhost_fuse_request_duration_seconds_count{device=\"fs0\",opcode=\"READ\"} 7\n");
}

TEST(Metrics, GaugeType) {
    MetricSample g = counter("vdhost_device_info", {{"device", "d"}, {"state", "idle"}}, 1);
    g.kind = MetricKind::Gauge;
    EXPECT_NE(format_prometheus({g}).find("# TYPE vdhost_device_info gauge\n"),
              std::string::npos);
}

} // namespace
} // namespace vdh

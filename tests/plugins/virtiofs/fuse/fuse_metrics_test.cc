// SPDX-License-Identifier: MIT
// Tests of plugins/virtiofs/fuse/fuse_metrics.cc: FuseStats as vdh_metric samples.
#include "fuse/fuse_metrics.h"

#include <cerrno>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "fuse/fuse_wire.h"

namespace vdh::virtiofs {
namespace {

struct Seen {
    std::string name;
    std::string labels;
    uint32_t kind;
    uint64_t value;
    double sum;
    std::vector<double> le;
    std::vector<uint64_t> buckets;
};

void collect(void* ctx, const vdh_metric* m) {
    Seen s{m->name, m->labels, m->kind, m->value, m->sum, {}, {}};
    for (uint32_t i = 0; i < m->n_buckets; ++i) {
        s.le.push_back(m->bucket_le[i]);
        s.buckets.push_back(m->buckets[i]);
    }
    static_cast<std::vector<Seen>*>(ctx)->push_back(s);
}

const Seen* find(const std::vector<Seen>& v, const std::string& name, const std::string& labels) {
    for (const Seen& s : v) {
        if (s.name == name && s.labels == labels) {
            return &s;
        }
    }
    return nullptr;
}

TEST(FuseMetrics, OpcodesErrnosBytesAndHistograms) {
    FuseStats s;
    s.requests[FUSE_GETATTR] = 7;
    s.requests[FUSE_READ] = 2;
    s.errnos[ENOENT] = 3;
    s.bytes_read = 8192;
    s.latency[FUSE_GETATTR][0] = 5; // < 256 cycles
    s.latency[FUSE_GETATTR][2] = 2; // < 1024 cycles
    s.latency_cycles[FUSE_GETATTR] = 1000;
    std::vector<Seen> v;
    emit_fuse_metrics(s, 1000, collect, &v); // 1000 Hz: 256 cycles = 0.256 s
    const Seen* g = find(v, "fuse_requests_total", "opcode=\"GETATTR\"");
    ASSERT_NE(g, nullptr);
    EXPECT_EQ(g->value, 7u);
    EXPECT_EQ(g->kind, static_cast<uint32_t>(VDH_METRIC_COUNTER));
    EXPECT_EQ(find(v, "fuse_requests_total", "opcode=\"LOOKUP\""), nullptr); // zero: left out
    const Seen* e = find(v, "fuse_errors_total", "errno=\"ENOENT\"");
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->value, 3u);
    const Seen* b = find(v, "fuse_read_bytes_total", "");
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b->value, 8192u);
    const Seen* h = find(v, "fuse_request_duration_seconds", "opcode=\"GETATTR\"");
    ASSERT_NE(h, nullptr);
    EXPECT_EQ(h->kind, static_cast<uint32_t>(VDH_METRIC_HISTOGRAM));
    EXPECT_EQ(h->value, 7u);
    EXPECT_DOUBLE_EQ(h->sum, 1.0);
    ASSERT_EQ(h->le.size(), kFuseLatencyBuckets - 1);
    EXPECT_DOUBLE_EQ(h->le[0], 0.256);
    EXPECT_DOUBLE_EQ(h->le[1], 0.512);
    EXPECT_EQ(h->buckets[0], 5u); // cumulative
    EXPECT_EQ(h->buckets[1], 5u);
    EXPECT_EQ(h->buckets[2], 7u);
    EXPECT_EQ(h->buckets.back(), 7u);
    // READ has requests but no latency observations: no histogram.
    EXPECT_EQ(find(v, "fuse_request_duration_seconds", "opcode=\"READ\""), nullptr);
}

TEST(FuseMetrics, NoHistogramsWithoutTscFrequency) {
    FuseStats s;
    s.requests[FUSE_GETATTR] = 1;
    s.latency[FUSE_GETATTR][0] = 1;
    std::vector<Seen> v;
    emit_fuse_metrics(s, 0, collect, &v);
    EXPECT_EQ(find(v, "fuse_request_duration_seconds", "opcode=\"GETATTR\""), nullptr);
    EXPECT_NE(find(v, "fuse_requests_total", "opcode=\"GETATTR\""), nullptr);
}

TEST(FuseMetrics, ErrnoLabels) {
    char buf[16];
    EXPECT_STREQ(fuse_errno_label(ENOENT, buf, sizeof(buf)), "ENOENT");
    EXPECT_STREQ(fuse_errno_label(0, buf, sizeof(buf)), "other");
    EXPECT_STREQ(fuse_errno_label(4000, buf, sizeof(buf)), "4000");
}

} // namespace
} // namespace vdh::virtiofs

// SPDX-License-Identifier: MIT
// FuseStats → vdh_metric samples (see fuse_metrics.h).
#include "fuse/fuse_metrics.h"

#include <cstdio>
#include <cstring>

#include "fuse/fuse_wire.h"

namespace vdh::virtiofs {
namespace {

void counter(vdh_metric_emit_fn emit, void* ctx, const char* name, const char* help,
             const char* labels, uint64_t v) {
    vdh_metric m{};
    m.name = name;
    m.help = help;
    m.kind = VDH_METRIC_COUNTER;
    m.labels = labels;
    m.value = v;
    emit(ctx, &m);
}

/// "READ", or "OP_<n>" for an opcode without a name, or "other" for slot 0.
const char* opcode_label(size_t op, char* buf, size_t len) {
    if (op == 0) {
        return "other";
    }
    const char* n = fuse_opcode_name(static_cast<uint32_t>(op));
    if (n != nullptr) {
        return n;
    }
    std::snprintf(buf, len, "OP_%zu", op);
    return buf;
}

} // namespace

const char* fuse_errno_label(int err, char* buf, size_t len) noexcept {
    if (err == 0) {
        return "other";
    }
    const char* n = strerrorname_np(err);
    if (n != nullptr) {
        return n;
    }
    std::snprintf(buf, len, "%d", err);
    return buf;
}

void emit_fuse_metrics(const FuseStats& s, uint64_t tsc_hz, vdh_metric_emit_fn emit,
                       void* ctx) {
    char labels[96];
    char name[32];
    for (size_t op = 0; op < kFuseOpcodeSlots; ++op) {
        if (s.requests[op] == 0) {
            continue;
        }
        std::snprintf(labels, sizeof(labels), "opcode=\"%s\"", opcode_label(op, name, sizeof(name)));
        counter(emit, ctx, "fuse_requests_total", "FUSE requests by opcode", labels,
                s.requests[op]);
    }
    for (size_t e = 0; e < kFuseErrnoSlots; ++e) {
        if (s.errnos[e] == 0) {
            continue;
        }
        std::snprintf(labels, sizeof(labels), "errno=\"%s\"",
                      fuse_errno_label(static_cast<int>(e), name, sizeof(name)));
        counter(emit, ctx, "fuse_errors_total", "FUSE error replies by errno", labels,
                s.errnos[e]);
    }
    counter(emit, ctx, "fuse_read_bytes_total", "Data bytes READ replies carried", "",
            s.bytes_read);
    counter(emit, ctx, "fuse_written_bytes_total", "Data bytes WRITE requests wrote", "",
            s.bytes_written);
    counter(emit, ctx, "fuse_malformed_total", "Malformed FUSE requests", "", s.malformed);
    counter(emit, ctx, "fuse_unsupported_total", "FUSE requests answered ENOSYS", "",
            s.unsupported);
    counter(emit, ctx, "fuse_async_total", "FUSE requests handed to the I/O engine", "",
            s.async_submitted);
    if (tsc_hz == 0) {
        return;
    }
    double le[kFuseLatencyBuckets - 1];
    for (size_t i = 0; i + 1 < kFuseLatencyBuckets; ++i) {
        le[i] = static_cast<double>(uint64_t{1} << (i + kFuseLatencyMinLog2)) /
                static_cast<double>(tsc_hz);
    }
    uint64_t cum[kFuseLatencyBuckets - 1];
    for (size_t op = 0; op < kFuseOpcodeSlots; ++op) {
        uint64_t count = 0;
        for (size_t i = 0; i < kFuseLatencyBuckets; ++i) {
            if (i + 1 < kFuseLatencyBuckets) {
                cum[i] = count + s.latency[op][i];
            }
            count += s.latency[op][i];
        }
        if (count == 0) {
            continue;
        }
        std::snprintf(labels, sizeof(labels), "opcode=\"%s\"", opcode_label(op, name, sizeof(name)));
        vdh_metric m{};
        m.name = "fuse_request_duration_seconds";
        m.help = "Time from a FUSE request's arrival to its reply, by opcode";
        m.kind = VDH_METRIC_HISTOGRAM;
        m.labels = labels;
        m.value = count;
        m.sum = static_cast<double>(s.latency_cycles[op]) / static_cast<double>(tsc_hz);
        m.n_buckets = kFuseLatencyBuckets - 1;
        m.bucket_le = le;
        m.buckets = cum;
        emit(ctx, &m);
    }
}

} // namespace vdh::virtiofs

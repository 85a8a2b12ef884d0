// SPDX-License-Identifier: MIT
// The workload table: CLI names, the operation each workload repeats and its I/O shape.
#include "bench/workload.h"

namespace vdh::bench {

namespace {

constexpr WorkloadInfo kWorkloads[kNumWorkloads] = {
    {Workload::Getattr, "getattr", OpKind::Getattr, 0, false},
    {Workload::LookupHit, "lookup-hit", OpKind::LookupHit, 0, false},
    {Workload::LookupMiss, "lookup-miss", OpKind::LookupMiss, 0, false},
    {Workload::OpenRelease, "open-release", OpKind::OpenRelease, 0, false},
    {Workload::Read4kRand, "read-4k-rand", OpKind::Read, 4096, false},
    {Workload::Write4kRand, "write-4k-rand", OpKind::Write, 4096, false},
    {Workload::Read128kSeq, "read-128k-seq", OpKind::Read, 128 * 1024, true},
    {Workload::Read1mSeq, "read-1m-seq", OpKind::Read, 1024 * 1024, true},
    {Workload::Write128kSeq, "write-128k-seq", OpKind::Write, 128 * 1024, true},
    {Workload::Write1mSeq, "write-1m-seq", OpKind::Write, 1024 * 1024, true},
    {Workload::CreateUnlink, "create-unlink", OpKind::CreateUnlink, 0, false},
    {Workload::Readdirplus10k, "readdirplus-10k", OpKind::ReaddirList, 0, false},
    {Workload::MetaMix, "meta-mix", OpKind::Getattr, 0, false},
};

} // namespace

const WorkloadInfo& workload_info(Workload w) noexcept {
    return kWorkloads[static_cast<int>(w)];
}

std::optional<Workload> parse_workload(std::string_view name) noexcept {
    for (const WorkloadInfo& w : kWorkloads) {
        if (w.name == name) {
            return w.workload;
        }
    }
    return std::nullopt;
}

} // namespace vdh::bench

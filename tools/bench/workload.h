// SPDX-License-Identifier: MIT
// The workloads vdhost-bench runs and the names of the files it uses in a share. Each
// workload is a sequence of primitive operations (one FUSE request or a short dependent
// chain of them, e.g. OPEN then RELEASE); meta-mix draws its operation per op.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace vdh::bench {

enum class Workload : uint8_t {
    Getattr,
    LookupHit,
    LookupMiss,
    OpenRelease,
    Read4kRand,
    Write4kRand,
    Read128kSeq,
    Read1mSeq,
    Write128kSeq,
    Write1mSeq,
    CreateUnlink,
    Readdirplus10k,
    MetaMix,
};
inline constexpr int kNumWorkloads = 13;

/// One primitive operation: what one "op" of a workload does.
enum class OpKind : uint8_t {
    Getattr,      ///< GETATTR of bench.dat
    LookupHit,    ///< LOOKUP of an existing fNNNNN in dir10k
    LookupMiss,   ///< LOOKUP of missingNNNNN in dir10k (ENOENT)
    OpenRelease,  ///< OPEN bench.dat read-only, then RELEASE
    Read,         ///< READ of bench.dat (random or sequential offsets)
    Write,        ///< WRITE of bench-wr.dat (+ READ back with --verify)
    CreateUnlink, ///< CREATE + RELEASE + UNLINK in dir-cu (+ LOOKUP miss with --verify)
    ReaddirList,  ///< OPENDIR + READDIRPLUS until the end + RELEASEDIR of dir10k
};

struct WorkloadInfo {
    Workload workload;
    std::string_view name;
    OpKind op;           ///< meaningless for MetaMix
    uint32_t io_bytes;   ///< READ/WRITE size (0 for metadata workloads)
    bool sequential;     ///< sequential offsets (else uniform random, io_bytes aligned)
};

/// Every workload, in the order of the enum.
const WorkloadInfo& workload_info(Workload w) noexcept;
/// Looks a workload up by its CLI name ("read-4k-rand").
std::optional<Workload> parse_workload(std::string_view name) noexcept;

/// meta-mix: percentages of each operation (sum 100).
struct MixEntry {
    OpKind op;
    uint32_t percent;
};
inline constexpr MixEntry kMetaMix[] = {
    {OpKind::Getattr, 40},     {OpKind::LookupHit, 30},    {OpKind::LookupMiss, 10},
    {OpKind::OpenRelease, 10}, {OpKind::CreateUnlink, 10},
};

// Names inside the share. dir* names are directories and missing* names are absent on a
// vdhost `backend: null` share too, so the same workloads run there.
inline constexpr const char* kReadFile = "bench.dat";
inline constexpr const char* kWriteFile = "bench-wr.dat";
inline constexpr const char* kListDir = "dir10k";
inline constexpr const char* kCreateDir = "dir-cu";
inline constexpr uint32_t kListEntries = 10000; ///< files f00000..f09999 in kListDir

/// Writes "f%05u" (index < 100000) into \p out (at least 7 bytes, NUL-terminated);
/// returns the length (6). Hot path: no alloc.
inline uint32_t entry_name(uint32_t index, char* out) noexcept {
    out[0] = 'f';
    for (int i = 5; i >= 1; i--) {
        out[i] = static_cast<char>('0' + index % 10);
        index /= 10;
    }
    out[6] = '\0';
    return 6;
}

/// Parses "f%05u" back into its index; -1 when \p name is not such a name.
inline int32_t parse_entry_name(std::string_view name) noexcept {
    if (name.size() != 6 || name[0] != 'f') {
        return -1;
    }
    int32_t v = 0;
    for (size_t i = 1; i < 6; i++) {
        if (name[i] < '0' || name[i] > '9') {
            return -1;
        }
        v = v * 10 + (name[i] - '0');
    }
    return v;
}

} // namespace vdh::bench

// SPDX-License-Identifier: MIT
// Preparing a share for the workloads: bench.dat and bench-wr.dat (patterned, --file-size
// bytes), dir10k with f00000..f09999, and the empty dir-cu for create/unlink. Either on the
// host (fast; --share-dir) or through FUSE requests. Existing files of the right size are
// kept. Then the LOOKUPs and OPENs that give the workloads their node ids and handles.
#pragma once

#include <cstdint>
#include <string>

#include "bench/fuse_channel.h"
#include "bench/fuse_runner.h"
#include "vdh/result.h"

namespace vdh::bench {

/// Prepares \p dir on the host. Removes leftovers of interrupted create-unlink runs.
Status prepare_host(const std::string& dir, uint64_t file_bytes, std::string* why);
/// Prepares the share through FUSE (LOOKUP, CREATE, WRITE, MKDIR, ...).
Status prepare_fuse(FuseChannel& ch, uint64_t file_bytes, std::string* why);

/// LOOKUPs every benchmark file and opens bench.dat (read-only) and bench-wr.dat
/// (read-write). The lookup counts are returned by release_targets().
Result<Targets> find_targets(FuseChannel& ch, std::string* why);
/// RELEASEs the handles and FORGETs the node ids of find_targets().
void release_targets(FuseChannel& ch, const Targets& t);

} // namespace vdh::bench

// SPDX-License-Identifier: MIT
// FUSE counters as vdh_metric samples (plugin ABI 1.3): requests and latency histograms per
// opcode, error replies per errno, data bytes read and written. Reads a FuseStats snapshot
// only, so it may run on any thread. Not for the host's transport counters.
#pragma once

#include <cstdint>

#include "fuse/fuse_counters.h"
#include "vdh/plugin_abi.h"

namespace vdh::virtiofs {

/// Emits \p s's samples. \p tsc_hz converts latency cycles to seconds; with 0 (unknown)
/// the latency histograms are left out.
void emit_fuse_metrics(const FuseStats& s, uint64_t tsc_hz, vdh_metric_emit_fn emit, void* ctx);

/// The errno's symbolic name ("ENOENT"), or its number when it has none; "other" for 0
/// (the slot of errnos >= kFuseErrnoSlots). Writes into \p buf (NUL-terminated).
const char* fuse_errno_label(int err, char* buf, size_t len) noexcept;

} // namespace vdh::virtiofs

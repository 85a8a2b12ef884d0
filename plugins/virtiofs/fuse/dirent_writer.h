// SPDX-License-Identifier: MIT
// DirentWriter: the DirentSink the dispatcher hands to Filesystem::readdir. It encodes
// fuse_dirent (READDIR) or fuse_direntplus (READDIRPLUS) records straight into the guest's
// writable buffers, never past the size the guest asked for.
// Hot path: no alloc, no block, no throw.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "filesystem.h"
#include "vdh/iovec_cursor.h"

namespace vdh::virtiofs {

class DirentWriter final : public DirentSink {
public:
    /// Writes through \p out (positioned where the first record goes), at most \p budget
    /// bytes in total. \p plus selects fuse_direntplus records. \p out must outlive this.
    DirentWriter(IovecCursor* out, size_t budget, bool plus) noexcept
        : out_(out), budget_(budget < out->remaining() ? budget : out->remaining()), plus_(plus) {}

    /// Appends one whole record, or nothing (false) when it does not fit in what is left.
    /// A null \p entry in plus mode is written as a zeroed fuse_entry_out (nodeid 0: the
    /// guest then only records the name).
    bool add(std::string_view name, uint64_t ino, uint32_t type, uint64_t off,
             const fuse_entry_out* entry) noexcept override;
    bool plus() const noexcept override { return plus_; }

    /// Bytes written so far (a multiple of 8).
    size_t written() const noexcept { return written_; }
    /// Records written so far.
    size_t count() const noexcept { return count_; }

private:
    IovecCursor* out_;
    size_t budget_;
    size_t written_ = 0;
    size_t count_ = 0;
    bool plus_;
};

} // namespace vdh::virtiofs

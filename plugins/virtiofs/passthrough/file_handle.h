// SPDX-License-Identifier: MIT
// FileHandle: a kernel file handle (name_to_handle_at) stored inline, with the mount id
// it belongs to. Handles identify an inode including its generation, so unlike an inode
// number they cannot be confused with a later file that reuses the number. Opening one
// needs a mount fd (mount_fd.h). Not for guest-visible ids (those are counters).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>

#include "sys.h"
#include "vdh/result.h"

namespace vdh::virtiofs::passthrough {

/// One file handle. Value type, no allocation: the bytes are stored inline.
struct FileHandle {
    /// MAX_HANDLE_SZ from the kernel (fs/fhandle.c).
    static constexpr size_t kMaxBytes = 128;

    uint64_t mnt_id = 0;     ///< from name_to_handle_at (same id space as STATX_MNT_ID)
    int32_t handle_type = 0; ///< file_handle::handle_type
    uint32_t size = 0;       ///< valid bytes in bytes[]
    unsigned char bytes[kMaxBytes] = {};

    /// Handle of the file \p fd refers to (AT_EMPTY_PATH; works on O_PATH fds, including
    /// symlinks). Returns nullopt when the filesystem cannot produce handles for it
    /// (EOPNOTSUPP/ENOTSUP, or EOVERFLOW: its handles exceed kMaxBytes) — this answer is
    /// stable for a given file, so callers may fall back to an fd. Any other errno is a
    /// real failure and is returned as an error.
    static Result<std::optional<FileHandle>> from_fd(Sys& sys, int fd) noexcept;
    /// Same for \p name relative to \p dirfd; \p flags as for name_to_handle_at
    /// (AT_SYMLINK_FOLLOW, AT_EMPTY_PATH).
    static Result<std::optional<FileHandle>> from_name_at(Sys& sys, int dirfd, const char* name,
                                                          int flags) noexcept;

    /// Opens the handle relative to \p mount_fd (any fd on the same mount, not O_PATH)
    /// with \p flags (O_PATH to pin without opening). ESTALE when the file is gone.
    Result<UniqueFd> open(Sys& sys, int mount_fd, int flags) const noexcept;

    friend bool operator==(const FileHandle& a, const FileHandle& b) noexcept {
        return a.mnt_id == b.mnt_id && a.handle_type == b.handle_type && a.size == b.size &&
               std::memcmp(a.bytes, b.bytes, a.size) == 0;
    }
    /// Strict weak order (mnt_id, type, size, bytes) for ordered maps.
    friend bool operator<(const FileHandle& a, const FileHandle& b) noexcept {
        if (a.mnt_id != b.mnt_id) {
            return a.mnt_id < b.mnt_id;
        }
        if (a.handle_type != b.handle_type) {
            return a.handle_type < b.handle_type;
        }
        if (a.size != b.size) {
            return a.size < b.size;
        }
        return std::memcmp(a.bytes, b.bytes, a.size) < 0;
    }
};

/// Hash for unordered maps (FNV-1a over the identifying fields).
struct FileHandleHash {
    size_t operator()(const FileHandle& h) const noexcept;
};

} // namespace vdh::virtiofs::passthrough

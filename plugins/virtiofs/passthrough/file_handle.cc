// SPDX-License-Identifier: MIT
// FileHandle generation and opening through Sys. The kernel's struct file_handle has a
// flexible array member; a stack buffer of the maximum size is built around it for each
// call, so nothing here allocates.

#include "file_handle.h"

#include <fcntl.h>

namespace vdh::virtiofs::passthrough {

namespace {

/// struct file_handle followed by room for the largest handle.
struct HandleBuf {
    struct file_handle head;
    unsigned char room[FileHandle::kMaxBytes];
};

bool means_unsupported(int err) noexcept {
    return err == EOPNOTSUPP || err == ENOTSUP || err == EOVERFLOW;
}

} // namespace

Result<std::optional<FileHandle>> FileHandle::from_name_at(Sys& sys, int dirfd,
                                                           const char* name,
                                                           int flags) noexcept {
    HandleBuf buf{};
    buf.head.handle_bytes = kMaxBytes;
    int mount_id = 0;
    auto st = sys.name_to_handle_at(dirfd, name, &buf.head, &mount_id, flags);
    if (!st) {
        if (means_unsupported(st.error())) {
            return std::optional<FileHandle>{};
        }
        return make_err(st.error());
    }
    if (buf.head.handle_bytes > kMaxBytes) {
        // Cannot happen with a correct kernel; treat like EOVERFLOW.
        return std::optional<FileHandle>{};
    }
    FileHandle fh;
    fh.mnt_id = static_cast<uint64_t>(static_cast<uint32_t>(mount_id));
    fh.handle_type = buf.head.handle_type;
    fh.size = buf.head.handle_bytes;
    std::memcpy(fh.bytes, buf.head.f_handle, fh.size);
    return std::optional<FileHandle>{fh};
}

Result<std::optional<FileHandle>> FileHandle::from_fd(Sys& sys, int fd) noexcept {
    return from_name_at(sys, fd, "", AT_EMPTY_PATH);
}

Result<UniqueFd> FileHandle::open(Sys& sys, int mount_fd, int flags) const noexcept {
    HandleBuf buf{};
    buf.head.handle_bytes = size;
    buf.head.handle_type = handle_type;
    std::memcpy(buf.head.f_handle, bytes, size);
    return sys.open_by_handle_at(mount_fd, &buf.head, flags);
}

size_t FileHandleHash::operator()(const FileHandle& h) const noexcept {
    uint64_t x = 1469598103934665603ULL;
    auto mix = [&x](const void* p, size_t n) {
        const auto* b = static_cast<const unsigned char*>(p);
        for (size_t i = 0; i < n; ++i) {
            x ^= b[i];
            x *= 1099511628211ULL;
        }
    };
    mix(&h.mnt_id, sizeof(h.mnt_id));
    mix(&h.handle_type, sizeof(h.handle_type));
    mix(h.bytes, h.size);
    return static_cast<size_t>(x);
}

} // namespace vdh::virtiofs::passthrough

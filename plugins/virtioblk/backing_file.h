// SPDX-License-Identifier: MIT
// The disk's backing store: opens the profile's `path` (a regular file or a block device,
// nothing else), probes its size and logical block size, and checks them against the
// profile. Control thread, cold path. No ioctl: the host's seccomp allow-list refuses it, so
// a block device's size comes from lseek(SEEK_END) and its logical block size from statx's
// direct-I/O alignment (STATX_DIOALIGN), which is the logical block size for block devices.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "blk_profile.h"
#include "vdh/unique_fd.h"

namespace vdh::virtioblk {

struct BackingFile {
    UniqueFd fd;
    /// With `direct`: the same file opened without O_DIRECT, for requests whose guest
    /// buffers O_DIRECT cannot take (see direct_ok()). Invalid otherwise.
    UniqueFd buffered_fd;
    bool block_device = false;
    uint64_t size_bytes = 0; ///< file size, or the block device's size
    /// Direct-I/O offset alignment the kernel reports (block devices: the logical block
    /// size); 0 when the kernel does not say.
    uint32_t dio_align = 0;
    /// Direct-I/O memory alignment (buffer addresses); 0 when the kernel does not say.
    uint32_t dio_mem_align = 0;
    uint64_t capacity_bytes = 0; ///< size_bytes rounded down to the profile's block_size
    /// How OUT requests reach the file (blk_write_path.h), resolved by open_backing().
    WritePath write_path = WritePath::Punt;
    std::string write_path_reason;
};

/// Opens \p p.path: O_RDONLY with `readonly`, else O_RDWR; O_DIRECT with `direct`;
/// O_CLOEXEC (with `direct`, also a second fd without O_DIRECT). Symbolic links are followed (the
/// path is operator config, and /dev/disk/by-* names are links). Anything but a regular file or a
/// block device (a directory, a character device, a FIFO, a socket) is refused before it is opened,
/// so opening cannot block or have a device's side effects. With `direct`, block_size must be a
/// multiple of the backing's direct-I/O alignment. The capacity must hold at least one block.
/// Errors name the key: "ORIGIN:LINE:COL: config.path: ..." (or config.block_size). Whether
/// O_DIRECT takes \p n buffers \p iov as they are: every address a multiple of \p mem_align and
/// every length a multiple of \p len_align (the kernel's rule for direct I/O; both powers of two, 0
/// meaning no constraint). Hot path: no alloc, no block.
inline bool direct_ok(const struct iovec* iov, uint32_t n, uint32_t mem_align,
                      uint32_t len_align) noexcept {
    const uint64_t am = mem_align > 0 ? mem_align - 1 : 0;
    const uint64_t lm = len_align > 0 ? len_align - 1 : 0;
    uint64_t bits = 0;
    for (uint32_t i = 0; i < n; ++i) {
        bits |= (reinterpret_cast<uintptr_t>(iov[i].iov_base) & am) | (iov[i].iov_len & lm);
    }
    return bits == 0;
}

std::optional<BackingFile> open_backing(const BlkProfile& p, std::string_view origin,
                                        std::string* error);

} // namespace vdh::virtioblk

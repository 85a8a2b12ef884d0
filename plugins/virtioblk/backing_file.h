// SPDX-License-Identifier: MIT
// The disk's backing store: opens the profile's `path` (a regular file or a block device,
// nothing else), probes its size and logical block size, and checks them against the
// profile. Control thread, cold path. No ioctl: the host's seccomp allow-list refuses it, so
// a block device's size comes from lseek(SEEK_END) and its logical block size from statx's
// direct-I/O alignment (STATX_DIOALIGN), which is the logical block size for block devices.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "blk_profile.h"
#include "vdh/unique_fd.h"

namespace vdh::virtioblk {

struct BackingFile {
    UniqueFd fd;
    bool block_device = false;
    uint64_t size_bytes = 0; ///< file size, or the block device's size
    /// Direct-I/O offset alignment the kernel reports (block devices: the logical block
    /// size); 0 when the kernel does not say.
    uint32_t dio_align = 0;
    uint64_t capacity_bytes = 0; ///< size_bytes rounded down to the profile's block_size
};

/// Opens \p p.path: O_RDONLY with `readonly`, else O_RDWR; O_DIRECT with `direct`;
/// O_CLOEXEC. Symbolic links are followed (the path is operator config, and /dev/disk/by-*
/// names are links). Anything but a regular file or a block device (a directory, a
/// character device, a FIFO, a socket) is refused before it is opened, so opening cannot
/// block or have a device's side effects. With `direct`, block_size must be a multiple of
/// the backing's direct-I/O alignment. The capacity must hold at least one block. Errors
/// name the key: "ORIGIN:LINE:COL: config.path: ..." (or config.block_size).
std::optional<BackingFile> open_backing(const BlkProfile& p, std::string_view origin,
                                        std::string* error);

} // namespace vdh::virtioblk

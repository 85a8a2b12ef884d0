// SPDX-License-Identifier: MIT
// The disk's write path (profile key `write_path`, vdh/write_path.h): how OUT requests
// reach the backing file, chosen once when the file is opened (before the sandbox).
//  - read-only disk: punt (no writes).
//  - regular file, page cache (`direct: false`): the virtio-fs rules, probed on the file's
//    filesystem (statfs and an RWF_NOWAIT write to an O_TMPFILE in its directory): nowait
//    where the filesystem takes non-blocking buffered writes (xfs), inline on other local
//    page-cache filesystems (ext4, tmpfs: io_uring would punt every write to a worker),
//    punt elsewhere (NFS, FUSE).
//  - `direct: true` or a block device: never inline. An O_DIRECT write waits for the
//    device, and a block device's buffered writes share its page cache with every other
//    user of the device (writeback of one can throttle all). Auto picks punt: io_uring, which
//    issues the write non-blocking where the driver supports it (FMODE_NOWAIT) and hands it
//    to a worker otherwise, the same code nowait would run; `nowait` is accepted as that.
//    `inline` is an error naming the key.
// Control thread, cold path.
#pragma once

#include <string>
#include <string_view>

#include "backing_file.h"
#include "blk_profile.h"

namespace vdh::virtioblk {

/// Sets \p b.write_path (never Auto afterwards) and its reason from \p p and the opened file
/// \p b. False with \p error "ORIGIN:LINE:COL: config.write_path: ..." (or config.path when
/// the key was not written) when the choice cannot be honoured.
bool resolve_blk_write_path(const BlkProfile& p, BackingFile& b, std::string_view origin,
                            std::string* error);

} // namespace vdh::virtioblk

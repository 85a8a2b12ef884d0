// SPDX-License-Identifier: MIT
// The disk profile: a virtio-blk device's `config:` block, parsed and validated into a typed
// BlkProfile. Parsing is pure (no file system access; backing_file.h opens the path). Cold
// path: uses yaml-cpp and std::string; exceptions stay inside the .cc. Errors read
// "FILE:LINE:COL: config.KEY: message", as every config error of vdhost.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "vdh/write_path.h"

namespace vdh::virtioblk {

/// 1-based position in the config file.
struct SourcePos {
    int line = 1;
    int column = 1;
};

inline constexpr uint32_t kMaxSerialBytes = 20; ///< VIRTIO_BLK_ID_BYTES
inline constexpr uint32_t kMaxQueues = 16;

/// Defaults are the documented defaults of each key (configs/README.md).
struct BlkProfile {
    std::string path;          ///< required; absolute; a regular file or a block device
    SourcePos path_pos;        ///< where path was written (for the open's errors)
    bool readonly = false;     ///< open O_RDONLY, offer VIRTIO_BLK_F_RO, refuse writes (IOERR)
    uint32_t block_size = 512; ///< logical block size the guest sees (power of two, 512..65536)
    SourcePos block_size_pos;
    bool direct = false;      ///< open with O_DIRECT (bypass the host page cache)
    bool discard = true;      ///< offer VIRTIO_BLK_F_DISCARD (punch holes)
    bool write_zeroes = true; ///< offer VIRTIO_BLK_F_WRITE_ZEROES
    uint32_t num_queues = 1;  ///< request queues (1..16); >1 offers VIRTIO_BLK_F_MQ
    std::string serial;       ///< GET_ID answer, <= 20 bytes; default: the device name cut
    /// How OUT requests reach the backing file (vdh/write_path.h; blk_write_path.h resolves
    /// Auto when the file is opened).
    WritePath write_path = WritePath::Auto;
    SourcePos write_path_pos;
    bool write_path_written = false;
};

/// Parses a device's `config:` block. \p yaml has the file's line/column layout (see
/// vdh_plugin_info::create); \p origin names the file in messages; \p device_name is the
/// serial's default. On error returns nullopt and sets \p error. Pure: touches no files.
std::optional<BlkProfile> parse_blk_profile(std::string_view yaml, std::string_view origin,
                                            std::string_view device_name, std::string* error);

/// "ORIGIN:LINE:COL: config.KEY: message", for errors found after parsing.
std::string profile_error(std::string_view origin, SourcePos pos, std::string_view key,
                          std::string_view message);

} // namespace vdh::virtioblk

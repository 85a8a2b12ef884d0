// SPDX-License-Identifier: MIT
// The disk's write-path choice (see blk_write_path.h).
#include "blk_write_path.h"

namespace vdh::virtioblk {

bool resolve_blk_write_path(const BlkProfile& p, BackingFile& b, std::string_view origin,
                            std::string* error) {
    auto fail = [&](const std::string& msg) {
        *error = p.write_path_written
                     ? profile_error(origin, p.write_path_pos, "config.write_path", msg)
                     : profile_error(origin, p.path_pos, "config.path", msg);
        return false;
    };
    if (p.readonly) {
        b.write_path = WritePath::Punt;
        b.write_path_reason = "read-only disk: no writes";
        return true;
    }
    if (p.direct || b.block_device) {
        const char* what = p.direct ? "direct: true (O_DIRECT writes wait for the device)"
                                    : "a block device (its page cache is shared)";
        if (p.write_path == WritePath::Inline) {
            return fail(std::string("write_path: inline, but ") + p.path + " is " + what);
        }
        b.write_path = p.write_path == WritePath::Nowait ? WritePath::Nowait : WritePath::Punt;
        b.write_path_reason = std::string(what) + ": io_uring, non-blocking where the driver "
                                                  "allows, else an io-wq worker";
        return true;
    }
    const size_t slash = p.path.rfind('/');
    const std::string dir =
        slash == 0 || slash == std::string::npos ? "/" : p.path.substr(0, slash);
    std::string msg;
    auto c = choose_write_path(dir, p.write_path, false, &msg);
    if (!c) {
        return fail(msg);
    }
    b.write_path = c->path;
    b.write_path_reason = std::move(c->reason);
    return true;
}

} // namespace vdh::virtioblk

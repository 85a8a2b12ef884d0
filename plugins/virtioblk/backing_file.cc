// SPDX-License-Identifier: MIT
// Opening and probing the disk's backing store (see backing_file.h).
#include "backing_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "blk_write_path.h"

namespace vdh::virtioblk {

namespace {

const char* kind_of(mode_t m) {
    switch (m & S_IFMT) {
    case S_IFDIR:
        return "a directory";
    case S_IFCHR:
        return "a character device";
    case S_IFIFO:
        return "a FIFO";
    case S_IFSOCK:
        return "a socket";
    case S_IFLNK:
        return "a symbolic link";
    default:
        return "not a regular file";
    }
}

} // namespace

std::optional<BackingFile> open_backing(const BlkProfile& p, std::string_view origin,
                                        std::string* error) {
    auto fail = [&](const std::string& msg, bool at_block_size = false) {
        *error = at_block_size ? profile_error(origin, p.block_size_pos, "config.block_size", msg)
                               : profile_error(origin, p.path_pos, "config.path", msg);
        return std::nullopt;
    };
    struct stat st;
    if (::stat(p.path.c_str(), &st) != 0) {
        return fail("cannot use " + p.path + ": " + std::strerror(errno));
    }
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        return fail(p.path + " is " + kind_of(st.st_mode) +
                    " (expected a regular file or a block device)");
    }
    // O_NONBLOCK: should the path turn into a FIFO between stat and open, open returns at
    // once; the type is checked again on the fd. It is cleared below, since io_uring would
    // answer EAGAIN instead of waiting on an O_NONBLOCK file.
    int flags = (p.readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
    flags |= p.direct ? O_DIRECT : 0;
    auto fd = UniqueFd::from_syscall(::open(p.path.c_str(), flags));
    if (!fd) {
        const int e = fd.error();
        if (e == EINVAL && p.direct) {
            return fail("cannot open " + p.path +
                        " with O_DIRECT (direct: true): its file system does not support it");
        }
        return fail("cannot open " + p.path + (p.readonly ? " read-only: " : " read-write: ") +
                    std::strerror(e));
    }
    BackingFile b;
    b.fd = std::move(*fd);
    struct statx sx;
    std::memset(&sx, 0, sizeof(sx));
    if (::statx(b.fd.get(), "", AT_EMPTY_PATH, STATX_TYPE | STATX_SIZE | STATX_DIOALIGN, &sx) !=
        0) {
        return fail("cannot stat " + p.path + ": " + std::strerror(errno));
    }
    if (!S_ISREG(sx.stx_mode) && !S_ISBLK(sx.stx_mode)) {
        return fail(p.path + " is " + kind_of(sx.stx_mode) +
                    " (expected a regular file or a block device)");
    }
    const int fl = ::fcntl(b.fd.get(), F_GETFL);
    if (fl < 0 || ::fcntl(b.fd.get(), F_SETFL, fl & ~O_NONBLOCK) != 0) {
        return fail("cannot clear O_NONBLOCK on " + p.path + ": " + std::strerror(errno));
    }
    b.block_device = S_ISBLK(sx.stx_mode);
    if (b.block_device) {
        const off_t end = ::lseek(b.fd.get(), 0, SEEK_END);
        if (end < 0) {
            return fail("cannot read the size of " + p.path + ": " + std::strerror(errno));
        }
        b.size_bytes = static_cast<uint64_t>(end);
    } else {
        b.size_bytes = sx.stx_size;
    }
    if ((sx.stx_mask & STATX_DIOALIGN) != 0) {
        b.dio_align = sx.stx_dio_offset_align;
        b.dio_mem_align = sx.stx_dio_mem_align;
    }
    if (p.direct && b.dio_align == 0 && !b.block_device) {
        // O_DIRECT opened, but the file system gives no alignment: assume the common 512.
        b.dio_align = 512;
    }
    if (p.direct && b.dio_align != 0 && p.block_size % b.dio_align != 0) {
        return fail(std::to_string(p.block_size) + " is not a multiple of " + p.path +
                        "'s direct I/O alignment " + std::to_string(b.dio_align) +
                        " (direct: true)",
                    true);
    }
    if (p.direct) {
        // Guest buffers O_DIRECT refuses (EINVAL: an address or a segment length off the
        // alignment) go through the page cache instead; the kernel keeps both views
        // coherent (direct I/O writes back and invalidates the cached range first).
        auto bfd =
            UniqueFd::from_syscall(::open(("/proc/self/fd/" + std::to_string(b.fd.get())).c_str(),
                                          (p.readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOCTTY));
        if (!bfd) {
            return fail("cannot open " + p.path +
                        " a second time without O_DIRECT: " + std::strerror(bfd.error()));
        }
        b.buffered_fd = std::move(*bfd);
    }
    b.capacity_bytes = b.size_bytes - b.size_bytes % p.block_size;
    if (b.capacity_bytes == 0) {
        return fail(p.path + " holds " + std::to_string(b.size_bytes) +
                    " bytes: less than one block of block_size " + std::to_string(p.block_size));
    }
    if (!resolve_blk_write_path(p, b, origin, error)) {
        return std::nullopt;
    }
    return b;
}

} // namespace vdh::virtioblk

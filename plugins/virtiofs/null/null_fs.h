// SPDX-License-Identifier: MIT
// NullFs: the `backend: null` Filesystem, as DPFS's null backend. It answers every FUSE
// request from constants and the node id itself, never touching a disk, so benchmarks
// measure the transport and the dispatcher alone. No per-node or per-handle state: memory
// is constant, nothing allocates, and every method is thread-safe. Not a test fake (see
// tests/plugins/virtiofs/fuse/fuse_test_util.h) and not for storing data: writes vanish.
// Hot path: no alloc, no block, no throw (every method).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "filesystem.h"
#include "vdh/compiler.h"

namespace vdh::virtiofs::null {

/// What a null share answers with; the plugin glue maps the share profile onto it.
struct NullFsOptions {
    FsCapabilities capabilities; ///< reported for INIT as given
    uint64_t entry_valid = 1;    ///< fuse_entry_out entry_valid (seconds)
    uint32_t entry_valid_nsec = 0;
    uint64_t attr_valid = 1; ///< attr_valid (seconds) of entries and GETATTR/SETATTR
    uint32_t attr_valid_nsec = 0;
    uint32_t file_open_flags = 0; ///< FOPEN_* of OPEN and CREATE replies
    uint32_t dir_open_flags = 0;  ///< FOPEN_* of OPENDIR replies
    bool readonly = false;        ///< EROFS for every modification
};

/// The kind of a node, kept in the low 3 bits of its node id (so GETATTR of any id the
/// backend ever handed out answers without a table). 0 is never handed out.
enum class NodeKind : uint8_t {
    Dir = 1,
    File = 2,
    Symlink = 3,
    Fifo = 4,
    Socket = 5,
    CharDev = 6,
    BlockDev = 7,
};

/// The namespace a null share shows (every directory looks the same):
///  - LOOKUP of a name starting with "missing" fails with ENOENT (a cheap miss);
///  - a name starting with "dir" is a directory, any other name a regular file of
///    kFileSize bytes of zeros;
///  - READDIR(PLUS) of any directory lists ".", ".." and kDirEntries regular files named
///    f00000, f00001, ... (with the node ids LOOKUP gives them); offsets are the index
///    of the next entry.
/// Node ids: the root is 1; every other node's id is a hash of (parent, name) with its
/// NodeKind in the low 3 bits, so the same name always gives the same id and two
/// directories never share one by accident.
class NullFs final : public Filesystem {
public:
    static constexpr uint64_t kRootNodeId = 1;
    static constexpr uint64_t kFileSize = uint64_t{1} << 30; ///< every regular file: 1 GiB
    static constexpr uint32_t kDirEntries = 10000;           ///< files per directory listing
    static constexpr size_t kEntryNameLen = 6;               ///< "f00000"
    static constexpr std::string_view kSymlinkTarget = "f00000";
    /// atime/mtime/ctime of every node (2023-11-14T22:13:20Z).
    static constexpr uint64_t kTime = 1700000000;

    explicit NullFs(const NullFsOptions& options) noexcept : options_(options) {}

    /// The id of \p name in directory \p parent when it is of \p kind. Never 0 or 1.
    static uint64_t node_id(uint64_t parent, std::string_view name, NodeKind kind) noexcept;
    /// The kind encoded in \p nodeid; 0 when no node has that id.
    static uint32_t kind_of(uint64_t nodeid) noexcept;
    /// Writes the name of listing entry \p index (< kDirEntries) into \p out: "f%05u".
    static void entry_name(uint32_t index, char (&out)[kEntryNameLen]) noexcept;

    FsCapabilities capabilities() const override { return options_.capabilities; }
    void init(uint32_t minor, uint64_t want) override;
    void destroy() override;

    Result<fuse_entry_out> lookup(const RequestCtx& c, uint64_t parent,
                                  std::string_view name) override;
    void forget(uint64_t nodeid, uint64_t nlookup) override;
    Result<fuse_attr_out> getattr(const RequestCtx& c, uint64_t nodeid,
                                  const uint64_t* fh) override;
    /// Answers the node's attributes with the requested changes applied (not kept).
    Result<fuse_attr_out> setattr(const RequestCtx& c, uint64_t nodeid,
                                  const fuse_setattr_in& in) override;
    /// Symlinks all point at kSymlinkTarget; EINVAL for other nodes.
    Result<size_t> readlink(const RequestCtx& c, uint64_t nodeid, char* buf,
                            size_t size) override;
    Result<fuse_entry_out> symlink(const RequestCtx& c, uint64_t parent, std::string_view name,
                                   std::string_view target) override;
    /// Regular files, FIFOs, sockets and device nodes (rdev is not kept).
    Result<fuse_entry_out> mknod(const RequestCtx& c, uint64_t parent, std::string_view name,
                                 uint32_t mode, uint32_t rdev, uint32_t umask) override;
    Result<fuse_entry_out> mkdir(const RequestCtx& c, uint64_t parent, std::string_view name,
                                 uint32_t mode, uint32_t umask) override;
    Status unlink(const RequestCtx& c, uint64_t parent, std::string_view name) override;
    Status rmdir(const RequestCtx& c, uint64_t parent, std::string_view name) override;
    Status rename(const RequestCtx& c, uint64_t parent, std::string_view name,
                  uint64_t newparent, std::string_view newname, uint32_t flags) override;
    Result<fuse_entry_out> link(const RequestCtx& c, uint64_t nodeid, uint64_t newparent,
                                std::string_view newname) override;
    /// Handles are counter values; none is tracked (any fh is accepted later).
    Result<fuse_open_out> open(const RequestCtx& c, uint64_t nodeid, uint32_t flags) override;
    Result<CreateOut> create(const RequestCtx& c, uint64_t parent, std::string_view name,
                             uint32_t flags, uint32_t mode, uint32_t umask) override;
    Result<CreateOut> tmpfile(const RequestCtx& c, uint64_t parent, uint32_t flags,
                              uint32_t mode, uint32_t umask) override;
    /// Zero-fills \p dst up to kFileSize; 0 bytes at or past it.
    Result<size_t> read(const RequestCtx& c, uint64_t nodeid, uint64_t fh, uint64_t offset,
                        const struct iovec* dst, int ndst) override;
    /// Takes every byte without looking at it.
    Result<size_t> write(const RequestCtx& c, uint64_t nodeid, uint64_t fh, uint64_t offset,
                         const struct iovec* src, int nsrc, uint32_t write_flags) override;
    /// Always EOPNOTSUPP: there is no host fd. The dispatcher takes any io_fd() error as
    /// "not asynchronous" and runs READ/WRITE/FSYNC/FALLOCATE synchronously through
    /// read()/write()/fsync()/fallocate() instead, on the poll lcore.
    Result<IoFile> io_fd(const RequestCtx& c, uint64_t nodeid, uint64_t fh, bool for_write,
                         uint32_t write_flags) override;
    Status flush(const RequestCtx& c, uint64_t nodeid, uint64_t fh, uint64_t lock_owner) override;
    Status release(const RequestCtx& c, uint64_t nodeid, uint64_t fh, uint32_t flags,
                   uint32_t release_flags, uint64_t lock_owner) override;
    Status fsync(const RequestCtx& c, uint64_t nodeid, uint64_t fh, bool datasync) override;
    Result<fuse_open_out> opendir(const RequestCtx& c, uint64_t nodeid, uint32_t flags) override;
    Status readdir(const RequestCtx& c, uint64_t nodeid, uint64_t fh, uint64_t offset,
                   DirentSink& sink) override;
    Status releasedir(const RequestCtx& c, uint64_t nodeid, uint64_t fh) override;
    Status fsyncdir(const RequestCtx& c, uint64_t nodeid, uint64_t fh, bool datasync) override;
    Result<fuse_statfs_out> statfs(const RequestCtx& c, uint64_t nodeid) override;
    Status access(const RequestCtx& c, uint64_t nodeid, uint32_t mask) override;
    /// Accepted and dropped: no node ever has an extended attribute.
    Status setxattr(const RequestCtx& c, uint64_t nodeid, std::string_view name,
                    const void* value, size_t size, uint32_t flags,
                    uint32_t setxattr_flags) override;
    /// Always ENODATA.
    Result<size_t> getxattr(const RequestCtx& c, uint64_t nodeid, std::string_view name,
                            void* buf, size_t size) override;
    /// Always an empty list.
    Result<size_t> listxattr(const RequestCtx& c, uint64_t nodeid, char* buf,
                             size_t size) override;
    /// Always ENODATA (there is nothing to remove).
    Status removexattr(const RequestCtx& c, uint64_t nodeid, std::string_view name) override;
    /// Never a conflict: F_UNLCK over the asked range.
    Result<fuse_lk_out> getlk(const RequestCtx& c, uint64_t nodeid,
                              const fuse_lk_in& in) override;
    /// Always granted at once (never blocks, even with \p sleep).
    Status setlk(const RequestCtx& c, uint64_t nodeid, const fuse_lk_in& in,
                 bool sleep) override;
    bool interrupt_lock(uint64_t unique) override;
    Status fallocate(const RequestCtx& c, uint64_t nodeid, uint64_t fh, uint64_t offset,
                     uint64_t length, uint32_t mode) override;
    /// Files are all data: SEEK_DATA gives \p offset, SEEK_HOLE kFileSize, ENXIO at or
    /// past the end; SEEK_SET/SEEK_CUR give \p offset.
    Result<uint64_t> lseek(const RequestCtx& c, uint64_t nodeid, uint64_t fh, uint64_t offset,
                           uint32_t whence) override;
    /// Reports the whole length copied.
    Result<size_t> copy_file_range(const RequestCtx& c, const fuse_copy_file_range_in& in,
                                   uint64_t nodeid_in) override;
    Status syncfs(const RequestCtx& c, uint64_t nodeid) override;

private:
    /// The attributes of \p nodeid (its kind decides); false for ids never handed out.
    static bool attr_of(uint64_t nodeid, fuse_attr* out) noexcept;
    fuse_entry_out entry_of(uint64_t nodeid) const noexcept;
    fuse_attr_out attr_out_of(const fuse_attr& attr) const noexcept;
    /// A new node \p name of \p kind in \p parent (the create-type ops).
    Result<fuse_entry_out> make_node(uint64_t parent, std::string_view name,
                                     NodeKind kind) const noexcept;
    uint64_t next_fh() noexcept { return next_fh_.fetch_add(1, std::memory_order_relaxed); }

    const NullFsOptions options_;
    /// The only mutable state: OPEN/OPENDIR/CREATE handle values (shared by all lcores).
    alignas(kCacheLine) std::atomic<uint64_t> next_fh_{1};
};

} // namespace vdh::virtiofs::null

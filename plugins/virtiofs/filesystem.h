// SPDX-License-Identifier: MIT
// The filesystem interface the FUSE dispatcher calls: one method per FUSE operation, with
// decoded, validated arguments and typed results (linux/fuse.h wire structs). Backends
// (passthrough, null) implement it. Methods are synchronous and thread-safe; the device
// decides which thread runs them (poll lcore for metadata, io_uring or a worker for
// operations that can wait on disk or on a lock). Errors are positive errno values that
// go back to the guest unchanged.
#pragma once

#include <linux/fuse.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "vdh/result.h"

namespace vdh::virtiofs {

/// Who asked: from fuse_in_header (and the create-op umask). Backends switch fsuid/fsgid
/// to these for operations that create or modify files.
/// RequestCtx::queue of calls not made by a queue's poll lcore (workers, control thread).
inline constexpr uint16_t kNoQueue = UINT16_MAX;

struct RequestCtx {
    uint64_t unique = 0;
    uint32_t uid = 0;
    uint32_t gid = 0;
    uint32_t pid = 0;
    /// The queue whose poll lcore makes this call (only that thread makes calls with this
    /// value: backends may keep per-queue state, e.g. lookup caches), or kNoQueue.
    uint16_t queue = kNoQueue;
    /// Create-type requests (CREATE, MKNOD, MKDIR, SYMLINK, TMPFILE) with request
    /// extensions (fuse/request_ext.h); valid only during the call, nothing owned.
    /// FUSE_EXT_GROUPS: a group the caller is in only as a supplementary group (the guest
    /// sends the parent directory's group), for the create's permission check and sgid
    /// inheritance.
    bool has_supp_group = false;
    uint32_t supp_group = 0;
    /// FUSE_SECURITY_CTX: the new inode's label, an xattr name ("security.selinux") and
    /// value, pointing into the request's bytes. A guest with a security module but no
    /// label for this inode sends none (has_secctx false).
    bool has_secctx = false;
    uint32_t secctx_size = 0;
    std::string_view secctx_name;
    const void* secctx_value = nullptr;
};

/// LOOKUP/MKDIR/... result plus CREATE's open result.
struct CreateOut {
    fuse_entry_out entry{};
    fuse_open_out open{};
};

/// Where READDIR(PLUS) entries go. The backend calls add() per entry until it returns
/// false (buffer full). For READDIRPLUS the backend passes the entry (its lookup count is
/// taken only when add() returns true: the backend must undo the lookup otherwise).
class DirentSink {
public:
    virtual ~DirentSink() = default;
    /// Appends one entry. \p off is the offset of the NEXT entry (seekdir cookie).
    /// \p entry is null for plain READDIR. Returns false if it does not fit (nothing added).
    virtual bool add(std::string_view name, uint64_t ino, uint32_t type, uint64_t off,
                     const fuse_entry_out* entry) = 0;
    /// True when add() takes a fuse_entry_out (READDIRPLUS).
    virtual bool plus() const = 0;
};

/// An open file's host fd lent for asynchronous I/O. The fd number stays valid (not closed,
/// so not reused) while \p keep is held: the dispatcher keeps it in the request until the
/// engine's completion has been reaped. \p keep may be empty when the fd lives as long as
/// the Filesystem itself.
struct IoFile {
    int fd = -1;
    std::shared_ptr<const void> keep;
    /// Set (with fd -1 and no keep) when io_fd() found the handle but the step before an
    /// asynchronous write failed: the request fails with this errno, without a retry.
    int prepare_error = 0;
    int flags = 0; ///< the open(2) flags fd was opened with (O_DIRECT, O_SYNC, ...)
    /// fd's file is on the share's own filesystem, the one its write path was chosen for
    /// (not on a submount, which may be a network or FUSE filesystem).
    bool on_share_fs = false;
};

/// Capabilities a backend reports for FUSE_INIT negotiation (the share profile).
struct FsCapabilities {
    bool writeback_cache = false;  ///< FUSE_WRITEBACK_CACHE
    bool xattr = false;            ///< allow *XATTR ops (else ENOSYS... per profile)
    bool posix_locks = true;       ///< FUSE_POSIX_LOCKS
    bool flock_locks = true;       ///< FUSE_FLOCK_LOCKS
    bool submounts = false;        ///< FUSE_SUBMOUNTS (announce_submounts)
    bool readdirplus = true;       ///< FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO
    bool killpriv_v2 = true;       ///< FUSE_HANDLE_KILLPRIV_V2
    bool cache_symlinks = false;   ///< FUSE_CACHE_SYMLINKS
    bool parallel_dirops = true;   ///< FUSE_PARALLEL_DIROPS
    bool explicit_inval = false;   ///< FUSE_EXPLICIT_INVAL_DATA
    bool setxattr_ext = false;     ///< FUSE_SETXATTR_EXT (extended setxattr_in)
    /// FUSE_DIRECT_IO_ALLOW_MMAP (7.39): the guest may mmap MAP_SHARED a file opened with
    /// FOPEN_DIRECT_IO (cache: never / metadata); without it such an mmap fails with ENODEV.
    bool direct_io_allow_mmap = false;
    /// FUSE_POSIX_ACL | FUSE_DONT_MASK | FUSE_SETXATTR_EXT, all three required of the guest
    /// (INIT fails with EPROTO otherwise, as virtiofsd); needs xattr.
    bool posix_acl = false;
    bool security_label = false; ///< FUSE_SECURITY_CTX (guests of 7.38 and later)
};

class Filesystem {
public:
    virtual ~Filesystem() = default;

    /// Capabilities for INIT. Called once per session.
    virtual FsCapabilities capabilities() const = 0;
    /// FUSE_INIT succeeded with these negotiated values. \p want are the FUSE_* flags the
    /// device enabled (64-bit with flags2 << 32).
    virtual void init(uint32_t minor, uint64_t want) = 0;
    /// FUSE_DESTROY, or the session ended: drop every inode and handle the guest held.
    virtual void destroy() = 0;

    virtual Result<fuse_entry_out> lookup(const RequestCtx& c, uint64_t parent,
                                          std::string_view name) = 0;
    /// Never fails; unknown ids are ignored; counts saturate at zero.
    virtual void forget(uint64_t nodeid, uint64_t nlookup) = 0;
    /// \p fh is non-null when the guest passed FUSE_GETATTR_FH.
    virtual Result<fuse_attr_out> getattr(const RequestCtx& c, uint64_t nodeid,
                                          const uint64_t* fh) = 0;
    virtual Result<fuse_attr_out> setattr(const RequestCtx& c, uint64_t nodeid,
                                          const fuse_setattr_in& in) = 0;
    /// Writes the target (no NUL) into \p buf; returns its length.
    virtual Result<size_t> readlink(const RequestCtx& c, uint64_t nodeid, char* buf,
                                    size_t size) = 0;
    virtual Result<fuse_entry_out> symlink(const RequestCtx& c, uint64_t parent,
                                           std::string_view name, std::string_view target) = 0;
    virtual Result<fuse_entry_out> mknod(const RequestCtx& c, uint64_t parent,
                                         std::string_view name, uint32_t mode, uint32_t rdev,
                                         uint32_t umask) = 0;
    virtual Result<fuse_entry_out> mkdir(const RequestCtx& c, uint64_t parent,
                                         std::string_view name, uint32_t mode,
                                         uint32_t umask) = 0;
    virtual Status unlink(const RequestCtx& c, uint64_t parent, std::string_view name) = 0;
    virtual Status rmdir(const RequestCtx& c, uint64_t parent, std::string_view name) = 0;
    /// RENAME (flags 0) and RENAME2 (RENAME_NOREPLACE/EXCHANGE/WHITEOUT).
    virtual Status rename(const RequestCtx& c, uint64_t parent, std::string_view name,
                          uint64_t newparent, std::string_view newname, uint32_t flags) = 0;
    virtual Result<fuse_entry_out> link(const RequestCtx& c, uint64_t nodeid,
                                        uint64_t newparent, std::string_view newname) = 0;
    virtual Result<fuse_open_out> open(const RequestCtx& c, uint64_t nodeid,
                                       uint32_t flags) = 0;
    virtual Result<CreateOut> create(const RequestCtx& c, uint64_t parent, std::string_view name,
                                     uint32_t flags, uint32_t mode, uint32_t umask) = 0;
    /// FUSE_TMPFILE: an unnamed file in directory \p parent.
    virtual Result<CreateOut> tmpfile(const RequestCtx& c, uint64_t parent, uint32_t flags,
                                      uint32_t mode, uint32_t umask) = 0;
    /// Synchronous READ into \p dst (guest memory). Returns bytes read.
    virtual Result<size_t> read(const RequestCtx& c, uint64_t nodeid, uint64_t fh,
                                uint64_t offset, const struct iovec* dst, int ndst) = 0;
    /// Synchronous WRITE from \p src (guest memory). \p write_flags: FUSE_WRITE_*.
    virtual Result<size_t> write(const RequestCtx& c, uint64_t nodeid, uint64_t fh,
                                 uint64_t offset, const struct iovec* src, int nsrc,
                                 uint32_t write_flags) = 0;
    /// For asynchronous I/O (io_uring): the host fd behind open handle \p fh of \p nodeid
    /// and a reference that keeps it open (IoFile::keep) for as long as the caller holds it,
    /// RELEASE of \p fh or the end of the session notwithstanding. \p for_write selects a
    /// write-capable fd and, in the same handle lookup, does what must happen on the
    /// submitting thread before an asynchronous WRITE with FUSE_WRITE_* \p write_flags
    /// (kill-priv); its failure comes back as IoFile::prepare_error. Errors: EBADF for an
    /// unknown or mismatched handle; any error means "no fd": the caller runs the
    /// operation synchronously, which reports it.
    /// Hot path: no alloc, no block (one atomic increment for the reference).
    virtual Result<IoFile> io_fd(const RequestCtx& c, uint64_t nodeid, uint64_t fh,
                                 bool for_write, uint32_t write_flags) = 0;
    virtual Status flush(const RequestCtx& c, uint64_t nodeid, uint64_t fh,
                         uint64_t lock_owner) = 0;
    virtual Status release(const RequestCtx& c, uint64_t nodeid, uint64_t fh, uint32_t flags,
                           uint32_t release_flags, uint64_t lock_owner) = 0;
    virtual Status fsync(const RequestCtx& c, uint64_t nodeid, uint64_t fh, bool datasync) = 0;
    virtual Result<fuse_open_out> opendir(const RequestCtx& c, uint64_t nodeid,
                                          uint32_t flags) = 0;
    /// READDIR / READDIRPLUS from \p offset until \p sink is full or the directory ends.
    virtual Status readdir(const RequestCtx& c, uint64_t nodeid, uint64_t fh, uint64_t offset,
                           DirentSink& sink) = 0;
    virtual Status releasedir(const RequestCtx& c, uint64_t nodeid, uint64_t fh) = 0;
    virtual Status fsyncdir(const RequestCtx& c, uint64_t nodeid, uint64_t fh,
                            bool datasync) = 0;
    virtual Result<fuse_statfs_out> statfs(const RequestCtx& c, uint64_t nodeid) = 0;
    virtual Status access(const RequestCtx& c, uint64_t nodeid, uint32_t mask) = 0;
    virtual Status setxattr(const RequestCtx& c, uint64_t nodeid, std::string_view name,
                            const void* value, size_t size, uint32_t flags,
                            uint32_t setxattr_flags) = 0;
    /// \p size 0 asks for the value's length. Returns the length (written to \p buf when
    /// size > 0; ERANGE when it does not fit).
    virtual Result<size_t> getxattr(const RequestCtx& c, uint64_t nodeid, std::string_view name,
                                    void* buf, size_t size) = 0;
    virtual Result<size_t> listxattr(const RequestCtx& c, uint64_t nodeid, char* buf,
                                     size_t size) = 0;
    virtual Status removexattr(const RequestCtx& c, uint64_t nodeid, std::string_view name) = 0;
    virtual Result<fuse_lk_out> getlk(const RequestCtx& c, uint64_t nodeid,
                                      const fuse_lk_in& in) = 0;
    /// SETLK (\p sleep false) / SETLKW (\p sleep true; may block: never called on a poll
    /// lcore) — POSIX (OFD) locks per lock_owner, or flock when FUSE_LK_FLOCK is set.
    virtual Status setlk(const RequestCtx& c, uint64_t nodeid, const fuse_lk_in& in,
                        bool sleep) = 0;
    /// Wakes a blocked setlk(sleep=true) of request \p unique (INTERRUPT); returns true if
    /// one was found.
    virtual bool interrupt_lock(uint64_t unique) = 0;
    virtual Status fallocate(const RequestCtx& c, uint64_t nodeid, uint64_t fh, uint64_t offset,
                             uint64_t length, uint32_t mode) = 0;
    virtual Result<uint64_t> lseek(const RequestCtx& c, uint64_t nodeid, uint64_t fh,
                                   uint64_t offset, uint32_t whence) = 0;
    virtual Result<size_t> copy_file_range(const RequestCtx& c,
                                           const fuse_copy_file_range_in& in,
                                           uint64_t nodeid_in) = 0;
    virtual Status syncfs(const RequestCtx& c, uint64_t nodeid) = 0;
};

} // namespace vdh::virtiofs

// SPDX-License-Identifier: MIT
// NullFs: answers from constants and node ids (see null_fs.h for the namespace it shows).
// Every reply is computed on the stack; the only shared write is the handle counter.
// Hot path: no alloc, no block, no throw.
#include "null/null_fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace vdh::virtiofs::null {

namespace {

constexpr uint64_t kKindMask = 7;
constexpr uint32_t kBlockSize = 4096;
constexpr uint64_t kDirSize = 4096;
/// "." and ".." come first in every listing.
constexpr uint64_t kListingSize = NullFs::kDirEntries + 2;

constexpr std::string_view kMissingPrefix = "missing";
constexpr std::string_view kDirPrefix = "dir";

bool starts_with(std::string_view s, std::string_view prefix) noexcept {
    return s.substr(0, prefix.size()) == prefix;
}

uint64_t kind_bits(NodeKind k) noexcept { return static_cast<uint64_t>(k); }

bool is_dir(uint64_t nodeid) noexcept {
    return (nodeid & kKindMask) == kind_bits(NodeKind::Dir);
}

/// A parent for lookups and create-type ops: a directory node.
Status check_parent(uint64_t parent) noexcept {
    const uint32_t k = NullFs::kind_of(parent);
    if (k == 0) {
        return make_err(ENOENT);
    }
    if (k != kind_bits(NodeKind::Dir)) {
        return make_err(ENOTDIR);
    }
    return ok();
}

/// A name a directory entry may have (the dispatcher already refused empty names and '/').
Status check_name(std::string_view name) noexcept {
    if (name.size() > NAME_MAX) {
        return make_err(ENAMETOOLONG);
    }
    return ok();
}

/// What a name that exists in every directory is.
NodeKind kind_of_name(std::string_view name) noexcept {
    return starts_with(name, kDirPrefix) ? NodeKind::Dir : NodeKind::File;
}

uint32_t mode_of(uint32_t kind) noexcept {
    switch (kind) {
    case 1: return S_IFDIR | 0777;
    case 2: return S_IFREG | 0666;
    case 3: return S_IFLNK | 0777;
    case 4: return S_IFIFO | 0666;
    case 5: return S_IFSOCK | 0666;
    case 6: return S_IFCHR | 0666;
    case 7: return S_IFBLK | 0666;
    default: return 0;
    }
}

uint32_t dirent_type(NodeKind k) noexcept { return mode_of(kind_bits(k)) >> 12; }

/// Whether \p flags open for writing or truncate.
bool modifies(uint32_t flags) noexcept {
    return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC) != 0;
}

/// splitmix64's finalizer: spreads FNV's weak low bits over the whole word.
uint64_t mix(uint64_t x) noexcept {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

} // namespace

uint64_t NullFs::node_id(uint64_t parent, std::string_view name, NodeKind kind) noexcept {
    // FNV-1a over the name, seeded with the parent so equal names in different
    // directories (dir/dir/dir...) get different ids: a directory whose id equals an
    // ancestor's would look like a loop to the guest.
    uint64_t h = 0xcbf29ce484222325ULL ^ mix(parent);
    for (char ch : name) {
        h ^= static_cast<unsigned char>(ch);
        h *= 0x100000001b3ULL;
    }
    h = mix(h) & ~kKindMask;
    if (h == 0) {
        h = kKindMask + 1; // ids 0..7 are never handed out (1 is the root)
    }
    return h | kind_bits(kind);
}

uint32_t NullFs::kind_of(uint64_t nodeid) noexcept {
    return static_cast<uint32_t>(nodeid & kKindMask);
}

void NullFs::entry_name(uint32_t index, char (&out)[kEntryNameLen]) noexcept {
    out[0] = 'f';
    for (size_t i = kEntryNameLen - 1; i > 0; --i) {
        out[i] = static_cast<char>('0' + index % 10);
        index /= 10;
    }
}

bool NullFs::attr_of(uint64_t nodeid, fuse_attr* out) noexcept {
    const uint32_t kind = kind_of(nodeid);
    if (kind == 0) {
        return false;
    }
    fuse_attr a{};
    a.ino = nodeid;
    a.mode = mode_of(kind);
    a.nlink = 1;
    a.blksize = kBlockSize;
    a.atime = a.mtime = a.ctime = kTime;
    if (kind == kind_bits(NodeKind::Dir)) {
        a.nlink = 2;
        a.size = kDirSize;
    } else if (kind == kind_bits(NodeKind::File)) {
        a.size = kFileSize;
    } else if (kind == kind_bits(NodeKind::Symlink)) {
        a.size = kSymlinkTarget.size();
    }
    a.blocks = (a.size + 511) / 512;
    *out = a;
    return true;
}

fuse_attr_out NullFs::attr_out_of(const fuse_attr& attr) const noexcept {
    fuse_attr_out o{};
    o.attr_valid = options_.attr_valid;
    o.attr_valid_nsec = options_.attr_valid_nsec;
    o.attr = attr;
    return o;
}

fuse_entry_out NullFs::entry_of(uint64_t nodeid) const noexcept {
    fuse_entry_out e{};
    e.nodeid = nodeid;
    e.entry_valid = options_.entry_valid;
    e.entry_valid_nsec = options_.entry_valid_nsec;
    e.attr_valid = options_.attr_valid;
    e.attr_valid_nsec = options_.attr_valid_nsec;
    (void)attr_of(nodeid, &e.attr); // callers pass ids of a known kind
    return e;
}

Result<fuse_entry_out> NullFs::make_node(uint64_t parent, std::string_view name,
                                         NodeKind kind) const noexcept {
    if (options_.readonly) {
        return make_err(EROFS);
    }
    VDH_TRY(check_parent(parent));
    VDH_TRY(check_name(name));
    return entry_of(node_id(parent, name, kind));
}

// ---- Session --------------------------------------------------------------------------------

void NullFs::init(uint32_t /*minor*/, uint64_t /*want*/) {}

void NullFs::destroy() {}

// ---- Names and attributes -------------------------------------------------------------------

Result<fuse_entry_out> NullFs::lookup(const RequestCtx& /*c*/, uint64_t parent,
                                      std::string_view name) {
    VDH_TRY(check_parent(parent));
    VDH_TRY(check_name(name));
    if (name == ".") {
        return entry_of(parent);
    }
    if (name == "..") {
        return entry_of(kRootNodeId); // parents are not tracked; the guest rarely asks
    }
    if (starts_with(name, kMissingPrefix)) {
        return make_err(ENOENT);
    }
    return entry_of(node_id(parent, name, kind_of_name(name)));
}

void NullFs::forget(uint64_t /*nodeid*/, uint64_t /*nlookup*/) {}

Result<fuse_attr_out> NullFs::getattr(const RequestCtx& /*c*/, uint64_t nodeid,
                                      const uint64_t* /*fh*/) {
    fuse_attr a;
    if (!attr_of(nodeid, &a)) {
        return make_err(ENOENT);
    }
    return attr_out_of(a);
}

Result<fuse_attr_out> NullFs::setattr(const RequestCtx& /*c*/, uint64_t nodeid,
                                      const fuse_setattr_in& in) {
    fuse_attr a;
    if (!attr_of(nodeid, &a)) {
        return make_err(ENOENT);
    }
    if (options_.readonly) {
        return make_err(EROFS);
    }
    if ((in.valid & FATTR_SIZE) != 0) {
        if (kind_of(nodeid) == kind_bits(NodeKind::Dir)) {
            return make_err(EISDIR);
        }
        if (kind_of(nodeid) != kind_bits(NodeKind::File)) {
            return make_err(EINVAL);
        }
        a.size = in.size;
        a.blocks = (a.size + 511) / 512;
    }
    if ((in.valid & FATTR_MODE) != 0) {
        a.mode = (a.mode & S_IFMT) | (in.mode & 07777);
    }
    if ((in.valid & FATTR_UID) != 0) {
        a.uid = in.uid;
    }
    if ((in.valid & FATTR_GID) != 0) {
        a.gid = in.gid;
    }
    if ((in.valid & FATTR_ATIME) != 0 && (in.valid & FATTR_ATIME_NOW) == 0) {
        a.atime = in.atime;
        a.atimensec = in.atimensec;
    }
    if ((in.valid & FATTR_MTIME) != 0 && (in.valid & FATTR_MTIME_NOW) == 0) {
        a.mtime = in.mtime;
        a.mtimensec = in.mtimensec;
    }
    if ((in.valid & FATTR_CTIME) != 0) {
        a.ctime = in.ctime;
        a.ctimensec = in.ctimensec;
    }
    return attr_out_of(a);
}

Result<size_t> NullFs::readlink(const RequestCtx& /*c*/, uint64_t nodeid, char* buf,
                                size_t size) {
    const uint32_t kind = kind_of(nodeid);
    if (kind == 0) {
        return make_err(ENOENT);
    }
    if (kind != kind_bits(NodeKind::Symlink)) {
        return make_err(EINVAL);
    }
    const size_t n = size < kSymlinkTarget.size() ? size : kSymlinkTarget.size();
    std::memcpy(buf, kSymlinkTarget.data(), n);
    return n;
}

Result<fuse_entry_out> NullFs::symlink(const RequestCtx& /*c*/, uint64_t parent,
                                       std::string_view name, std::string_view /*target*/) {
    return make_node(parent, name, NodeKind::Symlink);
}

Result<fuse_entry_out> NullFs::mknod(const RequestCtx& /*c*/, uint64_t parent,
                                     std::string_view name, uint32_t mode, uint32_t /*rdev*/,
                                     uint32_t /*umask*/) {
    NodeKind kind;
    switch (mode & S_IFMT) {
    case 0:
    case S_IFREG: kind = NodeKind::File; break;
    case S_IFIFO: kind = NodeKind::Fifo; break;
    case S_IFSOCK: kind = NodeKind::Socket; break;
    case S_IFCHR: kind = NodeKind::CharDev; break;
    case S_IFBLK: kind = NodeKind::BlockDev; break;
    default: return make_err(EINVAL);
    }
    return make_node(parent, name, kind);
}

Result<fuse_entry_out> NullFs::mkdir(const RequestCtx& /*c*/, uint64_t parent,
                                     std::string_view name, uint32_t /*mode*/,
                                     uint32_t /*umask*/) {
    return make_node(parent, name, NodeKind::Dir);
}

Status NullFs::unlink(const RequestCtx& /*c*/, uint64_t parent, std::string_view name) {
    if (options_.readonly) {
        return make_err(EROFS);
    }
    VDH_TRY(check_parent(parent));
    VDH_TRY(check_name(name));
    return starts_with(name, kMissingPrefix) ? Status(make_err(ENOENT)) : ok();
}

Status NullFs::rmdir(const RequestCtx& c, uint64_t parent, std::string_view name) {
    return unlink(c, parent, name);
}

Status NullFs::rename(const RequestCtx& c, uint64_t parent, std::string_view name,
                      uint64_t newparent, std::string_view newname, uint32_t /*flags*/) {
    VDH_TRY(unlink(c, parent, name));
    VDH_TRY(check_parent(newparent));
    return check_name(newname);
}

Result<fuse_entry_out> NullFs::link(const RequestCtx& /*c*/, uint64_t nodeid,
                                    uint64_t newparent, std::string_view newname) {
    const uint32_t kind = kind_of(nodeid);
    if (kind == 0) {
        return make_err(ENOENT);
    }
    if (kind == kind_bits(NodeKind::Dir)) {
        return make_err(EPERM);
    }
    if (options_.readonly) {
        return make_err(EROFS);
    }
    VDH_TRY(check_parent(newparent));
    VDH_TRY(check_name(newname));
    return entry_of(nodeid); // a hard link is the same node
}

// ---- Files ----------------------------------------------------------------------------------

Result<fuse_open_out> NullFs::open(const RequestCtx& /*c*/, uint64_t nodeid, uint32_t flags) {
    const uint32_t kind = kind_of(nodeid);
    if (kind == 0) {
        return make_err(ENOENT);
    }
    if (kind == kind_bits(NodeKind::Dir) && (flags & O_ACCMODE) != O_RDONLY) {
        return make_err(EISDIR);
    }
    if (options_.readonly && modifies(flags)) {
        return make_err(EROFS);
    }
    fuse_open_out o{};
    o.fh = next_fh();
    o.open_flags = options_.file_open_flags;
    return o;
}

Result<CreateOut> NullFs::create(const RequestCtx& /*c*/, uint64_t parent,
                                 std::string_view name, uint32_t /*flags*/, uint32_t /*mode*/,
                                 uint32_t /*umask*/) {
    Result<fuse_entry_out> e = make_node(parent, name, NodeKind::File);
    if (!e) {
        return make_err(e.error());
    }
    CreateOut out;
    out.entry = *e;
    out.open.fh = next_fh();
    out.open.open_flags = options_.file_open_flags;
    return out;
}

Result<CreateOut> NullFs::tmpfile(const RequestCtx& /*c*/, uint64_t parent, uint32_t /*flags*/,
                                  uint32_t /*mode*/, uint32_t /*umask*/) {
    if (options_.readonly) {
        return make_err(EROFS);
    }
    VDH_TRY(check_parent(parent));
    // Unnamed: the handle value makes the node distinct from every other tmpfile.
    const uint64_t fh = next_fh();
    char key[sizeof(fh)];
    std::memcpy(key, &fh, sizeof(fh));
    CreateOut out;
    out.entry = entry_of(node_id(parent, std::string_view(key, sizeof(key)), NodeKind::File));
    out.open.fh = fh;
    out.open.open_flags = options_.file_open_flags;
    return out;
}

Result<size_t> NullFs::read(const RequestCtx& /*c*/, uint64_t nodeid, uint64_t /*fh*/,
                            uint64_t offset, const struct iovec* dst, int ndst) {
    const uint32_t kind = kind_of(nodeid);
    if (kind == kind_bits(NodeKind::Dir)) {
        return make_err(EISDIR);
    }
    if (kind != kind_bits(NodeKind::File)) {
        return make_err(EINVAL);
    }
    if (offset >= kFileSize) {
        return size_t{0};
    }
    size_t left = static_cast<size_t>(kFileSize - offset);
    size_t done = 0;
    for (int i = 0; i < ndst && left > 0; ++i) {
        const size_t n = dst[i].iov_len < left ? dst[i].iov_len : left;
        std::memset(dst[i].iov_base, 0, n);
        done += n;
        left -= n;
    }
    return done;
}

Result<size_t> NullFs::write(const RequestCtx& /*c*/, uint64_t nodeid, uint64_t /*fh*/,
                             uint64_t /*offset*/, const struct iovec* src, int nsrc,
                             uint32_t /*write_flags*/) {
    const uint32_t kind = kind_of(nodeid);
    if (kind == kind_bits(NodeKind::Dir)) {
        return make_err(EISDIR);
    }
    if (kind != kind_bits(NodeKind::File)) {
        return make_err(EINVAL);
    }
    if (options_.readonly) {
        return make_err(EROFS);
    }
    size_t total = 0;
    for (int i = 0; i < nsrc; ++i) {
        total += src[i].iov_len;
    }
    return total;
}

Result<IoFile> NullFs::io_fd(const RequestCtx& /*c*/, uint64_t /*nodeid*/, uint64_t /*fh*/,
                             bool /*for_write*/, uint32_t /*write_flags*/) {
    return make_err(EOPNOTSUPP);
}

Status NullFs::flush(const RequestCtx& /*c*/, uint64_t /*nodeid*/, uint64_t /*fh*/,
                     uint64_t /*lock_owner*/) {
    return ok();
}

Status NullFs::release(const RequestCtx& /*c*/, uint64_t /*nodeid*/, uint64_t /*fh*/,
                       uint32_t /*flags*/, uint32_t /*release_flags*/, uint64_t /*lock_owner*/) {
    return ok();
}

Status NullFs::fsync(const RequestCtx& /*c*/, uint64_t /*nodeid*/, uint64_t /*fh*/,
                     bool /*datasync*/) {
    return ok();
}

// ---- Directories ----------------------------------------------------------------------------

Result<fuse_open_out> NullFs::opendir(const RequestCtx& /*c*/, uint64_t nodeid,
                                      uint32_t /*flags*/) {
    VDH_TRY(check_parent(nodeid));
    fuse_open_out o{};
    o.fh = next_fh();
    o.open_flags = options_.dir_open_flags;
    return o;
}

Status NullFs::readdir(const RequestCtx& /*c*/, uint64_t nodeid, uint64_t /*fh*/,
                       uint64_t offset, DirentSink& sink) {
    VDH_TRY(check_parent(nodeid));
    const bool plus = sink.plus();
    for (uint64_t i = offset; i < kListingSize; ++i) {
        bool fits;
        if (i < 2) {
            // "." and "..": no lookup, nodeid 0 means "name only" (as virtiofsd).
            const std::string_view name = i == 0 ? "." : "..";
            const uint64_t ino = i == 0 ? nodeid : kRootNodeId;
            fuse_entry_out e{};
            e.attr.ino = ino;
            e.attr.mode = S_IFDIR;
            fits = sink.add(name, ino, DT_DIR, i + 1, plus ? &e : nullptr);
        } else {
            char buf[kEntryNameLen];
            entry_name(static_cast<uint32_t>(i - 2), buf);
            const std::string_view name(buf, sizeof(buf));
            const uint64_t id = node_id(nodeid, name, NodeKind::File);
            if (plus) {
                const fuse_entry_out e = entry_of(id);
                fits = sink.add(name, id, dirent_type(NodeKind::File), i + 1, &e);
            } else {
                fits = sink.add(name, id, dirent_type(NodeKind::File), i + 1, nullptr);
            }
        }
        if (!fits) {
            break; // nothing to undo: lookups are not counted
        }
    }
    return ok();
}

Status NullFs::releasedir(const RequestCtx& /*c*/, uint64_t /*nodeid*/, uint64_t /*fh*/) {
    return ok();
}

Status NullFs::fsyncdir(const RequestCtx& /*c*/, uint64_t /*nodeid*/, uint64_t /*fh*/,
                        bool /*datasync*/) {
    return ok();
}

// ---- File system ----------------------------------------------------------------------------

Result<fuse_statfs_out> NullFs::statfs(const RequestCtx& /*c*/, uint64_t /*nodeid*/) {
    fuse_statfs_out o{};
    o.st.blocks = uint64_t{1} << 28; // 1 TiB of 4 KiB blocks, all free
    o.st.bfree = o.st.blocks;
    o.st.bavail = o.st.blocks;
    o.st.files = uint64_t{1} << 20;
    o.st.ffree = o.st.files;
    o.st.bsize = kBlockSize;
    o.st.frsize = kBlockSize;
    o.st.namelen = NAME_MAX;
    return o;
}

Status NullFs::access(const RequestCtx& /*c*/, uint64_t nodeid, uint32_t mask) {
    if (kind_of(nodeid) == 0) {
        return make_err(ENOENT);
    }
    if (options_.readonly && (mask & W_OK) != 0) {
        return make_err(EROFS);
    }
    return ok();
}

Status NullFs::syncfs(const RequestCtx& /*c*/, uint64_t /*nodeid*/) { return ok(); }

// ---- Extended attributes --------------------------------------------------------------------

Status NullFs::setxattr(const RequestCtx& /*c*/, uint64_t /*nodeid*/, std::string_view /*name*/,
                        const void* /*value*/, size_t /*size*/, uint32_t /*flags*/,
                        uint32_t /*setxattr_flags*/) {
    return options_.readonly ? Status(make_err(EROFS)) : ok();
}

Result<size_t> NullFs::getxattr(const RequestCtx& /*c*/, uint64_t /*nodeid*/,
                                std::string_view /*name*/, void* /*buf*/, size_t /*size*/) {
    return make_err(ENODATA);
}

Result<size_t> NullFs::listxattr(const RequestCtx& /*c*/, uint64_t /*nodeid*/, char* /*buf*/,
                                 size_t /*size*/) {
    return size_t{0};
}

Status NullFs::removexattr(const RequestCtx& /*c*/, uint64_t /*nodeid*/,
                           std::string_view /*name*/) {
    return options_.readonly ? Status(make_err(EROFS)) : Status(make_err(ENODATA));
}

// ---- Locks ----------------------------------------------------------------------------------

Result<fuse_lk_out> NullFs::getlk(const RequestCtx& /*c*/, uint64_t /*nodeid*/,
                                  const fuse_lk_in& in) {
    fuse_lk_out o{};
    o.lk = in.lk;
    o.lk.type = F_UNLCK;
    return o;
}

Status NullFs::setlk(const RequestCtx& /*c*/, uint64_t /*nodeid*/, const fuse_lk_in& /*in*/,
                     bool /*sleep*/) {
    return ok();
}

bool NullFs::interrupt_lock(uint64_t /*unique*/) { return false; }

// ---- Ranges ---------------------------------------------------------------------------------

Status NullFs::fallocate(const RequestCtx& /*c*/, uint64_t nodeid, uint64_t /*fh*/,
                         uint64_t /*offset*/, uint64_t /*length*/, uint32_t /*mode*/) {
    if (kind_of(nodeid) != kind_bits(NodeKind::File)) {
        return make_err(is_dir(nodeid) ? EISDIR : ENODEV);
    }
    return options_.readonly ? Status(make_err(EROFS)) : ok();
}

Result<uint64_t> NullFs::lseek(const RequestCtx& /*c*/, uint64_t nodeid, uint64_t /*fh*/,
                               uint64_t offset, uint32_t whence) {
    if (kind_of(nodeid) != kind_bits(NodeKind::File)) {
        return make_err(is_dir(nodeid) ? EISDIR : EINVAL);
    }
    switch (whence) {
    case SEEK_SET:
    case SEEK_CUR: return offset;
    case SEEK_DATA:
        if (offset >= kFileSize) {
            return make_err(ENXIO);
        }
        return offset;
    case SEEK_HOLE:
        if (offset >= kFileSize) {
            return make_err(ENXIO);
        }
        return kFileSize; // the implicit hole at the end
    default: return make_err(EINVAL);
    }
}

Result<size_t> NullFs::copy_file_range(const RequestCtx& /*c*/,
                                       const fuse_copy_file_range_in& in,
                                       uint64_t /*nodeid_in*/) {
    if (options_.readonly) {
        return make_err(EROFS);
    }
    return static_cast<size_t>(in.len);
}

} // namespace vdh::virtiofs::null

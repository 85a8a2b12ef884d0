// SPDX-License-Identifier: MIT
// FUSE wire format as the dispatcher speaks it: <linux/fuse.h> (protocol 7.38 here) plus
// the few constants newer guests (Linux 6.6 .. 6.12, protocol 7.39 .. 7.41) may send that
// the installed header lacks, under our own names. Size checks pin every struct we decode
// or encode, so a header change cannot silently change the wire layout.
#pragma once

#include <linux/fuse.h>

#include <cstddef>
#include <cstdint>

namespace vdh::virtiofs {

/// The protocol we answer with: 7.38, the version of the structs we were built against.
/// A newer guest is answered with min(38, its minor) and then talks 7.38 to us.
inline constexpr uint32_t kFuseMajor = 7;
inline constexpr uint32_t kFuseMinor = 38;
/// Oldest guest minor we accept (as the Rust virtiofsd). virtio-fs itself needs 7.31
/// (Linux 5.4); below 7.27 several request structs had other sizes.
inline constexpr uint32_t kFuseMinMinor = 27;
static_assert(FUSE_KERNEL_VERSION == 7, "unexpected FUSE major in <linux/fuse.h>");
static_assert(FUSE_KERNEL_MINOR_VERSION >= 38, "<linux/fuse.h> older than 7.38");

// ---- Opcodes newer than 7.38 (answered with ENOSYS; the guest then falls back) ----------
/// FUSE_STATX (7.39, Linux 6.6): the kernel falls back to GETATTR on ENOSYS.
inline constexpr uint32_t kFuseOpStatx = 52;
/// FUSE_COPY_FILE_RANGE_64 (7.45): falls back to COPY_FILE_RANGE on ENOSYS.
inline constexpr uint32_t kFuseOpCopyFileRange64 = 53;

// ---- INIT flags above 7.38 (bits of the 64-bit flags; 32.. travel in flags2) -------------
// Guests offer them; we enable CREATE_SUPP_GROUP (its extension needs no newer struct than
// 7.38's fuse_in_header.total_extlen) and DIRECT_IO_ALLOW_MMAP (share key allow_mmap); the
// rest are named for tests and logs.
/// FUSE_CREATE_SUPP_GROUP (7.38, Linux 6.5): creates carry a FUSE_EXT_GROUPS extension with
/// the parent directory's group when the caller is in it only as a secondary group.
inline constexpr uint64_t kFuseCreateSuppGroup = 1ULL << 34;
/// 7.39 (Linux 6.6, named FUSE_DIRECT_IO_RELAX there; renamed in 6.7): shared mmap of
/// FOPEN_DIRECT_IO files.
inline constexpr uint64_t kFuseDirectIoAllowMmap = 1ULL << 36;
inline constexpr uint64_t kFusePassthrough = 1ULL << 37;       ///< 7.40
inline constexpr uint64_t kFuseNoExportSupport = 1ULL << 38;   ///< 7.40
inline constexpr uint64_t kFuseHasResend = 1ULL << 39;         ///< 7.40
inline constexpr uint64_t kFuseAllowIdmap = 1ULL << 40;        ///< 7.41 (Linux 6.12)
inline constexpr uint64_t kFuseOverIoUring = 1ULL << 41;       ///< 7.42
inline constexpr uint64_t kFuseRequestTimeout = 1ULL << 42;    ///< 7.42
/// High bit of fuse_in_header.unique on a resent request (only with FUSE_HAS_RESEND).
inline constexpr uint64_t kFuseUniqueResend = 1ULL << 63;

// ---- Request extensions (7.38: fuse_in_header.total_extlen 8-byte units after the op's
// arguments). Each starts with a fuse_ext_header {size, type}; size counts the header and
// is a multiple of 8. Types 0..31 are a fuse_secctx_header (type = nr_secctx).
/// FUSE_EXT_GROUPS (enum fuse_ext_type): a fuse_supp_groups follows the header.
inline constexpr uint32_t kFuseExtGroups = 32;
/// struct fuse_supp_groups { uint32_t nr_groups; uint32_t groups[]; } (not in our header).
struct FuseSuppGroups {
    uint32_t nr_groups;
    // uint32_t groups[nr_groups] follow
};
static_assert(sizeof(FuseSuppGroups) == 4);
static_assert(sizeof(fuse_ext_header) == 8);
static_assert(sizeof(fuse_secctx_header) == 8);
static_assert(sizeof(fuse_secctx) == 8);
static_assert(FUSE_MAX_NR_SECCTX == 31);
/// Most security contexts one request may carry (the kernel sends at most one).
inline constexpr uint32_t kMaxSecctx = 1;
/// Most groups one FUSE_EXT_GROUPS may carry (the kernel sends exactly one).
inline constexpr uint32_t kMaxExtGroups = 1;
/// Most extension bytes we accept on a request: one security context (name up to 255
/// bytes, value up to XATTR_SIZE_MAX) plus a group extension, rounded generously.
inline constexpr size_t kMaxExtBytes = 65536 + 1024;

// ---- Sizes ---------------------------------------------------------------------------------
inline constexpr size_t kInHeaderSize = sizeof(fuse_in_header);
inline constexpr size_t kOutHeaderSize = sizeof(fuse_out_header);
/// fuse_setxattr_in without FUSE_SETXATTR_EXT: only size and flags.
inline constexpr size_t kSetxattrInCompatSize = FUSE_COMPAT_SETXATTR_IN_SIZE;
/// Smallest fuse_init_in we accept: major and minor.
inline constexpr size_t kInitInMinSize = 8;
/// Longest name the kernel sends (FUSE_NAME_MAX in fs/fuse/fuse_i.h).
inline constexpr size_t kFuseNameMax = 1024;
/// Largest xattr value or list (XATTR_SIZE_MAX / XATTR_LIST_MAX).
inline constexpr size_t kXattrSizeMax = 65536;
inline constexpr size_t kPageSize = 4096;
/// Largest max_pages we announce (1 MiB requests; needs a queue of >= 260 entries).
inline constexpr uint32_t kFuseMaxPagesLimit = 256;

static_assert(sizeof(fuse_in_header) == 40);
static_assert(sizeof(fuse_out_header) == 16);
static_assert(sizeof(fuse_attr) == 88);
static_assert(sizeof(fuse_kstatfs) == 80);
static_assert(sizeof(fuse_file_lock) == 24);
static_assert(sizeof(fuse_entry_out) == 128);
static_assert(sizeof(fuse_forget_in) == 8);
static_assert(sizeof(fuse_forget_one) == 16);
static_assert(sizeof(fuse_batch_forget_in) == 8);
static_assert(sizeof(fuse_getattr_in) == 16);
static_assert(sizeof(fuse_attr_out) == 104);
static_assert(sizeof(fuse_mknod_in) == 16);
static_assert(sizeof(fuse_mkdir_in) == 8);
static_assert(sizeof(fuse_rename_in) == 8);
static_assert(sizeof(fuse_rename2_in) == 16);
static_assert(sizeof(fuse_link_in) == 8);
static_assert(sizeof(fuse_setattr_in) == 88);
static_assert(sizeof(fuse_open_in) == 8);
static_assert(sizeof(fuse_create_in) == 16);
static_assert(sizeof(fuse_open_out) == 16);
static_assert(sizeof(fuse_release_in) == 24);
static_assert(sizeof(fuse_flush_in) == 24);
static_assert(sizeof(fuse_read_in) == 40);
static_assert(sizeof(fuse_write_in) == 40);
static_assert(sizeof(fuse_write_out) == 8);
static_assert(sizeof(fuse_statfs_out) == 80);
static_assert(sizeof(fuse_fsync_in) == 16);
static_assert(sizeof(fuse_setxattr_in) == 16);
static_assert(sizeof(fuse_getxattr_in) == 8);
static_assert(sizeof(fuse_getxattr_out) == 8);
static_assert(sizeof(fuse_lk_in) == 48);
static_assert(sizeof(fuse_lk_out) == 24);
static_assert(sizeof(fuse_access_in) == 8);
static_assert(sizeof(fuse_init_in) == 64);
static_assert(sizeof(fuse_init_out) == 64);
static_assert(sizeof(fuse_interrupt_in) == 8);
static_assert(sizeof(fuse_fallocate_in) == 32);
static_assert(sizeof(fuse_lseek_in) == 24);
static_assert(sizeof(fuse_lseek_out) == 8);
static_assert(sizeof(fuse_copy_file_range_in) == 56);
static_assert(sizeof(fuse_syncfs_in) == 8);
static_assert(sizeof(fuse_dirent) == 24);
static_assert(FUSE_NAME_OFFSET == 24);
static_assert(sizeof(fuse_direntplus) == 152);
static_assert(FUSE_NAME_OFFSET_DIRENTPLUS == 152);

/// Bytes one fuse_dirent record with a \p namelen-byte name takes (8-byte aligned).
constexpr size_t fuse_dirent_size(size_t namelen) {
    return FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + namelen);
}
/// Bytes one fuse_direntplus record with a \p namelen-byte name takes (8-byte aligned).
constexpr size_t fuse_direntplus_size(size_t namelen) {
    return FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET_DIRENTPLUS + namelen);
}
static_assert(fuse_dirent_size(1) == 32 && fuse_dirent_size(8) == 32 && fuse_dirent_size(9) == 40);
static_assert(fuse_direntplus_size(1) == 160 && fuse_direntplus_size(8) == 160);

/// Whether the kernel expects no reply to \p opcode (FORGET, BATCH_FORGET, INTERRUPT,
/// NOTIFY_REPLY).
constexpr bool fuse_opcode_has_reply(uint32_t opcode) {
    return opcode != FUSE_FORGET && opcode != FUSE_BATCH_FORGET && opcode != FUSE_INTERRUPT &&
           opcode != FUSE_NOTIFY_REPLY;
}

/// Protocol name of \p opcode ("LOOKUP"), or nullptr if unknown. For statistics output.
constexpr const char* fuse_opcode_name(uint32_t opcode) {
    switch (opcode) {
    case FUSE_LOOKUP: return "LOOKUP";
    case FUSE_FORGET: return "FORGET";
    case FUSE_GETATTR: return "GETATTR";
    case FUSE_SETATTR: return "SETATTR";
    case FUSE_READLINK: return "READLINK";
    case FUSE_SYMLINK: return "SYMLINK";
    case FUSE_MKNOD: return "MKNOD";
    case FUSE_MKDIR: return "MKDIR";
    case FUSE_UNLINK: return "UNLINK";
    case FUSE_RMDIR: return "RMDIR";
    case FUSE_RENAME: return "RENAME";
    case FUSE_LINK: return "LINK";
    case FUSE_OPEN: return "OPEN";
    case FUSE_READ: return "READ";
    case FUSE_WRITE: return "WRITE";
    case FUSE_STATFS: return "STATFS";
    case FUSE_RELEASE: return "RELEASE";
    case FUSE_FSYNC: return "FSYNC";
    case FUSE_SETXATTR: return "SETXATTR";
    case FUSE_GETXATTR: return "GETXATTR";
    case FUSE_LISTXATTR: return "LISTXATTR";
    case FUSE_REMOVEXATTR: return "REMOVEXATTR";
    case FUSE_FLUSH: return "FLUSH";
    case FUSE_INIT: return "INIT";
    case FUSE_OPENDIR: return "OPENDIR";
    case FUSE_READDIR: return "READDIR";
    case FUSE_RELEASEDIR: return "RELEASEDIR";
    case FUSE_FSYNCDIR: return "FSYNCDIR";
    case FUSE_GETLK: return "GETLK";
    case FUSE_SETLK: return "SETLK";
    case FUSE_SETLKW: return "SETLKW";
    case FUSE_ACCESS: return "ACCESS";
    case FUSE_CREATE: return "CREATE";
    case FUSE_INTERRUPT: return "INTERRUPT";
    case FUSE_BMAP: return "BMAP";
    case FUSE_DESTROY: return "DESTROY";
    case FUSE_IOCTL: return "IOCTL";
    case FUSE_POLL: return "POLL";
    case FUSE_NOTIFY_REPLY: return "NOTIFY_REPLY";
    case FUSE_BATCH_FORGET: return "BATCH_FORGET";
    case FUSE_FALLOCATE: return "FALLOCATE";
    case FUSE_READDIRPLUS: return "READDIRPLUS";
    case FUSE_RENAME2: return "RENAME2";
    case FUSE_LSEEK: return "LSEEK";
    case FUSE_COPY_FILE_RANGE: return "COPY_FILE_RANGE";
    case FUSE_SETUPMAPPING: return "SETUPMAPPING";
    case FUSE_REMOVEMAPPING: return "REMOVEMAPPING";
    case FUSE_SYNCFS: return "SYNCFS";
    case FUSE_TMPFILE: return "TMPFILE";
    case kFuseOpStatx: return "STATX";
    case kFuseOpCopyFileRange64: return "COPY_FILE_RANGE_64";
    default: return nullptr;
    }
}

} // namespace vdh::virtiofs

// SPDX-License-Identifier: MIT
// PassthroughOptions: everything the passthrough backend needs to know about a share.
// The plugin glue maps the share profile (YAML) onto this struct; the backend does not
// depend on the profile types.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "id_map.h"
#include "xattr_map.h"

namespace vdh::virtiofs::passthrough {

/// How inodes are held (the `inode_file_handles` share option, as virtiofsd's
/// --inode-file-handles). The one definition: the share profile uses it too.
enum class FileHandleMode {
    Never,     ///< O_PATH fds only
    Prefer,    ///< file handles where the filesystem allows, else O_PATH fds
    Mandatory, ///< file handles or fail the lookup
};

struct PassthroughOptions {
    /// The shared directory: an fd (borrowed; the backend dups it) or, when
    /// shared_dir_fd < 0, a path opened once at creation.
    int shared_dir_fd = -1;
    std::string shared_dir;

    FileHandleMode inode_file_handles = FileHandleMode::Never;
    /// Max fds held for the guest (inode O_PATH fds, open files/dirs, lock fds); 0 means
    /// no per-share limit. Exhaustion → ENFILE for this share.
    uint32_t fd_limit = 0;
    /// Max inodes held by file handle (no fd; see inode_store.h rule 5); 0 means no
    /// per-share limit. Exhaustion → ENFILE for this share.
    uint32_t inode_limit = 0;
    bool xattr = false;              ///< allow *XATTR ops (else ENOSYS)
    /// xattr name mapping between guest and host (`xattrmap:`); null: names unchanged.
    std::shared_ptr<const XattrMap> xattr_map;
    bool readonly = false;           ///< EROFS for every modifying op
    bool announce_submounts = false; ///< FUSE_ATTR_SUBMOUNT on mount points
    bool writeback = false;          ///< guest may use the writeback cache
    double entry_timeout = 1.0;      ///< seconds, fuse_entry_out::entry_valid
    double attr_timeout = 1.0;       ///< seconds, attr_valid
    bool posix_locks = true;         ///< POSIX locks (emulated with OFD locks)
    bool flock = true;               ///< flock() locks
    /// Keep the guest's O_DIRECT when opening host files (OPEN, CREATE, TMPFILE); else it
    /// is dropped, as virtiofsd does unless --allow-direct-io.
    bool allow_direct_io = false;
    /// POSIX ACLs (needs xattr): negotiate FUSE_POSIX_ACL; creates then run under the
    /// guest's umask so the host kernel applies default ACLs.
    bool posix_acl = false;
    /// Store FUSE_SECURITY_CTX labels on new inodes, atomically with the create.
    bool security_label = false;
    /// FOPEN_* flags for OPEN/CREATE replies (cache policy: DIRECT_IO, KEEP_CACHE).
    uint32_t file_open_flags = 0;
    /// FOPEN_* flags for OPENDIR replies (cache policy: CACHE_DIR).
    uint32_t dir_open_flags = 0;
    bool readdirplus = true;         ///< offer FUSE_DO_READDIRPLUS | READDIRPLUS_AUTO
    bool allow_mmap = false;         ///< offer FUSE_DIRECT_IO_ALLOW_MMAP
    /// Keep the guest's O_NOATIME on OPEN/CREATE; else it is dropped (virtiofsd default).
    bool preserve_noatime = false;
    /// uid / gid translation (the `translate_uid` / `translate_gid` share options): guest
    /// ids to host ids for the caller's credentials and SETATTR's owner (a forbidden id
    /// fails with EPERM), host ids to guest ids in every attribute returned. Default: none.
    IdMap uid_map;
    IdMap gid_map;
};

} // namespace vdh::virtiofs::passthrough

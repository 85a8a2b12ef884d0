// SPDX-License-Identifier: MIT
// The share profile: a virtio-fs device's `config:` block, parsed and validated into a
// typed ShareProfile, plus what follows from it (INIT capabilities, cache timeouts, open
// flags). Parsing is pure (no file system access); check_shared_dir() does the create-time
// check. Cold path: uses yaml-cpp and std::string, exceptions stay inside the .cc.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "filesystem.h"
#include "passthrough/id_map.h"
#include "passthrough/passthrough_options.h"
#include "passthrough/xattr_map.h"
#include "vdh/write_path.h"

namespace vdh::virtiofs {

/// Guest caching, as virtiofsd's --cache.
enum class CachePolicy {
    Never,    ///< no attribute/entry caching, files opened with direct I/O
    Auto,     ///< 1 s attribute/entry timeouts, data cache dropped on open
    Always,   ///< 1 day timeouts, data and directory caches kept across opens
    Metadata, ///< 1 day timeouts, but file data is not cached (direct I/O)
};

/// How the backend identifies inodes, as virtiofsd's --inode-file-handles: the backend's
/// own enum (passthrough/passthrough_options.h), so the profile's value is handed on as is.
using passthrough::FileHandleMode;

enum class BackendKind {
    Passthrough, ///< a host directory
    Null,        ///< answers without touching disk (benchmarks; null/null_fs.h)
};

/// 1-based position in the config file.
struct SourcePos {
    int line = 1;
    int column = 1;
};

/// Defaults are the documented defaults of each key.
struct ShareProfile {
    std::string shared_dir;   ///< required; absolute
    SourcePos shared_dir_pos; ///< where shared_dir was written (for later errors)
    /// Create a missing shared_dir (and missing parents, 0755) when the device is created;
    /// see prepare_shared_dir() for what is refused.
    bool create = false;
    /// virtio-fs tag (<= 36 bytes). Informational: QEMU's vhost-user-fs device owns the tag
    /// the guest sees. Default: the device name (cut to 36 bytes).
    std::string tag;
    CachePolicy cache = CachePolicy::Auto;
    bool writeback = false;         ///< FUSE_WRITEBACK_CACHE
    bool xattr = false;             ///< serve *XATTR requests (else ENOSYS)
    /// `xattrmap:` xattr name mapping rules (virtiofsd's syntax: one string, or a list
    /// of one rule each); null: names pass unchanged. Implies xattr (as virtiofsd); an
    /// explicit `xattr: false` with it is refused.
    std::shared_ptr<const passthrough::XattrMap> xattrmap;
    bool readonly = false;          ///< refuse every modification with EROFS
    bool announce_submounts = true; ///< FUSE_SUBMOUNTS + FUSE_ATTR_SUBMOUNT
    FileHandleMode inode_file_handles = FileHandleMode::Never;
    /// Most fds the backend holds for the guest (ENFILE beyond). Default 16384: it is
    /// reserved from the process's RLIMIT_NOFILE (vdh_host_api::reserve_fds), so a default
    /// share must fit common hard limits (20000 on some hosts); range 64..1048576 (the
    /// kernel's default nr_open).
    uint32_t fd_limit = 16384;
    /// Most inodes the backend holds for the guest by file handle (they use no fd, so
    /// fd_limit does not bound them; each costs memory, about 0.5 KiB). ENFILE beyond.
    /// Default 262144; range 64..16777216.
    uint32_t inode_limit = 262144;
    uint32_t max_pages = 256; ///< FUSE max_pages (1..256; 256 = 1 MiB requests)
    bool posix_locks = true;  ///< FUSE_POSIX_LOCKS (fcntl locks go to the host)
    bool flock = true;        ///< FUSE_FLOCK_LOCKS (flock() goes to the host)
    /// POSIX ACLs: FUSE_POSIX_ACL | DONT_MASK | SETXATTR_EXT, required of the guest. Implies
    /// xattr (an explicit `xattr: false` is an error).
    bool posix_acl = false;
    /// Store the guest's FUSE_SECURITY_CTX label on each new inode, atomically.
    bool security_label = false;
    /// Overrides of the cache policy's entry / attribute timeouts, in milliseconds.
    std::optional<uint32_t> entry_timeout_ms;
    std::optional<uint32_t> attr_timeout_ms;
    BackendKind backend = BackendKind::Passthrough;
    /// How buffered WRITEs reach the host (write_path.h); Auto until resolve_write_path().
    WritePath write_path = WritePath::Auto;
    SourcePos write_path_pos;       ///< where write_path was written
    bool write_path_written = false; ///< write_path appeared in the config
    std::string write_path_reason;  ///< why resolve_write_path() chose write_path
    /// FUSE_DIRECT_IO_ALLOW_MMAP (virtiofsd --allow-mmap): the guest may mmap MAP_SHARED
    /// files opened with direct I/O (cache: never / metadata). Off: such an mmap fails.
    bool allow_mmap = false;
    /// READDIRPLUS (FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO); unset: on, except with
    /// `cache: never` (virtiofsd). See readdirplus_enabled().
    std::optional<bool> readdirplus;
    /// Keep O_NOATIME of guest opens (virtiofsd --preserve-noatime); off: it is dropped,
    /// so a guest open updates atime as the host's mount options say.
    bool preserve_noatime = false;
    /// Time every request for vdhost_fuse_request_duration_seconds (two TSC reads and a
    /// histogram bucket per request). Off: the histograms stay empty, every counter stays.
    bool request_timing = true;
    /// Serve the tag to the vhost-user frontend: offer VHOST_USER_PROTOCOL_F_CONFIG and
    /// answer GET_CONFIG with virtio_fs_config (see config_space()). Off by default, as
    /// virtiofsd without --tag: QEMU's vhost-user-fs keeps the tag itself (QEMU 7.2 masks
    /// the feature with a warning; 7.1 to 8.0 may crash logging it).
    bool announce_tag = false;
    /// virtio_fs_config.num_request_queues announced with the tag (1..63; queue 0 is
    /// hiprio, so the device has 1 + this many queues).
    uint32_t request_queues = 1;
    /// uid / gid translation rules in virtiofsd's --translate-uid / --translate-gid syntax,
    /// in order (passthrough/id_map.h); empty: ids pass unchanged. parse_share_profile()
    /// checked that IdMap::build() takes them, and refused them with `posix_acl: true`.
    std::vector<passthrough::IdMapRule> translate_uid;
    std::vector<passthrough::IdMapRule> translate_gid;
    /// Honour a guest's O_DIRECT on the host (virtiofsd's --allow-direct-io). Off by
    /// default, as in virtiofsd: host files are opened without O_DIRECT on OPEN and CREATE,
    /// since the guest's O_DIRECT is about the guest's page cache, and an O_DIRECT host fd
    /// refuses the unaligned writes the guest's mmap writeback sends through it.
    bool allow_direct_io = false;
};

/// Parses a device's `config:` block. \p yaml is the block with the file's line/column
/// layout (see vdh_plugin_info::create); \p origin names the file in messages;
/// \p device_name is the tag default. On error returns nullopt and sets \p error to
/// "ORIGIN:LINE:COL: config.KEY: message". Pure: touches no files.
std::optional<ShareProfile> parse_share_profile(std::string_view yaml, std::string_view origin,
                                                std::string_view device_name, std::string* error);

/// Create-time check: shared_dir exists and is a directory. Same error format (the
/// position is shared_dir's; a missing directory's message mentions `create: true`).
/// Returns false and sets \p error otherwise.
bool check_shared_dir(const ShareProfile& profile, std::string_view origin, std::string* error);

/// What prepare_shared_dir() found or did.
enum class SharedDirState {
    Exists,      ///< shared_dir was there already
    WillCreate,  ///< missing; \p dry_run: it would be created
    Created,     ///< missing; created now (with any missing parents)
};

/// With `create: true`, makes sure shared_dir exists: an existing directory is taken as it
/// is (as check_shared_dir()); a missing one is created, with its missing parents, mode
/// 0755, owned by the process. The walk from / opens each component relative to its parent
/// without following symbolic links, so nobody can redirect it: it refuses a component that
/// is a symbolic link or not a directory, and an existing component that is owned by
/// someone other than the process's user or root, or is writable by group or others without
/// the sticky bit (/tmp is fine; a directory another user can write is not, since they could
/// swap what is below it). \p dry_run checks the same without creating anything. Without
/// `create`, the same as check_shared_dir(). Errors as check_shared_dir().
bool prepare_shared_dir(const ShareProfile& profile, std::string_view origin, bool dry_run,
                        SharedDirState* state, std::string* error);

/// Create-time: probes the share's filesystem and replaces write_path by what it resolves
/// to (never Auto afterwards; see choose_write_path()), with the reason. Returns false and
/// sets \p error ("ORIGIN:LINE:COL: config.write_path: ...") when an explicit choice
/// cannot be honoured. The null backend takes no host writes: it stays as it is.
bool resolve_write_path(ShareProfile& profile, std::string_view origin, std::string* error);

/// What the profile means for FUSE_INIT.
FsCapabilities capabilities_from(const ShareProfile& profile);

/// sizeof(struct virtio_fs_config): tag[36], le32 num_request_queues.
inline constexpr uint32_t kVirtioFsConfigSize = 40;

/// vdh_device_ops::get_config for the share: with `announce_tag`, copies \p len bytes of
/// virtio_fs_config (the tag NUL-padded to 36 bytes, not NUL-terminated when it fills
/// them, then request_queues little-endian) from \p offset into \p buf, zero past its end,
/// and returns kVirtioFsConfigSize; without it returns 0 and writes nothing.
int config_space(const ShareProfile& profile, uint32_t offset, uint8_t* buf, uint32_t len);

/// Whether READDIRPLUS is offered: the `readdirplus` key, else not with `cache: never`.
bool readdirplus_enabled(const ShareProfile& profile);

/// A FUSE cache timeout (fuse_entry_out entry_valid / attr_valid and their _nsec).
struct FuseTimeout {
    uint64_t sec = 0;
    uint32_t nsec = 0;
    bool operator==(const FuseTimeout&) const = default;
};

/// Cache timeouts: the override if set, else by cache policy (virtiofsd's values):
/// never 0, auto 1 s, always and metadata 1 day (86400 s).
FuseTimeout entry_timeout(const ShareProfile& profile);
FuseTimeout attr_timeout(const ShareProfile& profile);

/// FOPEN_* flags an OPEN (\p directory false) or OPENDIR reply carries under the profile's
/// cache policy (virtiofsd): never: DIRECT_IO for files; metadata: DIRECT_IO for files,
/// CACHE_DIR for directories; always: KEEP_CACHE for files, CACHE_DIR for directories;
/// auto: none.
uint32_t open_flags_for(const ShareProfile& profile, bool directory);

/// Names as written in YAML ("auto", "prefer", "passthrough").
const char* to_string(CachePolicy c);
const char* to_string(FileHandleMode m);
const char* to_string(BackendKind b);

} // namespace vdh::virtiofs

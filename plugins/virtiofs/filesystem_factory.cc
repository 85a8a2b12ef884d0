// SPDX-License-Identifier: MIT
// Maps a share profile onto a backend: the passthrough backend's options, timeouts and
// open flags come from the profile's cache policy and switches; the null backend takes
// the same timeouts, open flags and INIT capabilities (it has no directory to open).
#include "filesystem_factory.h"

#include <cstring>
#include <optional>
#include <string>
#include <utility>

#include "null/null_fs.h"
#include "passthrough/passthrough_fs.h"

namespace vdh::virtiofs {

namespace {
double seconds(FuseTimeout t) { return static_cast<double>(t.sec) + t.nsec / 1e9; }
} // namespace

std::unique_ptr<Filesystem> make_filesystem(const ShareProfile& profile, std::string* err) {
    if (profile.backend == BackendKind::Null) {
        null::NullFsOptions o;
        o.capabilities = capabilities_from(profile);
        const FuseTimeout entry = entry_timeout(profile);
        const FuseTimeout attr = attr_timeout(profile);
        o.entry_valid = entry.sec;
        o.entry_valid_nsec = entry.nsec;
        o.attr_valid = attr.sec;
        o.attr_valid_nsec = attr.nsec;
        o.file_open_flags = open_flags_for(profile, false);
        o.dir_open_flags = open_flags_for(profile, true);
        o.readonly = profile.readonly;
        return std::make_unique<null::NullFs>(o);
    }
    passthrough::PassthroughOptions o;
    o.shared_dir = profile.shared_dir;
    o.inode_file_handles = profile.inode_file_handles;
    o.fd_limit = profile.fd_limit;
    o.inode_limit = profile.inode_limit;
    o.xattr = profile.xattr;
    o.xattr_map = profile.xattrmap;
    o.readonly = profile.readonly;
    o.announce_submounts = profile.announce_submounts;
    o.writeback = profile.writeback;
    o.entry_timeout = seconds(entry_timeout(profile));
    o.attr_timeout = seconds(attr_timeout(profile));
    o.posix_locks = profile.posix_locks;
    o.flock = profile.flock;
    o.allow_direct_io = profile.allow_direct_io;
    o.posix_acl = profile.posix_acl;
    o.security_label = profile.security_label;
    o.file_open_flags = open_flags_for(profile, false);
    o.dir_open_flags = open_flags_for(profile, true);
    o.readdirplus = readdirplus_enabled(profile);
    o.allow_mmap = profile.allow_mmap;
    o.preserve_noatime = profile.preserve_noatime;
    size_t bad = 0;
    std::string why;
    auto uid_map = passthrough::IdMap::build(profile.translate_uid, &bad, &why);
    auto gid_map = uid_map ? passthrough::IdMap::build(profile.translate_gid, &bad, &why)
                           : std::nullopt;
    if (!uid_map || !gid_map) { // parse_share_profile() checked them: not expected
        *err = "share " + profile.tag + ": " + (uid_map ? "translate_gid" : "translate_uid") +
               "[" + std::to_string(bad) + "]: " + why;
        return nullptr;
    }
    o.uid_map = std::move(*uid_map);
    o.gid_map = std::move(*gid_map);
    auto fs = passthrough::PassthroughFs::create(o);
    if (!fs) {
        *err = "share " + profile.tag + ": cannot open shared_dir " + profile.shared_dir + ": " +
               std::strerror(fs.error());
        return nullptr;
    }
    return std::move(*fs);
}

} // namespace vdh::virtiofs

// SPDX-License-Identifier: MIT
// Share profile parsing and what follows from a profile (see share_profile.h), read with
// vdh/yaml_reader.h. yaml-cpp and the reader throw; every exception is caught in
// parse_share_profile() (yaml::run) and becomes an error message
// "ORIGIN:LINE:COL: config.KEY: message" (positions are file positions because the
// config text keeps the file's layout).
#include "share_profile.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include "vdh/unique_fd.h"
#include "vdh/yaml_reader.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <initializer_list>
#include <utility>
#include <vector>

namespace vdh::virtiofs {

namespace {

using yaml::Failure;
using yaml::fail;
using yaml::fail_type;
using yaml::parse_bool;
using yaml::parse_enum;
using yaml::parse_string;
using yaml::parse_uint;
using yaml::quoted;

constexpr std::string_view kRoot = "config";
constexpr size_t kMaxTagBytes = 36; ///< virtio_fs_config.tag
constexpr size_t kMaxPathBytes = 4095;
constexpr uint64_t kMinFdLimit = 64;
constexpr uint64_t kMaxFdLimit = 1048576;
constexpr uint64_t kMinInodeLimit = 64;
constexpr uint64_t kMaxInodeLimit = 16777216;
constexpr uint64_t kOneDaySec = 86400;
/// Request queues a device can have: the host serves 64 queues, queue 0 is hiprio.
constexpr uint64_t kMaxRequestQueues = 63;

/// Every key, in the order the error message lists them.
constexpr std::array<std::string_view, 30> kKeys = {
    "shared_dir",
    "create",
    "tag",
    "cache",
    "writeback",
    "xattr",
    "readonly",
    "announce_submounts",
    "inode_file_handles",
    "fd_limit",
    "inode_limit",
    "max_pages",
    "posix_locks",
    "flock",
    "entry_timeout_ms",
    "attr_timeout_ms",
    "backend",
    "write_path",
    "translate_uid",
    "translate_gid",
    "allow_mmap",
    "readdirplus",
    "preserve_noatime",
    "request_timing",
    "announce_tag",
    "request_queues",
    "xattrmap",
    "allow_direct_io",
    "posix_acl",
    "security_label",
};

/// Where \p n is, as the profile records it.
SourcePos pos_of(const YAML::Node& n) {
    const yaml::SourcePos p = yaml::pos_of(n);
    return SourcePos{p.line, p.column};
}

std::string key_path(std::string_view key) {
    return std::string(kRoot) + "." + std::string(key);
}

class ProfileParser {
public:
    ProfileParser(std::string_view yaml, std::string_view device_name)
        : yaml_(yaml), device_name_(device_name) {}

    ShareProfile parse() {
        ShareProfile p;
        p.tag = std::string(device_name_.substr(0, kMaxTagBytes));
        const bool blank = std::all_of(yaml_.begin(), yaml_.end(), [](char c) {
            return c == ' ' || c == '\t' || c == '\r' || c == '\n';
        });
        if (blank) {
            fail(yaml::SourcePos{}, key_path("shared_dir"),
                 "missing required key (the device has no config: block)");
        }
        YAML::Node root = YAML::Load(std::string(yaml_));
        if (!root.IsMap()) {
            fail_type(root, std::string(kRoot), "mapping");
        }
        refuse_translation_with_acls(root);
        std::vector<std::pair<YAML::Node, YAML::Node>> seen;
        bool have_dir = false;
        yaml::for_each_entry(root, std::string(kRoot), kKeys, [&](const yaml::Entry& e) {
            const YAML::Node& k = e.key_node;
            const YAML::Node& v = e.value;
            seen.emplace_back(k, v);
            try {
                parse_value(p, e.key, v, key_path(e.key));
            } catch (Failure& f) {
                // An empty value's mark is wherever the next token is; point at its key.
                if (v.IsNull() && !explicit_null(v)) {
                    f.pos = yaml::pos_of(k);
                }
                throw;
            }
            have_dir = have_dir || e.key == "shared_dir";
        });
        if (!have_dir) {
            fail(root, key_path("shared_dir"), "missing required key");
        }
        finish_xattrmap(p, seen);
        if (p.posix_acl) {
            // ACLs travel as system.posix_acl_* xattrs: posix_acl implies xattr.
            for (const auto& [k, v] : seen) {
                if (k.Scalar() == "xattr" && !p.xattr) {
                    fail(v, key_path("xattr"), "must not be false with posix_acl: true (ACLs are xattrs)");
                }
            }
            p.xattr = true;
        }
        return p;
    }

private:
    /// Stores key \p name's value \p v into \p p.
    void parse_value(ShareProfile& p, const std::string& name, const YAML::Node& v,
                     const std::string& path) const {
        if (name == "shared_dir") {
            p.shared_dir = parse_shared_dir(v, path);
            p.shared_dir_pos = pos_of(v);
        } else if (name == "create") {
            p.create = parse_bool(v, path);
        } else if (name == "tag") {
            p.tag = parse_tag(v, path);
        } else if (name == "cache") {
            static constexpr CachePolicy kValues[] = {CachePolicy::Never, CachePolicy::Auto,
                                                      CachePolicy::Always, CachePolicy::Metadata};
            p.cache = kValues[parse_enum(v, path, {"never", "auto", "always", "metadata"})];
        } else if (name == "writeback") {
            p.writeback = parse_bool(v, path);
        } else if (name == "xattr") {
            p.xattr = parse_bool(v, path);
        } else if (name == "readonly") {
            p.readonly = parse_bool(v, path);
        } else if (name == "announce_submounts") {
            p.announce_submounts = parse_bool(v, path);
        } else if (name == "inode_file_handles") {
            static constexpr FileHandleMode kValues[] = {
                FileHandleMode::Never, FileHandleMode::Prefer, FileHandleMode::Mandatory};
            p.inode_file_handles = kValues[parse_enum(v, path, {"never", "prefer", "mandatory"})];
        } else if (name == "write_path") {
            static constexpr WritePath kValues[] = {WritePath::Auto, WritePath::Nowait,
                                                    WritePath::Inline, WritePath::Punt};
            p.write_path = kValues[parse_enum(v, path, {"auto", "nowait", "inline", "punt"})];
            p.write_path_pos = pos_of(v);
            p.write_path_written = true;
        } else if (name == "allow_direct_io") {
            p.allow_direct_io = parse_bool(v, path);
        } else if (name == "fd_limit") {
            p.fd_limit = static_cast<uint32_t>(parse_uint(v, path, kMinFdLimit, kMaxFdLimit));
        } else if (name == "inode_limit") {
            p.inode_limit =
                static_cast<uint32_t>(parse_uint(v, path, kMinInodeLimit, kMaxInodeLimit));
        } else if (name == "max_pages") {
            p.max_pages = static_cast<uint32_t>(parse_uint(v, path, 1, 256));
        } else if (name == "posix_locks") {
            p.posix_locks = parse_bool(v, path);
        } else if (name == "flock") {
            p.flock = parse_bool(v, path);
        } else if (name == "allow_mmap") {
            p.allow_mmap = parse_bool(v, path);
        } else if (name == "readdirplus") {
            p.readdirplus = parse_bool(v, path);
        } else if (name == "preserve_noatime") {
            p.preserve_noatime = parse_bool(v, path);
        } else if (name == "request_timing") {
            p.request_timing = parse_bool(v, path);
        } else if (name == "announce_tag") {
            p.announce_tag = parse_bool(v, path);
        } else if (name == "request_queues") {
            p.request_queues = static_cast<uint32_t>(parse_uint(v, path, 1, kMaxRequestQueues));
        } else if (name == "translate_uid") {
            p.translate_uid = parse_translation(v, path);
        } else if (name == "translate_gid") {
            p.translate_gid = parse_translation(v, path);
        } else if (name == "posix_acl") {
            p.posix_acl = parse_bool(v, path);
        } else if (name == "security_label") {
            p.security_label = parse_bool(v, path);
        } else if (name == "entry_timeout_ms") {
            p.entry_timeout_ms = static_cast<uint32_t>(parse_uint(v, path, 0, UINT32_MAX));
        } else if (name == "attr_timeout_ms") {
            p.attr_timeout_ms = static_cast<uint32_t>(parse_uint(v, path, 0, UINT32_MAX));
        } else if (name == "xattrmap") {
            p.xattrmap = parse_xattrmap(v, path);
        } else { // backend
            static constexpr BackendKind kValues[] = {BackendKind::Passthrough, BackendKind::Null};
            // A plain `null` is YAML's null, not the string: accept it as written.
            p.backend = explicit_null(v, false)
                            ? BackendKind::Null
                            : kValues[parse_enum(v, path, {"passthrough", "null"})];
        }
    }

    /// Whether \p v is a null written out (`null`, `Null`, `NULL`, and `~` if
    /// \p tilde), not an empty value.
    bool explicit_null(const YAML::Node& v, bool tilde = true) const {
        if (!v.IsNull() || v.Mark().is_null()) {
            return false;
        }
        return yaml::null_token_at(yaml_, static_cast<size_t>(v.Mark().pos), tilde);
    }

    /// A list of virtiofsd-syntax rule strings; errors at the offending item.
    static std::vector<passthrough::IdMapRule> parse_translation(const YAML::Node& v,
                                                                 const std::string& path) {
        if (!v.IsSequence()) {
            fail_type(v, path,
                      "sequence of virtiofsd rule strings (e.g. [\"map:1000:100000:1\"])");
        }
        std::vector<passthrough::IdMapRule> rules;
        for (size_t i = 0; i < v.size(); ++i) {
            const YAML::Node item = v[i];
            const std::string item_path = path + "[" + std::to_string(i) + "]";
            if (!item.IsScalar()) {
                fail_type(item, item_path, "string");
            }
            std::string error;
            auto rule = passthrough::parse_id_map_rule(item.Scalar(), &error);
            if (!rule) {
                fail(item, item_path, error);
            }
            rules.push_back(*rule);
        }
        size_t bad = 0;
        std::string error;
        if (!passthrough::IdMap::build(rules, &bad, &error)) {
            fail(v[bad], path + "[" + std::to_string(bad) + "]", error);
        }
        return rules;
    }

    /// translate_uid / translate_gid with rules and `posix_acl: true` are refused (as
    /// virtiofsd does): ACL entries name host ids that the translation would not rewrite.
    /// Checked before the keys are parsed one by one, so it is reported on a branch where
    /// posix_acl is not a known key yet. A posix_acl that is not a boolean is left for its
    /// own parse to report.
    static void refuse_translation_with_acls(const YAML::Node& root) {
        YAML::Node acl_key;
        YAML::Node acl_value;
        for (auto it = root.begin(); it != root.end(); ++it) {
            if (it->first.IsScalar() && it->first.Scalar() == "posix_acl") {
                acl_key = it->first;
                acl_value = it->second;
                break;
            }
        }
        if (!acl_key) {
            return;
        }
        bool acl = false;
        try {
            acl = parse_bool(acl_value, key_path("posix_acl"));
        } catch (const Failure&) {
            return;
        }
        if (!acl) {
            return;
        }
        for (auto it = root.begin(); it != root.end(); ++it) {
            const YAML::Node k = it->first;
            const YAML::Node v = it->second;
            if (!k.IsScalar() || (k.Scalar() != "translate_uid" && k.Scalar() != "translate_gid") ||
                !v.IsSequence() || v.size() == 0) {
                continue;
            }
            fail(k, key_path(k.Scalar()),
                 "cannot be combined with config.posix_acl: true (line " +
                     std::to_string(pos_of(acl_key).line) +
                     "): ACL entries hold host ids that translation does not rewrite, so the "
                     "guest would read and set wrong owners (virtiofsd refuses this too)");
        }
    }

    static std::string parse_shared_dir(const YAML::Node& v, const std::string& path) {
        std::string dir = parse_string(v, path);
        if (dir.empty() || dir[0] != '/') {
            fail(v, path, "expected an absolute path, got " + quoted(dir));
        }
        if (dir.find('\0') != std::string::npos) {
            fail(v, path, "path contains a NUL byte");
        }
        if (dir.size() > kMaxPathBytes) {
            fail(v, path,
                 "path too long: " + std::to_string(dir.size()) + " bytes (at most " +
                     std::to_string(kMaxPathBytes) + ")");
        }
        return dir;
    }

    /// `xattrmap:` one virtiofsd-syntax string (errors at the string, naming the rule) or
    /// a list of rule strings (errors at the item).
    static std::shared_ptr<const passthrough::XattrMap> parse_xattrmap(const YAML::Node& v,
                                                                       const std::string& path) {
        passthrough::XattrMapError e;
        std::optional<passthrough::XattrMap> map;
        YAML::Node at = v;
        if (v.IsScalar()) {
            map = passthrough::XattrMap::parse(v.Scalar(), &e);
        } else if (v.IsSequence()) {
            std::vector<std::string> items;
            for (const YAML::Node& item : v) {
                items.push_back(parse_string(item, path));
            }
            std::vector<std::string_view> views(items.begin(), items.end());
            map = passthrough::XattrMap::parse_list(views, &e);
            if (!map && e.rule > 0) {
                at = v[e.rule - 1];
            }
        } else {
            fail_type(v, path, "string or list of rule strings");
        }
        if (!map) {
            fail(at, path, (e.rule > 0 ? "rule " + std::to_string(e.rule) + ": " : "") + e.message);
        }
        return std::make_shared<const passthrough::XattrMap>(std::move(*map));
    }

    /// xattrmap implies xattr (virtiofsd turns xattr support on with --xattrmap); an
    /// explicit `xattr: false` beside it contradicts it.
    static void finish_xattrmap(ShareProfile& p,
                                const std::vector<std::pair<YAML::Node, YAML::Node>>& seen) {
        if (!p.xattrmap) {
            return;
        }
        const YAML::Node* map_key = nullptr;
        const YAML::Node* xattr_key = nullptr;
        for (const auto& [k, unused] : seen) {
            map_key = k.Scalar() == "xattrmap" ? &k : map_key;
            xattr_key = k.Scalar() == "xattr" ? &k : xattr_key;
        }
        if (xattr_key != nullptr && !p.xattr) {
            fail(*map_key, key_path("xattrmap"),
                 "needs xattr support, but config.xattr is false (line " +
                     std::to_string(pos_of(*xattr_key).line) +
                     "): remove it or set it to true");
        }
        p.xattr = true;
    }

    static std::string parse_tag(const YAML::Node& v, const std::string& path) {
        std::string tag = parse_string(v, path);
        if (tag.empty() || tag.size() > kMaxTagBytes) {
            fail(v, path,
                 "expected 1.." + std::to_string(kMaxTagBytes) + " bytes, got " +
                     std::to_string(tag.size()));
        }
        if (tag.find('\n') != std::string::npos || tag.find('\0') != std::string::npos) {
            fail(v, path, "must not contain a newline or NUL byte");
        }
        return tag;
    }

    std::string_view yaml_;
    std::string_view device_name_;
};

/// An existing component on the way to a share vdhost creates: owned by us or root, and
/// writable by others only with the sticky bit (then they cannot rename or replace what is
/// ours in it). Returns the problem, or "".
std::string component_problem(const std::string& path, const struct stat& st) {
    const uid_t euid = ::geteuid();
    if (!S_ISDIR(st.st_mode)) {
        return S_ISLNK(st.st_mode) ? quoted(path) + " is a symbolic link (not followed when "
                                                    "creating a share: write the real path)"
                                   : quoted(path) + " exists and is not a directory";
    }
    if (st.st_uid != euid && st.st_uid != 0) {
        return quoted(path) + " is owned by uid " + std::to_string(st.st_uid) +
               ", not by us (uid " + std::to_string(euid) + ") or root";
    }
    if ((st.st_mode & 022) != 0 && (st.st_mode & S_ISVTX) == 0) {
        char mode[8];
        std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
        return quoted(path) + " has mode " + mode +
               ": writable by group or others without the sticky bit";
    }
    return "";
}

/// Walks \p dir from / one component at a time, each opened relative to its parent with
/// O_NOFOLLOW, creating the missing ones 0755 (unless \p dry_run). Returns the problem,
/// or "" when the directory exists (or, dry, would be created).
std::string create_missing_dir(const std::string& dir, bool dry_run) {
    UniqueFd cur(::open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!cur) {
        return std::string("cannot open /: ") + std::strerror(errno);
    }
    std::string walked;
    size_t pos = 1;
    while (pos <= dir.size()) {
        size_t end = dir.find('/', pos);
        end = end == std::string::npos ? dir.size() : end;
        const std::string name = dir.substr(pos, end - pos);
        pos = end + 1;
        if (name.empty() || name == ".") {
            continue;
        }
        if (name == "..") {
            return "the path " + quoted(dir) + " has a \"..\" component";
        }
        walked += "/" + name;
        struct stat st {};
        bool created = false;
        if (::fstatat(cur.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno != ENOENT) {
                return "cannot access " + quoted(walked) + ": " + std::strerror(errno);
            }
            if (dry_run) {
                return ""; // this and what follows would be created
            }
            if (::mkdirat(cur.get(), name.c_str(), 0755) == 0) {
                created = true;
            } else if (errno != EEXIST) {
                return "cannot create " + quoted(walked) + ": " + std::strerror(errno);
            }
        }
        UniqueFd next(
            ::openat(cur.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!next) {
            int e = errno;
            if ((e == ELOOP || e == ENOTDIR) &&
                ::fstatat(cur.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
                return component_problem(walked, st);
            }
            return "cannot open " + quoted(walked) + ": " + std::strerror(e);
        }
        if (::fstat(next.get(), &st) != 0) {
            return "cannot stat " + quoted(walked) + ": " + std::strerror(errno);
        }
        if (created) {
            // mkdirat's mode is cut by the umask; the documented mode is 0755.
            if ((st.st_mode & 07777) != 0755 && ::fchmod(next.get(), 0755) != 0) {
                return "cannot chmod " + quoted(walked) + ": " + std::strerror(errno);
            }
        } else if (std::string p = component_problem(walked, st); !p.empty()) {
            return p;
        }
        cur = std::move(next);
    }
    return "";
}

std::string format_error(std::string_view origin, SourcePos pos, const std::string& key,
                         const std::string& message) {
    return yaml::format_error(origin, yaml::SourcePos{pos.line, pos.column}, key, message);
}

FuseTimeout timeout_of(const ShareProfile& p, const std::optional<uint32_t>& override_ms) {
    if (override_ms) {
        return FuseTimeout{*override_ms / 1000, (*override_ms % 1000) * 1000000};
    }
    switch (p.cache) {
    case CachePolicy::Never: return FuseTimeout{0, 0};
    case CachePolicy::Auto: return FuseTimeout{1, 0};
    case CachePolicy::Always:
    case CachePolicy::Metadata: return FuseTimeout{kOneDaySec, 0};
    }
    return FuseTimeout{1, 0};
}

} // namespace

std::optional<ShareProfile> parse_share_profile(std::string_view yaml, std::string_view origin,
                                                std::string_view device_name, std::string* error) {
    return yaml::run(origin, kRoot, error,
                     [&] { return ProfileParser(yaml, device_name).parse(); });
}

bool check_shared_dir(const ShareProfile& profile, std::string_view origin, std::string* error) {
    struct stat st {};
    std::string message;
    if (::stat(profile.shared_dir.c_str(), &st) != 0) {
        int e = errno;
        message = "cannot access " + quoted(profile.shared_dir) + ": " + std::strerror(e);
        if (e == ENOENT) {
            message += " (add `create: true` to the device's config: block to have vdhost "
                       "create it)";
        }
    } else if (!S_ISDIR(st.st_mode)) {
        message = "not a directory: " + quoted(profile.shared_dir);
    } else {
        return true;
    }
    if (error != nullptr) {
        *error = format_error(origin, profile.shared_dir_pos, key_path("shared_dir"), message);
    }
    return false;
}

bool prepare_shared_dir(const ShareProfile& profile, std::string_view origin, bool dry_run,
                        SharedDirState* state, std::string* error) {
    *state = SharedDirState::Exists;
    struct stat st {};
    if (!profile.create || ::stat(profile.shared_dir.c_str(), &st) == 0 ||
        (errno != ENOENT && errno != ENOTDIR)) {
        return check_shared_dir(profile, origin, error);
    }
    std::string message = create_missing_dir(profile.shared_dir, dry_run);
    if (message.empty()) {
        *state = dry_run ? SharedDirState::WillCreate : SharedDirState::Created;
        return true;
    }
    if (error != nullptr) {
        *error = format_error(origin, profile.shared_dir_pos, key_path("shared_dir"),
                              "create: true: " + message);
    }
    return false;
}

bool resolve_write_path(ShareProfile& profile, std::string_view origin, std::string* error) {
    if (profile.backend == BackendKind::Null) {
        return true;
    }
    std::string message;
    auto c = choose_write_path(profile.shared_dir, profile.write_path, profile.readonly, &message);
    if (!c) {
        if (error != nullptr) {
            const bool written = profile.write_path_written;
            *error = format_error(origin, written ? profile.write_path_pos : profile.shared_dir_pos,
                                  key_path(written ? "write_path" : "shared_dir"), message);
        }
        return false;
    }
    profile.write_path = c->path;
    profile.write_path_reason = std::move(c->reason);
    return true;
}

FsCapabilities capabilities_from(const ShareProfile& p) {
    FsCapabilities caps;
    caps.writeback_cache = p.writeback;
    caps.xattr = p.xattr;
    caps.posix_locks = p.posix_locks;
    caps.flock_locks = p.flock;
    caps.submounts = p.announce_submounts;
    caps.readdirplus = readdirplus_enabled(p);
    caps.direct_io_allow_mmap = p.allow_mmap;
    // Not negotiated: with HANDLE_KILLPRIV_V2 the guest leaves clearing suid/sgid on an
    // O_TRUNC open to the server, and Filesystem::open() does not carry open_flags. Without
    // it the guest kernel clears the bits itself with a SETATTR (and WRITE's KILL_SUIDGID
    // flag is still honoured by the backend).
    caps.killpriv_v2 = false;
    caps.cache_symlinks = p.cache == CachePolicy::Always;
    caps.parallel_dirops = true;
    caps.explicit_inval = false;
    caps.posix_acl = p.posix_acl;
    caps.setxattr_ext = p.posix_acl;
    caps.security_label = p.security_label;
    return caps;
}

int config_space(const ShareProfile& p, uint32_t offset, uint8_t* buf, uint32_t len) {
    if (!p.announce_tag) {
        return 0;
    }
    std::array<uint8_t, kVirtioFsConfigSize> space{};
    std::memcpy(space.data(), p.tag.data(), std::min<size_t>(p.tag.size(), kMaxTagBytes));
    for (int i = 0; i < 4; ++i) {
        space[kMaxTagBytes + i] = static_cast<uint8_t>(p.request_queues >> (8 * i));
    }
    for (uint64_t i = 0; i < len; ++i) {
        const uint64_t at = uint64_t{offset} + i;
        buf[i] = at < space.size() ? space[at] : 0;
    }
    return static_cast<int>(kVirtioFsConfigSize);
}

bool readdirplus_enabled(const ShareProfile& p) {
    // With nothing cached, READDIRPLUS only adds lookups the guest drops at once
    // (virtiofsd: off with --cache=never unless asked for).
    return p.readdirplus.value_or(p.cache != CachePolicy::Never);
}

FuseTimeout entry_timeout(const ShareProfile& p) {
    return timeout_of(p, p.entry_timeout_ms);
}

FuseTimeout attr_timeout(const ShareProfile& p) {
    return timeout_of(p, p.attr_timeout_ms);
}

uint32_t open_flags_for(const ShareProfile& p, bool directory) {
    switch (p.cache) {
    case CachePolicy::Never: return directory ? 0 : FOPEN_DIRECT_IO;
    case CachePolicy::Metadata: return directory ? FOPEN_CACHE_DIR : FOPEN_DIRECT_IO;
    case CachePolicy::Always: return directory ? FOPEN_CACHE_DIR : FOPEN_KEEP_CACHE;
    case CachePolicy::Auto: return 0;
    }
    return 0;
}

const char* to_string(CachePolicy c) {
    switch (c) {
    case CachePolicy::Never: return "never";
    case CachePolicy::Auto: return "auto";
    case CachePolicy::Always: return "always";
    case CachePolicy::Metadata: return "metadata";
    }
    return "?";
}

const char* to_string(FileHandleMode m) {
    switch (m) {
    case FileHandleMode::Never: return "never";
    case FileHandleMode::Prefer: return "prefer";
    case FileHandleMode::Mandatory: return "mandatory";
    }
    return "?";
}

const char* to_string(BackendKind b) {
    switch (b) {
    case BackendKind::Passthrough: return "passthrough";
    case BackendKind::Null: return "null";
    }
    return "?";
}

} // namespace vdh::virtiofs

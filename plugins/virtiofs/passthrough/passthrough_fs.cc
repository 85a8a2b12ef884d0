// SPDX-License-Identifier: MIT
// PassthroughFs: every FUSE operation with host semantics over the shared directory.
// Pattern per op: validate ids (InodeStore/HandleTable, EBADF), validate names (one
// component), get a pinned fd for the inode, do one *at syscall relative to it, and for
// entry-returning ops look the result up (taking one lookup reference).

#include "passthrough_fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>

#include "credentials.h"
#include "open_guard.h"
#include "vdh/compiler.h"
#include "vdh/scope_exit.h"
#include "xattr_map.h"

// Evaluates a Result expression; on error returns its errno, else binds the value to
// `lhs` (a reference into a hidden local).
#define VDH_PT_CONCAT2(a, b) a##b
#define VDH_PT_CONCAT(a, b) VDH_PT_CONCAT2(a, b)
#define VDH_PT_ASSIGN(lhs, expr) VDH_PT_ASSIGN_IMPL(lhs, expr, VDH_PT_CONCAT(vdh_pt_r_, __LINE__))
#define VDH_PT_ASSIGN_IMPL(lhs, expr, tmp)                                                    \
    auto tmp = (expr);                                                                        \
    if (!tmp.has_value()) {                                                                   \
        return ::vdh::Err{tmp.error()};                                                       \
    }                                                                                         \
    lhs = std::move(*tmp)

namespace vdh::virtiofs::passthrough {

namespace {

constexpr int kAllowedOpenFlags = O_ACCMODE | O_APPEND | O_TRUNC | O_NONBLOCK | O_DSYNC |
                                  O_SYNC | O_DIRECT | O_NOATIME | O_LARGEFILE | O_DIRECTORY |
                                  O_NOFOLLOW;

void split_timeout(double t, uint64_t& sec, uint32_t& nsec) {
    if (!(t > 0)) {
        sec = 0;
        nsec = 0;
        return;
    }
    double whole = std::floor(t);
    sec = whole >= 1.8e19 ? UINT64_MAX : static_cast<uint64_t>(whole);
    nsec = static_cast<uint32_t>(std::min((t - whole) * 1e9, 999999999.0));
}

/// The kernel's new_encode_dev (what FUSE carries as rdev).
uint32_t encode_dev(uint32_t major, uint32_t minor) {
    return (minor & 0xffU) | (major << 8) | ((minor & ~0xffU) << 12);
}

/// A name for a create/remove-type op: one component, not "." or "..".
Status copy_name(std::string_view name, char (&out)[NAME_MAX + 1]) {
    if (name.empty() || name == "." || name == ".." ||
        name.find('/') != std::string_view::npos || name.find('\0') != std::string_view::npos) {
        return make_err(EINVAL);
    }
    if (name.size() > NAME_MAX) {
        return make_err(ENAMETOOLONG);
    }
    std::memcpy(out, name.data(), name.size());
    out[name.size()] = '\0';
    return ok();
}

/// Room for a host listxattr result while it is mapped for the guest: XATTR_LIST_MAX, the
/// most the kernel returns. Private memory (never the guest's reply buffer), so the guest
/// never sees the names a rule hides, not even for a moment. One per thread, allocated on
/// the thread's first mapped LISTXATTR and kept for its life; null if that failed.
char* xattr_list_scratch() noexcept {
    thread_local std::unique_ptr<char[]> buf;
    if (VDH_UNLIKELY(!buf)) {
        buf.reset(new (std::nothrow) char[XATTR_LIST_MAX]);
    }
    return buf.get();
}

Status sys_status(int rc) {
    if (rc < 0) {
        return errno_err();
    }
    return ok();
}

/// A unique temporary name for a labelled create (make_labelled): ".vdh-label.<n>".
void temp_name(char (&out)[40]) {
    static std::atomic<uint64_t> seq{0};
    std::snprintf(out, sizeof(out), ".vdh-label.%d.%llx", static_cast<int>(::getpid()),
                  static_cast<unsigned long long>(seq.fetch_add(1, std::memory_order_relaxed)));
}

/// Clears set-user-ID and (group-executable) set-group-ID bits, as the kernel does for an
/// unprivileged writer. Used where the write itself cannot be made unprivileged. Not a
/// read-modify-write of the mode (fstat then fchmod would race a concurrent chmod and
/// could put back bits it removed): fchown(fd, -1, -1) makes the kernel clear the bits
/// itself under the inode lock (chown always kills suid/sgid of a non-directory, and
/// security.capability with them, as a write does), changing nothing else but ctime.
/// The fstat only avoids that syscall (and the ctime change) when nothing is to clear.
Status kill_suid_bits(int fd) {
    struct stat st{};
    if (::fstat(fd, &st) < 0) {
        return errno_err();
    }
    const bool suid = (st.st_mode & S_ISUID) != 0;
    const bool sgid = (st.st_mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP);
    if (!S_ISREG(st.st_mode) || (!suid && !sgid)) {
        return ok();
    }
    return sys_status(::fchown(fd, static_cast<uid_t>(-1), static_cast<gid_t>(-1)));
}

bool is_dot_or_dotdot(const char* n) {
    return n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0'));
}

} // namespace

// ---------------------------------------------------------------------------------------
// Setup

PassthroughFs::PassthroughFs(const PassthroughOptions& options, std::unique_ptr<Sys> sys)
    : options_(options), sys_(std::move(sys)), budget_(options.fd_limit),
      inode_budget_(options.inode_limit),
      store_(*sys_, options.inode_file_handles, budget_, inode_budget_, &epochs_),
      handles_(&epochs_),
      locks_(store_, budget_),
      writeback_(options.writeback),
      submounts_(options.announce_submounts) {}

PassthroughFs::~PassthroughFs() { destroy(); }

Result<std::unique_ptr<PassthroughFs>> PassthroughFs::create(const PassthroughOptions& options,
                                                             std::unique_ptr<Sys> sys) {
    if (!sys) {
        auto real = RealSys::create();
        if (!real) {
            return make_err(real.error());
        }
        sys = std::move(*real);
    }
    Result<UniqueFd> root = make_err(EINVAL);
    if (options.shared_dir_fd >= 0) {
        root = sys->openat(options.shared_dir_fd, ".", O_PATH | O_DIRECTORY, 0);
    } else if (!options.shared_dir.empty()) {
        // The configured path is trusted (it comes from the host's config), so it may
        // contain symlinks; everything below it is resolved one component at a time.
        root = sys->openat(AT_FDCWD, options.shared_dir.c_str(), O_PATH | O_DIRECTORY, 0);
    }
    if (!root) {
        return make_err(root.error());
    }
    std::unique_ptr<PassthroughFs> fs(new (std::nothrow) PassthroughFs(options, std::move(sys)));
    if (!fs) {
        return make_err(ENOMEM);
    }
    VDH_TRY(fs->store_.init_root(std::move(*root)));
    return fs;
}

FsCapabilities PassthroughFs::capabilities() const {
    FsCapabilities caps;
    caps.writeback_cache = options_.writeback;
    caps.xattr = options_.xattr;
    caps.posix_locks = options_.posix_locks;
    caps.flock_locks = options_.flock;
    caps.submounts = options_.announce_submounts;
    caps.readdirplus = options_.readdirplus;
    caps.direct_io_allow_mmap = options_.allow_mmap;
    // Not negotiated (as the C virtiofsd by default): with HANDLE_KILLPRIV_V2 the guest
    // kernel leaves clearing suid/sgid on write, truncate and O_TRUNC opens to us and
    // keeps its cached mode meanwhile, so a guest program would see stale bits. Without
    // it the guest kernel clears them itself with a SETATTR of the mode (its direct-I/O
    // writes still carry FUSE_WRITE_KILL_SUIDGID, honoured in write()/io_fd()).
    caps.killpriv_v2 = false;
    caps.cache_symlinks = false;
    caps.parallel_dirops = true;
    caps.explicit_inval = false;
    // posix_acl needs the extended setxattr_in (SETXATTR_ACL_KILL_SGID).
    caps.posix_acl = options_.posix_acl && options_.xattr;
    caps.setxattr_ext = caps.posix_acl;
    caps.security_label = options_.security_label;
    return caps;
}

void PassthroughFs::init(uint32_t /*minor*/, uint64_t want) {
    writeback_.store(options_.writeback && (want & FUSE_WRITEBACK_CACHE) != 0);
    submounts_.store(options_.announce_submounts && (want & FUSE_SUBMOUNTS) != 0);
    acl_.store(options_.posix_acl && options_.xattr && (want & FUSE_POSIX_ACL) != 0);
    label_.store(options_.security_label && (want & FUSE_SECURITY_CTX) != 0);
}

Status PassthroughFs::label_host_name(std::string_view guest_name,
                                      char (&out)[XATTR_NAME_MAX + 1]) const {
    constexpr std::string_view kSecurity = "security.";
    if (guest_name.size() <= kSecurity.size() || guest_name.substr(0, kSecurity.size()) != kSecurity ||
        guest_name == "security.capability") {
        return make_err(EPERM);
    }
    // Through the share's xattrmap like every other name the guest sends (virtiofsd does
    // the same): with security.* mapped under a user.* prefix, labels need no privilege.
    return xattr_name_to_host(options_.xattr_map.get(), guest_name, out);
}

Result<bool> PassthroughFs::label_of(const RequestCtx& c, Label* out) const {
    if (!c.has_secctx || !label_.load(std::memory_order_relaxed)) {
        return false;
    }
    VDH_TRY(label_host_name(c.secctx_name, out->name));
    out->value = c.secctx_value;
    out->size = c.secctx_size;
    return true;
}

template <typename Make>
Status PassthroughFs::make_labelled(int parent_fd, const char* name, bool is_dir,
                                    const Label& label, Make&& make) {
    char tmp[40];
    // Another entry could hold the temporary name (a guest can create any name): a few
    // fresh names, then its error.
    constexpr int kAttempts = 4;
    Status made = make_err(EEXIST);
    for (int attempt = 0; attempt < kAttempts && !made && made.error() == EEXIST; ++attempt) {
        temp_name(tmp);
        made = make(static_cast<const char*>(tmp));
    }
    VDH_TRY(made);
    ScopeExit remove_temp([&] { (void)::unlinkat(parent_fd, tmp, is_dir ? AT_REMOVEDIR : 0); });
    VDH_PT_ASSIGN(UniqueFd fd, sys_->openat(parent_fd, tmp, O_PATH | O_NOFOLLOW, 0));
    char path[32];
    proc_fd_path(fd.get(), path);
    // Through the magic link the xattr lands on the inode itself, symlinks included.
    VDH_TRY(sys_status(::setxattr(path, label.name, label.value, label.size, 0)));
    VDH_TRY(sys_status(::renameat2(parent_fd, tmp, parent_fd, name, RENAME_NOREPLACE)));
    remove_temp.cancel();
    return ok();
}

Result<PassthroughFs::CreateScope> PassthroughFs::enter_create(const RequestCtx& c,
                                                              const uint32_t* umask) {
    const bool acl = acl_active();
    Label label;
    VDH_PT_ASSIGN(const bool labelled, label_of(c, &label));
    std::optional<ScopedUmask> um;
    if (umask != nullptr) {
        VDH_PT_ASSIGN(auto entered, ScopedUmask::enter(acl ? *umask : 0));
        um.emplace(std::move(entered));
    } else {
        (void)prepare_thread_for_creates();
    }
    VDH_PT_ASSIGN(auto creds, caller_credentials(c));
    const mode_t perm_mask = umask == nullptr || acl ? 07777 : 07777 & ~*umask;
    return CreateScope{label, labelled, perm_mask, std::move(um), std::move(creds)};
}

template <typename Make>
Status PassthroughFs::make_new(const CreateScope& scope, int parent_fd, const char* name,
                               bool is_dir, Make&& make) {
    if (scope.labelled) {
        return make_labelled(parent_fd, name, is_dir, scope.label, make);
    }
    return make(name);
}

Result<UniqueFd> PassthroughFs::make_labelled_file(int parent_fd, const char* name, int flags,
                                                   mode_t mode, const Label& label) {
    int f = guest_open_flags(flags) & ~(O_TRUNC | O_DIRECTORY);
    if ((f & O_ACCMODE) == O_RDONLY) {
        f = (f & ~O_ACCMODE) | O_RDWR; // O_TMPFILE needs write access
    }
    VDH_PT_ASSIGN(UniqueFd fd,
                  check_guest_open(sys_->openat(parent_fd, ".", f | O_TMPFILE, mode), flags));
    VDH_TRY(sys_status(::fsetxattr(fd.get(), label.name, label.value, label.size, 0)));
    char num[16];
    format_fd(fd.get(), num);
    // Linking through the magic link needs no CAP_DAC_READ_SEARCH (AT_EMPTY_PATH does).
    VDH_TRY(sys_status(
        ::linkat(sys_->proc_self_fd(), num, parent_fd, name, AT_SYMLINK_FOLLOW)));
    return fd;
}

void PassthroughFs::destroy() {
    locks_.cancel_all();
    handles_.clear();
    store_.clear();
}

// ---------------------------------------------------------------------------------------
// Entries and attributes

fuse_attr PassthroughFs::make_attr(const struct statx& st) const {
    fuse_attr a{};
    a.ino = st.stx_ino;
    a.size = st.stx_size;
    a.blocks = st.stx_blocks;
    a.atime = static_cast<uint64_t>(st.stx_atime.tv_sec);
    a.mtime = static_cast<uint64_t>(st.stx_mtime.tv_sec);
    a.ctime = static_cast<uint64_t>(st.stx_ctime.tv_sec);
    a.atimensec = st.stx_atime.tv_nsec;
    a.mtimensec = st.stx_mtime.tv_nsec;
    a.ctimensec = st.stx_ctime.tv_nsec;
    a.mode = st.stx_mode;
    a.nlink = st.stx_nlink;
    a.uid = options_.uid_map.to_guest(st.stx_uid);
    a.gid = options_.gid_map.to_guest(st.stx_gid);
    a.rdev = encode_dev(st.stx_rdev_major, st.stx_rdev_minor);
    a.blksize = st.stx_blksize;
    a.flags = 0;
    return a;
}

fuse_entry_out PassthroughFs::make_entry(const LookupResult& r, const InodeData* parent) const {
    fuse_entry_out e{};
    e.nodeid = r.inode->id;
    e.generation = 0; // node ids are never reused within a session
    split_timeout(options_.entry_timeout, e.entry_valid, e.entry_valid_nsec);
    split_timeout(options_.attr_timeout, e.attr_valid, e.attr_valid_nsec);
    e.attr = make_attr(r.attr);
    if (submounts_.load(std::memory_order_relaxed) && parent != nullptr &&
        (r.attr.stx_mask & STATX_MNT_ID) != 0 && r.attr.stx_mnt_id != parent->ids.mnt_id &&
        r.inode.get() != parent && r.inode->id != kRootNodeId) {
        e.attr.flags |= FUSE_ATTR_SUBMOUNT;
    }
    return e;
}

Result<fuse_attr_out> PassthroughFs::attr_of(int fd) const {
    struct statx st{};
    VDH_TRY(sys_->statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &st));
    fuse_attr_out out{};
    split_timeout(options_.attr_timeout, out.attr_valid, out.attr_valid_nsec);
    out.attr = make_attr(st);
    return out;
}

Result<ScopedCredentials> PassthroughFs::caller_credentials(const RequestCtx& c) const {
    uint32_t uid = 0;
    uint32_t gid = 0;
    uint32_t supp = 0;
    if (!options_.uid_map.to_host(c.uid, &uid) || !options_.gid_map.to_host(c.gid, &gid) ||
        (c.has_supp_group && !options_.gid_map.to_host(c.supp_group, &supp))) {
        return make_err(EPERM); // a forbid-guest rule covers the caller or its group
    }
    // Creates may carry the supplementary group the guest's kernel found the caller in
    // (FUSE_EXT_GROUPS): the only group besides gid the host then checks.
    return ScopedCredentials::enter(uid, gid, c.has_supp_group ? &supp : nullptr);
}

Result<fuse_entry_out> PassthroughFs::lookup_child(const InodeData& parent, int parent_fd,
                                                   std::string_view name) {
    VDH_PT_ASSIGN(LookupResult r, store_.lookup(parent, parent_fd, name));
    return make_entry(r, name == ".." ? nullptr : &parent);
}

// ---------------------------------------------------------------------------------------
// Names and inodes

Result<PassthroughFs::ParentDir> PassthroughFs::writable_parent(uint64_t parent,
                                                                std::string_view name,
                                                                char (&cname)[NAME_MAX + 1]) {
    if (options_.readonly) {
        return make_err(EROFS);
    }
    VDH_TRY(copy_name(name, cname));
    VDH_PT_ASSIGN(auto p, inode(parent));
    VDH_PT_ASSIGN(InodeFd pfd, store_.path_fd(*p));
    return ParentDir{std::move(p), std::move(pfd)};
}

Result<fuse_entry_out> PassthroughFs::lookup(const RequestCtx& c, uint64_t parent,
                                             std::string_view name) {
    EpochSection sec = section(c); // before any lookup result (they end first)
    VDH_PT_ASSIGN(auto p, inode(sec, parent));
    VDH_PT_ASSIGN(InodeFd pfd, store_.path_fd(*p));
    return lookup_child(*p, pfd.get(), name);
}

void PassthroughFs::forget(uint64_t nodeid, uint64_t nlookup) { store_.forget(nodeid, nlookup); }

Result<fuse_attr_out> PassthroughFs::getattr(const RequestCtx& c, uint64_t nodeid,
                                             const uint64_t* fh) {
    EpochSection sec = section(c); // before any lookup result (they end first)
    if (fh != nullptr) {
        VDH_PT_ASSIGN(auto h, open_handle(sec, *fh, nodeid));
        return attr_of(h->fd.get());
    }
    VDH_PT_ASSIGN(auto i, inode(sec, nodeid));
    VDH_PT_ASSIGN(InodeFd fd, store_.path_fd(*i));
    return attr_of(fd.get());
}

Result<fuse_attr_out> PassthroughFs::setattr(const RequestCtx& c, uint64_t nodeid,
                                             const fuse_setattr_in& in) {
    if (options_.readonly) {
        return make_err(EROFS);
    }
    VDH_PT_ASSIGN(auto i, inode(nodeid));
    VDH_PT_ASSIGN(InodeFd pfd, store_.path_fd(*i));
    std::shared_ptr<HandleData> h;
    if ((in.valid & FATTR_FH) != 0) {
        VDH_PT_ASSIGN(h, open_handle(in.fh, nodeid));
    }
    // The new owner in host ids, before anything changes: a forbidden id fails the whole
    // request (-1: unchanged).
    uid_t uid = static_cast<uid_t>(-1);
    gid_t gid = static_cast<gid_t>(-1);
    if ((in.valid & FATTR_UID) != 0 && !options_.uid_map.to_host(in.uid, &uid)) {
        return make_err(EPERM);
    }
    if ((in.valid & FATTR_GID) != 0 && !options_.gid_map.to_host(in.gid, &gid)) {
        return make_err(EPERM);
    }
    char name[16];
    format_fd(pfd.get(), name);
    const int proc = sys_->proc_self_fd();

    if ((in.valid & FATTR_MODE) != 0) {
        if (i->type == S_IFLNK) {
            return make_err(EOPNOTSUPP); // like fchmodat(AT_SYMLINK_NOFOLLOW)
        }
        if (h) {
            VDH_TRY(sys_status(::fchmod(h->fd.get(), in.mode & 07777)));
        } else {
            VDH_TRY(sys_status(::fchmodat(proc, name, in.mode & 07777, 0)));
        }
    }
    if ((in.valid & (FATTR_UID | FATTR_GID)) != 0) {
        VDH_TRY(sys_status(
            ::fchownat(pfd.get(), "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)));
    }
    if ((in.valid & FATTR_SIZE) != 0) {
        if (in.size > static_cast<uint64_t>(INT64_MAX)) {
            return make_err(EFBIG);
        }
        UniqueFd opened;
        int fd = -1;
        if (h && h->writable()) {
            fd = h->fd.get();
        } else {
            if (i->type == S_IFDIR) {
                return make_err(EISDIR);
            }
            VDH_PT_ASSIGN(opened, store_.open(*i, O_WRONLY | O_NONBLOCK));
            fd = opened.get();
        }
        if ((in.valid & FATTR_KILL_SUIDGID) != 0) {
            ScopedDropFsetid unpriv;
            if (!unpriv.ok()) {
                VDH_TRY(kill_suid_bits(fd));
            }
            VDH_TRY(sys_status(::ftruncate(fd, static_cast<off_t>(in.size))));
        } else {
            VDH_TRY(sys_status(::ftruncate(fd, static_cast<off_t>(in.size))));
        }
    }
    if ((in.valid & (FATTR_ATIME | FATTR_MTIME)) != 0) {
        struct timespec ts[2];
        ts[0].tv_sec = 0;
        ts[0].tv_nsec = UTIME_OMIT;
        ts[1] = ts[0];
        if ((in.valid & FATTR_ATIME_NOW) != 0) {
            ts[0].tv_nsec = UTIME_NOW;
        } else if ((in.valid & FATTR_ATIME) != 0) {
            ts[0].tv_sec = static_cast<time_t>(in.atime);
            ts[0].tv_nsec = in.atimensec;
        }
        if ((in.valid & FATTR_MTIME_NOW) != 0) {
            ts[1].tv_nsec = UTIME_NOW;
        } else if ((in.valid & FATTR_MTIME) != 0) {
            ts[1].tv_sec = static_cast<time_t>(in.mtime);
            ts[1].tv_nsec = in.mtimensec;
        }
        if (h) {
            VDH_TRY(sys_status(::futimens(h->fd.get(), ts)));
        } else {
            // Through the magic link of our pinned fd: reaches the inode itself, even a
            // symlink (the link is not followed any further).
            VDH_TRY(sys_status(::utimensat(proc, name, ts, 0)));
        }
    }
    (void)c;
    return attr_of(h ? h->fd.get() : pfd.get());
}

Result<size_t> PassthroughFs::readlink(const RequestCtx&, uint64_t nodeid, char* buf,
                                       size_t size) {
    VDH_PT_ASSIGN(auto i, inode(nodeid));
    if (i->type != S_IFLNK) {
        return make_err(EINVAL);
    }
    VDH_PT_ASSIGN(InodeFd fd, store_.path_fd(*i));
    return sys_->readlinkat(fd.get(), "", buf, size);
}

Result<fuse_entry_out> PassthroughFs::symlink(const RequestCtx& c, uint64_t parent,
                                              std::string_view name, std::string_view target) {
    if (options_.readonly) {
        return make_err(EROFS);
    }
    char cname[NAME_MAX + 1];
    VDH_TRY(copy_name(name, cname));
    if (target.empty()) {
        return make_err(ENOENT);
    }
    if (target.find('\0') != std::string_view::npos) {
        return make_err(EINVAL);
    }
    if (target.size() >= PATH_MAX) {
        return make_err(ENAMETOOLONG);
    }
    char ctarget[PATH_MAX];
    std::memcpy(ctarget, target.data(), target.size());
    ctarget[target.size()] = '\0';

    VDH_PT_ASSIGN(auto p, inode(parent));
    VDH_PT_ASSIGN(InodeFd pfd, store_.path_fd(*p));
    {
        VDH_PT_ASSIGN(CreateScope scope, enter_create(c, nullptr));
        auto make = [&](const char* n) { return sys_status(::symlinkat(ctarget, pfd.get(), n)); };
        VDH_TRY(make_new(scope, pfd.get(), cname, false, make));
    }
    return lookup_child(*p, pfd.get(), cname);
}

Result<fuse_entry_out> PassthroughFs::mknod(const RequestCtx& c, uint64_t parent,
                                            std::string_view name, uint32_t mode, uint32_t rdev,
                                            uint32_t umask) {
    char cname[NAME_MAX + 1];
    VDH_PT_ASSIGN(ParentDir p, writable_parent(parent, name, cname));
    {
        VDH_PT_ASSIGN(CreateScope scope, enter_create(c, &umask));
        const mode_t m = (mode & S_IFMT) | scope.perm(mode);
        auto make = [&](const char* n) {
            return sys_status(::mknodat(p.fd.get(), n, m, static_cast<dev_t>(rdev)));
        };
        VDH_TRY(make_new(scope, p.fd.get(), cname, false, make));
    }
    return lookup_child(*p.inode, p.fd.get(), cname);
}

Result<fuse_entry_out> PassthroughFs::mkdir(const RequestCtx& c, uint64_t parent,
                                            std::string_view name, uint32_t mode,
                                            uint32_t umask) {
    char cname[NAME_MAX + 1];
    VDH_PT_ASSIGN(ParentDir p, writable_parent(parent, name, cname));
    {
        VDH_PT_ASSIGN(CreateScope scope, enter_create(c, &umask));
        const mode_t m = scope.perm(mode);
        auto make = [&](const char* n) { return sys_status(::mkdirat(p.fd.get(), n, m)); };
        VDH_TRY(make_new(scope, p.fd.get(), cname, true, make));
    }
    return lookup_child(*p.inode, p.fd.get(), cname);
}

Status PassthroughFs::unlink(const RequestCtx&, uint64_t parent, std::string_view name) {
    char cname[NAME_MAX + 1];
    VDH_PT_ASSIGN(ParentDir p, writable_parent(parent, name, cname));
    return sys_status(::unlinkat(p.fd.get(), cname, 0));
}

Status PassthroughFs::rmdir(const RequestCtx&, uint64_t parent, std::string_view name) {
    char cname[NAME_MAX + 1];
    VDH_PT_ASSIGN(ParentDir p, writable_parent(parent, name, cname));
    return sys_status(::unlinkat(p.fd.get(), cname, AT_REMOVEDIR));
}

Status PassthroughFs::rename(const RequestCtx&, uint64_t parent, std::string_view name,
                             uint64_t newparent, std::string_view newname, uint32_t flags) {
    if (options_.readonly) {
        return make_err(EROFS);
    }
    if ((flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT)) != 0) {
        return make_err(EINVAL);
    }
    char cname[NAME_MAX + 1];
    char cnewname[NAME_MAX + 1];
    VDH_TRY(copy_name(name, cname));
    VDH_TRY(copy_name(newname, cnewname));
    VDH_PT_ASSIGN(auto p, inode(parent));
    VDH_PT_ASSIGN(auto np, inode(newparent));
    VDH_PT_ASSIGN(InodeFd pfd, store_.path_fd(*p));
    VDH_PT_ASSIGN(InodeFd npfd, store_.path_fd(*np));
    return sys_status(::renameat2(pfd.get(), cname, npfd.get(), cnewname, flags));
}

Result<fuse_entry_out> PassthroughFs::link(const RequestCtx&, uint64_t nodeid,
                                           uint64_t newparent, std::string_view newname) {
    if (options_.readonly) {
        return make_err(EROFS);
    }
    char cname[NAME_MAX + 1];
    VDH_TRY(copy_name(newname, cname));
    VDH_PT_ASSIGN(auto i, inode(nodeid));
    VDH_PT_ASSIGN(auto np, inode(newparent));
    if (i->type == S_IFDIR) {
        return make_err(EPERM);
    }
    VDH_PT_ASSIGN(InodeFd fd, store_.path_fd(*i));
    VDH_PT_ASSIGN(InodeFd npfd, store_.path_fd(*np));
    if (::linkat(fd.get(), "", npfd.get(), cname, AT_EMPTY_PATH) < 0) {
        int err = errno;
        if (err != ENOENT && err != EPERM) {
            return make_err(err);
        }
        // AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; the magic link of our pinned fd names
        // the same inode (a symlink stays a symlink: the magic link is the last hop).
        char name[16];
        format_fd(fd.get(), name);
        VDH_TRY(sys_status(
            ::linkat(sys_->proc_self_fd(), name, npfd.get(), cname, AT_SYMLINK_FOLLOW)));
    }
    return lookup_child(*np, npfd.get(), cname);
}

// ---------------------------------------------------------------------------------------
// Open files

int PassthroughFs::adjust_open_flags(uint32_t flags) const {
    int f = static_cast<int>(flags) & kAllowedOpenFlags;
    if (!options_.preserve_noatime) {
        // As virtiofsd: a guest's O_NOATIME is dropped unless the share keeps it (it also
        // fails with EPERM on host files the backend's fsuid does not own).
        f &= ~O_NOATIME;
    }
    if (!options_.allow_direct_io) {
        // The guest's O_DIRECT bypasses the guest's page cache; the host's stays in use
        // (virtiofsd). An O_DIRECT host fd would also get the guest's mmap writeback, whose
        // unaligned writes it refuses (EINVAL, seen as msync failing in the guest).
        f &= ~O_DIRECT;
    }
    if (writeback_.load(std::memory_order_relaxed)) {
        // With the writeback cache the guest kernel may read pages of a file opened
        // write-only, and it implements O_APPEND itself (virtiofsd does the same).
        if ((f & O_ACCMODE) == O_WRONLY) {
            f = (f & ~O_ACCMODE) | O_RDWR;
        }
        f &= ~O_APPEND;
    }
    return f;
}

Result<uint64_t> PassthroughFs::add_handle(const InodeData& inode, int flags, UniqueFd fd,
                                           FdSlot slot, std::unique_ptr<DirStream> dir) {
    const bool on_share_fs = inode.ids.dev == store_.root()->ids.dev;
    std::shared_ptr<HandleData> h;
    try {
        h = std::make_shared<HandleData>(inode.id, flags, std::move(fd), std::move(slot),
                                         std::move(dir), on_share_fs);
    } catch (const std::bad_alloc&) {
        return make_err(ENOMEM);
    }
    return handles_.insert(std::move(h));
}

Result<fuse_open_out> PassthroughFs::open(const RequestCtx&, uint64_t nodeid, uint32_t flags) {
    const int acc = static_cast<int>(flags) & O_ACCMODE;
    if (options_.readonly && (acc != O_RDONLY || (flags & O_TRUNC) != 0)) {
        return make_err(EROFS);
    }
    VDH_PT_ASSIGN(auto i, inode(nodeid));
    const int f = adjust_open_flags(flags);
    VDH_PT_ASSIGN(FdSlot slot, budget_.acquire());
    VDH_PT_ASSIGN(UniqueFd fd, store_.open(*i, f));
    VDH_PT_ASSIGN(uint64_t fh, add_handle(*i, f, std::move(fd), std::move(slot)));
    fuse_open_out out{};
    out.fh = fh;
    out.open_flags = options_.file_open_flags;
    return out;
}

Result<CreateOut> PassthroughFs::finish_create(const InodeData& parent, int parent_fd,
                                               UniqueFd fd, UniqueFd path, int flags,
                                               FdSlot slot) {
    if (!path.valid()) {
        VDH_PT_ASSIGN(path, sys_->reopen(fd.get(), O_PATH));
    }
    VDH_PT_ASSIGN(LookupResult r, store_.claim(&parent, parent_fd, std::move(path)));
    CreateOut out;
    out.entry = make_entry(r, &parent);
    auto fh = add_handle(*r.inode, flags, std::move(fd), std::move(slot));
    if (!fh) {
        store_.forget(r.inode->id, 1);
        return make_err(fh.error());
    }
    out.open.fh = *fh;
    out.open.open_flags = options_.file_open_flags;
    return out;
}

Result<UniqueFd> PassthroughFs::create_open(int parent_fd, const char* name, int flags,
                                            bool excl, mode_t mode, UniqueFd& path,
                                            const Label* label) {
    const int kernel_flags = guest_open_flags(flags) | O_NOFOLLOW;
    // A name that keeps changing between the two opens (created, removed, created...) by
    // someone else gets a bounded number of retries, then the last error.
    constexpr int kAttempts = 4;
    int err = EEXIST;
    for (int attempt = 0; attempt < kAttempts; ++attempt) {
        // O_EXCL: never opens an existing name, so never a device node or FIFO.
        auto made = label != nullptr
                        ? make_labelled_file(parent_fd, name, flags, mode, *label)
                        : sys_->openat(parent_fd, name, kernel_flags | O_CREAT | O_EXCL, mode);
        if (made || made.error() != EEXIST || excl) {
            return check_guest_open(std::move(made), flags);
        }
        // The name exists: see what it is without opening it, then open only a regular
        // file, through the magic link of that very inode (a rename in between cannot
        // substitute another file).
        auto existing = sys_->openat(parent_fd, name, O_PATH | O_NOFOLLOW, 0);
        if (!existing) {
            err = existing.error();
            if (err == ENOENT) {
                continue; // removed meanwhile: try to create it again
            }
            return make_err(err);
        }
        struct stat st{};
        if (::fstat(existing->get(), &st) < 0) {
            return errno_err();
        }
        if (S_ISDIR(st.st_mode)) {
            return make_err(EISDIR); // what open(O_CREAT) says for a directory
        }
        // A symlink (O_NOFOLLOW), device node, FIFO or socket is never opened.
        VDH_TRY(check_guest_open_type(st.st_mode));
        auto opened = check_guest_open(sys_->reopen(existing->get(), kernel_flags), flags);
        if (opened) {
            path = std::move(*existing);
        }
        return opened;
    }
    return make_err(err);
}

Result<CreateOut> PassthroughFs::create(const RequestCtx& c, uint64_t parent,
                                        std::string_view name, uint32_t flags, uint32_t mode,
                                        uint32_t umask) {
    char cname[NAME_MAX + 1];
    VDH_PT_ASSIGN(ParentDir p, writable_parent(parent, name, cname));
    const int f = adjust_open_flags(flags);
    VDH_PT_ASSIGN(FdSlot slot, budget_.acquire());
    UniqueFd fd;
    UniqueFd path;
    {
        // The caller's credentials for both the create and the reopen of an existing
        // file: the host kernel checks the permissions (and O_TRUNC) as for a local open.
        VDH_PT_ASSIGN(CreateScope scope, enter_create(c, &umask));
        VDH_PT_ASSIGN(fd, create_open(p.fd.get(), cname, f, (flags & O_EXCL) != 0,
                                      scope.perm(mode), path,
                                      scope.labelled ? &scope.label : nullptr));
    }
    return finish_create(*p.inode, p.fd.get(), std::move(fd), std::move(path), f,
                         std::move(slot));
}

Result<CreateOut> PassthroughFs::tmpfile(const RequestCtx& c, uint64_t parent, uint32_t flags,
                                         uint32_t mode, uint32_t umask) {
    if (options_.readonly) {
        return make_err(EROFS);
    }
    VDH_PT_ASSIGN(auto p, inode(parent));
    VDH_PT_ASSIGN(InodeFd pfd, store_.path_fd(*p));
    const int f = adjust_open_flags(flags) & ~O_DIRECTORY;
    if ((f & O_ACCMODE) == O_RDONLY) {
        return make_err(EINVAL); // O_TMPFILE needs write access
    }
    VDH_PT_ASSIGN(FdSlot slot, budget_.acquire());
    UniqueFd fd;
    {
        VDH_PT_ASSIGN(CreateScope scope, enter_create(c, &umask));
        VDH_PT_ASSIGN(fd, check_guest_open(sys_->openat(pfd.get(), ".",
                                                        guest_open_flags(f) | O_TMPFILE,
                                                        scope.perm(mode)),
                                           f));
        // Nameless until the guest links it: labelled before anyone can see it.
        if (scope.labelled) {
            const Label& label = scope.label;
            VDH_TRY(sys_status(::fsetxattr(fd.get(), label.name, label.value, label.size, 0)));
        }
    }
    return finish_create(*p, pfd.get(), std::move(fd), UniqueFd(), f, std::move(slot));
}

Result<size_t> PassthroughFs::read(const RequestCtx& c, uint64_t nodeid, uint64_t fh,
                                   uint64_t offset, const struct iovec* dst, int ndst) {
    EpochSection sec = section(c); // before any lookup result (they end first)
    VDH_PT_ASSIGN(auto h, open_handle(sec, fh, nodeid));
    if (ndst < 0 || ndst > IOV_MAX || offset > static_cast<uint64_t>(INT64_MAX)) {
        return make_err(EINVAL);
    }
    ssize_t n = ::preadv(h->fd.get(), dst, ndst, static_cast<off_t>(offset));
    if (n < 0) {
        return errno_err();
    }
    return static_cast<size_t>(n);
}

Result<size_t> PassthroughFs::write(const RequestCtx& c, uint64_t nodeid, uint64_t fh,
                                    uint64_t offset, const struct iovec* src, int nsrc,
                                    uint32_t write_flags) {
    EpochSection sec = section(c); // before any lookup result (they end first)
    if (options_.readonly) {
        return make_err(EROFS);
    }
    VDH_PT_ASSIGN(auto h, open_handle(sec, fh, nodeid));
    if (!h->writable()) {
        return make_err(EBADF);
    }
    if (nsrc < 0 || nsrc > IOV_MAX || offset > static_cast<uint64_t>(INT64_MAX)) {
        return make_err(EINVAL);
    }
    ssize_t n;
    if ((write_flags & FUSE_WRITE_KILL_SUIDGID) != 0) {
        // The guest asks for an unprivileged write: without CAP_FSETID the host kernel
        // clears suid/sgid itself, atomically with the write.
        ScopedDropFsetid unpriv;
        if (!unpriv.ok()) {
            VDH_TRY(kill_suid_bits(h->fd.get()));
        }
        n = ::pwritev(h->fd.get(), src, nsrc, static_cast<off_t>(offset));
    } else {
        n = ::pwritev(h->fd.get(), src, nsrc, static_cast<off_t>(offset));
    }
    if (n < 0) {
        return errno_err();
    }
    return static_cast<size_t>(n);
}

Result<IoFile> PassthroughFs::io_fd(const RequestCtx& c, uint64_t nodeid, uint64_t fh,
                                    bool for_write, uint32_t write_flags) {
    EpochSection sec = section(c); // before any lookup result (they end first)
    VDH_PT_ASSIGN(auto h, open_handle(sec, fh, nodeid));
    if (for_write) {
        if (options_.readonly) {
            return make_err(EROFS);
        }
        if (!h->writable()) {
            return make_err(EBADF);
        }
    }
    if (h->dir) {
        return make_err(EISDIR);
    }
    if (for_write && (write_flags & FUSE_WRITE_KILL_SUIDGID) != 0) {
        // The asynchronous write runs elsewhere with our capabilities; clear the bits now.
        Status killed = kill_suid_bits(h->fd.get());
        if (!killed) {
            return IoFile{-1, nullptr, killed.error()};
        }
    }
    // The caller keeps the HandleData (and so the fd) until its I/O completed, whatever
    // RELEASE or the end of the session do meanwhile: the locked lookup's reference, or
    // one taken now on the cached entry (alive: retired entries wait for this section).
    const int fd = h->fd.get();
    std::shared_ptr<const void> keep;
    if (h.owned()) {
        keep = std::move(h.owned());
    } else {
        keep = h->shared_from_this();
    }
    return IoFile{fd, std::move(keep), 0, h->flags, h->on_share_fs};
}

Status PassthroughFs::flush(const RequestCtx& c, uint64_t nodeid, uint64_t fh,
                            uint64_t lock_owner) {
    EpochSection sec = section(c); // before any lookup result (they end first)
    VDH_PT_ASSIGN(auto h, open_handle(sec, fh, nodeid));
    {
        // close(dup(fd)): what a close() in the guest means for the host file
        // (process-associated locks, NFS close-to-open flush).
        auto dup = h->fd.dup();
        if (!dup) {
            return make_err(dup.error());
        }
    }
    // POSIX lock semantics: closing any fd of the file drops the owner's locks on it.
    auto i = inode(sec, nodeid);
    if (i) {
        FileLocks::drop_owner(**i, lock_owner);
    }
    return ok();
}

Status PassthroughFs::release(const RequestCtx&, uint64_t nodeid, uint64_t fh, uint32_t,
                              uint32_t release_flags, uint64_t) {
    VDH_PT_ASSIGN(auto h, handles_.remove(fh, nodeid));
    if ((release_flags & FUSE_RELEASE_FLOCK_UNLOCK) != 0) {
        (void)::flock(h->fd.get(), LOCK_UN);
    }
    return ok(); // the fd closes when the last in-flight user drops `h`
}

Status PassthroughFs::fsync(const RequestCtx& c, uint64_t nodeid, uint64_t fh, bool datasync) {
    EpochSection sec = section(c); // before any lookup result (they end first)
    VDH_PT_ASSIGN(auto h, open_handle(sec, fh, nodeid));
    return sys_status(datasync ? ::fdatasync(h->fd.get()) : ::fsync(h->fd.get()));
}

Status PassthroughFs::fallocate(const RequestCtx& c, uint64_t nodeid, uint64_t fh, uint64_t offset,
                                uint64_t length, uint32_t mode) {
    EpochSection sec = section(c); // before any lookup result (they end first)
    if (options_.readonly) {
        return make_err(EROFS);
    }
    VDH_PT_ASSIGN(auto h, open_handle(sec, fh, nodeid));
    if (offset > static_cast<uint64_t>(INT64_MAX) || length > static_cast<uint64_t>(INT64_MAX)) {
        return make_err(EINVAL);
    }
    return sys_status(::fallocate(h->fd.get(), static_cast<int>(mode), static_cast<off_t>(offset),
                                  static_cast<off_t>(length)));
}

Result<uint64_t> PassthroughFs::lseek(const RequestCtx& c, uint64_t nodeid, uint64_t fh,
                                      uint64_t offset, uint32_t whence) {
    EpochSection sec = section(c); // before any lookup result (they end first)
    VDH_PT_ASSIGN(auto h, open_handle(sec, fh, nodeid));
    if (whence != SEEK_SET && whence != SEEK_CUR && whence != SEEK_END && whence != SEEK_DATA &&
        whence != SEEK_HOLE) {
        return make_err(EINVAL);
    }
    off_t r = ::lseek(h->fd.get(), static_cast<off_t>(offset), static_cast<int>(whence));
    if (r < 0) {
        return errno_err();
    }
    return static_cast<uint64_t>(r);
}

Result<size_t> PassthroughFs::copy_file_range(const RequestCtx&, const fuse_copy_file_range_in& in,
                                              uint64_t nodeid_in) {
    if (options_.readonly) {
        return make_err(EROFS);
    }
    VDH_PT_ASSIGN(auto hin, open_handle(in.fh_in, nodeid_in));
    VDH_PT_ASSIGN(auto hout, open_handle(in.fh_out, in.nodeid_out));
    if (!hout->writable()) {
        return make_err(EBADF);
    }
    if (in.off_in > static_cast<uint64_t>(INT64_MAX) ||
        in.off_out > static_cast<uint64_t>(INT64_MAX)) {
        return make_err(EINVAL);
    }
    loff_t off_in = static_cast<loff_t>(in.off_in);
    loff_t off_out = static_cast<loff_t>(in.off_out);
    ssize_t n = ::copy_file_range(hin->fd.get(), &off_in, hout->fd.get(), &off_out,
                                  static_cast<size_t>(in.len), static_cast<unsigned int>(in.flags));
    if (n < 0) {
        return errno_err();
    }
    return static_cast<size_t>(n);
}

// ---------------------------------------------------------------------------------------
// Directories

Result<fuse_open_out> PassthroughFs::opendir(const RequestCtx&, uint64_t nodeid, uint32_t) {
    VDH_PT_ASSIGN(auto i, inode(nodeid));
    if (i->type != S_IFDIR) {
        return make_err(ENOTDIR);
    }
    VDH_PT_ASSIGN(FdSlot slot, budget_.acquire());
    VDH_PT_ASSIGN(UniqueFd fd, store_.open(*i, O_RDONLY | O_DIRECTORY));
    std::unique_ptr<DirStream> dir(new (std::nothrow) DirStream);
    if (!dir) {
        return make_err(ENOMEM);
    }
    dir->buf.reset(new (std::nothrow) char[DirStream::kBufSize]);
    if (!dir->buf) {
        return make_err(ENOMEM);
    }
    VDH_PT_ASSIGN(uint64_t fh, add_handle(*i, O_RDONLY | O_DIRECTORY, std::move(fd),
                                          std::move(slot), std::move(dir)));
    fuse_open_out out{};
    out.fh = fh;
    out.open_flags = options_.dir_open_flags;
    return out;
}

Status PassthroughFs::readdir(const RequestCtx&, uint64_t nodeid, uint64_t fh, uint64_t offset,
                              DirentSink& sink) {
    VDH_PT_ASSIGN(auto h, open_handle(fh, nodeid));
    if (!h->dir) {
        return make_err(ENOTDIR);
    }
    std::shared_ptr<InodeData> dir_inode;
    InodeFd dir_path;
    const bool plus = sink.plus();
    if (plus) {
        VDH_PT_ASSIGN(dir_inode, inode(nodeid));
        VDH_PT_ASSIGN(dir_path, store_.path_fd(*dir_inode));
    }
    DirStream& ds = *h->dir;
    std::lock_guard<std::mutex> g(ds.mutex);
    if (offset != ds.offset) {
        // A seekdir (or a restart): offsets are the filesystem's d_off cookies.
        if (::lseek(h->fd.get(), static_cast<off_t>(offset), SEEK_SET) < 0) {
            return errno_err();
        }
        ds.len = 0;
        ds.pos = 0;
        ds.offset = offset;
    }
    size_t added = 0;
    for (;;) {
        if (ds.pos >= ds.len) {
            ssize_t n = ::getdents64(h->fd.get(), ds.buf.get(), DirStream::kBufSize);
            if (n < 0) {
                if (added == 0) {
                    return errno_err();
                }
                break;
            }
            if (n == 0) {
                break; // end of directory
            }
            ds.len = static_cast<size_t>(n);
            ds.pos = 0;
        }
        // Safety: getdents64 wrote whole, aligned records into buf[0, len).
        const auto* d = reinterpret_cast<const struct dirent64*>(ds.buf.get() + ds.pos);
        const char* name = d->d_name;
        const uint64_t next = static_cast<uint64_t>(d->d_off);
        bool fits;
        if (plus) {
            fuse_entry_out e{};
            if (is_dot_or_dotdot(name)) {
                // No lookup for "." and "..": nodeid 0 means "name only" (as virtiofsd).
                e.attr.ino = d->d_ino;
                e.attr.mode = static_cast<uint32_t>(d->d_type) << 12;
            } else {
                auto r = store_.lookup(*dir_inode, dir_path.get(), name);
                if (r) {
                    e = make_entry(*r, dir_inode.get());
                } else if (r.error() == ENOENT) {
                    // Removed since getdents: still list the name, without an entry.
                    e.attr.ino = d->d_ino;
                    e.attr.mode = static_cast<uint32_t>(d->d_type) << 12;
                } else {
                    if (added == 0) {
                        return make_err(r.error());
                    }
                    break;
                }
            }
            fits = sink.add(name, d->d_ino, d->d_type, next, &e);
            if (!fits && e.nodeid != 0) {
                store_.forget(e.nodeid, 1); // undo the lookup the guest will not see
            }
        } else {
            fits = sink.add(name, d->d_ino, d->d_type, next, nullptr);
        }
        if (!fits) {
            break; // this entry stays buffered for the next call (ds.offset unchanged)
        }
        ++added;
        ds.pos += d->d_reclen;
        ds.offset = next;
    }
    return ok();
}

Status PassthroughFs::releasedir(const RequestCtx&, uint64_t nodeid, uint64_t fh) {
    VDH_PT_ASSIGN(auto h, handles_.remove(fh, nodeid));
    return ok();
}

Status PassthroughFs::fsyncdir(const RequestCtx&, uint64_t nodeid, uint64_t fh, bool datasync) {
    VDH_PT_ASSIGN(auto h, open_handle(fh, nodeid));
    return sys_status(datasync ? ::fdatasync(h->fd.get()) : ::fsync(h->fd.get()));
}

// ---------------------------------------------------------------------------------------
// Filesystem-wide, permissions, xattrs

Result<fuse_statfs_out> PassthroughFs::statfs(const RequestCtx&, uint64_t nodeid) {
    VDH_PT_ASSIGN(auto i, inode(nodeid));
    VDH_PT_ASSIGN(InodeFd fd, store_.path_fd(*i));
    struct statvfs sv{};
    if (::fstatvfs(fd.get(), &sv) < 0) {
        return errno_err();
    }
    fuse_statfs_out out{};
    out.st.blocks = sv.f_blocks;
    out.st.bfree = sv.f_bfree;
    out.st.bavail = sv.f_bavail;
    out.st.files = sv.f_files;
    out.st.ffree = sv.f_ffree;
    out.st.bsize = static_cast<uint32_t>(sv.f_bsize);
    out.st.namelen = static_cast<uint32_t>(sv.f_namemax);
    out.st.frsize = static_cast<uint32_t>(sv.f_frsize);
    return out;
}

Status PassthroughFs::syncfs(const RequestCtx&, uint64_t nodeid) {
    VDH_PT_ASSIGN(auto i, inode(nodeid));
    // syncfs() needs a real (not O_PATH) fd on the filesystem.
    const InodeData& target = (i->type == S_IFREG || i->type == S_IFDIR) ? *i : *store_.root();
    int flags = O_RDONLY | O_NONBLOCK | (target.type == S_IFDIR ? O_DIRECTORY : 0);
    VDH_PT_ASSIGN(UniqueFd fd, store_.open(target, flags));
    return sys_status(::syncfs(fd.get()));
}

Status PassthroughFs::access(const RequestCtx& c, uint64_t nodeid, uint32_t mask) {
    if ((mask & ~static_cast<uint32_t>(R_OK | W_OK | X_OK)) != 0) {
        return make_err(EINVAL);
    }
    VDH_PT_ASSIGN(auto i, inode(nodeid));
    VDH_PT_ASSIGN(InodeFd fd, store_.path_fd(*i)); // before dropping privileges
    char name[16];
    format_fd(fd.get(), name);
    VDH_PT_ASSIGN(auto creds, caller_credentials(c));
    // AT_EACCESS: check with the fsuid/fsgid we just set (plain access() uses the real
    // uid). faccessat2 is the syscall that honours the flag.
    long rc = ::syscall(SYS_faccessat2, sys_->proc_self_fd(), name, static_cast<int>(mask),
                        AT_EACCESS);
    if (rc < 0) {
        return errno_err();
    }
    return ok();
}

Status PassthroughFs::setxattr(const RequestCtx& c, uint64_t nodeid, std::string_view name,
                               const void* value, size_t size, uint32_t flags,
                               uint32_t setxattr_flags) {
    if (!options_.xattr) {
        return make_err(ENOSYS);
    }
    if (options_.readonly) {
        return make_err(EROFS);
    }
    if ((flags & ~static_cast<uint32_t>(XATTR_CREATE | XATTR_REPLACE)) != 0) {
        return make_err(EINVAL);
    }
    char cname[XATTR_NAME_MAX + 1];
    VDH_TRY(xattr_name_to_host(options_.xattr_map.get(), name, cname)); // bad: EPERM
    VDH_PT_ASSIGN(auto i, inode(nodeid));
    VDH_PT_ASSIGN(InodeFd fd, store_.path_fd(*i));
    // The xattr calls have no *at form: use the magic link of our pinned fd, which
    // resolves to the inode itself for every file type (symlinks included, like l*xattr).
    char path[32];
    proc_fd_path(fd.get(), path);
    if ((setxattr_flags & FUSE_SETXATTR_ACL_KILL_SGID) != 0 &&
        name == "system.posix_acl_access") {
        // The guest says its caller may not keep set-group-ID: set the ACL as that caller
        // without CAP_FSETID, and the host kernel clears the bit as it would for them
        // (virtiofsd does the same).
        VDH_PT_ASSIGN(auto creds, caller_credentials(c));
        ScopedDropFsetid drop;
        return sys_status(::setxattr(path, cname, value, size, static_cast<int>(flags)));
    }
    return sys_status(::setxattr(path, cname, value, size, static_cast<int>(flags)));
}

Result<size_t> PassthroughFs::getxattr(const RequestCtx&, uint64_t nodeid, std::string_view name,
                                       void* buf, size_t size) {
    if (!options_.xattr) {
        return make_err(ENOSYS);
    }
    char cname[XATTR_NAME_MAX + 1];
    if (Status m = xattr_name_to_host(options_.xattr_map.get(), name, cname); !m) {
        // A name a bad rule refuses reads as absent (virtiofsd), not as forbidden.
        return make_err(m.error() == EPERM ? ENODATA : m.error());
    }
    VDH_PT_ASSIGN(auto i, inode(nodeid));
    VDH_PT_ASSIGN(InodeFd fd, store_.path_fd(*i));
    char path[32];
    proc_fd_path(fd.get(), path);
    ssize_t n = ::getxattr(path, cname, size == 0 ? nullptr : buf, size);
    if (n < 0) {
        return errno_err();
    }
    return static_cast<size_t>(n);
}

Result<size_t> PassthroughFs::listxattr(const RequestCtx&, uint64_t nodeid, char* buf,
                                        size_t size) {
    if (!options_.xattr) {
        return make_err(ENOSYS);
    }
    VDH_PT_ASSIGN(auto i, inode(nodeid));
    VDH_PT_ASSIGN(InodeFd fd, store_.path_fd(*i));
    char path[32];
    proc_fd_path(fd.get(), path);
    if (const XattrMap* map = options_.xattr_map.get(); map != nullptr) {
        // The whole host list, then the guest's view of it: its size for the size probe
        // (exact, not the host list's), ERANGE only when the mapped list does not fit.
        char* host = xattr_list_scratch();
        if (host == nullptr) {
            return make_err(ENOMEM);
        }
        ssize_t n = ::listxattr(path, host, XATTR_LIST_MAX);
        if (n < 0) {
            return errno_err();
        }
        return map->list_to_guest(host, static_cast<size_t>(n), size == 0 ? nullptr : buf,
                                  size);
    }
    ssize_t n = ::listxattr(path, size == 0 ? nullptr : buf, size);
    if (n < 0) {
        return errno_err();
    }
    return static_cast<size_t>(n);
}

Status PassthroughFs::removexattr(const RequestCtx&, uint64_t nodeid, std::string_view name) {
    if (!options_.xattr) {
        return make_err(ENOSYS);
    }
    if (options_.readonly) {
        return make_err(EROFS);
    }
    char cname[XATTR_NAME_MAX + 1];
    VDH_TRY(xattr_name_to_host(options_.xattr_map.get(), name, cname)); // bad: EPERM
    VDH_PT_ASSIGN(auto i, inode(nodeid));
    VDH_PT_ASSIGN(InodeFd fd, store_.path_fd(*i));
    char path[32];
    proc_fd_path(fd.get(), path);
    return sys_status(::removexattr(path, cname));
}

// ---------------------------------------------------------------------------------------
// Locks

Result<fuse_lk_out> PassthroughFs::getlk(const RequestCtx&, uint64_t nodeid,
                                         const fuse_lk_in& in) {
    if (!options_.posix_locks || (in.lk_flags & FUSE_LK_FLOCK) != 0) {
        return make_err(ENOSYS);
    }
    VDH_PT_ASSIGN(auto i, inode(nodeid));
    return locks_.get_posix(*i, in);
}

Status PassthroughFs::setlk(const RequestCtx& c, uint64_t nodeid, const fuse_lk_in& in,
                            bool sleep) {
    if ((in.lk_flags & FUSE_LK_FLOCK) != 0) {
        if (!options_.flock) {
            return make_err(ENOSYS);
        }
        VDH_PT_ASSIGN(auto h, open_handle(in.fh, nodeid));
        return locks_.set_flock(c.unique, h->fd.get(), in.lk.type, sleep);
    }
    if (!options_.posix_locks) {
        return make_err(ENOSYS);
    }
    VDH_PT_ASSIGN(auto i, inode(nodeid));
    return locks_.set_posix(c.unique, *i, in, sleep);
}

bool PassthroughFs::interrupt_lock(uint64_t unique) { return locks_.interrupt(unique); }

} // namespace vdh::virtiofs::passthrough

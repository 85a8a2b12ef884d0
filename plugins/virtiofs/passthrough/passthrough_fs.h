// SPDX-License-Identifier: MIT
// PassthroughFs: the Filesystem (filesystem.h) over a host directory. Guest node ids and
// file handles are counters looked up in InodeStore and HandleTable; containment is left
// to the kernel: only single-component *at calls relative to pinned fds, never following
// symlinks, and /proc/self/fd reopening only of our own pinned fds. No host path strings
// are built or walked. Callers: the FUSE dispatcher (poll lcores and worker threads).
//
// Opens: only regular files and directories are ever opened for a guest, never blocking
// (open_guard.h); CREATE never opens an existing name by O_CREAT.
//
// Credentials: create-type operations (mknod, mkdir, symlink, create, tmpfile) and
// access() run with the caller's fsuid/fsgid (credentials.h), so ownership, setgid
// directory inheritance and permission checks are the kernel's; everything else runs
// with the daemon's credentials after the guest kernel checked permissions
// (default_permissions), as virtiofsd does. With uid/gid translation (id_map.h) the
// caller's ids and SETATTR's new owner are translated to host ids first, and every
// attribute returned carries guest ids.
//
// Locks: POSIX locks and flock() are FileLocks' (file_locks.h); this class finds the
// inode or open file and checks that the share enables them.
#pragma once

#include <fcntl.h>
#include <limits.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>

#include "credentials.h"
#include "filesystem.h"
#include "fd_budget.h"
#include "file_locks.h"
#include "handle_table.h"
#include "inode_store.h"
#include "passthrough_options.h"
#include "queue_epochs.h"
#include "sys.h"

namespace vdh::virtiofs::passthrough {

class PassthroughFs final : public Filesystem {
public:
    /// Opens the shared directory and sets up the root inode. \p sys defaults to RealSys.
    /// Allocates (cold path). Errors: the open's errno, ENOTDIR, ENOMEM.
    static Result<std::unique_ptr<PassthroughFs>> create(const PassthroughOptions& options,
                                                         std::unique_ptr<Sys> sys = nullptr);
    ~PassthroughFs() override;

    FsCapabilities capabilities() const override;
    void init(uint32_t minor, uint64_t want) override;
    void destroy() override;

    Result<fuse_entry_out> lookup(const RequestCtx& c, uint64_t parent,
                                  std::string_view name) override;
    void forget(uint64_t nodeid, uint64_t nlookup) override;
    Result<fuse_attr_out> getattr(const RequestCtx& c, uint64_t nodeid,
                                  const uint64_t* fh) override;
    Result<fuse_attr_out> setattr(const RequestCtx& c, uint64_t nodeid,
                                  const fuse_setattr_in& in) override;
    Result<size_t> readlink(const RequestCtx& c, uint64_t nodeid, char* buf,
                            size_t size) override;
    Result<fuse_entry_out> symlink(const RequestCtx& c, uint64_t parent, std::string_view name,
                                   std::string_view target) override;
    Result<fuse_entry_out> mknod(const RequestCtx& c, uint64_t parent, std::string_view name,
                                 uint32_t mode, uint32_t rdev, uint32_t umask) override;
    Result<fuse_entry_out> mkdir(const RequestCtx& c, uint64_t parent, std::string_view name,
                                 uint32_t mode, uint32_t umask) override;
    Status unlink(const RequestCtx& c, uint64_t parent, std::string_view name) override;
    Status rmdir(const RequestCtx& c, uint64_t parent, std::string_view name) override;
    Status rename(const RequestCtx& c, uint64_t parent, std::string_view name, uint64_t newparent,
                  std::string_view newname, uint32_t flags) override;
    Result<fuse_entry_out> link(const RequestCtx& c, uint64_t nodeid, uint64_t newparent,
                                std::string_view newname) override;
    Result<fuse_open_out> open(const RequestCtx& c, uint64_t nodeid, uint32_t flags) override;
    Result<CreateOut> create(const RequestCtx& c, uint64_t parent, std::string_view name,
                             uint32_t flags, uint32_t mode, uint32_t umask) override;
    Result<CreateOut> tmpfile(const RequestCtx& c, uint64_t parent, uint32_t flags,
                              uint32_t mode, uint32_t umask) override;
    Result<size_t> read(const RequestCtx& c, uint64_t nodeid, uint64_t fh, uint64_t offset,
                        const struct iovec* dst, int ndst) override;
    Result<size_t> write(const RequestCtx& c, uint64_t nodeid, uint64_t fh, uint64_t offset,
                         const struct iovec* src, int nsrc, uint32_t write_flags) override;
    Result<IoFile> io_fd(const RequestCtx& c, uint64_t nodeid, uint64_t fh, bool for_write,
                         uint32_t write_flags) override;
    Status flush(const RequestCtx& c, uint64_t nodeid, uint64_t fh,
                 uint64_t lock_owner) override;
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
    Status setxattr(const RequestCtx& c, uint64_t nodeid, std::string_view name,
                    const void* value, size_t size, uint32_t flags,
                    uint32_t setxattr_flags) override;
    Result<size_t> getxattr(const RequestCtx& c, uint64_t nodeid, std::string_view name,
                            void* buf, size_t size) override;
    Result<size_t> listxattr(const RequestCtx& c, uint64_t nodeid, char* buf,
                             size_t size) override;
    Status removexattr(const RequestCtx& c, uint64_t nodeid, std::string_view name) override;
    Result<fuse_lk_out> getlk(const RequestCtx& c, uint64_t nodeid,
                              const fuse_lk_in& in) override;
    Status setlk(const RequestCtx& c, uint64_t nodeid, const fuse_lk_in& in,
                 bool sleep) override;
    bool interrupt_lock(uint64_t unique) override;
    Status fallocate(const RequestCtx& c, uint64_t nodeid, uint64_t fh, uint64_t offset,
                     uint64_t length, uint32_t mode) override;
    Result<uint64_t> lseek(const RequestCtx& c, uint64_t nodeid, uint64_t fh, uint64_t offset,
                           uint32_t whence) override;
    Result<size_t> copy_file_range(const RequestCtx& c, const fuse_copy_file_range_in& in,
                                   uint64_t nodeid_in) override;
    Status syncfs(const RequestCtx& c, uint64_t nodeid) override;

    /// For tests and stats.
    InodeStore& inodes() noexcept { return store_; }
    HandleTable& handles() noexcept { return handles_; }
    GuestFdBudget& fd_budget() noexcept { return budget_; }
    GuestFdBudget& inode_budget() noexcept { return inode_budget_; }
    const PassthroughOptions& options() const noexcept { return options_; }

    /// A security label to store on a new inode: host xattr name and the guest's value.
    struct Label {
        char name[XATTR_NAME_MAX + 1];
        const void* value;
        size_t size;
    };

private:
    PassthroughFs(const PassthroughOptions& options, std::unique_ptr<Sys> sys);

    Result<std::shared_ptr<InodeData>> inode(uint64_t id) const { return store_.get(id); }
    /// The request's section on its queue (inactive off the lcores: locked lookups).
    EpochSection section(const RequestCtx& c) noexcept { return EpochSection(&epochs_, c.queue); }
    /// Lookups for one request (through the queue's cache inside an active section).
    Result<EntryRef<InodeData>> inode(const EpochSection& s, uint64_t id) const {
        return store_.find(s, id);
    }
    Result<EntryRef<HandleData>> open_handle(const EpochSection& s, uint64_t fh,
                                             uint64_t nodeid) const {
        return handles_.find(s, fh, nodeid);
    }
    fuse_entry_out make_entry(const LookupResult& r, const InodeData* parent) const;
    /// Host ids in the attributes (uid/gid translated to the guest's, options_.uid_map).
    fuse_attr make_attr(const struct statx& st) const;
    /// Switches to the caller's credentials, translated to host ids (EPERM when a
    /// forbid-guest rule covers the caller's uid or gid).
    Result<ScopedCredentials> caller_credentials(const RequestCtx& c) const;
    Result<fuse_entry_out> lookup_child(const InodeData& parent, int parent_fd,
                                        std::string_view name);
    Result<fuse_attr_out> attr_of(int fd) const;
    /// A directory whose entries an operation changes, and an fd for it.
    struct ParentDir {
        std::shared_ptr<InodeData> inode;
        InodeFd fd;
    };
    /// The parent of a new or removed entry \p name (mknod, mkdir, create, unlink, rmdir):
    /// EROFS on a read-only share, then \p name checked as one component and copied to
    /// \p cname (EINVAL, ENAMETOOLONG), then the parent inode (EBADF) and its fd.
    Result<ParentDir> writable_parent(uint64_t parent, std::string_view name,
                                      char (&cname)[NAME_MAX + 1]);
    int adjust_open_flags(uint32_t flags) const;
    Result<std::shared_ptr<HandleData>> open_handle(uint64_t fh, uint64_t nodeid) const {
        return handles_.get(fh, nodeid);
    }
    /// Registers a file CREATE or TMPFILE opened (\p fd) as a new handle and returns the
    /// entry. \p path: an O_PATH fd of the same file if the caller has one, else one is
    /// made by reopening \p fd.
    Result<CreateOut> finish_create(const InodeData& parent, int parent_fd, UniqueFd fd,
                                    UniqueFd path, int flags, FdSlot slot);
    /// CREATE's open, with the caller's credentials: O_CREAT|O_EXCL first; on EEXIST
    /// (guest without O_EXCL) the existing name is opened O_PATH|O_NOFOLLOW, must be a
    /// regular file (EISDIR, ELOOP, EBADF otherwise) and is reopened. \p path receives
    /// that O_PATH fd (existing files only).
    /// With \p label, a new file is made labelled (make_labelled_file()).
    Result<UniqueFd> create_open(int parent_fd, const char* name, int flags, bool excl,
                                 mode_t mode, UniqueFd& path, const Label* label = nullptr);
    /// A new regular file \p name that never exists without \p label: an O_TMPFILE in
    /// the parent, labelled, then linked in (EEXIST when the name exists). Caller's
    /// credentials and umask held. A read-only CREATE gets an O_RDWR fd (O_TMPFILE needs
    /// write access); its handle still records the guest's flags and refuses writes.
    Result<UniqueFd> make_labelled_file(int parent_fd, const char* name, int flags, mode_t mode,
                                        const Label& label);
    /// A new directory, node or symlink \p name that never exists without \p label: \p make
    /// (Status(const char* name)) creates it under a unique temporary name in the same
    /// parent, which is labelled and renamed to \p name with RENAME_NOREPLACE; any failure
    /// removes the temporary entry. Caller's credentials and umask held.
    /// The host xattr name a new inode's security label (the guest's FUSE_SECURITY_CTX name,
    /// e.g. "security.selinux") is stored under: the one place that decides it. Only
    /// "security." names other than security.capability (EPERM), as a guest kernel sends.
    Status label_host_name(std::string_view guest_name, char (&out)[XATTR_NAME_MAX + 1]) const;
    /// \p c's label when the guest sent one and security_label is on; false otherwise.
    Result<bool> label_of(const RequestCtx& c, Label* out) const;
    template <typename Make>
    Status make_labelled(int parent_fd, const char* name, bool is_dir, const Label& label,
                         Make&& make);
    /// What a create-type operation (mknod, mkdir, symlink, create, tmpfile) runs under
    /// while it makes the new inode: the guest's label for it, the umask the host kernel
    /// applies and the caller's credentials. Ends before the new entry is looked up (with
    /// the daemon's own credentials).
    struct CreateScope {
        Label label;
        bool labelled;
        mode_t perm_mask; ///< the guest's mode bits that reach the host
        std::optional<ScopedUmask> umask; ///< none for symlink (its mode is fixed)
        ScopedCredentials creds;
        /// The permission bits of the guest's \p mode to create with: the guest's umask
        /// applied here, unless posix_acl leaves it to the host kernel (a default ACL of
        /// the parent then wins).
        mode_t perm(uint32_t mode) const noexcept { return mode & perm_mask; }
    };
    /// Enters \p c's CreateScope: its label (label_of()), then the umask (\p umask: the
    /// guest's; null for symlink: the thread is only prepared, failures ignored), then the
    /// caller's credentials; the first failure is returned.
    Result<CreateScope> enter_create(const RequestCtx& c, const uint32_t* umask);
    /// Makes the new entry \p name with \p make (Status(const char* name)), labelled
    /// through make_labelled() when \p scope has a label.
    template <typename Make>
    Status make_new(const CreateScope& scope, int parent_fd, const char* name, bool is_dir,
                    Make&& make);
    /// The umask a create runs under and the mode bits it passes (posix_acl: the guest's
    /// umask for the host kernel to apply unless a default ACL applies; else masked here).
    bool acl_active() const noexcept { return acl_.load(std::memory_order_relaxed); }
    /// Stores an open file of \p inode (records whether it lies on the share root's own
    /// filesystem) and returns its fh.
    Result<uint64_t> add_handle(const InodeData& inode, int flags, UniqueFd fd, FdSlot slot,
                                std::unique_ptr<DirStream> dir = nullptr);

    PassthroughOptions options_;
    std::unique_ptr<Sys> sys_;
    GuestFdBudget budget_;
    GuestFdBudget inode_budget_; // handle-held inodes (inode_limit)
    /// Per-queue sections for the lock-free lookups of store_ and handles_; declared
    /// before them so it outlives them (it drops what they retire, budgets still alive).
    QueueEpochs epochs_;
    InodeStore store_;
    HandleTable handles_;
    FileLocks locks_; // opens lock fds through store_, charged to budget_
    std::atomic<bool> writeback_{false}; // set by init(); read by open/create
    std::atomic<bool> submounts_{false}; // set by init(); read by lookups
    std::atomic<bool> acl_{false};       // FUSE_POSIX_ACL negotiated (init())
    std::atomic<bool> label_{false};     // FUSE_SECURITY_CTX negotiated (init())
};

} // namespace vdh::virtiofs::passthrough

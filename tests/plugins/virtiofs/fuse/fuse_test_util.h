// SPDX-License-Identifier: MIT
// Test helpers for the FUSE layer: a Filesystem fake that records every call and returns
// programmed results, an IoEngine fake that records submissions for the test to complete
// later, and builders for request bytes and descriptor chains (iovec lists split any way).
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "filesystem.h"
#include "fuse/fuse_dispatcher.h"
#include "fuse/io_engine.h"
#include "vdh/plugin_abi.h"

namespace vdh::virtiofs::test {

using Bytes = std::vector<uint8_t>;

template <typename T>
Bytes bytes_of(const T& v) {
    Bytes b(sizeof(T));
    std::memcpy(b.data(), &v, sizeof(T));
    return b;
}

inline Bytes cat(std::initializer_list<Bytes> parts) {
    Bytes out;
    for (const Bytes& p : parts) {
        out.insert(out.end(), p.begin(), p.end());
    }
    return out;
}

inline Bytes str_bytes(std::string_view s) {
    return Bytes(s.begin(), s.end());
}

/// A whole reply: fuse_out_header{16 + payload, error, unique} + payload.
inline Bytes reply(uint64_t unique, int32_t error, const Bytes& payload = {}) {
    fuse_out_header h{};
    h.len = static_cast<uint32_t>(sizeof(h) + payload.size());
    h.error = error;
    h.unique = unique;
    return cat({bytes_of(h), payload});
}

inline constexpr uint64_t kUnique = 0x1122334455667788ULL;
inline constexpr uint64_t kNode = 5;
inline constexpr uint32_t kUid = 1000;
inline constexpr uint32_t kGid = 1001;
inline constexpr uint32_t kPid = 4242;

/// FUSE_INIT arguments as a guest of \p major.\p minor offering \p flags sends them.
inline fuse_init_in init_in(uint32_t major, uint32_t minor, uint32_t flags, uint32_t flags2 = 0,
                            uint32_t readahead = 131072) {
    fuse_init_in in{};
    in.major = major;
    in.minor = minor;
    in.max_readahead = readahead;
    in.flags = flags;
    in.flags2 = flags2;
    return in;
}

/// READ (and READDIR) arguments.
inline fuse_read_in read_in(uint64_t fh, uint64_t offset, uint32_t size) {
    fuse_read_in in{};
    in.fh = fh;
    in.offset = offset;
    in.size = size;
    return in;
}

/// Builds request bytes: fuse_in_header (len filled in) + arguments.
class Msg {
public:
    explicit Msg(uint32_t opcode, uint64_t nodeid = kNode, uint64_t unique = kUnique) {
        h_.opcode = opcode;
        h_.nodeid = nodeid;
        h_.unique = unique;
        h_.uid = kUid;
        h_.gid = kGid;
        h_.pid = kPid;
    }
    template <typename T>
    Msg& add(const T& v) {
        return raw(&v, sizeof(T));
    }
    /// First \p n bytes of \p v (truncated arguments).
    template <typename T>
    Msg& add_prefix(const T& v, size_t n) {
        return raw(&v, n);
    }
    /// \p s and its NUL.
    Msg& name(std::string_view s) {
        raw(s.data(), s.size());
        args_.push_back(0);
        return *this;
    }
    Msg& raw(const void* p, size_t n) {
        const auto* b = static_cast<const uint8_t*>(p);
        args_.insert(args_.end(), b, b + n);
        return *this;
    }
    Msg& raw(std::string_view s) { return raw(s.data(), s.size()); }
    Msg& extlen(uint16_t units) {
        h_.total_extlen = units;
        return *this;
    }
    /// Overrides fuse_in_header.len (framing errors).
    Msg& len(uint32_t len) {
        len_ = len;
        return *this;
    }
    Bytes build() const {
        fuse_in_header h = h_;
        h.len = len_ != 0 ? len_ : static_cast<uint32_t>(sizeof(h) + args_.size());
        return cat({bytes_of(h), args_});
    }

private:
    fuse_in_header h_{};
    Bytes args_;
    uint32_t len_ = 0;
};

inline constexpr uint8_t kFill = 0xEE;

/// A descriptor chain: the request bytes cut into readable buffers, and writable buffers of
/// the given sizes (filled with kFill so writes past the reply show).
class Chain {
public:
    /// \p in_cuts: sizes of the first readable buffers; the rest goes into one last buffer.
    Chain(const Bytes& in, std::vector<size_t> out_sizes, std::vector<size_t> in_cuts = {},
          uint16_t queue = 1) {
        size_t pos = 0;
        for (size_t cut : in_cuts) {
            size_t n = std::min(cut, in.size() - pos);
            in_bufs_.emplace_back(in.begin() + static_cast<long>(pos),
                                  in.begin() + static_cast<long>(pos + n));
            pos += n;
        }
        if (pos < in.size() || in_bufs_.empty()) {
            in_bufs_.emplace_back(in.begin() + static_cast<long>(pos), in.end());
        }
        for (size_t n : out_sizes) {
            out_bufs_.emplace_back(n, kFill);
        }
        for (Bytes& b : in_bufs_) {
            in_iov_.push_back({b.data(), b.size()});
            req_.in_bytes += b.size();
        }
        for (Bytes& b : out_bufs_) {
            out_iov_.push_back({b.data(), b.size()});
            req_.out_bytes += b.size();
        }
        req_.in = in_iov_.data();
        req_.n_in = static_cast<uint32_t>(in_iov_.size());
        req_.out = out_iov_.data();
        req_.n_out = static_cast<uint32_t>(out_iov_.size());
        req_.queue = queue;
        req_.token = this;
    }
    Chain(const Chain&) = delete;
    Chain& operator=(const Chain&) = delete;

    const vdh_request& req() const { return req_; }
    vdh_request& mutable_req() { return req_; }
    /// The first \p n bytes written to the out buffers, concatenated.
    Bytes out(size_t n) const {
        Bytes all = all_out();
        all.resize(std::min(n, all.size()));
        return all;
    }
    /// Whether every out byte from \p n on still holds kFill.
    bool untouched_from(size_t n) const {
        Bytes all = all_out();
        for (size_t i = n; i < all.size(); ++i) {
            if (all[i] != kFill) {
                return false;
            }
        }
        return true;
    }
    Bytes all_out() const {
        Bytes all;
        for (const Bytes& b : out_bufs_) {
            all.insert(all.end(), b.begin(), b.end());
        }
        return all;
    }
    const std::vector<Bytes>& in_bufs() const { return in_bufs_; }
    const std::vector<Bytes>& out_bufs() const { return out_bufs_; }

private:
    std::vector<Bytes> in_bufs_;
    std::vector<Bytes> out_bufs_;
    std::vector<struct iovec> in_iov_;
    std::vector<struct iovec> out_iov_;
    vdh_request req_{};
};

/// One recorded Filesystem call.
struct Rec {
    std::string op;
    RequestCtx rc{};
    uint64_t nodeid = 0;
    std::vector<uint64_t> u;    ///< numeric arguments in signature order
    std::vector<std::string> s; ///< string arguments in signature order
    /// rc's security context, copied (rc's pointers are cleared: they point into the
    /// dispatcher's scratch).
    std::string secctx_name;
    std::string secctx_value;
};

struct FakeDirent {
    std::string name;
    uint64_t ino;
    uint32_t type;
    fuse_entry_out entry;
};

/// Records calls; returns `fail` (if non-zero) or the programmed result.
class FakeFs : public Filesystem {
public:
    // Programmed results
    FsCapabilities caps;
    int fail = 0;
    fuse_entry_out entry{};
    fuse_attr_out attr{};
    fuse_open_out open_out{};
    fuse_statfs_out statfs_out{};
    fuse_lk_out lk_out{};
    uint64_t lseek_result = 0;
    size_t copy_result = 0;
    std::string link_target;
    std::string xattr_value;
    std::string xattr_list;
    std::vector<FakeDirent> dir;
    std::string file_data; ///< what read() returns, from offset 0
    std::string written;   ///< what write() received
    int io_fd_error = 0;   ///< io_fd() error (0: returns io_fd_value)
    int io_fd_value = 77;
    /// What io_fd() hands out as IoFile::keep (a test can watch its use_count).
    std::shared_ptr<const void> io_keep = std::make_shared<int>(0);
    int prepare_error = 0; ///< io_fd(for_write) reports it as IoFile::prepare_error
    int setlk_error = 0;
    bool interrupt_found = true;

    // Recorded
    std::vector<Rec> calls;
    uint32_t init_minor = 0;
    uint64_t init_want = 0;
    int init_count = 0;
    int destroy_count = 0;

    const Rec& last() const { return calls.back(); }
    size_t count(std::string_view op) const {
        size_t n = 0;
        for (const Rec& r : calls) {
            n += r.op == op ? 1 : 0;
        }
        return n;
    }

    FsCapabilities capabilities() const override { return caps; }
    void init(uint32_t minor, uint64_t want) override {
        init_minor = minor;
        init_want = want;
        ++init_count;
        destroys_before_last_init = destroy_count;
    }
    int destroys_before_last_init = 0; ///< destroy_count when init() last ran
    void destroy() override { ++destroy_count; }

    Result<fuse_entry_out> lookup(const RequestCtx& c, uint64_t parent,
                                  std::string_view name) override {
        rec("lookup", c, parent, {}, {name});
        return ret(entry);
    }
    void forget(uint64_t nodeid, uint64_t nlookup) override {
        rec("forget", {}, nodeid, {nlookup}, {});
    }
    Result<fuse_attr_out> getattr(const RequestCtx& c, uint64_t nodeid,
                                  const uint64_t* fh) override {
        rec("getattr", c, nodeid, {fh != nullptr ? 1u : 0u, fh != nullptr ? *fh : 0}, {});
        return ret(attr);
    }
    Result<fuse_attr_out> setattr(const RequestCtx& c, uint64_t nodeid,
                                  const fuse_setattr_in& in) override {
        rec("setattr", c, nodeid, {in.valid, in.fh, in.size, in.mode, in.uid, in.gid}, {});
        return ret(attr);
    }
    Result<size_t> readlink(const RequestCtx& c, uint64_t nodeid, char* buf, size_t size) override {
        rec("readlink", c, nodeid, {size}, {});
        if (fail != 0) {
            return make_err(fail);
        }
        size_t n = std::min(size, link_target.size());
        std::memcpy(buf, link_target.data(), n);
        return n;
    }
    Result<fuse_entry_out> symlink(const RequestCtx& c, uint64_t parent, std::string_view name,
                                   std::string_view target) override {
        rec("symlink", c, parent, {}, {name, target});
        return ret(entry);
    }
    Result<fuse_entry_out> mknod(const RequestCtx& c, uint64_t parent, std::string_view name,
                                 uint32_t mode, uint32_t rdev, uint32_t umask) override {
        rec("mknod", c, parent, {mode, rdev, umask}, {name});
        return ret(entry);
    }
    Result<fuse_entry_out> mkdir(const RequestCtx& c, uint64_t parent, std::string_view name,
                                 uint32_t mode, uint32_t umask) override {
        rec("mkdir", c, parent, {mode, umask}, {name});
        return ret(entry);
    }
    Status unlink(const RequestCtx& c, uint64_t parent, std::string_view name) override {
        rec("unlink", c, parent, {}, {name});
        return st();
    }
    Status rmdir(const RequestCtx& c, uint64_t parent, std::string_view name) override {
        rec("rmdir", c, parent, {}, {name});
        return st();
    }
    Status rename(const RequestCtx& c, uint64_t parent, std::string_view name, uint64_t newparent,
                  std::string_view newname, uint32_t flags) override {
        rec("rename", c, parent, {newparent, flags}, {name, newname});
        return st();
    }
    Result<fuse_entry_out> link(const RequestCtx& c, uint64_t nodeid, uint64_t newparent,
                                std::string_view newname) override {
        rec("link", c, nodeid, {newparent}, {newname});
        return ret(entry);
    }
    Result<fuse_open_out> open(const RequestCtx& c, uint64_t nodeid, uint32_t flags) override {
        rec("open", c, nodeid, {flags}, {});
        return ret(open_out);
    }
    Result<CreateOut> create(const RequestCtx& c, uint64_t parent, std::string_view name,
                             uint32_t flags, uint32_t mode, uint32_t umask) override {
        rec("create", c, parent, {flags, mode, umask}, {name});
        return ret(CreateOut{entry, open_out});
    }
    Result<CreateOut> tmpfile(const RequestCtx& c, uint64_t parent, uint32_t flags, uint32_t mode,
                              uint32_t umask) override {
        rec("tmpfile", c, parent, {flags, mode, umask}, {});
        return ret(CreateOut{entry, open_out});
    }
    Result<size_t> read(const RequestCtx& c, uint64_t nodeid, uint64_t fh, uint64_t offset,
                        const struct iovec* dst, int ndst) override {
        size_t total = 0;
        for (int i = 0; i < ndst; ++i) {
            total += dst[i].iov_len;
        }
        rec("read", c, nodeid, {fh, offset, total, static_cast<uint64_t>(ndst)}, {});
        if (fail != 0) {
            return make_err(fail);
        }
        size_t pos = offset;
        size_t n = 0;
        for (int i = 0; i < ndst && pos < file_data.size(); ++i) {
            size_t k = std::min(dst[i].iov_len, file_data.size() - pos);
            std::memcpy(dst[i].iov_base, file_data.data() + pos, k);
            pos += k;
            n += k;
        }
        return n;
    }
    Result<size_t> write(const RequestCtx& c, uint64_t nodeid, uint64_t fh, uint64_t offset,
                         const struct iovec* src, int nsrc, uint32_t write_flags) override {
        std::string data;
        for (int i = 0; i < nsrc; ++i) {
            data.append(static_cast<const char*>(src[i].iov_base), src[i].iov_len);
        }
        rec("write", c, nodeid, {fh, offset, data.size(), write_flags, static_cast<uint64_t>(nsrc)},
            {data});
        if (fail != 0) {
            return make_err(fail);
        }
        written = data;
        return data.size();
    }
    Result<IoFile> io_fd(const RequestCtx& c, uint64_t nodeid, uint64_t fh, bool for_write,
                         uint32_t write_flags) override {
        rec("io_fd", c, nodeid, {fh, for_write ? 1u : 0u, write_flags}, {});
        if (io_fd_error != 0) {
            return make_err(io_fd_error);
        }
        if (for_write && prepare_error != 0) {
            return IoFile{-1, nullptr, prepare_error};
        }
        return IoFile{io_fd_value, io_keep};
    }
    Status flush(const RequestCtx& c, uint64_t nodeid, uint64_t fh, uint64_t lock_owner) override {
        rec("flush", c, nodeid, {fh, lock_owner}, {});
        return st();
    }
    Status release(const RequestCtx& c, uint64_t nodeid, uint64_t fh, uint32_t flags,
                   uint32_t release_flags, uint64_t lock_owner) override {
        rec("release", c, nodeid, {fh, flags, release_flags, lock_owner}, {});
        return st();
    }
    Status fsync(const RequestCtx& c, uint64_t nodeid, uint64_t fh, bool datasync) override {
        rec("fsync", c, nodeid, {fh, datasync ? 1u : 0u}, {});
        return st();
    }
    Result<fuse_open_out> opendir(const RequestCtx& c, uint64_t nodeid, uint32_t flags) override {
        rec("opendir", c, nodeid, {flags}, {});
        return ret(open_out);
    }
    Status readdir(const RequestCtx& c, uint64_t nodeid, uint64_t fh, uint64_t offset,
                   DirentSink& sink) override {
        rec("readdir", c, nodeid, {fh, offset, sink.plus() ? 1u : 0u}, {});
        if (fail != 0) {
            return make_err(fail);
        }
        added = 0;
        for (size_t i = offset; i < dir.size(); ++i) {
            const FakeDirent& d = dir[i];
            if (!sink.add(d.name, d.ino, d.type, i + 1, sink.plus() ? &d.entry : nullptr)) {
                break;
            }
            ++added;
        }
        return ok();
    }
    size_t added = 0; ///< entries the last readdir() added
    Status releasedir(const RequestCtx& c, uint64_t nodeid, uint64_t fh) override {
        rec("releasedir", c, nodeid, {fh}, {});
        return st();
    }
    Status fsyncdir(const RequestCtx& c, uint64_t nodeid, uint64_t fh, bool datasync) override {
        rec("fsyncdir", c, nodeid, {fh, datasync ? 1u : 0u}, {});
        return st();
    }
    Result<fuse_statfs_out> statfs(const RequestCtx& c, uint64_t nodeid) override {
        rec("statfs", c, nodeid, {}, {});
        return ret(statfs_out);
    }
    Status access(const RequestCtx& c, uint64_t nodeid, uint32_t mask) override {
        rec("access", c, nodeid, {mask}, {});
        return st();
    }
    Status setxattr(const RequestCtx& c, uint64_t nodeid, std::string_view name, const void* value,
                    size_t size, uint32_t flags, uint32_t setxattr_flags) override {
        rec("setxattr", c, nodeid, {size, flags, setxattr_flags},
            {name, std::string(static_cast<const char*>(value), size)});
        return st();
    }
    Result<size_t> getxattr(const RequestCtx& c, uint64_t nodeid, std::string_view name, void* buf,
                            size_t size) override {
        rec("getxattr", c, nodeid, {size}, {name});
        return fill(xattr_value, buf, size);
    }
    Result<size_t> listxattr(const RequestCtx& c, uint64_t nodeid, char* buf,
                             size_t size) override {
        rec("listxattr", c, nodeid, {size}, {});
        return fill(xattr_list, buf, size);
    }
    Status removexattr(const RequestCtx& c, uint64_t nodeid, std::string_view name) override {
        rec("removexattr", c, nodeid, {}, {name});
        return st();
    }
    Result<fuse_lk_out> getlk(const RequestCtx& c, uint64_t nodeid, const fuse_lk_in& in) override {
        rec("getlk", c, nodeid, {in.fh, in.owner, in.lk.start, in.lk.end, in.lk.type, in.lk_flags},
            {});
        return ret(lk_out);
    }
    Status setlk(const RequestCtx& c, uint64_t nodeid, const fuse_lk_in& in, bool sleep) override {
        rec("setlk", c, nodeid,
            {in.fh, in.owner, in.lk.start, in.lk.end, in.lk.type, in.lk_flags, sleep ? 1u : 0u},
            {});
        if (setlk_error != 0) {
            return make_err(setlk_error);
        }
        return st();
    }
    bool interrupt_lock(uint64_t unique) override {
        rec("interrupt_lock", {}, 0, {unique}, {});
        return interrupt_found;
    }
    Status fallocate(const RequestCtx& c, uint64_t nodeid, uint64_t fh, uint64_t offset,
                     uint64_t length, uint32_t mode) override {
        rec("fallocate", c, nodeid, {fh, offset, length, mode}, {});
        return st();
    }
    Result<uint64_t> lseek(const RequestCtx& c, uint64_t nodeid, uint64_t fh, uint64_t offset,
                           uint32_t whence) override {
        rec("lseek", c, nodeid, {fh, offset, whence}, {});
        return ret(lseek_result);
    }
    Result<size_t> copy_file_range(const RequestCtx& c, const fuse_copy_file_range_in& in,
                                   uint64_t nodeid_in) override {
        rec("copy_file_range", c, nodeid_in,
            {in.fh_in, in.off_in, in.nodeid_out, in.fh_out, in.off_out, in.len, in.flags}, {});
        return ret(copy_result);
    }
    Status syncfs(const RequestCtx& c, uint64_t nodeid) override {
        rec("syncfs", c, nodeid, {}, {});
        return st();
    }

private:
    void rec(std::string op, const RequestCtx& c, uint64_t nodeid, std::vector<uint64_t> u,
             std::vector<std::string_view> s) {
        Rec r;
        r.op = std::move(op);
        r.rc = c;
        if (c.has_secctx) {
            r.secctx_name = std::string(c.secctx_name);
            r.secctx_value.assign(static_cast<const char*>(c.secctx_value), c.secctx_size);
        }
        r.rc.secctx_name = {};
        r.rc.secctx_value = nullptr;
        r.nodeid = nodeid;
        r.u = std::move(u);
        for (std::string_view v : s) {
            r.s.emplace_back(v);
        }
        calls.push_back(std::move(r));
    }
    template <typename T>
    Result<T> ret(const T& v) const {
        if (fail != 0) {
            return make_err(fail);
        }
        return v;
    }
    Status st() const { return fail != 0 ? Status(make_err(fail)) : ok(); }
    Result<size_t> fill(const std::string& value, void* buf, size_t size) const {
        if (fail != 0) {
            return make_err(fail);
        }
        if (size == 0) {
            return value.size();
        }
        if (value.size() > size) {
            return make_err(ERANGE);
        }
        std::memcpy(buf, value.data(), value.size());
        return value.size();
    }
};

/// One submission the engine took.
struct Submission {
    std::string op;
    int fd = -1;
    std::vector<struct iovec> iov;
    uint64_t off = 0;
    uint64_t len = 0;
    int mode = 0;
    bool datasync = false;
    void (*fn)(void*) = nullptr;
    void* ctx = nullptr;
};

/// Takes everything (unless `accept` is false) and lets the test complete it.
class FakeEngine : public IoEngine {
public:
    bool accept = true;
    std::vector<Submission> subs;

    bool readv(int fd, const struct iovec* iov, int n, uint64_t off, void* ctx) override {
        return take({"readv", fd, {iov, iov + n}, off, 0, 0, false, nullptr, ctx});
    }
    bool writev(int fd, const struct iovec* iov, int n, uint64_t off, void* ctx) override {
        return take({"writev", fd, {iov, iov + n}, off, 0, 0, false, nullptr, ctx});
    }
    bool fsync(int fd, bool datasync, void* ctx) override {
        return take({"fsync", fd, {}, 0, 0, 0, datasync, nullptr, ctx});
    }
    bool fallocate(int fd, int mode, uint64_t off, uint64_t len, void* ctx) override {
        return take({"fallocate", fd, {}, off, len, mode, false, nullptr, ctx});
    }
    bool run_blocking(void (*fn)(void* ctx), void* ctx) override {
        return take({"run_blocking", -1, {}, 0, 0, 0, false, fn, ctx});
    }

private:
    bool take(Submission s) {
        if (!accept) {
            return false;
        }
        subs.push_back(std::move(s));
        return true;
    }
};

/// Where the dispatcher's done() callback reports (token = the Chain).
struct Completions {
    struct Done {
        void* token;
        int64_t written;
    };
    static std::vector<Done>& list() {
        static std::vector<Done> l;
        return l;
    }
    static void done(void* token, int64_t written) { list().push_back({token, written}); }
};

} // namespace vdh::virtiofs::test

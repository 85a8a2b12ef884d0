// SPDX-License-Identifier: MIT
// libFuzzer target for the FUSE dispatcher (plugins/virtiofs/fuse/fuse_dispatcher.cc) with
// the passthrough backend on a scratch directory, fed SEQUENCES of requests as a hostile
// guest would send them: the input is a session header (share options, the INIT the
// harness sends first) and a series of request records. A record names its node id and
// file handle by index into the ids earlier replies returned (LOOKUP/MKNOD/MKDIR/SYMLINK/
// LINK/CREATE/TMPFILE entries, READDIRPLUS entries, OPEN/OPENDIR/CREATE handles), so later
// requests reach deep states; a record may also be sent raw (header and all, unpatched).
// Everything runs synchronously on this thread (no IoEngine).
//
// Containment: the process enters its own mount namespace (a user namespace too when not
// root) and mounts a tmpfs (nodev,nosuid,noexec, with a size and inode cap) holding the
// share and, outside it, a canary file; the share is emptied and filled again (file,
// dir/inner, link) after every input. The guest can therefore neither open a host device
// nor fill a disk, and everything vanishes with the process. An escape is detected: any
// reply that names the inode of the tmpfs root or of the canary traps, as does any change
// to the tmpfs root or the canary after the session. Each input also checks reply framing
// and that the session gives back every fd it took. VDH_FUZZ_TMPDIR: where the mount point
// is made (default /tmp); VDH_FUZZ_TRACE=1 prints each request and its result.
// Input layout: tests/fuzz/make_seeds.py (fuse seeds).
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "fuse/fuse_dispatcher.h"
#include "fuse/fuse_wire.h"
#include "fuzz_check.h"
#include "fuzz_reader.h"
#include "passthrough_fs.h"
#include "vdh/unique_fd.h"

namespace {

using vdh::fuzz::FuzzReader;
using vdh::virtiofs::FuseDispatcher;
using vdh::virtiofs::FuseDispatcherConfig;
using vdh::virtiofs::FuseRequestCtx;
using vdh::virtiofs::passthrough::FileHandleMode;
using vdh::virtiofs::passthrough::PassthroughFs;
using vdh::virtiofs::passthrough::PassthroughOptions;

/// Scratch tmpfs: small enough that no input fills anything, nodev so no device opens.
constexpr char kTmpfsOptions[] = "size=8m,nr_inodes=2048,mode=0755";
constexpr unsigned long kTmpfsFlags = MS_NODEV | MS_NOSUID | MS_NOEXEC;
constexpr size_t kTableSize = 64;
constexpr size_t kDefaultOut = 128 * 1024 + 16;
constexpr size_t kBigOut = 1024 * 1024 + 16;
constexpr uint32_t kGuestUid = 1000;
/// Longer than any request takes that does not wait, with room for a loaded machine. A
/// request that waits longer is cut short by libFuzzer's timer signal and shows as EINTR.
constexpr std::chrono::seconds kMaxRequestTime{5};

// Record control bits.
constexpr uint8_t kCtlUser = 1 << 0; ///< caller uid/gid 1000 instead of 0
constexpr uint8_t kCtlSplitIn = 1 << 1;
constexpr uint8_t kCtlOutSize = 1 << 2; ///< a u16 out-buffer size follows
constexpr uint8_t kCtlHiprio = 1 << 3;  ///< queue 0
constexpr uint8_t kCtlRaw = 1 << 4;     ///< payload is the whole message, sent as is
constexpr uint8_t kCtlSplitOut = 1 << 5;
constexpr uint8_t kCtlOwnCtx = 1 << 6; ///< pass a FuseRequestCtx (else the queue's own)
constexpr uint8_t kCtlBigOut = 1 << 7;

/// Where the scratch tmpfs is mounted (a directory made once per process).
std::string g_base;
/// VDH_FUZZ_TRACE=1: print each request's opcode and result (for checking seeds).
bool g_trace = false;

bool write_file(const char* path, const std::string& s) {
    vdh::UniqueFd fd(::open(path, O_WRONLY | O_CLOEXEC));
    return fd && ::write(fd.get(), s.data(), s.size()) == static_cast<ssize_t>(s.size());
}

/// Private mount namespace (inside a user namespace when not root): our tmpfs mounts
/// never show outside and die with the process.
void enter_sandbox() {
    if (::unshare(CLONE_NEWNS) != 0) {
        uid_t uid = ::geteuid();
        gid_t gid = ::getegid();
        if (::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) {
            std::fprintf(stderr,
                         "fuse_dispatcher_fuzz: cannot make a mount namespace (%s); "
                         "refusing to fuzz on a real file system\n",
                         std::strerror(errno));
            std::abort();
        }
        write_file("/proc/self/setgroups", "deny");
        write_file("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1");
        write_file("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1");
    }
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
        std::fprintf(stderr, "fuse_dispatcher_fuzz: cannot make mounts private: %s\n",
                     std::strerror(errno));
        std::abort();
    }
    const char* tmp = std::getenv("VDH_FUZZ_TMPDIR");
    std::string tmpl =
        std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/vdh-fuse-fuzz-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
        std::fprintf(stderr, "fuse_dispatcher_fuzz: mkdtemp %s: %s\n", tmpl.c_str(),
                     std::strerror(errno));
        std::abort();
    }
    g_base = tmpl;
    std::atexit([] {
        ::umount2(g_base.c_str(), MNT_DETACH);
        ::rmdir(g_base.c_str());
    });
}

int count_fds() {
    int n = 0;
    DIR* d = ::opendir("/proc/self/fd");
    FUZZ_CHECK(d != nullptr);
    while (struct dirent* e = ::readdir(d)) {
        n += e->d_name[0] != '.';
    }
    ::closedir(d);
    return n;
}

/// The scratch file system, mounted once per process: a tmpfs root (outside the share)
/// holding the canary and the share directory, which is emptied and reset after each input.
class Scratch {
  public:
    Scratch() {
        FUZZ_CHECK(::mount("vdh-fuzz", g_base.c_str(), "tmpfs", kTmpfsFlags, kTmpfsOptions) == 0);
        share_ = g_base + "/share";
        FUZZ_CHECK(::mkdir(share_.c_str(), 0777) == 0);
        canary_ = g_base + "/canary";
        put_file(canary_, "outside the share\n");
        FUZZ_CHECK(::chmod(canary_.c_str(), 0600) == 0);
        reset_share();
        FUZZ_CHECK(::stat(g_base.c_str(), &root_st_) == 0);
        FUZZ_CHECK(::stat(canary_.c_str(), &canary_st_) == 0);
    }
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;

    const std::string& share() const { return share_; }
    /// Inodes the guest must never be told about.
    bool outside(uint64_t ino) const { return ino == root_st_.st_ino || ino == canary_st_.st_ino; }

    /// Nothing outside the share changed: same root entries, canary untouched.
    void check_untouched() const {
        struct stat st;
        FUZZ_CHECK(::stat(g_base.c_str(), &st) == 0);
        FUZZ_CHECK(st.st_mtim.tv_sec == root_st_.st_mtim.tv_sec &&
                   st.st_mtim.tv_nsec == root_st_.st_mtim.tv_nsec);
        FUZZ_CHECK(st.st_nlink == root_st_.st_nlink && st.st_mode == root_st_.st_mode);
        FUZZ_CHECK(::stat(canary_.c_str(), &st) == 0);
        FUZZ_CHECK(st.st_ino == canary_st_.st_ino && st.st_size == canary_st_.st_size);
        FUZZ_CHECK(st.st_nlink == 1 && st.st_mode == canary_st_.st_mode);
        FUZZ_CHECK(st.st_ctim.tv_sec == canary_st_.st_ctim.tv_sec &&
                   st.st_ctim.tv_nsec == canary_st_.st_ctim.tv_nsec);
    }

    /// Empties the share and gives it back its mode, owner and (no) xattrs.
    void reset_share() {
        FUZZ_CHECK(::nftw(share_.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) == 0);
        FUZZ_CHECK(::chown(share_.c_str(), 0, 0) == 0);
        FUZZ_CHECK(::chmod(share_.c_str(), 0777) == 0);
        char names[4096];
        ssize_t n;
        while ((n = ::llistxattr(share_.c_str(), names, sizeof(names))) > 0) {
            FUZZ_CHECK(::lremovexattr(share_.c_str(), names) == 0);
        }
        populate();
    }

  private:
    /// What every session finds in the share: file (4 KiB), dir/, dir/inner, link -> file.
    void populate() {
        std::string data;
        for (int i = 0; i < 256; ++i) {
            data += "0123456789abcdef";
        }
        put_file(share_ + "/file", data);
        FUZZ_CHECK(::mkdir((share_ + "/dir").c_str(), 0755) == 0);
        put_file(share_ + "/dir/inner", "inner\n");
        FUZZ_CHECK(::symlink("file", (share_ + "/link").c_str()) == 0);
    }
    static void put_file(const std::string& path, const std::string& data) {
        vdh::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
        FUZZ_CHECK(fd);
        FUZZ_CHECK(::write(fd.get(), data.data(), data.size()) ==
                   static_cast<ssize_t>(data.size()));
    }

    static int remove_entry(const char* path, const struct stat* /*st*/, int type, struct FTW* f) {
        if (f->level == 0) {
            return 0; // the share itself stays
        }
        int rc = type == FTW_DP ? ::rmdir(path) : ::unlink(path);
        if (rc != 0) {
            std::fprintf(stderr, "fuse_dispatcher_fuzz: cannot remove %s: %s\n", path,
                         std::strerror(errno));
        }
        return rc;
    }

    std::string share_;
    std::string canary_;
    struct stat root_st_ {};
    struct stat canary_st_ {};
};

/// A guest buffer: its own heap block, so ASan sees any access past its end.
struct Buf {
    std::unique_ptr<uint8_t[]> p;
    size_t n = 0;
};

Buf make_buf(size_t n) {
    Buf b;
    b.n = n;
    b.p.reset(new uint8_t[n == 0 ? 1 : n]);
    return b;
}

class Session {
  public:
    Session(FuzzReader& in, const Scratch& scratch) : in_(in), scratch_(scratch) {}

    void run() {
        const uint8_t opt = in_.u8();
        const uint8_t minor = in_.u8();
        const uint32_t flags = in_.u32();
        const uint32_t flags2 = in_.u32();
        const uint8_t max_pages = in_.u8();
        const uint8_t opt2 = in_.u8();

        PassthroughOptions o;
        o.shared_dir = scratch_.share();
        switch (opt & 3) {
        case 1:
            o.inode_file_handles = FileHandleMode::Prefer;
            break;
        case 2:
            o.inode_file_handles = FileHandleMode::Mandatory;
            break;
        default:
            o.inode_file_handles = FileHandleMode::Never;
            break;
        }
        o.xattr = (opt & 4) != 0;
        o.readonly = (opt & 8) != 0;
        o.writeback = (opt & 16) != 0;
        o.fd_limit = (opt & 32) != 0 ? 24 : 1024;
        o.posix_locks = (opt & 64) == 0;
        o.flock = (opt & 128) == 0;
        o.announce_submounts = (opt2 & 1) != 0;
        o.entry_timeout = (opt2 & 2) != 0 ? 0.0 : 1.0;
        o.readdirplus = (opt2 & 4) == 0;
        o.allow_mmap = (opt2 & 8) != 0;
        o.preserve_noatime = (opt2 & 16) != 0;
        auto fs = PassthroughFs::create(o);
        FUZZ_CHECK(fs.has_value());

        FuseDispatcherConfig dc;
        dc.max_pages = max_pages == 0 ? 256 : max_pages;
        dc.num_queues = 2;
        {
            FuseDispatcher d(**fs, dc);
            disp_ = &d;
            send_init(minor == 0 ? 38 : minor, flags, flags2);
            while (!in_.empty()) {
                record();
            }
            // The device stops (as on a frontend disconnect): the session ends.
            d.end_session();
            disp_ = nullptr;
        }
    }

  private:
    void send_init(uint32_t minor, uint32_t flags, uint32_t flags2) {
        fuse_init_in init{};
        init.major = 7;
        init.minor = minor;
        init.max_readahead = 128 * 1024;
        init.flags = flags;
        init.flags2 = flags2;
        uint8_t args[sizeof(init)];
        std::memcpy(args, &init, sizeof(init));
        send(FUSE_INIT, FUSE_ROOT_ID, 0, args, sizeof(args), kDefaultOut);
    }

    uint64_t pick_node(uint8_t v) {
        if (v == 0 || nodes_.empty()) {
            return FUSE_ROOT_ID;
        }
        if (v == 0xFF) {
            return 0;
        }
        return nodes_[(v - 1) % nodes_.size()];
    }

    void record() {
        const uint8_t opcode = in_.u8();
        const uint8_t node = in_.u8();
        const uint8_t ref2 = in_.u8();
        const uint8_t fh = in_.u8();
        const uint8_t ctl = in_.u8();
        const uint16_t len = in_.u16();
        uint64_t nodeid = node == 0xFE ? in_.u64() : pick_node(node);
        size_t out = (ctl & kCtlBigOut) != 0 ? kBigOut : kDefaultOut;
        if ((ctl & kCtlOutSize) != 0) {
            out = in_.u16();
        }
        std::vector<uint8_t> payload(len);
        payload.resize(in_.bytes(payload.data(), len));
        if ((ctl & kCtlRaw) != 0) {
            deliver(payload, out, ctl);
            return;
        }
        patch(opcode, payload, ref2, fh);
        send(opcode, nodeid, ctl, payload.data(), payload.size(), out);
    }

    /// Puts ids from the tables into the argument fields that carry ids.
    void patch(uint32_t opcode, std::vector<uint8_t>& p, uint8_t ref2, uint8_t fh) {
        auto put = [&p](size_t off, uint64_t v) {
            if (p.size() >= off + 8) {
                std::memcpy(p.data() + off, &v, 8);
            }
        };
        const bool have_fh = fh != 0xFF && !fhs_.empty();
        const uint64_t fh_v = have_fh ? fhs_[fh % fhs_.size()] : 0;
        switch (opcode) {
        case FUSE_GETATTR:
        case FUSE_SETATTR:
            if (have_fh) {
                put(8, fh_v);
            }
            break;
        case FUSE_READ:
        case FUSE_WRITE:
        case FUSE_READDIR:
        case FUSE_READDIRPLUS:
        case FUSE_RELEASE:
        case FUSE_RELEASEDIR:
        case FUSE_FLUSH:
        case FUSE_FSYNC:
        case FUSE_FSYNCDIR:
        case FUSE_LSEEK:
        case FUSE_FALLOCATE:
        case FUSE_GETLK:
        case FUSE_SETLK:
        case FUSE_SETLKW:
            if (have_fh) {
                put(0, fh_v);
            }
            break;
        case FUSE_COPY_FILE_RANGE:
            if (have_fh) {
                put(0, fh_v);
                put(24, fhs_[(fh + 1u) % fhs_.size()]);
            }
            put(16, pick_node(ref2));
            break;
        case FUSE_RENAME:
        case FUSE_RENAME2:
        case FUSE_LINK:
            put(0, pick_node(ref2));
            break;
        case FUSE_BATCH_FORGET:
            // Entries after the 8-byte fuse_batch_forget_in name known nodes.
            for (size_t off = 8, k = ref2; off + 16 <= p.size(); off += 16, ++k) {
                put(off, pick_node(static_cast<uint8_t>(k)));
            }
            break;
        case FUSE_INTERRUPT:
            put(0, unique_ > 1 ? unique_ - 1 : 1);
            break;
        default:
            break;
        }
    }

    void send(uint32_t opcode, uint64_t nodeid, uint8_t ctl, const uint8_t* args, size_t nargs,
              size_t out) {
        fuse_in_header h{};
        h.len = static_cast<uint32_t>(sizeof(h) + nargs);
        h.opcode = opcode;
        h.unique = ++unique_;
        h.nodeid = nodeid;
        const bool user = (ctl & kCtlUser) != 0;
        h.uid = user ? kGuestUid : 0;
        h.gid = user ? kGuestUid : 0;
        h.pid = 4242;
        std::vector<uint8_t> msg(sizeof(h) + nargs);
        std::memcpy(msg.data(), &h, sizeof(h));
        if (nargs > 0) {
            std::memcpy(msg.data() + sizeof(h), args, nargs);
        }
        deliver(msg, out, ctl);
    }

    /// Cuts the request and the reply area into guest buffers and runs the dispatcher.
    void deliver(const std::vector<uint8_t>& msg, size_t out_size, uint8_t ctl) {
        std::vector<Buf> in_bufs;
        size_t cuts[3] = {msg.size(), 0, 0};
        if ((ctl & kCtlSplitIn) != 0 && msg.size() > 2) {
            cuts[0] = std::min<size_t>(7, msg.size() / 2);
            cuts[1] = (msg.size() - cuts[0]) / 2;
            cuts[2] = msg.size() - cuts[0] - cuts[1];
        }
        size_t pos = 0;
        std::vector<struct iovec> in_iov;
        for (size_t c : cuts) {
            if (c == 0 && !in_iov.empty()) {
                continue;
            }
            Buf b = make_buf(c);
            if (c > 0) {
                std::memcpy(b.p.get(), msg.data() + pos, c);
            }
            pos += c;
            in_iov.push_back({b.p.get(), c});
            in_bufs.push_back(std::move(b));
        }
        std::vector<Buf> out_bufs;
        std::vector<struct iovec> out_iov;
        size_t out_cuts[3] = {out_size, 0, 0};
        if ((ctl & kCtlSplitOut) != 0 && out_size > 40) {
            out_cuts[0] = 13;
            out_cuts[1] = std::min<size_t>(4096, out_size - 13);
            out_cuts[2] = out_size - out_cuts[0] - out_cuts[1];
        }
        for (size_t c : out_cuts) {
            if (c == 0) {
                continue;
            }
            Buf b = make_buf(c);
            std::memset(b.p.get(), 0xEE, c);
            out_iov.push_back({b.p.get(), c});
            out_bufs.push_back(std::move(b));
        }
        vdh_request req{};
        req.in = in_iov.data();
        req.n_in = static_cast<uint32_t>(in_iov.size());
        req.in_bytes = msg.size();
        req.out = out_iov.empty() ? nullptr : out_iov.data();
        req.n_out = static_cast<uint32_t>(out_iov.size());
        req.out_bytes = out_size;
        req.queue = (ctl & kCtlHiprio) != 0 ? 0 : 1;
        req.token = this;

        FuseRequestCtx* ctx = (ctl & kCtlOwnCtx) != 0 ? &own_ctx_ : nullptr;
        const auto started = std::chrono::steady_clock::now();
        const int64_t n = disp_->handle(req, ctx);
        const auto took = std::chrono::steady_clock::now() - started;
        FUZZ_CHECK(n != VDH_ASYNC); // no engine: everything is synchronous
        // Nothing a guest sends may block the poll lcore: a request that waits (on a FIFO,
        // a lock, ...) shows as a long call, or as EINTR when libFuzzer's timer signal
        // (every -timeout/2+1 s) cut the wait short.
        FUZZ_CHECK(took < kMaxRequestTime);

        fuse_in_header h{};
        const bool have_header = msg.size() >= sizeof(h);
        if (have_header) {
            std::memcpy(&h, msg.data(), sizeof(h));
        }
        if (g_trace) {
            int32_t error = 0;
            if (n >= 16) {
                size_t got = 0;
                uint8_t head[16];
                for (const Buf& b : out_bufs) {
                    size_t k = std::min(b.n, sizeof(head) - got);
                    std::memcpy(head + got, b.p.get(), k);
                    got += k;
                }
                std::memcpy(&error, head + 4, 4);
            }
            std::fprintf(stderr, "trace: op %u node %llu -> %lld error %d\n", h.opcode,
                         static_cast<unsigned long long>(h.nodeid), static_cast<long long>(n),
                         error);
        }
        if (n <= 0) {
            return;
        }
        FUZZ_CHECK(have_header);
        FUZZ_CHECK(static_cast<size_t>(n) <= out_size && n >= 16);
        std::vector<uint8_t> reply(static_cast<size_t>(n));
        size_t got = 0;
        for (const Buf& b : out_bufs) {
            size_t k = std::min(b.n, reply.size() - got);
            std::memcpy(reply.data() + got, b.p.get(), k);
            got += k;
        }
        fuse_out_header oh;
        std::memcpy(&oh, reply.data(), sizeof(oh));
        FUZZ_CHECK(oh.len == n);
        FUZZ_CHECK(oh.unique == h.unique);
        FUZZ_CHECK(oh.error <= 0 && oh.error >= -4095);
        FUZZ_CHECK(oh.error == 0 || n == 16);
        FUZZ_CHECK(vdh::virtiofs::fuse_opcode_has_reply(h.opcode));
        // SETLKW answers EINTR on a conflict instead of waiting (see FuseDispatcher).
        FUZZ_CHECK(oh.error != -EINTR || h.opcode == FUSE_SETLKW);
        if (oh.error == 0) {
            learn(h, msg, reply);
        }
    }

    void add_node(uint64_t id) {
        if (id == 0) {
            return;
        }
        if (nodes_.size() < kTableSize) {
            nodes_.push_back(id);
        } else {
            nodes_[next_node_++ % kTableSize] = id;
        }
    }
    void add_fh(uint64_t fh) {
        if (fhs_.size() < kTableSize) {
            fhs_.push_back(fh);
        } else {
            fhs_[next_fh_++ % kTableSize] = fh;
        }
    }
    void check_attr(const fuse_attr& a) { FUZZ_CHECK(!scratch_.outside(a.ino)); }

    /// Takes the ids a successful reply hands out and checks it names nothing outside.
    void learn(const fuse_in_header& h, const std::vector<uint8_t>& msg,
               const std::vector<uint8_t>& reply) {
        const uint8_t* body = reply.data() + sizeof(fuse_out_header);
        const size_t nbody = reply.size() - sizeof(fuse_out_header);
        switch (h.opcode) {
        case FUSE_LOOKUP:
        case FUSE_MKNOD:
        case FUSE_MKDIR:
        case FUSE_SYMLINK:
        case FUSE_LINK:
        case FUSE_CREATE:
        case FUSE_TMPFILE: {
            FUZZ_CHECK(nbody >= sizeof(fuse_entry_out));
            fuse_entry_out e;
            std::memcpy(&e, body, sizeof(e));
            if (e.nodeid != 0) {
                check_attr(e.attr);
            }
            add_node(e.nodeid);
            if (h.opcode == FUSE_CREATE || h.opcode == FUSE_TMPFILE) {
                FUZZ_CHECK(nbody >= sizeof(fuse_entry_out) + sizeof(fuse_open_out));
                fuse_open_out o;
                std::memcpy(&o, body + sizeof(e), sizeof(o));
                add_fh(o.fh);
            }
            break;
        }
        case FUSE_GETATTR:
        case FUSE_SETATTR: {
            FUZZ_CHECK(nbody >= sizeof(fuse_attr_out));
            fuse_attr_out a;
            std::memcpy(&a, body, sizeof(a));
            check_attr(a.attr);
            break;
        }
        case FUSE_OPEN:
        case FUSE_OPENDIR: {
            FUZZ_CHECK(nbody >= sizeof(fuse_open_out));
            fuse_open_out o;
            std::memcpy(&o, body, sizeof(o));
            add_fh(o.fh);
            break;
        }
        case FUSE_READ: {
            fuse_read_in r{};
            std::memcpy(&r, msg.data() + sizeof(h), std::min(sizeof(r), msg.size() - sizeof(h)));
            FUZZ_CHECK(nbody <= r.size);
            break;
        }
        case FUSE_WRITE: {
            FUZZ_CHECK(nbody == sizeof(fuse_write_out));
            fuse_write_out w;
            std::memcpy(&w, body, sizeof(w));
            fuse_write_in wi{};
            std::memcpy(&wi, msg.data() + sizeof(h), std::min(sizeof(wi), msg.size() - sizeof(h)));
            FUZZ_CHECK(w.size <= wi.size);
            break;
        }
        case FUSE_READDIR:
            walk_dirents(body, nbody, false);
            break;
        case FUSE_READDIRPLUS:
            walk_dirents(body, nbody, true);
            break;
        default:
            break;
        }
    }

    void walk_dirents(const uint8_t* p, size_t n, bool plus) {
        size_t off = 0;
        const size_t head = plus ? FUSE_NAME_OFFSET_DIRENTPLUS : FUSE_NAME_OFFSET;
        while (off + head <= n) {
            fuse_dirent d;
            std::memcpy(&d, p + off + (plus ? sizeof(fuse_entry_out) : 0), sizeof(d));
            FUZZ_CHECK(d.namelen > 0 && d.namelen <= vdh::virtiofs::kFuseNameMax);
            const size_t rec = plus ? vdh::virtiofs::fuse_direntplus_size(d.namelen)
                                    : vdh::virtiofs::fuse_dirent_size(d.namelen);
            FUZZ_CHECK(off + rec <= n);
            const char* name = reinterpret_cast<const char*>(p + off + head);
            const bool dotdot = d.namelen == 2 && name[0] == '.' && name[1] == '.';
            if (!dotdot) {
                // ".." of the share root is the root's parent in the dirent (as virtiofsd);
                // only LOOKUP resolves it, and that must stay inside.
                FUZZ_CHECK(!scratch_.outside(d.ino));
            }
            if (plus) {
                fuse_entry_out e;
                std::memcpy(&e, p + off, sizeof(e));
                if (e.nodeid != 0) {
                    check_attr(e.attr);
                }
                add_node(e.nodeid);
            }
            off += rec;
        }
        FUZZ_CHECK(off == n);
    }

    FuzzReader& in_;
    const Scratch& scratch_;
    FuseDispatcher* disp_ = nullptr;
    FuseRequestCtx own_ctx_{};
    uint64_t unique_ = 0;
    std::vector<uint64_t> nodes_;
    std::vector<uint64_t> fhs_;
    size_t next_node_ = 0;
    size_t next_fh_ = 0;
};

} // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
    const char* trace = std::getenv("VDH_FUZZ_TRACE");
    g_trace = trace != nullptr && *trace == '1';
    enter_sandbox();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    // Made on first use, after LLVMFuzzerInitialize entered the sandbox; it lives (and its
    // tmpfs with it) until the process and its mount namespace go away.
    static Scratch* scratch = new Scratch();
    const int fds_before = count_fds();
    {
        FuzzReader in(data, size);
        Session s(in, *scratch);
        s.run();
    }
    // Every fd the session took (inodes, open files, lock fds) is back.
    FUZZ_CHECK(count_fds() == fds_before);
    scratch->check_untouched();
    scratch->reset_share();
    return 0;
}

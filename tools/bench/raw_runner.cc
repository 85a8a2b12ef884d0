// SPDX-License-Identifier: MIT
// Raw baseline loop: the host system calls behind each workload, timed per op.
#include "bench/raw_runner.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>

#include "bench/pattern.h"
#include "bench/workload.h"
#include "vdh/unique_fd.h"

namespace vdh::bench {

namespace {

struct FreeDeleter {
    void operator()(uint8_t* p) const noexcept { std::free(p); }
};

struct linux_dirent64_hdr {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

class RawLoop {
public:
    RawLoop(const RunConfig& c) : c_(c), info_(workload_info(c.workload)) {
        rng_ = (c.seed * 0x9E3779B97F4A7C15ULL) | 1;
    }

    Status open(const std::string& dir, std::string* why) {
        auto fail = [&](const char* what, int err) {
            *why = std::string(what) + ": " + std::strerror(err);
            return Status(make_err(err));
        };
        auto root = UniqueFd::from_syscall(
            ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
        if (!root) {
            return fail(dir.c_str(), root.error());
        }
        root_ = std::move(*root);
        auto opath = UniqueFd::from_syscall(
            ::openat(root_.get(), kReadFile, O_PATH | O_NOFOLLOW | O_CLOEXEC));
        auto rfd = UniqueFd::from_syscall(::openat(root_.get(), kReadFile, O_RDONLY | O_CLOEXEC));
        auto wfd = UniqueFd::from_syscall(::openat(root_.get(), kWriteFile, O_RDWR | O_CLOEXEC));
        auto list = UniqueFd::from_syscall(
            ::openat(root_.get(), kListDir, O_PATH | O_DIRECTORY | O_CLOEXEC));
        auto cu = UniqueFd::from_syscall(
            ::openat(root_.get(), kCreateDir, O_PATH | O_DIRECTORY | O_CLOEXEC));
        if (!opath || !rfd || !wfd || !list || !cu) {
            return fail("opening the prepared share (bench.dat, bench-wr.dat, dir10k, dir-cu)",
                        ENOENT);
        }
        read_path_ = std::move(*opath);
        read_fd_ = std::move(*rfd);
        write_fd_ = std::move(*wfd);
        list_ = std::move(*list);
        cu_ = std::move(*cu);
        struct stat st{};
        ::fstat(read_fd_.get(), &st);
        read_size_ = static_cast<uint64_t>(st.st_size);
        ::fstat(write_fd_.get(), &st);
        write_size_ = static_cast<uint64_t>(st.st_size);
        uint32_t cap = std::max<uint32_t>({info_.io_bytes, c_.readdir_bytes, 4096u});
        void* p = nullptr;
        if (::posix_memalign(&p, 4096, cap) != 0) {
            return fail("buffer", ENOMEM);
        }
        buf_.reset(static_cast<uint8_t*>(p));
        if (info_.op == OpKind::Write) {
            fill_pattern(buf_.get(), 0, info_.io_bytes, 0);
        }
        return ok();
    }

    /// One op; failures are counted.
    void op() noexcept {
        OpKind k = info_.op;
        if (info_.workload == Workload::MetaMix) {
            uint64_t r = next() % 100;
            uint32_t acc = 0;
            for (const MixEntry& m : kMetaMix) {
                acc += m.percent;
                if (r < acc) {
                    k = m.op;
                    break;
                }
            }
        }
        struct stat st{};
        char name[32];
        switch (k) {
        case OpKind::Getattr:
            if (::fstatat(read_path_.get(), "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
                fail_errno("fstat");
            } else if (c_.verify && static_cast<uint64_t>(st.st_size) != read_size_) {
                fail_verify("fstat size");
            }
            break;
        case OpKind::LookupHit:
            entry_name(static_cast<uint32_t>(next() % kListEntries), name);
            if (::fstatat(list_.get(), name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                fail_errno("fstatat");
            } else if (c_.verify && !S_ISREG(st.st_mode)) {
                fail_verify("fstatat mode");
            }
            break;
        case OpKind::LookupMiss:
            std::snprintf(name, sizeof(name), "missing%05u",
                          static_cast<unsigned>(next() % 100000));
            if (::fstatat(list_.get(), name, &st, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT) {
                fail_errno("fstatat (missing)");
            }
            break;
        case OpKind::OpenRelease: {
            UniqueFd fd(::openat(root_.get(), kReadFile, O_RDONLY | O_CLOEXEC));
            if (!fd) {
                fail_errno("openat");
            }
            break;
        }
        case OpKind::Read: {
            uint64_t off = offset(read_size_);
            uint32_t len = info_.io_bytes;
            ssize_t n = ::pread(read_fd_.get(), buf_.get(), len, static_cast<off_t>(off));
            if (n != static_cast<ssize_t>(len)) {
                fail_errno("pread");
                break;
            }
            bytes_ += len;
            if (c_.verify && check_pattern(buf_.get(), off, len, 0) != len) {
                fail_verify("pread data");
            }
            break;
        }
        case OpKind::Write: {
            uint64_t off = offset(write_size_);
            uint32_t len = info_.io_bytes;
            uint64_t stamp = 0;
            if (c_.verify) {
                stamp = (++stamp_ << 8) ^ 0x5A;
                fill_pattern(buf_.get(), off, len, stamp);
            }
            if (::pwrite(write_fd_.get(), buf_.get(), len, static_cast<off_t>(off)) !=
                static_cast<ssize_t>(len)) {
                fail_errno("pwrite");
                break;
            }
            bytes_ += len;
            if (c_.verify) {
                std::memset(buf_.get(), 0, len);
                if (::pread(write_fd_.get(), buf_.get(), len, static_cast<off_t>(off)) !=
                        static_cast<ssize_t>(len) ||
                    check_pattern(buf_.get(), off, len, stamp) != len) {
                    fail_verify("pwrite read-back");
                }
            }
            break;
        }
        case OpKind::CreateUnlink: {
            UniqueFd fd(::openat(cu_.get(), "raw-cu", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
            if (!fd) {
                fail_errno("openat O_CREAT");
            }
            fd.reset();
            if (::unlinkat(cu_.get(), "raw-cu", 0) < 0) {
                fail_errno("unlinkat");
            }
            break;
        }
        case OpKind::ReaddirList:
            list_dir();
            break;
        }
    }

    LatencyHistogram hist;
    uint64_t ops = 0, bytes_ = 0, entries_ = 0, err_errno = 0, err_verify = 0;

private:
    uint64_t next() noexcept {
        rng_ ^= rng_ >> 12;
        rng_ ^= rng_ << 25;
        rng_ ^= rng_ >> 27;
        return rng_ * 0x2545F4914F6CDD1DULL;
    }
    uint64_t offset(uint64_t size) noexcept {
        uint64_t blocks = std::min(size, c_.file_bytes) / info_.io_bytes;
        if (blocks == 0) {
            return 0;
        }
        if (info_.sequential) {
            uint64_t b = cursor_;
            cursor_ = (cursor_ + 1) % blocks;
            return b * info_.io_bytes;
        }
        return (next() % blocks) * info_.io_bytes;
    }
    void fail_errno(const char* what) noexcept {
        err_errno++;
        if (logged_++ < 5) {
            std::fprintf(stderr, "vdhost-bench: raw %s: %s\n", what, std::strerror(errno));
        }
    }
    void fail_verify(const char* what) noexcept {
        err_verify++;
        if (logged_++ < 5) {
            std::fprintf(stderr, "vdhost-bench: raw verify failed: %s\n", what);
        }
    }
    void list_dir() noexcept {
        UniqueFd d(::openat(list_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!d) {
            fail_errno("openat dir");
            return;
        }
        uint32_t n_entries = 0;
        for (;;) {
            long n = ::syscall(SYS_getdents64, d.get(), buf_.get(), c_.readdir_bytes);
            if (n < 0) {
                fail_errno("getdents64");
                return;
            }
            if (n == 0) {
                break;
            }
            for (long pos = 0; pos < n;) {
                // Safety: getdents64 filled buf_ with whole records.
                auto* e = reinterpret_cast<linux_dirent64_hdr*>(buf_.get() + pos);
                pos += e->d_reclen;
                if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) {
                    continue;
                }
                struct stat st{};
                if (::fstatat(d.get(), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                    fail_errno("fstatat entry");
                }
                n_entries++;
            }
        }
        entries_ += n_entries;
        if (c_.verify && n_entries != kListEntries) {
            fail_verify("listing does not hold 10000 entries");
        }
    }

    const RunConfig& c_;
    const WorkloadInfo& info_;
    uint64_t rng_;
    uint64_t cursor_ = 0;
    uint64_t stamp_ = 0;
    int logged_ = 0;
    UniqueFd root_, read_path_, read_fd_, write_fd_, list_, cu_;
    uint64_t read_size_ = 0, write_size_ = 0;
    std::unique_ptr<uint8_t, FreeDeleter> buf_;
};

} // namespace

Result<RunResult> run_raw(const std::string& share_dir, const RunConfig& config,
                          std::string* why) {
    RawLoop loop(config);
    VDH_TRY(loop.open(share_dir, why));
    RunResult r;
    std::thread t([&] {
        if (!config.cpus.empty()) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(config.cpus[0], &set);
            (void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
        }
        bool by_ops = config.ops > 0;
        int64_t start = now_ns();
        int64_t ws = by_ops ? start : start + static_cast<int64_t>(config.warmup_s * 1e9);
        int64_t we = by_ops ? INT64_MAX : ws + static_cast<int64_t>(config.duration_s * 1e9);
        double self0 = self_cpu_seconds();
        bool sampled = by_ops;
        uint64_t done = 0;
        int64_t t0 = start;
        for (;;) {
            if (!sampled && t0 >= ws) {
                self0 = self_cpu_seconds(); // start of the window
                sampled = true;
            }
            uint64_t b0 = loop.bytes_, n0 = loop.entries_;
            loop.op();
            int64_t t1 = now_ns();
            if (t0 >= ws && t1 <= we) {
                loop.hist.record(static_cast<uint64_t>(t1 - t0));
                loop.ops++;
                r.bytes += loop.bytes_ - b0;
                r.entries += loop.entries_ - n0;
            }
            t0 = t1;
            done++;
            if (by_ops ? done >= config.ops : t1 >= we) {
                break;
            }
        }
        r.elapsed_s = by_ops ? static_cast<double>(now_ns() - start) / 1e9
                             : static_cast<double>(we - ws) / 1e9;
        r.client_cpu_s = self_cpu_seconds() - self0;
    });
    t.join();
    r.hist = loop.hist;
    r.ops = loop.ops;
    r.requests = loop.ops;
    r.err_errno = loop.err_errno;
    r.err_verify = loop.err_verify;
    return r;
}

} // namespace vdh::bench

// SPDX-License-Identifier: MIT
// vdh-fsx: a randomized data-integrity tester in the spirit of xfstests' fsx. It applies a
// seeded random sequence of read, write, truncate, mmap read/write, fallocate, hole punch,
// zero range, copy_file_range and close/reopen to one file, mirrors each change in an
// in-memory model of the file, and verifies every read (and the file size after every
// operation) byte for byte. Built as a static binary so it runs in the busybox e2e guest
// (tests/e2e/fsx_guest.sh) as well as on the host (tests/tools/fsx/vdh_fsx_test.cc). It is
// not a benchmark: operations run one at a time, synchronously.
#include <fcntl.h>
#include <getopt.h>
#include <linux/falloc.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vdh/unique_fd.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

using vdh::UniqueFd;

constexpr int kExitFail = 1;  ///< data mismatch or an operation failed
constexpr int kExitUsage = 2; ///< bad arguments, or the file could not be set up
constexpr size_t kLogEntries = 32;
constexpr size_t kMaxListedBytes = 16;

enum class Op : uint8_t {
    Read,
    Write,
    MapRead,
    MapWrite,
    Truncate,
    Fallocate,
    PunchHole,
    ZeroRange,
    CopyRange,
    Reopen,
    Count,
};
constexpr size_t kOpCount = static_cast<size_t>(Op::Count);

constexpr std::array<const char*, kOpCount> kOpNames = {
    "read",      "write",     "mapread",   "mapwrite",  "truncate",
    "fallocate", "punchhole", "zerorange", "copyrange", "reopen",
};

/// Relative frequency of each operation (fsx picks uniformly; reads and writes carry the
/// data, so they come more often here).
constexpr std::array<uint32_t, kOpCount> kOpWeights = {20, 20, 10, 10, 6, 6, 6, 4, 8, 1};

const char* name_of(Op op) {
    return kOpNames[static_cast<size_t>(op)];
}

/// splitmix64: the same sequence from the same seed everywhere (std:: distributions are
/// not specified bit for bit).
class Rng {
public:
    explicit Rng(uint64_t seed) : state_(seed) {}
    uint64_t next() {
        uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }
    /// Uniform enough in [0, n) for n > 0.
    uint64_t below(uint64_t n) { return n == 0 ? 0 : next() % n; }

private:
    uint64_t state_;
};

struct Options {
    uint64_t seed = 1;
    uint64_t num_ops = 1000;
    uint64_t max_size = 256 * 1024; ///< the file never grows beyond this
    uint64_t max_op = 64 * 1024;    ///< longest read/write/copy
    uint64_t align = 4096;          ///< O_DIRECT alignment of offsets, lengths and buffers
    bool direct = false;
    std::array<bool, kOpCount> enabled{};
    uint64_t corrupt_at = 0; ///< test only: 1-based op after which a byte is flipped
    bool verbose = false;
    std::string path;
};

struct LogEntry {
    uint64_t n = 0;
    Op op = Op::Read;
    uint64_t off = 0;
    uint64_t len = 0;
    uint64_t arg = 0; ///< copy: source offset; fallocate/zero: keep-size; truncate: old size
};

/// A buffer aligned for O_DIRECT.
struct FreeDeleter {
    void operator()(uint8_t* p) const { std::free(p); }
};
using AlignedBuf = std::unique_ptr<uint8_t, FreeDeleter>;

AlignedBuf aligned_buf(size_t align, size_t size) {
    void* p = nullptr;
    if (::posix_memalign(&p, align, std::max<size_t>(size, 1)) != 0) {
        return nullptr;
    }
    return AlignedBuf(static_cast<uint8_t*>(p));
}

/// A mapping of a file range, unmapped on destruction.
class Mapping {
public:
    Mapping(int fd, uint64_t off, uint64_t len, int prot) {
        const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
        base_off_ = off - off % page;
        size_ = static_cast<size_t>(off - base_off_ + len);
        void* p = ::mmap(nullptr, size_, prot, MAP_SHARED, fd, static_cast<off_t>(base_off_));
        addr_ = p == MAP_FAILED ? nullptr : static_cast<uint8_t*>(p);
        delta_ = static_cast<size_t>(off - base_off_);
    }
    ~Mapping() {
        if (addr_ != nullptr) {
            ::munmap(addr_, size_);
        }
    }
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;

    bool ok() const { return addr_ != nullptr; }
    uint8_t* at() const { return addr_ + delta_; }
    uint8_t* base() const { return addr_; }
    size_t size() const { return size_; }

private:
    uint8_t* addr_ = nullptr;
    size_t size_ = 0;
    size_t delta_ = 0;
    uint64_t base_off_ = 0;
};

class Tester {
public:
    explicit Tester(const Options& o) : o_(o), rng_(o.seed) {}

    /// Runs the whole sequence; returns the exit status.
    int run() {
        buf_ = aligned_buf(o_.align, o_.max_op + o_.align);
        if (!buf_) {
            std::fprintf(stderr, "vdh-fsx: out of memory\n");
            return kExitUsage;
        }
        if (!open_file(O_CREAT | O_TRUNC)) {
            std::fprintf(stderr, "vdh-fsx: open %s: %s\n", o_.path.c_str(), std::strerror(errno));
            return kExitUsage;
        }
        const auto t0 = std::chrono::steady_clock::now();
        for (n_ = 1; n_ <= o_.num_ops; ++n_) {
            if (!step() || !check_size()) {
                return kExitFail;
            }
            if (n_ == o_.corrupt_at && !corrupt_behind_the_model()) {
                return kExitFail;
            }
        }
        n_ = o_.num_ops;
        if (!check_whole_file()) {
            return kExitFail;
        }
        const double secs =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        print_summary(secs);
        return 0;
    }

private:
    // ---- the file -----------------------------------------------------------------------

    bool open_file(int extra) {
        const int flags = O_RDWR | O_CLOEXEC | extra | (o_.direct ? O_DIRECT : 0);
        fd_ = UniqueFd(::open(o_.path.c_str(), flags, 0644));
        return fd_.valid();
    }

    uint64_t size() const { return model_.size(); }

    /// The model grows with zeros to \p end (no shrinking).
    void model_extend(uint64_t end) {
        if (end > model_.size()) {
            model_.resize(end, 0);
        }
    }

    /// The data an op writes: its number and the file offset in each byte, so a bad byte
    /// hints at the op that wrote it (fsx's trick).
    static uint8_t pattern(uint64_t n, uint64_t off) {
        return static_cast<uint8_t>(n + off % 251 + 1);
    }

    // ---- one operation ------------------------------------------------------------------

    Op pick_op() {
        uint64_t total = 0;
        for (size_t i = 0; i < kOpCount; ++i) {
            total += o_.enabled[i] ? kOpWeights[i] : 0;
        }
        uint64_t r = rng_.below(total);
        for (size_t i = 0; i < kOpCount; ++i) {
            if (!o_.enabled[i]) {
                continue;
            }
            if (r < kOpWeights[i]) {
                return static_cast<Op>(i);
            }
            r -= kOpWeights[i];
        }
        return Op::Read;
    }

    uint64_t align_down(uint64_t v) const { return o_.direct ? v - v % o_.align : v; }
    uint64_t align_up(uint64_t v) const {
        return o_.direct ? (v + o_.align - 1) / o_.align * o_.align : v;
    }

    bool step() {
        const Op op = pick_op();
        // Four draws per op, whatever it is: the sequence depends on the seed and the
        // enabled ops only.
        const uint64_t a = rng_.next();
        const uint64_t b = rng_.next();
        const uint64_t c = rng_.next();
        switch (op) {
        case Op::Read:
            return do_read(a, b);
        case Op::Write:
            return do_write(a, b);
        case Op::MapRead:
            return do_mapread(a, b);
        case Op::MapWrite:
            return do_mapwrite(a, b);
        case Op::Truncate:
            return do_truncate(a);
        case Op::Fallocate:
            return do_fallocate(Op::Fallocate, a, b, c);
        case Op::PunchHole:
            return do_fallocate(Op::PunchHole, a, b, c);
        case Op::ZeroRange:
            return do_fallocate(Op::ZeroRange, a, b, c);
        case Op::CopyRange:
            return do_copy(a, b, c);
        case Op::Reopen:
            return do_reopen();
        case Op::Count:
            break;
        }
        return true;
    }

    void skip(Op op) { ++skipped_[static_cast<size_t>(op)]; }
    void done(Op op, uint64_t off, uint64_t len, uint64_t arg = 0) {
        ++count_[static_cast<size_t>(op)];
        log_[log_next_++ % kLogEntries] = LogEntry{n_, op, off, len, arg};
        if (o_.verbose) {
            print_entry(stdout, log_[(log_next_ - 1) % kLogEntries]);
        }
    }

    /// An offset in [0, limit) and a length that stays within \p limit (aligned in direct
    /// mode when \p aligned). False when \p limit leaves no room.
    bool place(uint64_t a, uint64_t b, uint64_t limit, bool aligned, uint64_t* off, uint64_t* len) {
        if (limit == 0) {
            return false;
        }
        *off = a % limit;
        *len = std::min<uint64_t>(b % o_.max_op + 1, limit - *off);
        if (aligned && o_.direct) {
            *off = align_down(*off);
            *len = align_up(*len);
            if (*off + *len > align_up(limit)) {
                *len = align_up(limit) - *off;
            }
        }
        return *len > 0;
    }

    bool do_read(uint64_t a, uint64_t b) {
        uint64_t off = 0;
        uint64_t len = 0;
        if (!place(a, b, size(), true, &off, &len)) {
            skip(Op::Read);
            return true;
        }
        done(Op::Read, off, len);
        ssize_t got = ::pread(fd_.get(), buf_.get(), len, static_cast<off_t>(off));
        if (got < 0) {
            return fail_errno("pread");
        }
        const uint64_t want = off >= size() ? 0 : std::min(len, size() - off);
        if (static_cast<uint64_t>(got) != want) {
            return fail("short read: 0x%" PRIx64 " bytes instead of 0x%" PRIx64,
                        static_cast<uint64_t>(got), want);
        }
        return verify(off, buf_.get(), want, "read");
    }

    bool do_write(uint64_t a, uint64_t b) {
        uint64_t off = 0;
        uint64_t len = 0;
        if (!place(a, b, o_.max_size, true, &off, &len)) {
            skip(Op::Write);
            return true;
        }
        done(Op::Write, off, len);
        for (uint64_t i = 0; i < len; ++i) {
            buf_.get()[i] = pattern(n_, off + i);
        }
        model_extend(off + len);
        std::memcpy(model_.data() + off, buf_.get(), len);
        ssize_t put = ::pwrite(fd_.get(), buf_.get(), len, static_cast<off_t>(off));
        if (put < 0) {
            return fail_errno("pwrite");
        }
        if (static_cast<uint64_t>(put) != len) {
            return fail("short write: 0x%" PRIx64 " bytes instead of 0x%" PRIx64,
                        static_cast<uint64_t>(put), len);
        }
        return true;
    }

    bool do_mapread(uint64_t a, uint64_t b) {
        uint64_t off = 0;
        uint64_t len = 0;
        if (!place(a, b, size(), false, &off, &len)) {
            skip(Op::MapRead);
            return true;
        }
        done(Op::MapRead, off, len);
        Mapping m(fd_.get(), off, len, PROT_READ);
        if (!m.ok()) {
            return fail_errno("mmap");
        }
        return verify(off, m.at(), len, "mapread");
    }

    bool do_mapwrite(uint64_t a, uint64_t b) {
        uint64_t off = 0;
        uint64_t len = 0;
        if (!place(a, b, o_.max_size, false, &off, &len)) {
            skip(Op::MapWrite);
            return true;
        }
        done(Op::MapWrite, off, len);
        if (off + len > size()) {
            // A mapping beyond EOF faults (SIGBUS): grow the file first, as fsx does.
            model_extend(off + len);
            if (::ftruncate(fd_.get(), static_cast<off_t>(size())) != 0) {
                return fail_errno("ftruncate");
            }
        }
        Mapping m(fd_.get(), off, len, PROT_READ | PROT_WRITE);
        if (!m.ok()) {
            return fail_errno("mmap");
        }
        for (uint64_t i = 0; i < len; ++i) {
            model_[off + i] = pattern(n_, off + i);
        }
        std::memcpy(m.at(), model_.data() + off, len);
        if (::msync(m.base(), m.size(), MS_SYNC) != 0) {
            return fail_errno("msync");
        }
        return true;
    }

    bool do_truncate(uint64_t a) {
        const uint64_t old = size();
        const uint64_t to = a % (o_.max_size + 1);
        done(Op::Truncate, to, 0, old);
        if (::ftruncate(fd_.get(), static_cast<off_t>(to)) != 0) {
            return fail_errno("ftruncate");
        }
        model_.resize(to, 0);
        return true;
    }

    /// fallocate (plain or keep-size), punch hole (always keep-size), zero range (plain or
    /// keep-size). An EOPNOTSUPP turns the op off for the rest of the run (reported).
    bool do_fallocate(Op op, uint64_t a, uint64_t b, uint64_t c) {
        uint64_t off = 0;
        uint64_t len = 0;
        // Punching beyond EOF changes nothing: keep the range inside the file.
        const uint64_t limit = op == Op::PunchHole ? size() : o_.max_size;
        if (!place(a, b, limit, false, &off, &len)) {
            skip(op);
            return true;
        }
        bool keep = (c & 1) != 0;
        int mode = keep ? FALLOC_FL_KEEP_SIZE : 0;
        if (op == Op::PunchHole) {
            keep = true;
            mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
        } else if (op == Op::ZeroRange) {
            mode |= FALLOC_FL_ZERO_RANGE;
        }
        if (::fallocate(fd_.get(), mode, static_cast<off_t>(off), static_cast<off_t>(len)) != 0) {
            if (errno == EOPNOTSUPP) {
                return unsupported(op);
            }
            done(op, off, len, keep);
            return fail_errno("fallocate");
        }
        done(op, off, len, keep);
        const uint64_t end = off + len;
        if (op != Op::Fallocate) {
            const uint64_t zero_end = std::min(end, size());
            if (off < zero_end) {
                std::memset(model_.data() + off, 0, zero_end - off);
            }
        }
        if (!keep) {
            model_extend(end);
        }
        return true;
    }

    /// copy_file_range within the file: a source range inside the file to a destination
    /// that does not overlap it (the kernel refuses overlapping copies within one file).
    bool do_copy(uint64_t a, uint64_t b, uint64_t c) {
        uint64_t src = 0;
        uint64_t len = 0;
        if (!place(a, b, size(), false, &src, &len)) {
            skip(Op::CopyRange);
            return true;
        }
        if (o_.direct) {
            src = align_down(src);
            len = align_down(std::min(len, size() - src));
        }
        const uint64_t room = len == 0 || len > o_.max_size ? 0 : o_.max_size - len + 1;
        if (room == 0) {
            skip(Op::CopyRange);
            return true;
        }
        uint64_t dst = align_down(c % room);
        if (dst < src + len && src < dst + len) {
            // Overlap: move past the source range, or before it, if the file has room.
            if (align_up(src + len) + len <= o_.max_size) {
                dst = align_up(src + len);
            } else if (src >= len) {
                dst = align_down(src - len);
            } else {
                skip(Op::CopyRange);
                return true;
            }
        }
        uint64_t copied = 0;
        while (copied < len) {
            loff_t in = static_cast<loff_t>(src + copied);
            loff_t out = static_cast<loff_t>(dst + copied);
            ssize_t r = ::copy_file_range(fd_.get(), &in, fd_.get(), &out, len - copied, 0);
            if (r < 0) {
                if (copied == 0 && (errno == EOPNOTSUPP || errno == ENOSYS || errno == EXDEV)) {
                    return unsupported(Op::CopyRange);
                }
                done(Op::CopyRange, dst, len, src);
                return fail_errno("copy_file_range");
            }
            if (r == 0) {
                done(Op::CopyRange, dst, len, src);
                return fail("copy_file_range stopped after 0x%" PRIx64 " of 0x%" PRIx64 " bytes",
                            copied, len);
            }
            copied += static_cast<uint64_t>(r);
        }
        done(Op::CopyRange, dst, len, src);
        std::vector<uint8_t> tmp(model_.begin() + static_cast<ptrdiff_t>(src),
                                 model_.begin() + static_cast<ptrdiff_t>(src + len));
        model_extend(dst + len);
        std::memcpy(model_.data() + dst, tmp.data(), len);
        return true;
    }

    /// Close and open again (the FUSE OPEN of an existing file, where the first open was a
    /// CREATE).
    bool do_reopen() {
        done(Op::Reopen, 0, 0);
        fd_.reset();
        if (!open_file(0)) {
            return fail_errno("open");
        }
        return true;
    }

    bool unsupported(Op op) {
        o_.enabled[static_cast<size_t>(op)] = false;
        unsupported_[static_cast<size_t>(op)] = true;
        std::printf("vdh-fsx: op %" PRIu64 ": %s: not supported here, left out from now on\n", n_,
                    name_of(op));
        return true;
    }

    // ---- checks -------------------------------------------------------------------------

    bool check_size() {
        struct stat st {};
        if (::fstat(fd_.get(), &st) != 0) {
            return fail_errno("fstat");
        }
        if (static_cast<uint64_t>(st.st_size) != size()) {
            return fail("file size 0x%" PRIx64 ", the model says 0x%" PRIx64,
                        static_cast<uint64_t>(st.st_size), size());
        }
        return true;
    }

    /// The whole file, read back in op-sized pieces (aligned for direct I/O).
    bool check_whole_file() {
        if (!check_size()) {
            return false;
        }
        const uint64_t chunk = std::max(align_down(o_.max_op), o_.direct ? o_.align : 1);
        for (uint64_t off = 0; off < size(); off += chunk) {
            const uint64_t want = std::min(chunk, size() - off);
            ssize_t got = ::pread(fd_.get(), buf_.get(), chunk, static_cast<off_t>(off));
            if (got < 0) {
                return fail_errno("pread (final check)");
            }
            if (static_cast<uint64_t>(got) != want) {
                return fail("final check: short read at 0x%" PRIx64 ": 0x%" PRIx64
                            " bytes instead of 0x%" PRIx64,
                            off, static_cast<uint64_t>(got), want);
            }
            if (!verify(off, buf_.get(), want, "final check")) {
                return false;
            }
        }
        return true;
    }

    /// Compares \p len bytes read at file offset \p off with the model.
    bool verify(uint64_t off, const uint8_t* got, uint64_t len, const char* what) {
        const uint8_t* want = model_.data() + off;
        if (len == 0 || std::memcmp(got, want, len) == 0) {
            return true;
        }
        uint64_t bad = 0;
        uint64_t first = len;
        for (uint64_t i = 0; i < len; ++i) {
            if (got[i] != want[i]) {
                first = std::min(first, i);
                ++bad;
            }
        }
        std::printf("vdh-fsx: FAIL op %" PRIu64 " (%s of 0x%" PRIx64 "..0x%" PRIx64
                    "): data mismatch at 0x%" PRIx64 ", %" PRIu64 " byte(s) differ\n",
                    n_, what, off, off + len, off + first, bad);
        std::printf("  offset      expected  got   (bad data may come from op %% 256 = ...)\n");
        uint64_t listed = 0;
        for (uint64_t i = first; i < len && listed < kMaxListedBytes; ++i) {
            if (got[i] == want[i]) {
                continue;
            }
            const uint8_t from = static_cast<uint8_t>(got[i] - (off + i) % 251 - 1);
            std::printf("  0x%08" PRIx64 "  0x%02x      0x%02x  %u\n", off + i, want[i], got[i],
                        from);
            ++listed;
        }
        print_log();
        return false;
    }

    /// Test only: flips one byte of the file through a second descriptor, behind the
    /// model's back; the run must then fail.
    bool corrupt_behind_the_model() {
        if (size() == 0) {
            model_extend(1);
            if (::ftruncate(fd_.get(), 1) != 0) {
                return fail_errno("ftruncate (corrupt)");
            }
        }
        const uint64_t at = (o_.seed * 2654435761ULL + n_) % size();
        UniqueFd fd(::open(o_.path.c_str(), O_RDWR | O_CLOEXEC));
        uint8_t byte = 0;
        if (!fd || ::pread(fd.get(), &byte, 1, static_cast<off_t>(at)) != 1) {
            return fail_errno("corrupt: read");
        }
        byte ^= 0xff;
        if (::pwrite(fd.get(), &byte, 1, static_cast<off_t>(at)) != 1 || ::fsync(fd.get()) != 0) {
            return fail_errno("corrupt: write");
        }
        std::printf("vdh-fsx: op %" PRIu64 ": test: flipped the byte at 0x%" PRIx64
                    " behind the model's back\n",
                    n_, at);
        return true;
    }

    // ---- reports ------------------------------------------------------------------------

    static void print_entry(FILE* f, const LogEntry& e) {
        switch (e.op) {
        case Op::Truncate:
            std::fprintf(f, "  %6" PRIu64 " truncate  from 0x%" PRIx64 " to 0x%" PRIx64 "\n", e.n,
                         e.arg, e.off);
            break;
        case Op::Reopen:
            std::fprintf(f, "  %6" PRIu64 " reopen\n", e.n);
            break;
        case Op::CopyRange:
            std::fprintf(f,
                         "  %6" PRIu64 " copyrange 0x%" PRIx64 "..0x%" PRIx64 " to 0x%" PRIx64
                         "..0x%" PRIx64 " (0x%" PRIx64 " bytes)\n",
                         e.n, e.arg, e.arg + e.len, e.off, e.off + e.len, e.len);
            break;
        default:
            std::fprintf(
                f, "  %6" PRIu64 " %-9s 0x%" PRIx64 "..0x%" PRIx64 " (0x%" PRIx64 " bytes)%s\n",
                e.n, name_of(e.op), e.off, e.off + e.len, e.len,
                (e.op == Op::Fallocate || e.op == Op::ZeroRange) && e.arg != 0 ? " keep-size" : "");
            break;
        }
    }

    void print_log() const {
        const size_t have = std::min<size_t>(log_next_, kLogEntries);
        std::printf("vdh-fsx: the last %zu ops (seed %" PRIu64 ", %s, file size now 0x%" PRIx64
                    "):\n",
                    have, o_.seed, o_.direct ? "O_DIRECT" : "buffered", size());
        for (size_t i = log_next_ - have; i < log_next_; ++i) {
            print_entry(stdout, log_[i % kLogEntries]);
        }
        std::fflush(stdout);
    }

    bool fail_errno(const char* call) {
        const int e = errno;
        std::printf("vdh-fsx: FAIL op %" PRIu64 ": %s: %s\n", n_, call, std::strerror(e));
        print_log();
        return false;
    }

    [[gnu::format(printf, 2, 3)]] bool fail(const char* fmt, ...) {
        std::printf("vdh-fsx: FAIL op %" PRIu64 ": ", n_);
        va_list ap;
        va_start(ap, fmt);
        std::vprintf(fmt, ap);
        va_end(ap);
        std::printf("\n");
        print_log();
        return false;
    }

    void print_summary(double secs) const {
        std::string counts;
        std::string off;
        for (size_t i = 0; i < kOpCount; ++i) {
            counts += " " + std::string(kOpNames[i]) + "=" + std::to_string(count_[i]);
            if (unsupported_[i]) {
                off += std::string(off.empty() ? "" : ",") + kOpNames[i];
            }
        }
        uint64_t skipped = 0;
        for (uint64_t s : skipped_) {
            skipped += s;
        }
        std::printf("vdh-fsx: PASS seed=%" PRIu64 " ops=%" PRIu64 " mode=%s mmap=%s "
                    "max_size=%" PRIu64 " final_size=%" PRIu64 "%s skipped=%" PRIu64
                    " unsupported=%s time=%.2fs\n",
                    o_.seed, o_.num_ops, o_.direct ? "direct" : "buffered",
                    o_.enabled[static_cast<size_t>(Op::MapWrite)] ? "on" : "off", o_.max_size,
                    size(), counts.c_str(), skipped, off.empty() ? "none" : off.c_str(), secs);
    }

    Options o_;
    Rng rng_;
    UniqueFd fd_;
    AlignedBuf buf_;
    std::vector<uint8_t> model_;
    uint64_t n_ = 0;
    std::array<uint64_t, kOpCount> count_{};
    std::array<uint64_t, kOpCount> skipped_{};
    std::array<bool, kOpCount> unsupported_{};
    std::array<LogEntry, kLogEntries> log_{};
    size_t log_next_ = 0;
};

void usage(FILE* f) {
    std::fprintf(
        f, "usage: vdh-fsx [options] FILE\n"
           "  -S SEED    random seed (default 1); the same seed gives the same operations\n"
           "  -N OPS     number of operations (default 1000)\n"
           "  -l SIZE    largest file size in bytes (default 262144)\n"
           "  -m LEN     longest read/write/copy in bytes (default 65536)\n"
           "  -o         O_DIRECT: read, write and copy offsets and lengths aligned (-A);\n"
           "             mmap, truncate and fallocate go through the same descriptor (as fsx)\n"
           "  -A ALIGN   O_DIRECT alignment, a power of two (default 4096)\n"
           "  -M         no mmap reads or writes\n"
           "  -F         no fallocate (plain and keep-size)\n"
           "  -H         no hole punching\n"
           "  -z         no zero range\n"
           "  -C         no copy_file_range\n"
           "  -T         no truncate\n"
           "  -R         no close/reopen\n"
           "  -v         print every operation\n"
           "  --test-corrupt-at=N  test only: flip a byte of the file behind the model after\n"
           "             op N (the run must fail)\n"
           "fallocate, hole punching, zero range and copy_file_range that the file system\n"
           "refuses with EOPNOTSUPP are left out for the rest of the run and reported.\n"
           "Exit: 0 every check passed, 1 mismatch or failed operation, 2 usage.\n");
}

bool parse_u64(const char* s, uint64_t* out) {
    if (s == nullptr || *s == '\0' || *s == '-') {
        return false;
    }
    char* end = nullptr;
    errno = 0;
    unsigned long long v = std::strtoull(s, &end, 0);
    if (errno != 0 || *end != '\0') {
        return false;
    }
    *out = v;
    return true;
}

} // namespace

int main(int argc, char** argv) {
    Options o;
    o.enabled.fill(true);
    static const struct option kLong[] = {
        {"test-corrupt-at", required_argument, nullptr, 'X'},
        {"help", no_argument, nullptr, 'h'},
        {nullptr, 0, nullptr, 0},
    };
    auto off = [&o](Op op) { o.enabled[static_cast<size_t>(op)] = false; };
    int ch;
    while ((ch = ::getopt_long(argc, argv, "S:N:l:m:oA:MFHzCTRvh", kLong, nullptr)) != -1) {
        bool ok = true;
        switch (ch) {
        case 'S':
            ok = parse_u64(optarg, &o.seed);
            break;
        case 'N':
            ok = parse_u64(optarg, &o.num_ops);
            break;
        case 'l':
            ok = parse_u64(optarg, &o.max_size) && o.max_size > 0;
            break;
        case 'm':
            ok = parse_u64(optarg, &o.max_op) && o.max_op > 0;
            break;
        case 'o':
            o.direct = true;
            break;
        case 'A':
            ok = parse_u64(optarg, &o.align) && o.align >= 512 && (o.align & (o.align - 1)) == 0;
            break;
        case 'M':
            off(Op::MapRead);
            off(Op::MapWrite);
            break;
        case 'F':
            off(Op::Fallocate);
            break;
        case 'H':
            off(Op::PunchHole);
            break;
        case 'z':
            off(Op::ZeroRange);
            break;
        case 'C':
            off(Op::CopyRange);
            break;
        case 'T':
            off(Op::Truncate);
            break;
        case 'R':
            off(Op::Reopen);
            break;
        case 'v':
            o.verbose = true;
            break;
        case 'X':
            ok = parse_u64(optarg, &o.corrupt_at) && o.corrupt_at > 0;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            ok = false;
            break;
        }
        if (!ok) {
            if (ch != '?') {
                std::fprintf(stderr, "vdh-fsx: bad value for -%c: %s\n", ch,
                             optarg != nullptr ? optarg : "");
            }
            usage(stderr);
            return kExitUsage;
        }
    }
    if (optind + 1 != argc) {
        usage(stderr);
        return kExitUsage;
    }
    o.path = argv[optind];
    if (o.direct) {
        o.max_size -= o.max_size % o.align;
        o.max_op -= o.max_op % o.align;
        if (o.max_size == 0 || o.max_op == 0) {
            std::fprintf(stderr, "vdh-fsx: -l and -m must be at least -A (%" PRIu64 ") with -o\n",
                         o.align);
            return kExitUsage;
        }
    }
    o.max_op = std::min(o.max_op, o.max_size);
    setvbuf(stdout, nullptr, _IOLBF, 0);
    return Tester(o).run();
}

// SPDX-License-Identifier: MIT
// Integration tests of the virtio-blk plugin through the real path: the vdhost binary with
// vdh-virtioblk.so on temporary image files (default sandbox and seccomp), driven by the
// project's vhost-user frontend with virtio-blk chains laid out as Linux lays them out
// (tools/frontend/blk_request.h): GET_CONFIG's geometry, data written and read back and
// checked on the host file, FLUSH, DISCARD (a hole on the host), WRITE_ZEROES, GET_ID, a
// read-only disk, malformed and out-of-range chains (the device keeps serving), and two
// request queues on two poll lcores with many requests in flight.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "../../host/vdhost_process.h"
#include "frontend/blk_request.h"
#include "frontend/device.h"
#include "frontend/guest_memory.h"
#include "loop_device.h"

namespace vdh {
namespace {

using frontend::BlkReply;
using frontend::BlkRequester;
using frontend::Device;
using frontend::DeviceOptions;
using frontend::GuestMemory;
using frontend::GuestMemoryOptions;
using testing::TempDir;
using testing::VdhostProcess;

constexpr uint64_t kDiskBytes = 8 << 20;
constexpr uint64_t kSectors = kDiskBytes / 512;

// Feature bits (linux/virtio_blk.h).
constexpr uint64_t kFSegMax = 1ULL << 2;
constexpr uint64_t kFRo = 1ULL << 5;
constexpr uint64_t kFBlkSize = 1ULL << 6;
constexpr uint64_t kFFlush = 1ULL << 9;
constexpr uint64_t kFMq = 1ULL << 12;
constexpr uint64_t kFDiscard = 1ULL << 13;
constexpr uint64_t kFWriteZeroes = 1ULL << 14;

std::vector<uint8_t> pattern(size_t n, uint32_t seed) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) {
        v[i] = static_cast<uint8_t>((i * 131 + seed) ^ (i >> 9));
    }
    return v;
}

std::vector<uint8_t> host_bytes(const std::string& path, uint64_t off, size_t len) {
    std::vector<uint8_t> v(len);
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::pread(fd, v.data(), len, static_cast<off_t>(off)), static_cast<ssize_t>(len));
    ::close(fd);
    return v;
}

void make_image(const std::string& path, uint64_t size, uint8_t fill) {
    std::vector<uint8_t> buf(size, fill);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, buf.data(), buf.size()), static_cast<ssize_t>(buf.size()));
    ::close(fd);
}

uint32_t le32(const std::vector<uint8_t>& b, size_t at) {
    uint32_t v;
    std::memcpy(&v, b.data() + at, 4);
    return le32toh(v);
}

/// One vdhost for the whole suite (starting it costs more than the tests): disk0 read-write
/// with 2 queues on lcores 0 and 1, disk1 read-only, disk2 with 4 KiB blocks and neither
/// discard nor write-zeroes.
class VdhostVirtioblk : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        dir_ = new TempDir();
        vdhost_ = new VdhostProcess();
        make_image(img(0), kDiskBytes, 0x11);
        make_image(img(1), kDiskBytes, 0x22);
        make_image(img(2), kDiskBytes + 1000, 0x33); // capacity rounds down to 4 KiB blocks
        const std::string yaml =
            "host:\n  poll_lcores: [0, 1]\n  control_socket: " + dir_->file("ctl.sock") +
            "\n  idle_poll_us: 100\n  max_sleep_ms: 50\ndevices:\n"
            "  - name: disk0\n    type: virtioblk\n    socket: " +
            sock(0) + "\n    lcore: [0, 1]\n    config:\n      path: " + img(0) +
            "\n      num_queues: 2\n      serial: vdh-serial-0\n"
            "  - name: disk1\n    type: virtioblk\n    socket: " +
            sock(1) + "\n    lcore: 1\n    config:\n      path: " + img(1) +
            "\n      readonly: true\n"
            "  - name: disk2\n    type: virtioblk\n    socket: " +
            sock(2) + "\n    lcore: 0\n    config:\n      path: " + img(2) +
            "\n      block_size: 4096\n      discard: false\n      write_zeroes: false\n";
        ASSERT_TRUE(
            vdhost_->start(*dir_, yaml, {sock(0), sock(1), sock(2), dir_->file("ctl.sock")}))
            << vdhost_->log();
    }
    static void TearDownTestSuite() {
        delete vdhost_;
        delete dir_;
    }

    void TearDown() override {
        dev_.reset();
        if (HasFailure()) {
            ADD_FAILURE() << "vdhost log:\n" << vdhost_->log();
        }
    }

    static std::string img(int i) { return dir_->file("disk" + std::to_string(i) + ".img"); }
    static std::string sock(int i) { return dir_->file("disk" + std::to_string(i) + ".sock"); }

    /// Connects to disk \p i with \p queues queues of 128 entries and starts it.
    Device* connect(int i, uint16_t queues = 1) {
        GuestMemoryOptions mo;
        mo.size = 32 << 20;
        mo.num_regions = 2;
        mo.region_gap = 1 << 20;
        auto m = GuestMemory::create(mo);
        EXPECT_TRUE(m.has_value());
        if (!m) {
            return nullptr;
        }
        mem_ = std::move(*m);
        DeviceOptions o;
        o.socket_path = sock(i);
        o.num_queues = queues;
        o.queue_size = 128;
        o.wanted_features = frontend::kFIndirectDesc | kFSegMax | kFBlkSize | kFFlush | kFMq |
                            kFDiscard | kFWriteZeroes | kFRo;
        auto d = Device::connect(*mem_, o);
        EXPECT_TRUE(d.has_value()) << "connect: " << (d ? 0 : d.error());
        if (!d) {
            return nullptr;
        }
        Status s = (*d)->start();
        EXPECT_TRUE(s.has_value()) << "start: " << (s ? 0 : s.error());
        dev_ = std::move(*d);
        return dev_.get();
    }

    long stat(const std::string& device, const std::string& key) {
        const std::string s = testing::vdhost_stats(dir_->file("ctl.sock"));
        auto p = s.find("\"name\":\"" + device + "\"");
        if (p == std::string::npos) {
            return -1;
        }
        p = s.find("\"plugin\":", p);
        return p == std::string::npos ? -1 : testing::json_number(s, key, p);
    }

    static TempDir* dir_;
    static VdhostProcess* vdhost_;
    std::unique_ptr<GuestMemory> mem_;
    std::unique_ptr<Device> dev_;
};

TempDir* VdhostVirtioblk::dir_ = nullptr;
VdhostProcess* VdhostVirtioblk::vdhost_ = nullptr;

TEST_F(VdhostVirtioblk, GetConfigAndFeaturesDescribeTheDisk) {
    Device* d = connect(0, 2);
    ASSERT_NE(d, nullptr);
    const uint64_t f = d->offered_features();
    EXPECT_EQ(f & (kFSegMax | kFBlkSize | kFFlush | kFMq | kFDiscard | kFWriteZeroes),
              kFSegMax | kFBlkSize | kFFlush | kFMq | kFDiscard | kFWriteZeroes);
    EXPECT_EQ(f & kFRo, 0u);
    EXPECT_NE(d->protocol_features() & frontend::kPfConfig, 0u);
    auto cfg = d->get_config(0, 64);
    ASSERT_TRUE(cfg.has_value()) << cfg.error();
    uint64_t capacity;
    std::memcpy(&capacity, cfg->data(), 8);
    EXPECT_EQ(le64toh(capacity), kSectors);
    EXPECT_EQ(le32(*cfg, 12), 126u);              // seg_max
    EXPECT_EQ(le32(*cfg, 20), 512u);              // blk_size
    EXPECT_EQ((*cfg)[34] | ((*cfg)[35] << 8), 2); // num_queues
    EXPECT_EQ(le32(*cfg, 36), 32768u);            // max_discard_sectors
    EXPECT_EQ(le32(*cfg, 40), 1u);                // max_discard_seg
    EXPECT_EQ(le32(*cfg, 44), 1u);                // discard_sector_alignment
    EXPECT_EQ(le32(*cfg, 48), 32768u);            // max_write_zeroes_sectors
    EXPECT_EQ(le32(*cfg, 52), 1u);                // max_write_zeroes_seg
    EXPECT_EQ((*cfg)[56], 1);                     // write_zeroes_may_unmap
    // SET_CONFIG is refused (no writable field, e.g. no CONFIG_WCE): the frontend's
    // REPLY_ACK reports the failure, the space stays as it was, the disk keeps serving.
    const uint8_t wce[1] = {1};
    EXPECT_FALSE(d->set_config(32, wce).has_value());
    auto again = d->get_config(0, 64);
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(*again, *cfg);
    BlkRequester blk(d->queue(0));
    auto id = blk.get_id();
    ASSERT_TRUE(id.has_value()) << id.error();
    EXPECT_EQ(id->status, frontend::kBlkSOk);
    dev_.reset();

    // The read-only disk offers RO; the 4 KiB disk reports its block size, a capacity rounded
    // down to whole blocks, and neither DISCARD nor WRITE_ZEROES.
    d = connect(1);
    ASSERT_NE(d, nullptr);
    EXPECT_NE(d->offered_features() & kFRo, 0u);
    EXPECT_EQ(d->offered_features() & kFMq, 0u);
    dev_.reset();
    d = connect(2);
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(d->offered_features() & (kFDiscard | kFWriteZeroes), 0u);
    cfg = d->get_config(0, 64);
    ASSERT_TRUE(cfg.has_value()) << cfg.error();
    std::memcpy(&capacity, cfg->data(), 8);
    EXPECT_EQ(le64toh(capacity), kSectors);
    EXPECT_EQ(le32(*cfg, 20), 4096u);
    EXPECT_EQ(le32(*cfg, 36), 0u);
}

TEST_F(VdhostVirtioblk, WriteThenReadBackReachesTheHostFile) {
    Device* d = connect(0, 2);
    ASSERT_NE(d, nullptr);
    BlkRequester::Options o;
    o.indirect = true;
    o.max_segment = 4096; // several data descriptors, as a guest's scatter-gather list
    BlkRequester blk(d->queue(0), o);
    const auto data = pattern(64 << 10, 7);
    auto w = blk.write(24, data);
    ASSERT_TRUE(w.has_value()) << w.error();
    EXPECT_EQ(w->status, frontend::kBlkSOk);
    EXPECT_EQ(w->used_len, 1u);
    EXPECT_EQ(host_bytes(img(0), 24 * 512, data.size()), data);
    // The sector before and after are untouched.
    EXPECT_EQ(host_bytes(img(0), 23 * 512, 512), std::vector<uint8_t>(512, 0x11));
    EXPECT_EQ(host_bytes(img(0), 24 * 512 + data.size(), 512), std::vector<uint8_t>(512, 0x11));

    auto r = blk.read(24, static_cast<uint32_t>(data.size()));
    ASSERT_TRUE(r.has_value()) << r.error();
    EXPECT_EQ(r->status, frontend::kBlkSOk);
    EXPECT_EQ(r->used_len, data.size() + 1);
    EXPECT_EQ(r->data, data);
    // The last sector of the disk, direct descriptors, header and data in one buffer (the
    // decoder works on bytes, not on descriptor boundaries).
    BlkRequester plain(d->queue(0));
    auto hdr = frontend::blk_header(frontend::kBlkTOut, kSectors - 1);
    const auto tail = pattern(512, 9);
    hdr.insert(hdr.end(), tail.begin(), tail.end());
    auto wt = plain.raw({hdr}, {1});
    ASSERT_TRUE(wt.has_value()) << wt.error();
    EXPECT_EQ(wt->status, frontend::kBlkSOk);
    EXPECT_EQ(host_bytes(img(0), kDiskBytes - 512, 512), tail);
    // A read whose data and status share one writable buffer.
    auto rt = plain.raw({frontend::blk_header(frontend::kBlkTIn, kSectors - 1)}, {513});
    ASSERT_TRUE(rt.has_value()) << rt.error();
    EXPECT_EQ(rt->status, frontend::kBlkSOk);
    EXPECT_EQ(rt->data, tail);

    auto fl = blk.flush();
    ASSERT_TRUE(fl.has_value()) << fl.error();
    EXPECT_EQ(fl->status, frontend::kBlkSOk);
    EXPECT_GE(stat("disk0", "flushes"), 1);
    EXPECT_GE(stat("disk0", "writes"), 2);
    EXPECT_GE(stat("disk0", "read_bytes"), static_cast<long>(data.size() + 512));
}

/// Independent of the code under test: does \p dir take a 4 KiB RWF_NOWAIT write?
bool kernel_takes_nowait(const std::string& dir) {
    int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        return false;
    }
    static char buf[4096];
    struct iovec iov = {buf, sizeof(buf)};
    bool ok = ::pwritev2(fd, &iov, 1, 0, RWF_NOWAIT) == 4096;
    if (!ok && errno == EAGAIN && ::pwrite(fd, buf, sizeof(buf), 0) == 4096) {
        ok = ::pwritev2(fd, &iov, 1, 0, RWF_NOWAIT) == 4096;
    }
    ::close(fd);
    return ok;
}

TEST_F(VdhostVirtioblk, SmallWritesGoInlineOnAPageCacheFilesystemLargeOnesThroughIoUring) {
    // The images live on the test directory's filesystem (ext4 or tmpfs here, which refuse
    // non-blocking buffered writes): the disk's write path is inline. On xfs it is nowait
    // and every write goes through io_uring.
    const bool nowait = kernel_takes_nowait(dir_->path());
    const std::string st = testing::vdhost_stats(dir_->file("ctl.sock"));
    const auto at = st.find("\"name\":\"disk0\"");
    ASSERT_NE(at, std::string::npos) << st;
    EXPECT_NE(st.find(nowait ? "\"write_path\":\"nowait\"" : "\"write_path\":\"inline\"", at),
              std::string::npos)
        << st;
    Device* d = connect(0, 2);
    ASSERT_NE(d, nullptr);
    BlkRequester blk(d->queue(1));
    const long inline0 = stat("disk0", "inline_writes");
    const long uring0 = stat("disk0", "uring_writes");
    ASSERT_GE(inline0, 0);
    ASSERT_GE(uring0, 0);
    // 4 KiB and 512-byte writes (a partial page: the image's pages are in the page cache,
    // written by make_image) take the inline path; the data lands in the host file.
    const auto small = pattern(4096, 21);
    auto w = blk.write(4096, small);
    ASSERT_TRUE(w.has_value()) << w.error();
    EXPECT_EQ(w->status, frontend::kBlkSOk);
    EXPECT_EQ(w->used_len, 1u);
    const auto sector = pattern(512, 22);
    w = blk.write(4096 + 9, sector);
    ASSERT_TRUE(w.has_value()) << w.error();
    EXPECT_EQ(w->status, frontend::kBlkSOk);
    EXPECT_EQ(host_bytes(img(0), 4096 * 512, small.size()), small);
    EXPECT_EQ(host_bytes(img(0), (4096 + 9) * 512, sector.size()), sector);
    // 256 KiB is beyond the disk's inline limit (128 KiB): io_uring.
    const auto big = pattern(256 << 10, 23);
    w = blk.write(8192, big);
    ASSERT_TRUE(w.has_value()) << w.error();
    EXPECT_EQ(w->status, frontend::kBlkSOk);
    EXPECT_EQ(host_bytes(img(0), 8192 * 512, big.size()), big);
    auto r = blk.read(4096, static_cast<uint32_t>(small.size()));
    ASSERT_TRUE(r.has_value()) << r.error();
    EXPECT_EQ(r->data, small);
    if (nowait) {
        EXPECT_EQ(stat("disk0", "inline_writes"), inline0);
        EXPECT_EQ(stat("disk0", "uring_writes"), uring0 + 3);
    } else {
        EXPECT_EQ(stat("disk0", "inline_writes"), inline0 + 2);
        EXPECT_EQ(stat("disk0", "uring_writes"), uring0 + 1);
    }
    // The read-only disk punts.
    EXPECT_NE(st.find("\"write_path\":\"punt\"", st.find("\"name\":\"disk1\"")), std::string::npos)
        << st;
}

TEST_F(VdhostVirtioblk, DiscardPunchesAHoleAndWriteZeroesZeroes) {
    Device* d = connect(0, 2);
    ASSERT_NE(d, nullptr);
    BlkRequester blk(d->queue(1));
    const uint64_t mib = 1 << 20;
    const uint64_t sector = (4 * mib) / 512;
    const auto data = pattern(mib, 3);
    auto w = blk.write(sector, data);
    ASSERT_TRUE(w.has_value() && w->status == frontend::kBlkSOk);
    auto fl = blk.flush();
    ASSERT_TRUE(fl.has_value() && fl->status == frontend::kBlkSOk);

    auto dc = blk.discard(sector, static_cast<uint32_t>(mib / 512));
    ASSERT_TRUE(dc.has_value()) << dc.error();
    EXPECT_EQ(dc->status, frontend::kBlkSOk);
    int fd = ::open(img(0).c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    EXPECT_EQ(::lseek(fd, static_cast<off_t>(4 * mib), SEEK_HOLE), static_cast<off_t>(4 * mib));
    ::close(fd);
    EXPECT_EQ(host_bytes(img(0), 4 * mib, mib), std::vector<uint8_t>(mib, 0));
    auto r = blk.read(sector, 4096);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->data, std::vector<uint8_t>(4096, 0));

    // WRITE_ZEROES without UNMAP: zeroes, allocated; with UNMAP: a hole.
    const uint64_t zsector = (6 * mib) / 512;
    auto wz = blk.write_zeroes(zsector, 128);
    ASSERT_TRUE(wz.has_value()) << wz.error();
    EXPECT_EQ(wz->status, frontend::kBlkSOk);
    EXPECT_EQ(host_bytes(img(0), 6 * mib, 128 * 512), std::vector<uint8_t>(128 * 512, 0));
    EXPECT_EQ(host_bytes(img(0), 6 * mib + 128 * 512, 512), std::vector<uint8_t>(512, 0x11));
    auto wzu = blk.write_zeroes(zsector + 256, 256, frontend::kBlkFlagUnmap);
    ASSERT_TRUE(wzu.has_value()) << wzu.error();
    EXPECT_EQ(wzu->status, frontend::kBlkSOk);
    fd = ::open(img(0).c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    EXPECT_EQ(::lseek(fd, static_cast<off_t>(6 * mib + 256 * 512), SEEK_HOLE),
              static_cast<off_t>(6 * mib + 256 * 512));
    ::close(fd);
    EXPECT_EQ(stat("disk0", "discards"), 1);
    EXPECT_EQ(stat("disk0", "write_zeroes"), 2);
}

TEST_F(VdhostVirtioblk, GetIdAnswersTheSerial) {
    Device* d = connect(0, 2);
    ASSERT_NE(d, nullptr);
    BlkRequester blk(d->queue(0));
    auto id = blk.get_id();
    ASSERT_TRUE(id.has_value()) << id.error();
    EXPECT_EQ(id->status, frontend::kBlkSOk);
    std::vector<uint8_t> want(20, 0);
    std::memcpy(want.data(), "vdh-serial-0", 12);
    EXPECT_EQ(id->data, want);
    dev_.reset();
    // Default serial: the device name.
    d = connect(1);
    ASSERT_NE(d, nullptr);
    BlkRequester ro(d->queue(0));
    id = ro.get_id();
    ASSERT_TRUE(id.has_value()) << id.error();
    std::memcpy(want.data(), "disk1\0\0\0\0\0\0\0", 12);
    EXPECT_EQ(id->data, want);
}

TEST_F(VdhostVirtioblk, ReadOnlyDiskRefusesWrites) {
    Device* d = connect(1);
    ASSERT_NE(d, nullptr);
    BlkRequester blk(d->queue(0));
    auto w = blk.write(0, pattern(4096, 1));
    ASSERT_TRUE(w.has_value()) << w.error();
    EXPECT_EQ(w->status, frontend::kBlkSIoErr);
    // A read-only disk offers neither DISCARD nor WRITE_ZEROES.
    EXPECT_EQ(d->offered_features() & (kFDiscard | kFWriteZeroes), 0u);
    auto dc = blk.discard(0, 8);
    ASSERT_TRUE(dc.has_value());
    EXPECT_EQ(dc->status, frontend::kBlkSUnsupp);
    auto wz = blk.write_zeroes(0, 8);
    ASSERT_TRUE(wz.has_value());
    EXPECT_EQ(wz->status, frontend::kBlkSUnsupp);
    EXPECT_EQ(host_bytes(img(1), 0, 4096), std::vector<uint8_t>(4096, 0x22));
    auto r = blk.read(0, 4096);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, frontend::kBlkSOk);
    EXPECT_EQ(r->data, std::vector<uint8_t>(4096, 0x22));
    auto fl = blk.flush();
    ASSERT_TRUE(fl.has_value());
    EXPECT_EQ(fl->status, frontend::kBlkSOk);
    EXPECT_GE(stat("disk1", "malformed_read_only"), 1);
}

TEST_F(VdhostVirtioblk, MalformedAndOutOfRangeChainsGetAStatusAndTheDiskKeepsServing) {
    Device* d = connect(2); // 4 KiB blocks, no discard / write zeroes
    ASSERT_NE(d, nullptr);
    BlkRequester blk(d->queue(0));
    auto expect_status = [&](Result<BlkReply> r, uint8_t want, const char* what) {
        ASSERT_TRUE(r.has_value()) << what << ": " << r.error();
        EXPECT_EQ(r->status, want) << what;
    };
    using frontend::blk_header;
    expect_status(blk.read(kSectors, 4096), frontend::kBlkSIoErr, "read at the capacity");
    expect_status(blk.read(kSectors - 8, 8192), frontend::kBlkSIoErr, "read across the end");
    expect_status(blk.read(~0ULL / 256, 4096), frontend::kBlkSIoErr, "sector*512 overflows");
    expect_status(blk.read(0, 1000), frontend::kBlkSUnsupp, "length not a sector multiple");
    expect_status(blk.read(1, 4096), frontend::kBlkSIoErr, "offset not block aligned");
    expect_status(blk.read(0, 512), frontend::kBlkSIoErr, "length not block aligned");
    expect_status(blk.raw({blk_header(99, 0)}, {1}), frontend::kBlkSUnsupp, "unknown type");
    expect_status(blk.discard(0, 8), frontend::kBlkSUnsupp, "discard not offered");
    expect_status(blk.write_zeroes(0, 8), frontend::kBlkSUnsupp, "write zeroes not offered");
    expect_status(blk.raw({std::vector<uint8_t>(8, 0)}, {1}), frontend::kBlkSUnsupp,
                  "short header");
    expect_status(
        blk.raw({blk_header(frontend::kBlkTIn, 0), std::vector<uint8_t>(512, 0)}, {4096, 1}),
        frontend::kBlkSIoErr, "IN with readable data");
    expect_status(blk.raw({blk_header(frontend::kBlkTFlush, 8)}, {1}), frontend::kBlkSIoErr,
                  "flush with a sector");
    expect_status(blk.raw({blk_header(frontend::kBlkTGetId, 0)}, {10, 1}), frontend::kBlkSIoErr,
                  "GET_ID with a short buffer");
    // No writable byte at all: the chain comes back with nothing written.
    auto ns = blk.raw({blk_header(frontend::kBlkTIn, 0)}, {});
    ASSERT_TRUE(ns.has_value()) << ns.error();
    EXPECT_EQ(ns->used_len, 0u);

    // Still serving, the right data.
    auto r = blk.read(8, 4096);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, frontend::kBlkSOk);
    EXPECT_EQ(r->data, std::vector<uint8_t>(4096, 0x33));
    EXPECT_EQ(stat("disk2", "malformed_out_of_range"), 3);
    EXPECT_EQ(stat("disk2", "malformed_misaligned"), 2);
    EXPECT_EQ(stat("disk2", "no_status"), 1);
    EXPECT_EQ(stat("disk2", "unsupp"), 5);
}

TEST_F(VdhostVirtioblk, TwoQueuesServeManyRequestsInFlight) {
    Device* d = connect(0, 2);
    ASSERT_NE(d, nullptr);
    BlkRequester q0(d->queue(0));
    BlkRequester q1(d->queue(1));
    constexpr int kN = 32;
    const uint64_t base = (2 << 20) / 512;
    // Writes on both queues at once: 32 in flight on each.
    for (int i = 0; i < kN; ++i) {
        for (int q = 0; q < 2; ++q) {
            BlkRequester& b = q == 0 ? q0 : q1;
            const uint64_t sector = base + static_cast<uint64_t>(2 * i + q) * 8;
            auto h = b.submit({frontend::blk_header(frontend::kBlkTOut, sector),
                               pattern(4096, static_cast<uint32_t>(2 * i + q))},
                              {1});
            ASSERT_TRUE(h.has_value()) << h.error();
        }
    }
    for (int q = 0; q < 2; ++q) {
        for (int i = 0; i < kN; ++i) {
            uint16_t id;
            auto r = (q == 0 ? q0 : q1).wait(&id);
            ASSERT_TRUE(r.has_value()) << r.error();
            EXPECT_EQ(r->status, frontend::kBlkSOk);
        }
    }
    for (int k = 0; k < 2 * kN; ++k) {
        EXPECT_EQ(host_bytes(img(0), (base + static_cast<uint64_t>(k) * 8) * 512, 4096),
                  pattern(4096, static_cast<uint32_t>(k)))
            << k;
    }
    // And read back through the other queue.
    for (int k = 0; k < 2 * kN; k += 7) {
        auto r = (k % 2 == 0 ? q1 : q0).read(base + static_cast<uint64_t>(k) * 8, 4096);
        ASSERT_TRUE(r.has_value());
        EXPECT_EQ(r->data, pattern(4096, static_cast<uint32_t>(k))) << k;
    }
}

/// A disk on a block device (a loop device with 4 KiB logical blocks, opened O_DIRECT), in
/// the default sandbox: its bind mounts are nodev, so this works only because the device is
/// opened before the sandbox is entered.
TEST(VdhostVirtioblkDevice, BlockDeviceBackedDiskInTheSandbox) {
    TempDir dir;
    const std::string img = dir.file("loop.img");
    make_image(img, 4 << 20, 0x44);
    testing::LoopDevice loop;
    const std::string dev = loop.attach(img, 4096);
    if (dev.empty()) {
        GTEST_SKIP() << "no loop device (needs root and losetup)";
    }
    const std::string sock = dir.file("blk.sock");
    const std::string ctl = dir.file("ctl.sock");
    const std::string yaml = "host:\n  poll_lcores: [1]\n  idle_poll_us: 100\n"
                             "  max_sleep_ms: 50\n  control_socket: " +
                             ctl +
                             "\ndevices:\n"
                             "  - name: ldisk\n    type: virtioblk\n    socket: " +
                             sock + "\n    config:\n      path: " + dev +
                             "\n      block_size: 4096\n      direct: true\n";
    VdhostProcess vdhost;
    ASSERT_TRUE(vdhost.start(dir, yaml, {sock, ctl})) << vdhost.log();
    GuestMemoryOptions mo;
    mo.size = 8 << 20;
    auto mem = GuestMemory::create(mo);
    ASSERT_TRUE(mem.has_value());
    DeviceOptions o;
    o.socket_path = sock;
    o.queue_size = 64;
    o.wanted_features = kFBlkSize | kFSegMax | kFFlush;
    auto d = Device::connect(**mem, o);
    ASSERT_TRUE(d.has_value()) << d.error();
    ASSERT_TRUE((*d)->start().has_value());
    auto cfg = (*d)->get_config(0, 24);
    ASSERT_TRUE(cfg.has_value());
    EXPECT_EQ(le32(*cfg, 20), 4096u);
    auto fallbacks = [&] {
        const std::string st = testing::vdhost_stats(ctl);
        const auto p = st.find("\"plugin\":");
        return p == std::string::npos ? -1 : testing::json_number(st, "buffered_fallbacks", p);
    };
    // Page-aligned guest buffers: straight O_DIRECT.
    BlkRequester::Options o4k;
    o4k.align = 4096;
    BlkRequester blk((*d)->queue(0), o4k);
    const auto data = pattern(16384, 5);
    auto w = blk.write(8, data); // 512-byte sectors: byte 4096
    ASSERT_TRUE(w.has_value()) << w.error();
    EXPECT_EQ(w->status, frontend::kBlkSOk);
    auto fl = blk.flush();
    ASSERT_TRUE(fl.has_value());
    EXPECT_EQ(fl->status, frontend::kBlkSOk);
    auto r = blk.read(8, 16384);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->data, data);
    EXPECT_EQ(fallbacks(), 0);
    // Buffers O_DIRECT refuses (64-byte aligned, 512-byte segments of 4 KiB blocks) go
    // through the page cache, and read back the same through either path.
    BlkRequester::Options odd;
    odd.align = 64;
    odd.max_segment = 512;
    BlkRequester blk_odd((*d)->queue(0), odd);
    const auto data2 = pattern(8192, 6);
    w = blk_odd.write(64, data2); // byte 32768
    ASSERT_TRUE(w.has_value()) << w.error();
    EXPECT_EQ(w->status, frontend::kBlkSOk);
    r = blk.read(64, 8192);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->data, data2);
    r = blk_odd.read(64, 8192);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->data, data2);
    EXPECT_EQ(fallbacks(), 2);
    fl = blk.flush();
    ASSERT_TRUE(fl.has_value());
    EXPECT_EQ(fl->status, frontend::kBlkSOk);
    // O_DIRECT wrote through to the image under the loop device.
    loop.detach();
    EXPECT_EQ(host_bytes(img, 4096, data.size()), data);
    EXPECT_EQ(host_bytes(img, 32768, data2.size()), data2);
    EXPECT_EQ(host_bytes(img, 0, 4096), std::vector<uint8_t>(4096, 0x44));
}

/// --check-config runs the plugin's checks: a bad key and a path that is neither a file
/// nor a block device are refused with file:line:column and the key.
TEST(VdhostVirtioblkConfig, CheckConfigNamesFileLineColumnAndKey) {
    TempDir dir;
    const std::string img = dir.file("disk.img");
    make_image(img, 1 << 20, 0);
    auto check = [&](const std::string& config, std::string* out) {
        const std::string path = dir.file("check.yaml");
        std::ofstream(path) << "devices:\n  - name: d0\n    type: virtioblk\n    socket: " +
                                   dir.file("d0.sock") + "\n    config:\n" + config;
        return testing::vdhost_check_config(path, out);
    };
    std::string out;
    EXPECT_EQ(check("      path: " + img + "\n      num_queues: 2\n", &out), 0) << out;
    out.clear();
    EXPECT_EQ(check("      path: " + img + "\n      block_size: 1000\n", &out), 1);
    EXPECT_NE(out.find(dir.file("check.yaml") +
                       ":7:19: config.block_size: expected a power of two, got 1000"),
              std::string::npos)
        << out;
    out.clear();
    EXPECT_EQ(check("      path: /dev/null\n", &out), 1);
    EXPECT_NE(out.find(dir.file("check.yaml") + ":6:13: config.path: /dev/null is a character "
                                                "device (expected a regular file or a block "
                                                "device)"),
              std::string::npos)
        << out;
}

} // namespace
} // namespace vdh

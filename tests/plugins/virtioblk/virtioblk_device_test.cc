// SPDX-License-Identifier: MIT
// Unit tests of the virtio-blk device class without a host: requests as the host hands
// them over (vdh_request with a pre-allocated context), completions through a fake
// vdh_host_api, the lcore's flush()/poll() called by the test. Covers what the integration
// test cannot provoke: a backing file that shrinks under the disk (IOERR, not a hang), a
// file system without ZERO_RANGE (tmpfs), the config space and SET_CONFIG refusal, and the
// queue count check at start.
#include "virtioblk_device.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "../../host/temp_dir.h"

namespace vdh::virtioblk {
namespace {

using testing::TempDir;

std::map<void*, int64_t> g_done; // token -> written

void fake_complete(void* token, int64_t written) {
    g_done[token] = written;
}
void fake_log(void*, int, const char*, const char*) {}

vdh_host_api make_host() {
    vdh_host_api h{};
    h.struct_size = sizeof(h);
    h.abi_major = VDH_ABI_MAJOR;
    h.abi_minor = VDH_ABI_MINOR;
    h.log = fake_log;
    h.complete = fake_complete;
    return h;
}

void put(std::vector<uint8_t>& v, uint64_t x, int bytes) {
    for (int i = 0; i < bytes; ++i) {
        v.push_back(static_cast<uint8_t>(x >> (8 * i)));
    }
}

/// One request's buffers, its vdh_request and its context.
struct Req {
    std::vector<uint8_t> hdr;
    std::vector<uint8_t> payload; ///< readable after the header (OUT data, segments)
    std::vector<uint8_t> data;    ///< writable before the status
    uint8_t status = 0xa5;
    struct iovec in[2];
    struct iovec out[2];
    vdh_request req{};
    std::unique_ptr<RequestCtx> ctx = std::make_unique<RequestCtx>();

    Req(uint32_t type, uint64_t sector, std::vector<uint8_t> pl, size_t data_len, uint16_t q = 0)
        : payload(std::move(pl)), data(data_len, 0xa5) {
        put(hdr, type, 4);
        put(hdr, 0, 4);
        put(hdr, sector, 8);
        uint32_t ni = 0;
        in[ni++] = {hdr.data(), hdr.size()};
        if (!payload.empty()) {
            in[ni++] = {payload.data(), payload.size()};
        }
        uint32_t no = 0;
        if (!data.empty()) {
            out[no++] = {data.data(), data.size()};
        }
        out[no++] = {&status, 1};
        req.in = in;
        req.n_in = ni;
        req.out = out;
        req.n_out = no;
        req.in_bytes = hdr.size() + payload.size();
        req.out_bytes = data.size() + 1;
        req.queue = q;
        req.ctx = ctx.get();
        req.token = this;
    }
};

std::vector<uint8_t> segment(uint64_t sector, uint32_t num, uint32_t flags) {
    std::vector<uint8_t> v;
    put(v, sector, 8);
    put(v, num, 4);
    put(v, flags, 4);
    return v;
}

class VirtioblkDeviceTest : public ::testing::Test {
  protected:
    void TearDown() override { g_done.clear(); }

    /// A disk on \p path (created with \p size bytes of 0x5a).
    std::unique_ptr<VirtioblkDevice> make(const std::string& path, uint64_t size,
                                          uint32_t num_queues = 1) {
        std::vector<uint8_t> fill(size, 0x5a);
        int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        EXPECT_GE(fd, 0);
        EXPECT_EQ(::write(fd, fill.data(), fill.size()), static_cast<ssize_t>(size));
        ::close(fd);
        BlkProfile p;
        p.path = path;
        p.num_queues = num_queues;
        p.serial = "unit";
        std::string err;
        auto b = open_backing(p, "unit.yaml", &err);
        EXPECT_TRUE(b.has_value()) << err;
        return std::make_unique<VirtioblkDevice>(&host_, "unit", p, std::move(*b));
    }

    int start(VirtioblkDevice& d, uint16_t nq) {
        std::vector<vdh_queue_info> qs;
        for (uint16_t i = 0; i < nq; ++i) {
            qs.push_back({i, 64, 0});
        }
        return d.start(0, qs.data(), nq);
    }

    /// Runs \p r through the device like the lcore does; returns the written count.
    int64_t run(VirtioblkDevice& d, Req& r) {
        g_done.erase(&r); // an earlier Req may have lived at the same address
        const int64_t rc = d.handle_request(&r.req);
        if (rc != VDH_ASYNC) {
            return rc;
        }
        d.flush(r.req.queue);
        const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (g_done.count(&r) == 0 && std::chrono::steady_clock::now() < end) {
            if (d.poll(r.req.queue) == 0) {
                std::this_thread::sleep_for(std::chrono::microseconds(50));
            }
        }
        auto it = g_done.find(&r);
        return it == g_done.end() ? -ETIMEDOUT : it->second;
    }

    vdh_host_api host_ = make_host();
    TempDir dir_;
};

TEST_F(VirtioblkDeviceTest, ReadWriteFlushAndGetId) {
    auto d = make(dir_.file("d.img"), 64 << 10);
    ASSERT_EQ(start(*d, 1), 0);
    std::vector<uint8_t> data(4096);
    for (size_t i = 0; i < data.size(); ++i) {
        data[i] = static_cast<uint8_t>(i * 7);
    }
    Req w(kTypeOut, 8, data, 0);
    EXPECT_EQ(run(*d, w), 1);
    EXPECT_EQ(w.status, kStatusOk);
    Req r(kTypeIn, 8, {}, 4096);
    EXPECT_EQ(run(*d, r), 4097);
    EXPECT_EQ(r.status, kStatusOk);
    EXPECT_EQ(r.data, data);
    Req f(kTypeFlush, 0, {}, 0);
    EXPECT_EQ(run(*d, f), 1);
    EXPECT_EQ(f.status, kStatusOk);
    Req id(kTypeGetId, 0, {}, 20);
    EXPECT_EQ(run(*d, id), 21); // at once, not async
    std::vector<uint8_t> want(20, 0);
    std::memcpy(want.data(), "unit", 4);
    EXPECT_EQ(id.data, want);
    const BlkStats s = d->stats();
    EXPECT_EQ(s.reads, 1u);
    EXPECT_EQ(s.writes, 1u);
    EXPECT_EQ(s.flushes, 1u);
    EXPECT_EQ(s.get_ids, 1u);
    EXPECT_EQ(s.read_bytes, 4096u);
    EXPECT_EQ(s.written_bytes, 4096u);
    // The write went inline (write_path inline: the test file's ext4 or tmpfs) or through
    // io_uring; the read and the flush through io_uring.
    EXPECT_EQ(s.inline_writes + s.uring_writes, 1u);
    EXPECT_EQ(s.uring_submitted, 2u + s.uring_writes);
}

TEST_F(VirtioblkDeviceTest, ShrunkBackingFileGivesIoErr) {
    const std::string path = dir_.file("d.img");
    auto d = make(path, 64 << 10);
    ASSERT_EQ(start(*d, 1), 0);
    ASSERT_EQ(::truncate(path.c_str(), 32 << 10), 0); // the host shrinks the file
    Req r(kTypeIn, 100, {}, 4096);                    // within the capacity, past the end
    EXPECT_EQ(run(*d, r), 4097);
    EXPECT_EQ(r.status, kStatusIoErr);
    EXPECT_EQ(d->stats().io_errors, 1u);
    Req ok(kTypeIn, 0, {}, 4096);
    EXPECT_EQ(run(*d, ok), 4097);
    EXPECT_EQ(ok.status, kStatusOk);
    EXPECT_EQ(ok.data, std::vector<uint8_t>(4096, 0x5a));
}

TEST_F(VirtioblkDeviceTest, WriteZeroesOnTmpfsFallsBackToAHole) {
    if (::access("/dev/shm", W_OK) != 0) {
        GTEST_SKIP() << "no /dev/shm";
    }
    const std::string path = "/dev/shm/vdh-blk-unit-" + std::to_string(::getpid()) + ".img";
    auto d = make(path, 64 << 10);
    ASSERT_EQ(start(*d, 1), 0);
    for (int i = 0; i < 2; ++i) { // the second one goes straight to PUNCH_HOLE
        Req z(kTypeWriteZeroes, 0, segment(8 + 8 * i, 8, 0), 0);
        EXPECT_EQ(run(*d, z), 1);
        EXPECT_EQ(z.status, kStatusOk) << i;
    }
    Req r(kTypeIn, 8, {}, 8192);
    EXPECT_EQ(run(*d, r), 8193);
    EXPECT_EQ(r.data, std::vector<uint8_t>(8192, 0));
    Req r2(kTypeIn, 24, {}, 512);
    EXPECT_EQ(run(*d, r2), 513);
    EXPECT_EQ(r2.data, std::vector<uint8_t>(512, 0x5a));
    EXPECT_EQ(d->stats().write_zeroes, 2u);
    ::unlink(path.c_str());
}

TEST_F(VirtioblkDeviceTest, MalformedRequestsAnswerAtOnce) {
    auto d = make(dir_.file("d.img"), 64 << 10);
    ASSERT_EQ(start(*d, 1), 0);
    Req range(kTypeIn, 128, {}, 512); // capacity is 128 sectors
    EXPECT_EQ(run(*d, range), 513);
    EXPECT_EQ(range.status, kStatusIoErr);
    Req unknown(77, 0, {}, 0);
    EXPECT_EQ(run(*d, unknown), 1);
    EXPECT_EQ(unknown.status, kStatusUnsupp);
    Req nostatus(kTypeIn, 0, {}, 0);
    nostatus.req.n_out = 0;
    nostatus.req.out_bytes = 0;
    EXPECT_EQ(d->handle_request(&nostatus.req), -EIO);
    const BlkStats s = d->stats();
    EXPECT_EQ(s.ioerr, 1u);
    EXPECT_EQ(s.unsupp, 1u);
    EXPECT_EQ(s.no_status, 1u);
    EXPECT_EQ(s.malformed[static_cast<size_t>(BlkError::OutOfRange)], 1u);
    EXPECT_EQ(s.uring_submitted, 0u);
    char json[2048];
    ASSERT_GT(d->stats_json(json, sizeof(json)), 0);
    EXPECT_NE(std::string(json).find("\"malformed_out_of_range\":1"), std::string::npos) << json;
    EXPECT_EQ(d->stats_json(json, 16), -ENOSPC);
}

TEST_F(VirtioblkDeviceTest, ConfigFeaturesQueuesAndSetConfig) {
    auto d = make(dir_.file("d.img"), 1 << 20, 2);
    uint8_t cfg[8];
    EXPECT_EQ(d->get_config(0, cfg, 8), static_cast<int>(kConfigSpaceSize));
    uint64_t cap;
    std::memcpy(&cap, cfg, 8);
    EXPECT_EQ(le64toh(cap), 2048u);
    EXPECT_EQ(d->get_features(), kFSegMax | kFBlkSize | kFFlush | kFDiscard | kFWriteZeroes | kFMq);
    const uint8_t wce = 1;
    EXPECT_EQ(d->set_config(32, &wce, 1), -EPERM);
    EXPECT_EQ(start(*d, 3), -EINVAL); // more queues than num_queues
    EXPECT_EQ(start(*d, 2), 0);
    EXPECT_GE(d->wake_fd(1), 0);
    EXPECT_EQ(d->wake_fd(2), -1);
    Req w(kTypeOut, 0, std::vector<uint8_t>(512, 1), 0, 1);
    EXPECT_EQ(run(*d, w), 1);
    EXPECT_EQ(w.status, kStatusOk);
    d->stop();
    d->disconnect();
    EXPECT_EQ(d->wake_fd(0), -1);
    // Kept across the disconnect (the write inline or through io_uring: see above).
    EXPECT_EQ(d->stats().uring_submitted + d->stats().inline_writes, 1u);
}

/// On the inline path, a small write that arrives while a FLUSH of its queue is on io_uring
/// waits for it (it neither joins io_uring nor runs before the FLUSH completes), then runs
/// inline; the data lands.
TEST_F(VirtioblkDeviceTest, WriteDuringAFlushWaitsThenRunsInline) {
    const std::string img = dir_.path() + "/d.img";
    auto d = make(img, 1 << 20);
    ASSERT_EQ(start(*d, 1), 0);
    char buf[2048];
    ASSERT_GT(d->stats_json(buf, sizeof(buf)), 0);
    if (std::string(buf).find("\"write_path\":\"inline\"") == std::string::npos) {
        GTEST_SKIP() << "the test directory's filesystem takes RWF_NOWAIT: " << buf;
    }
    Req f(kTypeFlush, 0, {}, 0);
    g_done.erase(&f);
    ASSERT_EQ(d->handle_request(&f.req), VDH_ASYNC);
    const std::vector<uint8_t> data(4096, 0x77);
    Req w(kTypeOut, 16, data, 0);
    g_done.erase(&w);
    EXPECT_EQ(d->handle_request(&w.req), VDH_ASYNC); // held, not written yet
    EXPECT_EQ(d->stats().inline_writes, 0u);
    EXPECT_EQ(d->stats().uring_submitted, 1u); // the FLUSH only
    d->flush(0);
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (g_done.count(&f) == 0 && std::chrono::steady_clock::now() < end) {
        if (d->poll(0) == 0) {
            std::this_thread::sleep_for(std::chrono::microseconds(50));
        }
    }
    ASSERT_EQ(g_done.count(&f), 1u);
    EXPECT_EQ(g_done[&f], 1);
    EXPECT_EQ(f.status, kStatusOk);
    ASSERT_EQ(g_done.count(&w), 1u); // completed when the FLUSH did
    EXPECT_EQ(g_done[&w], 1);
    EXPECT_EQ(w.status, kStatusOk);
    const BlkStats s = d->stats();
    EXPECT_EQ(s.inline_writes, 1u);
    EXPECT_EQ(s.uring_writes, 0u);
    EXPECT_EQ(s.uring_submitted, 1u);
    std::vector<uint8_t> got(4096);
    int fd = ::open(img.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    EXPECT_EQ(::pread(fd, got.data(), got.size(), 16 * 512), 4096);
    ::close(fd);
    EXPECT_EQ(got, data);
    // With nothing in flight, the next write runs inline at once.
    Req w2(kTypeOut, 64, data, 0);
    EXPECT_EQ(d->handle_request(&w2.req), 1);
    EXPECT_EQ(d->stats().inline_writes, 2u);
    d->stop();
    d->disconnect();
}

} // namespace
} // namespace vdh::virtioblk

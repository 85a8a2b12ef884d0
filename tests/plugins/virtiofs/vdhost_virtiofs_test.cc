// SPDX-License-Identifier: MIT
// Integration tests of the virtio-fs plugin through the real path: the vdhost binary with
// vdh-virtiofs.so sharing a temporary directory, driven by the FUSE client library
// (tools/fuse_client) the way a guest kernel drives virtio-fs: INIT, lookups, reads and
// writes through io_uring, READDIRPLUS, FORGET on hiprio, malformed requests, a second
// request queue on a second poll lcore, the client's non-blocking submit/poll core
// (many requests in flight, two threads on two queues) the load generator builds on, and
// what a guest's O_DIRECT does to the host fds with and without allow_direct_io.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "fuse_client/fuse_session.h"
#include "vdhost_share_fixture.h"

namespace vdh {
namespace {

using fuse_client::FuseSession;
using fuse_client::kRootNodeId;
using fuse_client::SessionOptions;
using testing::pattern;
using testing::plugin_stat;
using testing::read_host_file;
using testing::TempDir;
using testing::VdhostProcess;
using testing::write_host_file;

constexpr uint32_t kMiB = 1 << 20;

/// Number after "key": inside queue \p index's object of the stats JSON, or -1.
long queue_stat(const std::string& stats, int index, const std::string& key) {
    auto p = stats.find("{\"index\":" + std::to_string(index) + ",");
    if (p == std::string::npos) {
        return -1;
    }
    auto end = stats.find('}', p);
    auto k = stats.find("\"" + key + "\":", p);
    if (k == std::string::npos || k > end) {
        return -1;
    }
    return testing::json_number(stats, key, p);
}

class VdhostVirtiofs : public ::testing::Test {
protected:
    void SetUp() override {
        share_ = dir_.file("share");
        ASSERT_EQ(::mkdir(share_.c_str(), 0755), 0);
        sock_ = dir_.file("fs0.sock");
        ctl_ = dir_.file("ctl.sock");
        // Two poll lcores; queue q is served by lcore[q % 2]: hiprio and queue 2 on CPU 0,
        // queue 1 on CPU 1.
        const std::string yaml = testing::host_yaml("[0, 1]", ctl_) +
                                 testing::virtiofs_device_yaml("fs0", sock_, "[0, 1]", share_);
        ASSERT_TRUE(vdhost_.start(dir_, yaml, {sock_, ctl_})) << vdhost_.log();
    }

    void TearDown() override {
        session_.reset();
        if (HasFailure()) {
            // Already failing: attach the log to the report.
            ADD_FAILURE() << "vdhost log:\n" << vdhost_.log();
        }
    }

    /// Connects a session with 2 request queues of 1024 entries and sends INIT.
    FuseSession* connect(bool indirect = true) {
        SessionOptions o;
        o.socket_path = sock_;
        o.num_request_queues = 2;
        o.queue_size = 1024;
        o.indirect = indirect;
        o.memory_bytes = 64ULL << 20;
        auto s = FuseSession::connect(o);
        EXPECT_TRUE(s.has_value()) << "connect: " << (s ? 0 : s.error());
        if (!s) {
            return nullptr;
        }
        session_ = std::move(*s);
        return session_.get();
    }

    std::string stats() { return testing::vdhost_stats(ctl_); }

    TempDir dir_;
    VdhostProcess vdhost_;
    std::string share_;
    std::string sock_;
    std::string ctl_;
    std::unique_ptr<FuseSession> session_;
};

TEST_F(VdhostVirtiofs, InitNegotiatesMinorMaxPagesAndFlags) {
    FuseSession* s = connect();
    ASSERT_NE(s, nullptr);
    ASSERT_TRUE(s->initialized());
    const fuse_init_out& out = s->init_reply();
    EXPECT_EQ(out.major, 7u);
    EXPECT_EQ(out.minor, 38u);
    EXPECT_EQ(out.max_pages, 256u);
    EXPECT_EQ(out.max_write, 256u * 4096u);
    const uint64_t f = s->negotiated_flags();
    EXPECT_NE(f & FUSE_MAX_PAGES, 0u);
    EXPECT_NE(f & FUSE_INIT_EXT, 0u);
    EXPECT_NE(f & FUSE_DO_READDIRPLUS, 0u);
    EXPECT_NE(f & FUSE_ASYNC_READ, 0u);
    // Only what we offered, and not what the share profile keeps off (writeback: false).
    EXPECT_EQ(f & ~fuse_client::kDefaultInitFlags, 0u);
    EXPECT_EQ(f & FUSE_WRITEBACK_CACHE, 0u);
    EXPECT_EQ(s->max_io_bytes(), kMiB);

    // A second INIT on a live session (a guest that reset without unmounting) ends the old
    // session and negotiates a fresh one (issue 7, finding 5).
    auto again = s->init();
    ASSERT_TRUE(again.has_value()) << again.error();
    EXPECT_EQ(again->max_write, 256u * 4096u);

    std::string st = stats();
    EXPECT_NE(st.find("\"initialized\":true"), std::string::npos) << st;
    EXPECT_EQ(plugin_stat(st, "fuse_minor"), 38) << st;
}

TEST_F(VdhostVirtiofs, LookupGetattrAndReadHostFileThroughIoUring) {
    const auto data = pattern(kMiB + 123, 7);
    write_host_file(dir_.file("share/hello.bin"), data);
    struct stat hst;
    ASSERT_EQ(::stat(dir_.file("share/hello.bin").c_str(), &hst), 0);

    FuseSession* s = connect();
    ASSERT_NE(s, nullptr);
    auto e = s->lookup(kRootNodeId, "hello.bin");
    ASSERT_TRUE(e.has_value()) << e.error();
    EXPECT_NE(e->nodeid, 0u);
    EXPECT_NE(e->nodeid, kRootNodeId);
    EXPECT_EQ(e->attr.size, data.size());
    EXPECT_EQ(e->attr.ino, hst.st_ino);

    auto a = s->getattr(e->nodeid);
    ASSERT_TRUE(a.has_value()) << a.error();
    EXPECT_EQ(a->attr.size, data.size());
    EXPECT_TRUE(S_ISREG(a->attr.mode));
    EXPECT_EQ(a->attr.mode & 07777, hst.st_mode & 07777);

    auto missing = s->lookup(kRootNodeId, "no-such-file");
    ASSERT_FALSE(missing.has_value());
    EXPECT_EQ(missing.error(), ENOENT);

    auto o = s->open(e->nodeid, O_RDONLY);
    ASSERT_TRUE(o.has_value()) << o.error();

    std::vector<uint8_t> buf(4096);
    auto n = s->read(e->nodeid, o->fh, 0, buf);
    ASSERT_TRUE(n.has_value()) << n.error();
    ASSERT_EQ(*n, 4096u);
    EXPECT_EQ(0, std::memcmp(buf.data(), data.data(), 4096));

    n = s->read(e->nodeid, o->fh, 12345, buf);
    ASSERT_TRUE(n.has_value()) << n.error();
    ASSERT_EQ(*n, 4096u);
    EXPECT_EQ(0, std::memcmp(buf.data(), data.data() + 12345, 4096));

    std::vector<uint8_t> big(kMiB);
    n = s->read(e->nodeid, o->fh, 0, big);
    ASSERT_TRUE(n.has_value()) << n.error();
    ASSERT_EQ(*n, kMiB);
    EXPECT_TRUE(std::equal(big.begin(), big.end(), data.begin()));

    // Short at EOF.
    n = s->read(e->nodeid, o->fh, data.size() - 100, buf);
    ASSERT_TRUE(n.has_value()) << n.error();
    ASSERT_EQ(*n, 100u);
    EXPECT_EQ(0, std::memcmp(buf.data(), data.data() + data.size() - 100, 100));

    // More than max_pages in one request is refused on our side.
    std::vector<uint8_t> too_big(kMiB + 4096);
    EXPECT_EQ(s->read(e->nodeid, o->fh, 0, too_big).error(), EINVAL);

    EXPECT_TRUE(s->release(e->nodeid, o->fh).has_value());
    std::string st = stats();
    EXPECT_GT(plugin_stat(st, "uring_submitted"), 0) << st;
}

TEST_F(VdhostVirtiofs, OneMiBReadThroughDirectChains) {
    const auto data = pattern(kMiB, 99);
    write_host_file(dir_.file("share/direct.bin"), data);
    FuseSession* s = connect(/*indirect=*/false);
    ASSERT_NE(s, nullptr);
    auto e = s->lookup(kRootNodeId, "direct.bin");
    ASSERT_TRUE(e.has_value()) << e.error();
    auto o = s->open(e->nodeid, O_RDONLY);
    ASSERT_TRUE(o.has_value()) << o.error();
    std::vector<uint8_t> big(kMiB);
    auto n = s->read(e->nodeid, o->fh, 0, big);
    ASSERT_TRUE(n.has_value()) << n.error();
    ASSERT_EQ(*n, kMiB);
    EXPECT_TRUE(big == data);
    EXPECT_TRUE(s->release(e->nodeid, o->fh).has_value());
}

TEST_F(VdhostVirtiofs, CreateWriteReadBackAndHostSeesBytes) {
    FuseSession* s = connect();
    ASSERT_NE(s, nullptr);
    auto c = s->create(kRootNodeId, "new.txt", O_RDWR | O_CREAT, S_IFREG | 0640);
    ASSERT_TRUE(c.has_value()) << c.error();
    const uint64_t node = c->entry.nodeid;
    const uint64_t fh = c->open.fh;
    EXPECT_NE(node, 0u);
    EXPECT_TRUE(S_ISREG(c->entry.attr.mode));

    const auto data = pattern(200 * 1024 + 17, 3);
    auto w = s->write(node, fh, 0, data);
    ASSERT_TRUE(w.has_value()) << w.error();
    EXPECT_EQ(*w, data.size());
    const auto tail = pattern(kMiB, 11);
    w = s->write(node, fh, data.size(), tail);
    ASSERT_TRUE(w.has_value()) << w.error();
    EXPECT_EQ(*w, tail.size());
    EXPECT_TRUE(s->flush(node, fh).has_value());
    EXPECT_TRUE(s->fsync(node, fh).has_value());

    std::vector<uint8_t> back(data.size());
    auto n = s->read(node, fh, 0, back);
    ASSERT_TRUE(n.has_value()) << n.error();
    ASSERT_EQ(*n, data.size());
    EXPECT_TRUE(back == data);

    auto host = read_host_file(dir_.file("share/new.txt"));
    ASSERT_EQ(host.size(), data.size() + tail.size());
    EXPECT_TRUE(std::equal(data.begin(), data.end(), host.begin()));
    EXPECT_TRUE(std::equal(tail.begin(), tail.end(), host.begin() + data.size()));
    struct stat hst;
    ASSERT_EQ(::stat(dir_.file("share/new.txt").c_str(), &hst), 0);
    EXPECT_EQ(hst.st_mode & 0777, 0640u);

    // Truncate through SETATTR.
    auto a = s->setattr_size(node, 1000, &fh);
    ASSERT_TRUE(a.has_value()) << a.error();
    EXPECT_EQ(a->attr.size, 1000u);
    ASSERT_EQ(::stat(dir_.file("share/new.txt").c_str(), &hst), 0);
    EXPECT_EQ(hst.st_size, 1000);

    EXPECT_TRUE(s->release(node, fh).has_value());
    // Creating it again exclusively fails.
    auto dup = s->create(kRootNodeId, "new.txt", O_RDWR | O_CREAT | O_EXCL, S_IFREG | 0640);
    ASSERT_FALSE(dup.has_value());
    EXPECT_EQ(dup.error(), EEXIST);

    auto u = s->unlink(kRootNodeId, "new.txt");
    ASSERT_TRUE(u.has_value()) << u.error();
    EXPECT_NE(::access(dir_.file("share/new.txt").c_str(), F_OK), 0);
    EXPECT_EQ(s->lookup(kRootNodeId, "new.txt").error(), ENOENT);
    EXPECT_EQ(s->unlink(kRootNodeId, "new.txt").error(), ENOENT);
}

TEST_F(VdhostVirtiofs, ReaddirplusListsThousandEntriesEachOnce) {
    const std::string dir = dir_.file("share/big");
    ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
    std::map<std::string, size_t> want; // name -> size
    for (int i = 0; i < 1000; ++i) {
        char name[16];
        std::snprintf(name, sizeof(name), "f%04d", i);
        write_host_file(dir + "/" + name, pattern(static_cast<size_t>(i % 7), 1));
        want[name] = static_cast<size_t>(i % 7);
    }
    FuseSession* s = connect();
    ASSERT_NE(s, nullptr);
    auto d = s->lookup(kRootNodeId, "big");
    ASSERT_TRUE(d.has_value()) << d.error();
    EXPECT_TRUE(S_ISDIR(d->attr.mode));
    auto o = s->opendir(d->nodeid);
    ASSERT_TRUE(o.has_value()) << o.error();

    std::map<std::string, int> seen;
    uint64_t offset = 0;
    int batches = 0;
    for (;;) {
        // 4 KiB per call: about 25 entries, so the listing takes many calls and offsets.
        auto entries = s->readdirplus(d->nodeid, o->fh, offset, 4096);
        ASSERT_TRUE(entries.has_value()) << entries.error();
        if (entries->empty()) {
            break;
        }
        ASSERT_LT(++batches, 1000) << "listing does not end";
        for (const auto& e : *entries) {
            ++seen[e.name];
            if (e.name != "." && e.name != "..") {
                EXPECT_NE(e.entry.nodeid, 0u) << e.name;
                EXPECT_EQ(e.entry.attr.ino, e.ino) << e.name;
                auto it = want.find(e.name);
                if (it != want.end()) {
                    EXPECT_EQ(e.entry.attr.size, it->second) << e.name;
                    EXPECT_TRUE(S_ISREG(e.entry.attr.mode)) << e.name;
                }
            }
            offset = e.off;
        }
    }
    EXPECT_GT(batches, 10);
    for (const auto& [name, count] : seen) {
        EXPECT_EQ(count, 1) << name;
        if (name != "." && name != "..") {
            EXPECT_TRUE(want.count(name) == 1) << "unexpected entry " << name;
        }
    }
    for (const auto& [name, size] : want) {
        EXPECT_EQ(seen.count(name), 1u) << "missing " << name;
    }
    EXPECT_TRUE(s->releasedir(d->nodeid, o->fh).has_value());
}

TEST_F(VdhostVirtiofs, MkdirRmdirAndStatfs) {
    FuseSession* s = connect();
    ASSERT_NE(s, nullptr);
    auto m = s->mkdir(kRootNodeId, "sub", 0750);
    ASSERT_TRUE(m.has_value()) << m.error();
    EXPECT_TRUE(S_ISDIR(m->attr.mode));
    struct stat hst;
    ASSERT_EQ(::stat(dir_.file("share/sub").c_str(), &hst), 0);
    EXPECT_TRUE(S_ISDIR(hst.st_mode));
    EXPECT_EQ(hst.st_ino, m->attr.ino);
    EXPECT_EQ(s->mkdir(kRootNodeId, "sub", 0750).error(), EEXIST);

    // rmdir of a non-empty directory fails; empty succeeds.
    write_host_file(dir_.file("share/sub/x"), pattern(3, 0));
    EXPECT_EQ(s->rmdir(kRootNodeId, "sub").error(), ENOTEMPTY);
    ASSERT_EQ(::unlink(dir_.file("share/sub/x").c_str()), 0);
    auto r = s->rmdir(kRootNodeId, "sub");
    ASSERT_TRUE(r.has_value()) << r.error();
    EXPECT_NE(::stat(dir_.file("share/sub").c_str(), &hst), 0);
    EXPECT_EQ(s->rmdir(kRootNodeId, "sub").error(), ENOENT);

    auto st = s->statfs();
    ASSERT_TRUE(st.has_value()) << st.error();
    struct statvfs hv;
    ASSERT_EQ(::statvfs(share_.c_str(), &hv), 0);
    EXPECT_EQ(st->bsize, hv.f_bsize);
    EXPECT_EQ(st->blocks, hv.f_blocks);
    EXPECT_EQ(st->namelen, hv.f_namemax);
    EXPECT_GT(st->blocks, 0u);
}

TEST_F(VdhostVirtiofs, ForgetOnHiprioQueueDropsTheInode) {
    write_host_file(dir_.file("share/f"), pattern(10, 0));
    FuseSession* s = connect();
    ASSERT_NE(s, nullptr);
    auto e1 = s->lookup(kRootNodeId, "f");
    auto e2 = s->lookup(kRootNodeId, "f");
    ASSERT_TRUE(e1.has_value() && e2.has_value());
    ASSERT_EQ(e1->nodeid, e2->nodeid); // two lookups of one inode
    const uint64_t node = e1->nodeid;

    ASSERT_TRUE(s->forget(node, 1).has_value());
    auto a = s->getattr(node);
    ASSERT_TRUE(a.has_value()) << "one lookup is left: " << a.error();
    ASSERT_TRUE(s->forget(node, 1).has_value());
    auto gone = s->getattr(node);
    ASSERT_FALSE(gone.has_value());
    EXPECT_EQ(gone.error(), EBADF);

    std::string st = stats();
    EXPECT_EQ(queue_stat(st, 0, "requests"), 2) << st;
    EXPECT_EQ(queue_stat(st, 0, "cpu"), 0) << st;
}

TEST_F(VdhostVirtiofs, UnknownNodeidIsAnsweredWithEbadf) {
    FuseSession* s = connect();
    ASSERT_NE(s, nullptr);
    auto a = s->getattr(987654321);
    ASSERT_FALSE(a.has_value());
    EXPECT_EQ(a.error(), EBADF);
    // The raw reply: a bare header with -EBADF and our unique.
    fuse_getattr_in in{};
    auto r = s->call(FUSE_GETATTR, 987654321,
                     {reinterpret_cast<const uint8_t*>(&in), sizeof(in)}, 256);
    ASSERT_TRUE(r.has_value()) << r.error();
    EXPECT_EQ(r->used_len, 16u);
    EXPECT_EQ(r->header.len, 16u);
    EXPECT_EQ(r->header.error, -EBADF);
    EXPECT_NE(r->header.unique, 0u);
    EXPECT_TRUE(r->payload.empty());
    EXPECT_EQ(s->open(987654321, O_RDONLY).error(), EBADF);
}

TEST_F(VdhostVirtiofs, TruncatedRequestGetsErrorReplyOrNothing) {
    FuseSession* s = connect();
    ASSERT_NE(s, nullptr);
    // LOOKUP whose header claims 4 KiB more than the buffers hold.
    std::vector<uint8_t> req(sizeof(fuse_in_header) + 6);
    fuse_in_header h{};
    h.len = static_cast<uint32_t>(req.size() + 4096);
    h.opcode = FUSE_LOOKUP;
    h.unique = 0xabc0;
    h.nodeid = kRootNodeId;
    std::memcpy(req.data(), &h, sizeof(h));
    std::memcpy(req.data() + sizeof(h), "hello", 6);
    auto r = s->send_raw(1, req, 256);
    ASSERT_TRUE(r.has_value()) << r.error();
    if (r->used_len != 0) {
        ASSERT_EQ(r->used_len, 16u);
        EXPECT_EQ(r->header.len, 16u);
        EXPECT_EQ(r->header.error, -EINVAL);
        EXPECT_EQ(r->header.unique, 0xabc0u);
    }
    // Shorter than a header: nothing to answer.
    auto tiny = s->send_raw(1, std::vector<uint8_t>(20, 0), 256);
    ASSERT_TRUE(tiny.has_value()) << tiny.error();
    EXPECT_EQ(tiny->used_len, 0u);

    // The queue still works.
    auto st = s->statfs();
    EXPECT_TRUE(st.has_value()) << st.error();
    std::string j = stats();
    EXPECT_GE(plugin_stat(j, "malformed"), 2) << j;
    EXPECT_EQ(queue_stat(j, 1, "broken"), 0) << j;
}

TEST_F(VdhostVirtiofs, SecondRequestQueueIsServedBySecondLcore) {
    const auto data = pattern(64 * 1024, 5);
    write_host_file(dir_.file("share/q2.bin"), data);
    FuseSession* s = connect();
    ASSERT_NE(s, nullptr);
    ASSERT_EQ(s->num_queues(), 3);
    const long q1_before = queue_stat(stats(), 1, "requests");

    ASSERT_TRUE(s->set_call_queue(2).has_value());
    auto e = s->lookup(kRootNodeId, "q2.bin");
    ASSERT_TRUE(e.has_value()) << e.error();
    auto o = s->open(e->nodeid, O_RDONLY);
    ASSERT_TRUE(o.has_value()) << o.error();
    std::vector<uint8_t> buf(data.size());
    auto n = s->read(e->nodeid, o->fh, 0, buf);
    ASSERT_TRUE(n.has_value()) << n.error();
    ASSERT_EQ(*n, data.size());
    EXPECT_TRUE(buf == data);
    EXPECT_TRUE(s->release(e->nodeid, o->fh).has_value());

    std::string st = stats();
    EXPECT_EQ(queue_stat(st, 2, "requests"), 4) << st; // lookup, open, read, release
    EXPECT_EQ(queue_stat(st, 2, "cpu"), 0) << st;
    EXPECT_EQ(queue_stat(st, 1, "cpu"), 1) << st;
    EXPECT_EQ(queue_stat(st, 1, "requests"), q1_before) << st; // nothing went to queue 1
    EXPECT_GT(plugin_stat(st, "uring_submitted"), 0) << st;
}

TEST_F(VdhostVirtiofs, NonBlockingSubmitAndPollWithManyInFlight) {
    const auto data = pattern(256 * 1024, 21);
    write_host_file(dir_.file("share/qd.bin"), data);
    FuseSession* s = connect();
    ASSERT_NE(s, nullptr);
    auto e = s->lookup(kRootNodeId, "qd.bin");
    ASSERT_TRUE(e.has_value()) << e.error();
    auto o = s->open(e->nodeid, O_RDONLY);
    ASSERT_TRUE(o.has_value()) << o.error();

    // 32 reads of 8 KiB in flight at once on queue 1, each into its own request.
    constexpr int kDepth = 32;
    constexpr uint32_t kChunk = 8192;
    std::vector<fuse_client::FuseRequest*> reqs;
    for (int i = 0; i < kDepth; ++i) {
        auto r = s->alloc_request(128, 16 + kChunk);
        ASSERT_TRUE(r.has_value()) << r.error();
        reqs.push_back(*r);
    }
    for (int i = 0; i < kDepth; ++i) {
        fuse_read_in in{};
        in.fh = o->fh;
        in.offset = static_cast<uint64_t>(i) * kChunk;
        in.size = kChunk;
        reqs[i]->begin(FUSE_READ, e->nodeid);
        ASSERT_TRUE(reqs[i]->append(in));
        ASSERT_TRUE(s->submit(1, *reqs[i], 1000 + i, /*kick=*/false).has_value());
    }
    EXPECT_EQ(s->in_flight(1), static_cast<uint32_t>(kDepth));
    ASSERT_TRUE(s->kick(1).has_value());
    std::vector<fuse_client::Completion> done(8);
    int completed = 0;
    std::vector<int> hits(kDepth, 0);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (completed < kDepth && std::chrono::steady_clock::now() < deadline) {
        auto n = s->wait(1, done, std::chrono::milliseconds(500));
        if (!n) {
            continue;
        }
        for (size_t k = 0; k < *n; ++k) {
            ASSERT_NE(done[k].request, nullptr);
            const int i = static_cast<int>(done[k].cookie) - 1000;
            ASSERT_TRUE(i >= 0 && i < kDepth);
            ++hits[i];
            EXPECT_EQ(done[k].used_len, 16 + kChunk);
            EXPECT_EQ(done[k].request->reply_errno(), 0);
            auto p = done[k].request->out_payload();
            ASSERT_EQ(p.size(), kChunk);
            EXPECT_EQ(0, std::memcmp(p.data(), data.data() + i * kChunk, kChunk)) << i;
            ++completed;
        }
    }
    EXPECT_EQ(completed, kDepth);
    for (int i = 0; i < kDepth; ++i) {
        EXPECT_EQ(hits[i], 1) << i;
    }
    EXPECT_EQ(s->in_flight(1), 0u);
    EXPECT_EQ(s->unexpected_completions(), 0u);
    EXPECT_TRUE(s->release(e->nodeid, o->fh).has_value());
}

TEST_F(VdhostVirtiofs, TwoThreadsDriveTwoRequestQueuesConcurrently) {
    const auto data = pattern(128 * 1024, 77);
    write_host_file(dir_.file("share/mt.bin"), data);
    FuseSession* s = connect();
    ASSERT_NE(s, nullptr);
    auto e = s->lookup(kRootNodeId, "mt.bin");
    ASSERT_TRUE(e.has_value()) << e.error();
    auto o = s->open(e->nodeid, O_RDONLY);
    ASSERT_TRUE(o.has_value()) << o.error();

    // Each thread keeps 16 reads of 4 KiB in flight on its own queue until 400 are done;
    // the slots are made up front (alloc_request is the only call that allocates).
    constexpr int kDepth = 16;
    constexpr int kTotal = 400;
    constexpr uint32_t kChunk = 4096;
    const uint32_t nchunks = static_cast<uint32_t>(data.size() / kChunk);
    std::vector<fuse_client::FuseRequest*> slots[2];
    for (auto& v : slots) {
        for (int i = 0; i < kDepth; ++i) {
            auto r = s->alloc_request(128, 16 + kChunk);
            ASSERT_TRUE(r.has_value()) << r.error();
            v.push_back(*r);
        }
    }
    int ok_count[2] = {0, 0};
    int bad_count[2] = {0, 0};
    auto drive = [&](int t) {
        const uint16_t q = static_cast<uint16_t>(t + 1);
        uint64_t seq = 0;
        auto issue = [&](fuse_client::FuseRequest* r) {
            fuse_read_in in{};
            in.fh = o->fh;
            in.offset = (seq % nchunks) * kChunk;
            in.size = kChunk;
            r->begin(FUSE_READ, e->nodeid);
            r->append(in);
            if (!s->submit(q, *r, seq++, false).has_value()) {
                ++bad_count[t];
            }
        };
        for (auto* r : slots[t]) {
            issue(r);
        }
        (void)s->kick(q);
        fuse_client::Completion done[kDepth];
        int finished = 0;
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (finished < kTotal && std::chrono::steady_clock::now() < deadline) {
            auto n = s->wait(q, done, std::chrono::milliseconds(200));
            if (!n) {
                continue;
            }
            for (size_t k = 0; k < *n; ++k) {
                auto* r = done[k].request;
                const uint64_t off = (done[k].cookie % nchunks) * kChunk;
                auto p = r != nullptr ? r->out_payload() : std::span<const uint8_t>();
                if (r != nullptr && r->reply_errno() == 0 && p.size() == kChunk &&
                    std::memcmp(p.data(), data.data() + off, kChunk) == 0) {
                    ++ok_count[t];
                } else {
                    ++bad_count[t];
                }
                ++finished;
                if (r != nullptr && seq < kTotal) {
                    issue(r);
                }
            }
            (void)s->kick(q);
        }
        // Drain what is left so the session can be torn down cleanly.
        while (s->in_flight(q) > 0 && std::chrono::steady_clock::now() < deadline) {
            (void)s->wait(q, done, std::chrono::milliseconds(200));
        }
    };
    std::thread t1(drive, 0);
    std::thread t2(drive, 1);
    t1.join();
    t2.join();
    EXPECT_EQ(ok_count[0], kTotal);
    EXPECT_EQ(ok_count[1], kTotal);
    EXPECT_EQ(bad_count[0] + bad_count[1], 0);
    EXPECT_EQ(s->unexpected_completions(), 0u);
    std::string st = stats();
    EXPECT_GE(queue_stat(st, 1, "requests"), kTotal) << st;
    EXPECT_GE(queue_stat(st, 2, "requests"), kTotal) << st;
    EXPECT_TRUE(s->release(e->nodeid, o->fh).has_value());
}

/// O_DIRECT bits of vdhost's open (not O_PATH) fds of the host file \p path, from
/// /proc/PID/fdinfo.
std::vector<int> host_open_fd_direct_bits(pid_t pid, const std::string& path) {
    struct stat want {};
    EXPECT_EQ(::stat(path.c_str(), &want), 0) << path;
    std::vector<int> bits;
    const std::string proc = "/proc/" + std::to_string(pid);
    for (int fd = 0; fd < 4096; ++fd) {
        struct stat st {};
        if (::stat((proc + "/fd/" + std::to_string(fd)).c_str(), &st) != 0 ||
            st.st_dev != want.st_dev || st.st_ino != want.st_ino) {
            continue;
        }
        std::ifstream info(proc + "/fdinfo/" + std::to_string(fd));
        std::string key;
        int flags = -1;
        while (info >> key) {
            if (key == "flags:") {
                std::string octal;
                info >> octal;
                flags = static_cast<int>(std::stoul(octal, nullptr, 8));
                break;
            }
        }
        if (flags >= 0 && (flags & O_PATH) == 0) {
            bits.push_back(flags & O_DIRECT);
        }
    }
    return bits;
}

// allow_direct_io through the real path: two devices of one vdhost, one with the default
// (false) and one with allow_direct_io: true. A guest's OPEN and CREATE with O_DIRECT give
// host fds without O_DIRECT on the first and with it on the second; a 3-byte WRITE at offset
// 5 through that handle (what writeback of a partial last page sends when a guest mmaps a
// file it opened O_DIRECT) succeeds on the first and, on a block file system, fails with
// EINVAL on the second: the guest's "msync: Invalid argument" of issue 10.
TEST(VdhostVirtiofsDirectIo, GuestODirectReachesHostFdsOnlyWithAllowDirectIo) {
    TempDir dir;
    const std::string ctl = dir.file("ctl.sock");
    std::string yaml = testing::host_yaml("[0]", ctl);
    for (int i = 0; i < 2; ++i) {
        const std::string share = dir.file("share" + std::to_string(i));
        ASSERT_EQ(::mkdir(share.c_str(), 0755), 0);
        write_host_file(share + "/f", std::vector<uint8_t>(8192, 'a'));
        yaml += testing::virtiofs_device_yaml(
            "fs" + std::to_string(i), dir.file("fs" + std::to_string(i) + ".sock"), "0", share,
            std::string("      fd_limit: 1024\n") +
                (i == 1 ? "      allow_direct_io: true\n" : ""));
    }
    VdhostProcess vdhost;
    ASSERT_TRUE(vdhost.start(dir, yaml, {dir.file("fs0.sock"), dir.file("fs1.sock"), ctl}))
        << vdhost.log();
    struct statfs sfs {};
    ASSERT_EQ(::statfs(dir.file("share1").c_str(), &sfs), 0);
    for (int i = 0; i < 2; ++i) {
        const bool allow = i == 1;
        SCOPED_TRACE(allow ? "allow_direct_io: true" : "allow_direct_io: false");
        const std::string share = dir.file("share" + std::to_string(i));
        SessionOptions o;
        o.socket_path = dir.file("fs" + std::to_string(i) + ".sock");
        o.memory_bytes = 16ULL << 20;
        auto s = FuseSession::connect(o);
        ASSERT_TRUE(s.has_value()) << "connect: " << s.error();
        auto e = (*s)->lookup(kRootNodeId, "f");
        ASSERT_TRUE(e.has_value()) << e.error();
        auto op = (*s)->open(e->nodeid, O_RDWR | O_DIRECT);
        if (!op && op.error() == EINVAL) {
            GTEST_SKIP() << "no O_DIRECT on " << share;
        }
        ASSERT_TRUE(op.has_value()) << op.error();
        auto c = (*s)->create(kRootNodeId, "n", O_RDWR | O_CREAT | O_DIRECT, S_IFREG | 0644);
        ASSERT_TRUE(c.has_value()) << c.error();
        const int want = allow ? O_DIRECT : 0;
        for (const char* name : {"f", "n"}) {
            auto bits = host_open_fd_direct_bits(vdhost.pid(), share + "/" + name);
            ASSERT_EQ(bits.size(), 1u) << name;
            EXPECT_EQ(bits[0], want) << name;
        }
        const std::vector<uint8_t> xyz = {'x', 'y', 'z'};
        for (auto [node, fh] :
             {std::pair{e->nodeid, op->fh}, std::pair{c->entry.nodeid, c->open.fh}}) {
            auto w = (*s)->write(node, fh, 5, xyz);
            if (!allow) {
                ASSERT_TRUE(w.has_value()) << w.error();
                EXPECT_EQ(*w, 3u);
            } else if (sfs.f_type != TMPFS_MAGIC) {
                ASSERT_FALSE(w.has_value());
                EXPECT_EQ(w.error(), EINVAL);
            }
            EXPECT_TRUE((*s)->release(node, fh).has_value());
        }
        if (!allow) {
            auto host = read_host_file(share + "/f");
            EXPECT_EQ(std::string(host.begin(), host.begin() + 10), "aaaaaxyzaa");
            EXPECT_EQ(read_host_file(share + "/n").size(), 8u);
        }
    }
    EXPECT_EQ(vdhost.stop(), 0) << vdhost.log();
}

} // namespace
} // namespace vdh

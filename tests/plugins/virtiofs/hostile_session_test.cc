// SPDX-License-Identifier: MIT
// Integration tests of the virtio-fs plugin against a hostile or resetting guest, through
// the real path: the vdhost binary with two virtio-fs devices (a hostile one and a victim
// that keeps serving), driven by the FUSE client library (tools/fuse_client) over the
// vhost-user frontend. Covers sizes beyond what INIT negotiated, non-forget requests on
// hiprio, a new INIT on a live session (guest reset without disconnect), INITs racing
// requests on another queue, and a frontend disconnect with requests in flight on io_uring
// and on the blocking pool; after each session ends, vdhost's fd count is back to baseline.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "fuse_client/fuse_session.h"
#include "vdhost_share_fixture.h"

namespace vdh {
namespace {

using namespace std::chrono_literals;
using fuse_client::Completion;
using fuse_client::FuseRequest;
using fuse_client::FuseSession;
using fuse_client::kRootNodeId;
using fuse_client::SessionOptions;
using testing::as_bytes;
using testing::pattern;
using testing::TempDir;
using testing::VdhostProcess;
using testing::write_host_file;

constexpr uint32_t kMiB = 1 << 20;

/// A whole request: fuse_in_header (len, unique filled in) + \p args.
std::vector<uint8_t> raw_request(uint32_t opcode, uint64_t nodeid, uint64_t unique,
                                 std::span<const uint8_t> args) {
    fuse_in_header h{};
    h.len = static_cast<uint32_t>(sizeof(h) + args.size());
    h.opcode = opcode;
    h.unique = unique;
    h.nodeid = nodeid;
    h.uid = ::getuid();
    h.gid = ::getgid();
    h.pid = static_cast<uint32_t>(::getpid());
    std::vector<uint8_t> v(sizeof(h) + args.size());
    std::memcpy(v.data(), &h, sizeof(h));
    if (!args.empty()) {
        std::memcpy(v.data() + sizeof(h), args.data(), args.size());
    }
    return v;
}

fuse_lk_in lock_in(uint64_t fh, uint64_t owner, uint32_t type) {
    fuse_lk_in in{};
    in.fh = fh;
    in.owner = owner;
    in.lk.start = 0;
    in.lk.end = UINT64_MAX;
    in.lk.type = type;
    in.lk.pid = 1;
    return in;
}

class HostileSession : public ::testing::Test {
protected:
    void SetUp() override {
        share0_ = dir_.file("share0");
        share1_ = dir_.file("share1");
        ASSERT_EQ(::mkdir(share0_.c_str(), 0755), 0);
        ASSERT_EQ(::mkdir(share1_.c_str(), 0755), 0);
        sock0_ = dir_.file("fs0.sock");
        sock1_ = dir_.file("fs1.sock");
        ctl_ = dir_.file("ctl.sock");
        // fs0 is the hostile guest's share, fs1 a victim served by the same poll lcores.
        const std::string limit = "      fd_limit: 4096\n";
        const std::string yaml =
            testing::host_yaml("[0, 1]", ctl_) +
            testing::virtiofs_device_yaml("fs0", sock0_, "[0, 1]", share0_, limit) +
            testing::virtiofs_device_yaml("fs1", sock1_, "[0, 1]", share1_, limit);
        ASSERT_TRUE(vdhost_.start(dir_, yaml, {sock0_, sock1_, ctl_})) << vdhost_.log();
    }

    void TearDown() override {
        if (HasFailure()) {
            ADD_FAILURE() << "vdhost log:\n" << vdhost_.log();
        }
    }

    /// \p segment_size 0: one descriptor per part (a big WRITE stays a short chain).
    std::unique_ptr<FuseSession> connect(const std::string& sock, uint32_t segment_size = 4096) {
        SessionOptions o;
        o.segment_size = segment_size;
        o.socket_path = sock;
        o.num_request_queues = 2;
        o.queue_size = 256;
        o.memory_bytes = 64ULL << 20;
        auto s = FuseSession::connect(o);
        EXPECT_TRUE(s.has_value()) << "connect: " << (s ? 0 : s.error());
        return s ? std::move(*s) : nullptr;
    }

    int fds() { return testing::fd_count(vdhost_.pid()); }

    /// Warms up what lives as long as the connection (each of \p queues' io_uring, by a
    /// READ of the share's file "a" through it), then resets to a clean session (INIT),
    /// back on queue 1: the fd count after this is the session's baseline.
    void warm_up_and_reset(FuseSession& s, std::initializer_list<uint16_t> queues) {
        auto e = s.lookup(kRootNodeId, "a");
        ASSERT_TRUE(e.has_value());
        auto o = s.open(e->nodeid, O_RDONLY);
        ASSERT_TRUE(o.has_value());
        std::vector<uint8_t> buf(100);
        for (uint16_t q : queues) {
            ASSERT_TRUE(s.set_call_queue(q).has_value());
            ASSERT_TRUE(s.read(e->nodeid, o->fh, 0, buf).has_value());
        }
        ASSERT_TRUE(s.set_call_queue(1).has_value());
        auto again = s.init();
        ASSERT_TRUE(again.has_value()) << again.error();
    }

    /// Waits until vdhost's fd count is \p want (teardown finishes asynchronously); returns
    /// the last count seen.
    int wait_fds(int want, std::chrono::milliseconds limit = 10s) {
        auto end = std::chrono::steady_clock::now() + limit;
        int n = fds();
        while (n != want && std::chrono::steady_clock::now() < end) {
            std::this_thread::sleep_for(20ms);
            n = fds();
        }
        return n;
    }

    /// Waits until the stats show \p device in \p state.
    bool wait_state(const std::string& device, const std::string& state,
                    std::chrono::milliseconds limit = 10s) {
        const std::string want =
            "\"name\":\"" + device + "\",\"type\":\"virtiofs\",\"socket\":\"";
        auto end = std::chrono::steady_clock::now() + limit;
        while (std::chrono::steady_clock::now() < end) {
            std::string st = stats();
            auto p = st.find(want);
            if (p != std::string::npos) {
                auto q = st.find("\"state\":\"", p);
                if (q != std::string::npos &&
                    st.compare(q + 9, state.size() + 1, state + "\"") == 0) {
                    return true;
                }
            }
            std::this_thread::sleep_for(20ms);
        }
        return false;
    }

    std::string stats() { return testing::vdhost_stats(ctl_); }

    /// Number after "key": in device \p device's plugin stats, or -1.
    long plugin_stat(const std::string& device, const std::string& key) {
        return testing::plugin_stat(stats(), key, device);
    }

    /// Submits \p r on \p queue and waits for its completion (other requests of the queue
    /// may complete meanwhile: they are ignored). False on timeout.
    bool run_async(FuseSession& s, uint16_t queue, FuseRequest& r, uint64_t cookie) {
        if (!s.submit(queue, r, cookie).has_value()) {
            return false;
        }
        std::vector<Completion> done(16);
        auto end = std::chrono::steady_clock::now() + 10s;
        while (std::chrono::steady_clock::now() < end) {
            auto n = s.wait(queue, done, 200ms);
            if (!n) {
                continue;
            }
            for (size_t i = 0; i < *n; ++i) {
                if (done[i].cookie == cookie) {
                    return true;
                }
            }
        }
        return false;
    }

    TempDir dir_;
    VdhostProcess vdhost_;
    std::string share0_, share1_, sock0_, sock1_, ctl_;
};

TEST_F(HostileSession, SizesBeyondInitAndWorkOnHiprioAreRefused) {
    const auto data = pattern(8 * kMiB, 3);
    write_host_file(share0_ + "/f", data);
    write_host_file(share0_ + "/dst", {});
    auto s = connect(sock0_, /*segment_size=*/0);
    ASSERT_NE(s, nullptr);
    ASSERT_EQ(s->init_reply().max_write, kMiB);
    auto e = s->lookup(kRootNodeId, "f");
    ASSERT_TRUE(e.has_value()) << e.error();
    auto o = s->open(e->nodeid, O_RDWR);
    ASSERT_TRUE(o.has_value()) << o.error();

    // WRITE of twice max_write, every payload byte present.
    auto w = s->alloc_request(2 * kMiB + 256, 64);
    ASSERT_TRUE(w.has_value());
    fuse_write_in win{};
    win.fh = o->fh;
    win.size = 2 * kMiB;
    (*w)->begin(FUSE_WRITE, e->nodeid);
    ASSERT_TRUE((*w)->append(win));
    uint8_t* payload = (*w)->append_data(2 * kMiB);
    ASSERT_NE(payload, nullptr);
    std::memset(payload, 'X', 2 * kMiB);
    ASSERT_TRUE(run_async(*s, 1, **w, 1));
    EXPECT_EQ((*w)->reply_errno(), EINVAL);
    EXPECT_EQ((*w)->used_len(), 16u);
    EXPECT_EQ(testing::read_file(share0_ + "/f").substr(0, 16),
              std::string(data.begin(), data.begin() + 16)); // nothing was written

    // READ of twice the negotiated maximum into a buffer that would hold it.
    auto r = s->alloc_request(256, 2 * kMiB + 16);
    ASSERT_TRUE(r.has_value());
    fuse_read_in rin{};
    rin.fh = o->fh;
    rin.size = 2 * kMiB;
    (*r)->begin(FUSE_READ, e->nodeid);
    ASSERT_TRUE((*r)->append(rin));
    ASSERT_TRUE(run_async(*s, 1, **r, 2));
    EXPECT_EQ((*r)->reply_errno(), EINVAL);
    // max_write itself is served.
    std::vector<uint8_t> buf(kMiB);
    auto n = s->read(e->nodeid, o->fh, 0, buf);
    ASSERT_TRUE(n.has_value()) << n.error();
    EXPECT_EQ(*n, kMiB);

    // A LOOKUP on hiprio gets EINVAL; a FORGET there still works.
    fuse_getattr_in gin{};
    auto hp = s->send_raw(0, raw_request(FUSE_GETATTR, kRootNodeId, 77, as_bytes(gin)), 256);
    ASSERT_TRUE(hp.has_value()) << hp.error();
    EXPECT_EQ(hp->header.error, -EINVAL);
    EXPECT_EQ(hp->header.unique, 77u);

    // COPY_FILE_RANGE of 8 MiB moves one bounded chunk (4 MiB); the caller loops.
    auto d = s->lookup(kRootNodeId, "dst");
    ASSERT_TRUE(d.has_value());
    auto od = s->open(d->nodeid, O_RDWR);
    ASSERT_TRUE(od.has_value());
    fuse_copy_file_range_in cin{};
    cin.fh_in = o->fh;
    cin.nodeid_out = d->nodeid;
    cin.fh_out = od->fh;
    cin.len = 8 * kMiB;
    auto c = s->call(FUSE_COPY_FILE_RANGE, e->nodeid, as_bytes(cin), 64);
    ASSERT_TRUE(c.has_value()) << c.error();
    ASSERT_EQ(c->header.error, 0);
    fuse_write_out wout{};
    ASSERT_GE(c->payload.size(), sizeof(wout));
    std::memcpy(&wout, c->payload.data(), sizeof(wout));
    EXPECT_EQ(wout.size, 4 * kMiB);
    struct stat st {};
    ASSERT_EQ(::stat((share0_ + "/dst").c_str(), &st), 0);
    EXPECT_EQ(st.st_size, 4 * kMiB);

    EXPECT_EQ(plugin_stat("fs0", "oversize"), 2);
    EXPECT_EQ(plugin_stat("fs0", "hiprio_rejected"), 1);
    EXPECT_TRUE(s->release(e->nodeid, o->fh).has_value());
}

TEST_F(HostileSession, InitAgainWithoutDestroyStartsAFreshSession) {
    write_host_file(share0_ + "/a", pattern(10000, 1));
    auto s = connect(sock0_);
    ASSERT_NE(s, nullptr);
    ASSERT_NO_FATAL_FAILURE(warm_up_and_reset(*s, {1}));
    const int baseline = fds();

    // A guest session that holds inodes, open files and a lock.
    auto a = s->lookup(kRootNodeId, "a");
    ASSERT_TRUE(a.has_value());
    auto oa = s->open(a->nodeid, O_RDONLY);
    ASSERT_TRUE(oa.has_value());
    auto cb = s->create(kRootNodeId, "b", O_RDWR, 0644);
    ASSERT_TRUE(cb.has_value()) << cb.error();
    const auto bdata = pattern(5000, 9);
    auto wn = s->write(cb->entry.nodeid, cb->open.fh, 0, bdata);
    ASSERT_TRUE(wn.has_value()) << wn.error();
    auto dir = s->mkdir(kRootNodeId, "d", 0755);
    ASSERT_TRUE(dir.has_value());
    auto od = s->opendir(dir->nodeid);
    ASSERT_TRUE(od.has_value());
    auto lk = s->call(FUSE_SETLK, cb->entry.nodeid, as_bytes(lock_in(cb->open.fh, 5, F_WRLCK)),
                      16);
    ASSERT_TRUE(lk.has_value());
    ASSERT_EQ(lk->header.error, 0);
    EXPECT_GT(fds(), baseline);

    // The guest resets: the new driver sends INIT on the same, never-destroyed session.
    auto init = s->init();
    ASSERT_TRUE(init.has_value()) << init.error();
    EXPECT_EQ(init->minor, 38u);
    EXPECT_EQ(plugin_stat("fs0", "session_resets"), 2);

    // Everything of the old session is gone: its node ids and handles are EBADF.
    EXPECT_EQ(s->getattr(a->nodeid).error(), EBADF);
    EXPECT_EQ(s->getattr(dir->nodeid).error(), EBADF);
    std::vector<uint8_t> buf(100);
    EXPECT_EQ(s->read(a->nodeid, oa->fh, 0, buf).error(), EBADF);
    EXPECT_EQ(s->write(cb->entry.nodeid, cb->open.fh, 0, bdata).error(), EBADF);
    EXPECT_EQ(wait_fds(baseline), baseline);

    // The share works in the new session; the old lock went with the old session.
    auto a2 = s->lookup(kRootNodeId, "a");
    ASSERT_TRUE(a2.has_value()) << a2.error();
    auto b2 = s->lookup(kRootNodeId, "b");
    ASSERT_TRUE(b2.has_value()) << b2.error();
    EXPECT_EQ(b2->attr.size, bdata.size());
    auto ob = s->open(b2->nodeid, O_RDWR);
    ASSERT_TRUE(ob.has_value());
    std::vector<uint8_t> back(bdata.size());
    auto rn = s->read(b2->nodeid, ob->fh, 0, back);
    ASSERT_TRUE(rn.has_value()) << rn.error();
    EXPECT_EQ(back, bdata);
    auto lk2 = s->call(FUSE_SETLK, b2->nodeid, as_bytes(lock_in(ob->fh, 6, F_WRLCK)), 16);
    ASSERT_TRUE(lk2.has_value());
    EXPECT_EQ(lk2->header.error, 0);
    EXPECT_TRUE(s->release(b2->nodeid, ob->fh).has_value());
}

TEST_F(HostileSession, InitsRacingRequestsOnAnotherQueueLeaveNothingBehind) {
    write_host_file(share0_ + "/a", pattern(8192, 4));
    auto s = connect(sock0_);
    ASSERT_NE(s, nullptr);
    ASSERT_NO_FATAL_FAILURE(warm_up_and_reset(*s, {1, 2}));
    const int baseline = fds();

    std::atomic<bool> stop{false};
    std::atomic<int> inits_ok{0};
    std::atomic<int> reads_ok{0};
    // Queue 1 (one lcore): INIT after INIT.
    std::thread initer([&] {
        fuse_init_in in{};
        in.major = 7;
        in.minor = 38;
        in.max_readahead = 65536;
        in.flags = FUSE_MAX_PAGES | FUSE_ASYNC_READ | FUSE_POSIX_LOCKS;
        for (uint64_t u = 1; !stop.load(); ++u) {
            auto r = s->send_raw(1, raw_request(FUSE_INIT, 0, u * 2, as_bytes(in)), 256);
            if (r && r->header.error == 0) {
                inits_ok.fetch_add(1);
            }
        }
    });
    // Queue 2 (the other lcore): lookup, open, read, release, as fast as it goes.
    std::thread worker([&] {
        for (uint64_t u = 1; !stop.load(); u += 4) {
            std::vector<uint8_t> name = {'a', 0};
            auto l = s->send_raw(2, raw_request(FUSE_LOOKUP, kRootNodeId, u * 2 + 1, name), 256);
            if (!l || l->header.error != 0 || l->payload.size() < sizeof(fuse_entry_out)) {
                continue;
            }
            fuse_entry_out e{};
            std::memcpy(&e, l->payload.data(), sizeof(e));
            fuse_open_in oin{};
            oin.flags = O_RDONLY;
            auto o = s->send_raw(2, raw_request(FUSE_OPEN, e.nodeid, u * 2 + 3, as_bytes(oin)),
                                 256);
            if (!o || o->header.error != 0 || o->payload.size() < sizeof(fuse_open_out)) {
                continue;
            }
            fuse_open_out oo{};
            std::memcpy(&oo, o->payload.data(), sizeof(oo));
            fuse_read_in rin{};
            rin.fh = oo.fh;
            rin.size = 4096;
            auto r = s->send_raw(2, raw_request(FUSE_READ, e.nodeid, u * 2 + 5, as_bytes(rin)),
                                 4096 + 16);
            if (r && r->header.error == 0 && r->payload.size() == 4096) {
                reads_ok.fetch_add(1);
            }
            fuse_release_in rel{};
            rel.fh = oo.fh;
            (void)s->send_raw(2, raw_request(FUSE_RELEASE, e.nodeid, u * 2 + 7, as_bytes(rel)),
                              256);
        }
    });
    std::this_thread::sleep_for(2s);
    stop.store(true);
    initer.join();
    worker.join();
    EXPECT_GT(inits_ok.load(), 10);
    EXPECT_GT(reads_ok.load(), 0);

    // vdhost survived, the device still serves, and a final INIT leaves nothing behind.
    ASSERT_EQ(::kill(vdhost_.pid(), 0), 0);
    ASSERT_TRUE(s->set_call_queue(1).has_value());
    auto fin = s->init();
    ASSERT_TRUE(fin.has_value()) << fin.error();
    EXPECT_EQ(wait_fds(baseline), baseline);
    auto e = s->lookup(kRootNodeId, "a");
    ASSERT_TRUE(e.has_value()) << e.error();
    EXPECT_EQ(e->attr.size, 8192u);
}

TEST_F(HostileSession, DisconnectWithRequestsInFlightOnIoUringAndThePool) {
    write_host_file(share0_ + "/big", pattern(16 * kMiB, 5));
    write_host_file(share0_ + "/lk", pattern(100, 6));
    write_host_file(share1_ + "/v", pattern(100, 7));
    const int baseline = fds();

    // The victim: another guest on the same lcores, served all along.
    auto v = connect(sock1_);
    ASSERT_NE(v, nullptr);
    auto ve = v->lookup(kRootNodeId, "v");
    ASSERT_TRUE(ve.has_value());
    const int victim_only = fds();
    std::atomic<bool> stop{false};
    std::atomic<int> victim_errors{0};
    std::atomic<int> victim_calls{0};
    std::atomic<long> victim_worst_us{0};
    std::thread victim([&] {
        while (!stop.load()) {
            auto t0 = std::chrono::steady_clock::now();
            auto a = v->getattr(ve->nodeid);
            auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::steady_clock::now() - t0)
                          .count();
            if (us > victim_worst_us.load()) {
                victim_worst_us.store(us);
            }
            victim_calls.fetch_add(1);
            if (!a) {
                victim_errors.fetch_add(1);
            }
            std::this_thread::sleep_for(1ms);
        }
    });

    for (int round = 0; round < 2; ++round) {
        SCOPED_TRACE(round);
        auto s = connect(sock0_);
        ASSERT_NE(s, nullptr);
        auto lk = s->lookup(kRootNodeId, "lk");
        ASSERT_TRUE(lk.has_value());
        auto h1 = s->open(lk->nodeid, O_RDWR);
        auto h2 = s->open(lk->nodeid, O_RDWR);
        ASSERT_TRUE(h1.has_value() && h2.has_value());
        // Owner 1 holds the lock; owner 2 waits for it on the blocking pool.
        auto held = s->call(FUSE_SETLK, lk->nodeid, as_bytes(lock_in(h1->fh, 1, F_WRLCK)), 16);
        ASSERT_TRUE(held.has_value());
        ASSERT_EQ(held->header.error, 0);
        auto wait_req = s->alloc_request(256, 64);
        ASSERT_TRUE(wait_req.has_value());
        (*wait_req)->begin(FUSE_SETLKW, lk->nodeid);
        ASSERT_TRUE((*wait_req)->append(lock_in(h2->fh, 2, F_WRLCK)));
        ASSERT_TRUE(s->submit(2, **wait_req, 99).has_value());

        // Reads on io_uring, many in flight at once.
        auto big = s->lookup(kRootNodeId, "big");
        ASSERT_TRUE(big.has_value());
        auto ob = s->open(big->nodeid, O_RDONLY);
        ASSERT_TRUE(ob.has_value());
        std::vector<FuseRequest*> reads;
        for (int i = 0; i < 16; ++i) {
            auto r = s->alloc_request(256, kMiB + 16);
            ASSERT_TRUE(r.has_value());
            fuse_read_in in{};
            in.fh = ob->fh;
            in.offset = static_cast<uint64_t>(i) * kMiB;
            in.size = kMiB;
            (*r)->begin(FUSE_READ, big->nodeid);
            ASSERT_TRUE((*r)->append(in));
            ASSERT_TRUE(s->submit(1, **r, 1000 + i, /*kick=*/false).has_value());
            reads.push_back(*r);
        }
        ASSERT_TRUE(s->kick(1).has_value());
        std::this_thread::sleep_for(200ms);
        std::vector<Completion> none(4);
        EXPECT_EQ(s->poll(2, none), 0u); // the SETLKW is still waiting
        EXPECT_EQ(s->in_flight(2), 1u);

        // The frontend goes away with all that in flight.
        auto t0 = std::chrono::steady_clock::now();
        s.reset();
        ASSERT_TRUE(wait_state("fs0", "idle")) << stats();
        EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
        // Everything of fs0's session and connection is gone again.
        EXPECT_EQ(wait_fds(victim_only), victim_only);
        EXPECT_EQ(plugin_stat("fs0", "pool_threads"), 0);
    }

    // The device takes a new frontend; the old session's lock is gone.
    {
        auto s = connect(sock0_);
        ASSERT_NE(s, nullptr);
        auto lk = s->lookup(kRootNodeId, "lk");
        ASSERT_TRUE(lk.has_value()) << lk.error();
        auto h = s->open(lk->nodeid, O_RDWR);
        ASSERT_TRUE(h.has_value());
        auto got = s->call(FUSE_SETLK, lk->nodeid, as_bytes(lock_in(h->fh, 3, F_WRLCK)), 16);
        ASSERT_TRUE(got.has_value());
        EXPECT_EQ(got->header.error, 0);
    }
    ASSERT_TRUE(wait_state("fs0", "idle")) << stats();
    EXPECT_EQ(wait_fds(victim_only), victim_only);

    stop.store(true);
    victim.join();
    EXPECT_EQ(victim_errors.load(), 0);
    EXPECT_GT(victim_calls.load(), 10);
    EXPECT_LT(victim_worst_us.load(), 2000000) << "the victim waited for the hostile device";
    v.reset();
    ASSERT_TRUE(wait_state("fs1", "idle")) << stats();
    // Both frontends gone: vdhost holds what it held before anyone connected.
    EXPECT_EQ(wait_fds(baseline), baseline);
    EXPECT_EQ(plugin_stat("fs0", "pool_threads"), 0);
}

} // namespace
} // namespace vdh

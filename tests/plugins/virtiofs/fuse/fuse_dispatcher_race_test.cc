// SPDX-License-Identifier: MIT
// FuseDispatcher with the real passthrough backend under a hostile guest's timing: one
// thread (queue 1) sends INIT after INIT, each ending the session, while another (queue 2)
// looks up, opens, READs through an engine and RELEASEs at once, and a third thread (the
// "kernel") performs each read on the fd it was given only later. No read may find its fd
// closed (or reused), nothing may be used after free (build with ASan to check), and a
// final INIT leaves the process with the fds it had before the guest started.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "fuse/fuse_dispatcher.h"
#include "fuse_test_util.h"
#include "passthrough_fs.h"

namespace vdh::virtiofs {
namespace {

using namespace std::chrono_literals;
using test::Chain;
using test::Msg;

int open_fds() {
    int n = 0;
    DIR* d = ::opendir("/proc/self/fd");
    while (dirent* e = ::readdir(d)) {
        n += e->d_name[0] != '.' ? 1 : 0;
    }
    ::closedir(d);
    return n - 1; // the DIR's own fd
}

/// Takes READs and hands them to the "kernel" thread.
class KernelEngine : public IoEngine {
public:
    struct Sub {
        int fd;
        const iovec* iov;
        int n;
        uint64_t off;
        void* ctx;
    };
    bool readv(int fd, const iovec* iov, int n, uint64_t off, void* ctx) override {
        std::lock_guard<std::mutex> g(mu);
        q.push_back({fd, iov, n, off, ctx});
        cv.notify_one();
        return true;
    }
    bool writev(int, const iovec*, int, uint64_t, void*) override { return false; }
    bool fsync(int, bool, void*) override { return false; }
    bool fallocate(int, int, uint64_t, uint64_t, void*) override { return false; }
    bool run_blocking(void (*)(void*), void*) override { return false; }

    std::mutex mu;
    std::condition_variable cv;
    std::deque<Sub> q;
};

void mark_done(void* token, int64_t /*written*/) {
    static_cast<std::atomic<bool>*>(token)->store(true, std::memory_order_release);
}

/// What a 7.38 guest offering async reads sends.
fuse_init_in init_in() {
    return test::init_in(7, 38, FUSE_MAX_PAGES | FUSE_ASYNC_READ, 0, 0);
}

/// The reply's error (0 = ok) from a chain's out bytes.
int32_t reply_error(const Chain& ch) {
    fuse_out_header h{};
    test::Bytes b = ch.out(sizeof(h));
    std::memcpy(&h, b.data(), sizeof(h));
    return h.error;
}

TEST(FuseDispatcherRace, InitsRacingIoAndReleaseOnOtherQueues) {
    char tmpl[] = "/tmp/vdh_race_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    const std::string dir = tmpl;
    ASSERT_EQ(::chmod(tmpl, 0755), 0); // the guest's uid (1000) looks up in it
    {
        std::string data(8192, 'r');
        int fd = ::open((dir + "/f").c_str(), O_CREAT | O_WRONLY, 0644);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(::write(fd, data.data(), data.size()), 8192);
        ::close(fd);
    }
    passthrough::PassthroughOptions o;
    o.shared_dir = dir;
    auto created = passthrough::PassthroughFs::create(o);
    ASSERT_TRUE(created.has_value()) << created.error();
    std::unique_ptr<passthrough::PassthroughFs> fs = std::move(*created);

    FuseDispatcherConfig cfg;
    cfg.done = &mark_done;
    cfg.num_queues = 3;
    FuseDispatcher disp(*fs, cfg);
    KernelEngine engine;
    {
        FuseRequestCtx ctx{};
        Chain ch(Msg(FUSE_INIT, 0).add(init_in()).build(), {4096});
        ASSERT_EQ(disp.handle(ch.req(), &ctx), 80);
    }
    const int baseline = open_fds();

    std::atomic<bool> stop{false};
    std::atomic<bool> guest_done{false}; ///< the guest thread submits nothing more
    std::atomic<int> inits{0}, reads{0}, bad_fd{0};
    std::thread initer([&] {
        FuseRequestCtx ctx{};
        while (!stop.load()) {
            Chain ch(Msg(FUSE_INIT, 0).add(init_in()).build(), {4096}, {}, 1);
            if (disp.handle(ch.req(), &ctx) == 80 && reply_error(ch) == 0) {
                inits.fetch_add(1);
            }
        }
    });
    std::thread kernel([&] {
        for (;;) {
            KernelEngine::Sub s;
            {
                std::unique_lock<std::mutex> lk(engine.mu);
                engine.cv.wait_for(lk, 10ms, [&] { return !engine.q.empty(); });
                if (engine.q.empty()) {
                    if (guest_done.load()) {
                        return;
                    }
                    continue;
                }
                s = engine.q.front();
                engine.q.pop_front();
            }
            std::this_thread::sleep_for(200us); // RELEASE and INIT run meanwhile
            ssize_t n = ::preadv(s.fd, s.iov, s.n, static_cast<off_t>(s.off));
            if (n < 0 && errno == EBADF) {
                bad_fd.fetch_add(1);
            }
            FuseDispatcher::complete(s.ctx, n < 0 ? -errno : n);
        }
    });
    std::thread guest([&] {
        FuseRequestCtx ctx{};
        FuseRequestCtx io_ctx{};
        while (!stop.load()) {
            Chain l(Msg(FUSE_LOOKUP, FUSE_ROOT_ID).name("f").build(), {4096}, {}, 2);
            if (disp.handle(l.req(), &ctx) <= 16 || reply_error(l) != 0) {
                continue;
            }
            fuse_entry_out e{};
            std::memcpy(&e, l.out(16 + sizeof(e)).data() + 16, sizeof(e));
            fuse_open_in oin{};
            oin.flags = O_RDONLY;
            Chain op(Msg(FUSE_OPEN, e.nodeid).add(oin).build(), {4096}, {}, 2);
            if (disp.handle(op.req(), &ctx) <= 16 || reply_error(op) != 0) {
                continue;
            }
            fuse_open_out oo{};
            std::memcpy(&oo, op.out(16 + sizeof(oo)).data() + 16, sizeof(oo));
            fuse_read_in rin{};
            rin.fh = oo.fh;
            rin.size = 4096;
            std::atomic<bool> done{false};
            Chain rd(Msg(FUSE_READ, e.nodeid).add(rin).build(), {16, 4096}, {}, 2);
            rd.mutable_req().token = &done;
            const int64_t r = disp.handle(rd.req(), &io_ctx, &engine);
            fuse_release_in rel{};
            rel.fh = oo.fh;
            Chain re(Msg(FUSE_RELEASE, e.nodeid).add(rel).build(), {4096}, {}, 2);
            disp.handle(re.req(), &ctx); // the fd must survive this until the read is reaped
            if (r == VDH_ASYNC) {
                while (!done.load(std::memory_order_acquire)) {
                    std::this_thread::yield();
                }
                if (reply_error(rd) == 0) {
                    reads.fetch_add(1);
                }
            }
        }
    });
    std::this_thread::sleep_for(1500ms);
    stop.store(true);
    guest.join();
    guest_done.store(true);
    initer.join();
    kernel.join();
    EXPECT_GT(inits.load(), 10);
    EXPECT_GT(reads.load(), 10);
    EXPECT_EQ(bad_fd.load(), 0) << "an in-flight read found its fd closed";

    FuseRequestCtx ctx{};
    Chain fin(Msg(FUSE_INIT, 0).add(init_in()).build(), {4096});
    ASSERT_EQ(disp.handle(fin.req(), &ctx), 80);
    EXPECT_EQ(open_fds(), baseline);
    std::string cmd = "rm -rf '" + dir + "'";
    EXPECT_EQ(std::system(cmd.c_str()), 0);
}

} // namespace
} // namespace vdh::virtiofs

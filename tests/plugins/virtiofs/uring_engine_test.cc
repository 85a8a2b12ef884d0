// SPDX-License-Identifier: MIT
// Tests of UringEngine with a real io_uring: READ through the dispatcher completes into the
// guest buffers; on device stop, a request that cannot finish (a read from an empty pipe)
// is left alone for the grace period and then cancelled (-ECANCELED reply), so teardown
// never waits on it; resume() forgets the cancel; blocking calls go to the pool.
#include "uring_engine.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "fuse/fuse_dispatcher.h"
#include "fuse/fuse_test_util.h"
#include "vdh/unique_fd.h"

namespace vdh::virtiofs {
namespace {

using namespace std::chrono_literals;
using test::Chain;
using test::Completions;
using test::FakeFs;
using test::kUnique;
using test::Msg;
using test::read_in;
using test::reply;

class UringEngineTest : public ::testing::Test {
protected:
    void SetUp() override {
        Completions::list().clear();
        cfg.done = &Completions::done;
        disp = std::make_unique<FuseDispatcher>(fs, cfg);
        const fuse_init_in in = test::init_in(7, 38, FUSE_MAX_PAGES | FUSE_ASYNC_READ, 0, 0);
        Chain ch(Msg(FUSE_INIT, 0).add(in).build(), {4096});
        ASSERT_GT(disp->handle(ch.req(), &ctx), 0);
        int fds[2];
        ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
        pipe_r_ = UniqueFd(fds[0]);
        pipe_w_ = UniqueFd(fds[1]);
        ASSERT_TRUE(engine.init());
    }

    /// Polls the engine until \p n completions arrived or \p limit passed.
    bool poll_until(size_t n, std::chrono::milliseconds limit) {
        auto end = std::chrono::steady_clock::now() + limit;
        while (Completions::list().size() < n && std::chrono::steady_clock::now() < end) {
            engine.poll();
            std::this_thread::sleep_for(1ms);
        }
        return Completions::list().size() >= n;
    }

    FakeFs fs;
    FuseDispatcherConfig cfg;
    std::unique_ptr<FuseDispatcher> disp;
    FuseRequestCtx ctx{};
    UringEngine engine{8, 0, nullptr};
    UniqueFd pipe_r_; ///< what the engine reads
    UniqueFd pipe_w_;
};

TEST_F(UringEngineTest, ReadCompletesIntoGuestBuffers) {
    ASSERT_EQ(::write(pipe_w_.get(), "hello", 5), 5);
    fs.io_fd_value = pipe_r_.get();
    Chain ch(Msg(FUSE_READ).add(read_in(1, 0, 5)).build(), {16, 5});
    ASSERT_EQ(disp->handle(ch.req(), &ctx, &engine), VDH_ASYNC);
    ASSERT_TRUE(poll_until(1, 5000ms));
    EXPECT_EQ(Completions::list()[0].written, 21);
    EXPECT_EQ(ch.out(21), reply(kUnique, 0, test::str_bytes("hello")));
    EXPECT_EQ(engine.inflight(), 0u);
}

TEST_F(UringEngineTest, StopCancelsWhatIsStillInFlightAfterTheGracePeriod) {
    fs.io_fd_value = pipe_r_.get(); // nothing is ever written: the read cannot finish
    std::weak_ptr<const void> file = fs.io_keep;
    Chain ch(Msg(FUSE_READ).add(read_in(1, 0, 64)).build(), {4096});
    ASSERT_EQ(disp->handle(ch.req(), &ctx, &engine), VDH_ASYNC);
    EXPECT_FALSE(poll_until(1, 50ms));
    EXPECT_EQ(file.use_count(), 2); // the request holds the open file

    const auto t0 = std::chrono::steady_clock::now();
    engine.request_cancel();
    // Within the grace period nothing is cancelled.
    EXPECT_FALSE(poll_until(1, UringEngine::kGraceForCancel / 2));
    EXPECT_EQ(engine.cancels_sent(), 0u);
    ASSERT_TRUE(poll_until(1, 5000ms));
    EXPECT_GE(std::chrono::steady_clock::now() - t0, UringEngine::kGraceForCancel);
    EXPECT_EQ(engine.cancels_sent(), 1u);
    EXPECT_EQ(Completions::list()[0].written, 16);
    EXPECT_EQ(ch.out(16), reply(kUnique, -ECANCELED));
    EXPECT_EQ(engine.inflight(), 0u);
    EXPECT_EQ(file.use_count(), 1); // let go with the completion
    // The cancel's own completion is reaped too, and does not count as a request.
    for (int i = 0; i < 100; ++i) {
        engine.poll();
    }
    EXPECT_EQ(Completions::list().size(), 1u);

    // After resume() (device start) requests are served normally again.
    engine.resume();
    FuseRequestCtx ctx2{};
    Chain ch2(Msg(FUSE_READ).add(read_in(1, 0, 3)).build(), {4096});
    ASSERT_EQ(disp->handle(ch2.req(), &ctx2, &engine), VDH_ASYNC);
    std::this_thread::sleep_for(2 * UringEngine::kGraceForCancel);
    EXPECT_FALSE(poll_until(2, 20ms));
    EXPECT_EQ(engine.cancels_sent(), 1u);
    ASSERT_EQ(::write(pipe_w_.get(), "abc", 3), 3);
    ASSERT_TRUE(poll_until(2, 5000ms));
    EXPECT_EQ(ch2.out(19), reply(kUnique, 0, test::str_bytes("abc")));
}

TEST_F(UringEngineTest, BlockingCallsGoToThePoolOrAreRefused) {
    Chain ch(Msg(FUSE_SYNCFS).add(fuse_syncfs_in{0}).build(), {16});
    // No pool: refused, answered EAGAIN, never run here.
    EXPECT_EQ(disp->handle(ch.req(), &ctx, &engine), 16);
    EXPECT_EQ(ch.out(16), reply(kUnique, -EAGAIN));
    EXPECT_EQ(fs.count("syncfs"), 0u);

    BlockingPool pool(1, nullptr, nullptr);
    ASSERT_TRUE(pool.start(4));
    UringEngine with_pool(8, 0, &pool);
    ASSERT_TRUE(with_pool.init());
    Chain ch2(Msg(FUSE_SYNCFS).add(fuse_syncfs_in{0}).build(), {16});
    ASSERT_EQ(disp->handle(ch2.req(), &ctx, &with_pool), VDH_ASYNC);
    pool.drain();
    ASSERT_EQ(Completions::list().size(), 1u);
    EXPECT_EQ(ch2.out(16), reply(kUnique, 0));
    EXPECT_EQ(fs.count("syncfs"), 1u);
}

} // namespace
} // namespace vdh::virtiofs

// SPDX-License-Identifier: MIT
// Tests of host/src/stream_server.cc: a request in pieces, the oldest client making room
// when every slot is taken, a client that sends too much, posted work and the tick, and
// accepting paused (not spinning) while the process is out of fds.
#include "stream_server.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "socket_io.h"
#include "temp_dir.h"
#include "unix_address.h"

namespace vdh {
namespace {

using namespace std::chrono_literals;

class StreamServerTest : public ::testing::Test {
  protected:
    /// Serves "ping\n" with "pong\n" (anything else is waited for).
    void start(StreamServer::Limits limits = {}) {
        path_ = dir_.file("s.sock");
        sockaddr_un a;
        ASSERT_TRUE(unix_address(path_, &a));
        UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
        ASSERT_EQ(bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
        ASSERT_EQ(listen(fd.get(), 256), 0);
        std::string err;
        ASSERT_TRUE(server_.start(std::move(fd), limits,
                                  [](const std::string& in) -> std::optional<std::string> {
                                      if (in == "ping\n") {
                                          return std::string("pong\n");
                                      }
                                      return std::nullopt;
                                  },
                                  &err))
            << err;
    }
    UniqueFd connect_client() {
        sockaddr_un a;
        unix_address(path_, &a);
        UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        EXPECT_EQ(connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
        return fd;
    }
    static std::string read_all(int fd) { return testing::read_until_closed(fd); }

    testing::TempDir dir_;
    std::string path_;
    StreamServer server_;
};

TEST_F(StreamServerTest, ARequestInPiecesGetsOneReplyThenTheClose) {
    start();
    UniqueFd c = connect_client();
    ASSERT_EQ(write(c.get(), "pi", 2), 2);
    std::this_thread::sleep_for(50ms);
    ASSERT_EQ(write(c.get(), "ng\n", 3), 3);
    EXPECT_EQ(read_all(c.get()), "pong\n");
}

TEST_F(StreamServerTest, WhenEverySlotIsTakenTheOldestClientMakesRoom) {
    StreamServer::Limits l;
    l.max_clients = 4;
    start(l);
    std::vector<UniqueFd> idle;
    for (int i = 0; i < 10; ++i) {
        idle.push_back(connect_client());
        ASSERT_EQ(write(idle.back().get(), "pi", 2), 2); // never finished
    }
    auto t0 = std::chrono::steady_clock::now();
    UniqueFd c = connect_client();
    ASSERT_EQ(write(c.get(), "ping\n", 5), 5);
    EXPECT_EQ(read_all(c.get()), "pong\n");
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
    EXPECT_EQ(read_all(idle[0].get()), ""); // the oldest was dropped without a reply
}

TEST_F(StreamServerTest, AClientThatSendsTooMuchIsDropped) {
    StreamServer::Limits l;
    l.max_request = 1000;
    start(l);
    UniqueFd c = connect_client();
    std::string junk(4000, 'x');
    (void)!write(c.get(), junk.data(), junk.size());
    EXPECT_EQ(read_all(c.get()), "");
}

TEST_F(StreamServerTest, PostedWorkAndTheTickRunOnTheServerThread) {
    std::atomic<int> ticks{0};
    std::atomic<std::thread::id> tick_thread{};
    server_.set_tick(
        [&] {
            tick_thread = std::this_thread::get_id();
            ++ticks;
        },
        20);
    start();
    std::atomic<bool> posted{false};
    std::atomic<std::thread::id> post_thread{};
    server_.post([&] {
        post_thread = std::this_thread::get_id();
        posted = true;
    });
    for (int i = 0; i < 100 && (!posted || ticks < 3); ++i) {
        std::this_thread::sleep_for(10ms);
    }
    EXPECT_TRUE(posted);
    EXPECT_GE(ticks.load(), 3);
    EXPECT_EQ(post_thread.load(), tick_thread.load());
    EXPECT_NE(post_thread.load(), std::this_thread::get_id());
}

TEST_F(StreamServerTest, OutOfFdsPausesAcceptingInsteadOfSpinning) {
    start();
    // The client's socket is made first; then the (shared) fd table is filled up to a low
    // soft limit, so the server's accept() fails with EMFILE while the connection waits.
    UniqueFd waiting(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    struct rlimit saved {};
    ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
    int next = 0;
    {
        UniqueFd probe(dup(0));
        next = probe.get();
    }
    struct rlimit low = saved;
    low.rlim_cur = static_cast<rlim_t>(next + 8);
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
    std::vector<UniqueFd> fill;
    for (UniqueFd f(dup(0)); f; f = UniqueFd(dup(0))) {
        fill.push_back(std::move(f));
    }
    sockaddr_un a;
    unix_address(path_, &a);
    ASSERT_EQ(connect(waiting.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    ASSERT_EQ(write(waiting.get(), "ping\n", 5), 5);
    clock_t cpu0 = clock();
    std::this_thread::sleep_for(300ms);
    double cpu_s = static_cast<double>(clock() - cpu0) / CLOCKS_PER_SEC;
    fill.clear();
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
    EXPECT_LT(cpu_s, 0.15) << "the server spun on a listener it could not accept from";
    EXPECT_EQ(read_all(waiting.get()), "pong\n"); // served once fds are free again
}

} // namespace
} // namespace vdh

// SPDX-License-Identifier: MIT
// Tests of a plugin queue's io_uring setup (host/plugin_support/poll_ring.cc, vdh/poll_ring.h):
// the ring size clamp, the wake eventfd's flags, the worker CPU set, and a real ring set up
// on a thread pinned to one CPU, whose completions signal the eventfd and whose io-wq workers
// run off that CPU.
#include "vdh/poll_ring.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace vdh {
namespace {

TEST(PollRingTest, ClampsEntries) {
    EXPECT_EQ(clamp_ring_entries(0), 8u);
    EXPECT_EQ(clamp_ring_entries(7), 8u);
    EXPECT_EQ(clamp_ring_entries(8), 8u);
    EXPECT_EQ(clamp_ring_entries(100), 100u);
    EXPECT_EQ(clamp_ring_entries(4096), 4096u);
    EXPECT_EQ(clamp_ring_entries(4097), 4096u);
}

TEST(PollRingTest, EventfdIsNonBlockingAndCloseOnExec) {
    auto e = make_ring_eventfd();
    ASSERT_TRUE(e);
    EXPECT_NE(fcntl(e->get(), F_GETFL) & O_NONBLOCK, 0);
    EXPECT_NE(fcntl(e->get(), F_GETFD) & FD_CLOEXEC, 0);
    eventfd_t v = 0;
    EXPECT_NE(eventfd_read(e->get(), &v), 0); // nothing signalled: would block
}

TEST(PollRingTest, WorkerCpusAreAllOnlineButThePollCpu) {
    const long n = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t mask = iowq_cpus_except(0);
    EXPECT_FALSE(CPU_ISSET(0, &mask));
    EXPECT_EQ(CPU_COUNT(&mask), n - 1);
    for (long c = 1; c < n; ++c) {
        EXPECT_TRUE(CPU_ISSET(c, &mask)) << c;
    }
    // A poll CPU beyond the online ones leaves every online CPU to the workers.
    cpu_set_t all = iowq_cpus_except(static_cast<uint32_t>(n));
    EXPECT_EQ(CPU_COUNT(&all), n);
}

/// Thread ids of this process's io-wq workers (comm "iou-wrk-<tid>").
std::vector<pid_t> iowq_workers() {
    std::vector<pid_t> out;
    DIR* d = opendir("/proc/self/task");
    if (d == nullptr) {
        return out;
    }
    while (dirent* ent = readdir(d)) {
        const std::string comm_path = std::string("/proc/self/task/") + ent->d_name + "/comm";
        auto fd = UniqueFd::from_syscall(open(comm_path.c_str(), O_RDONLY | O_CLOEXEC));
        if (!fd) {
            continue;
        }
        char buf[32] = {};
        ssize_t r = read(fd->get(), buf, sizeof(buf) - 1);
        if (r > 0 && std::string(buf).rfind("iou-wrk", 0) == 0) {
            out.push_back(static_cast<pid_t>(std::atoi(ent->d_name)));
        }
    }
    closedir(d);
    return out;
}

TEST(PollRingTest, RingOnPinnedThreadSignalsEventfdAndMovesWorkersOff) {
    if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
        GTEST_SKIP() << "needs two online CPUs";
    }
    auto e = make_ring_eventfd();
    ASSERT_TRUE(e);
    bool ok = false;
    int res = -1;
    std::vector<pid_t> workers;
    std::vector<bool> worker_on_cpu0;
    // The ring is set up on a thread pinned to CPU 0, as a DPDK lcore is.
    std::thread lcore([&] {
        cpu_set_t zero;
        CPU_ZERO(&zero);
        CPU_SET(0, &zero);
        if (pthread_setaffinity_np(pthread_self(), sizeof(zero), &zero) != 0) {
            return;
        }
        struct io_uring ring {};
        if (!init_poll_ring(&ring, clamp_ring_entries(0), e->get(), 0)) {
            return;
        }
        ok = true;
        // IOSQE_ASYNC punts the NOP to an io-wq worker, which the kernel creates now.
        struct io_uring_sqe* sqe = io_uring_get_sqe(&ring);
        io_uring_prep_nop(sqe);
        sqe->flags |= IOSQE_ASYNC;
        io_uring_submit(&ring);
        struct io_uring_cqe* cqe = nullptr;
        if (io_uring_wait_cqe(&ring, &cqe) == 0) {
            res = cqe->res;
            io_uring_cqe_seen(&ring, cqe);
        }
        workers = iowq_workers();
        for (pid_t t : workers) {
            cpu_set_t m;
            CPU_ZERO(&m);
            worker_on_cpu0.push_back(sched_getaffinity(t, sizeof(m), &m) != 0 || CPU_ISSET(0, &m));
        }
        io_uring_queue_exit(&ring);
    });
    lcore.join();
    ASSERT_TRUE(ok);
    EXPECT_EQ(res, 0);
    eventfd_t v = 0;
    ASSERT_EQ(eventfd_read(e->get(), &v), 0) << "the completion did not signal the eventfd";
    EXPECT_GE(v, 1u);
    ASSERT_FALSE(workers.empty()) << "no io-wq worker seen";
    for (size_t i = 0; i < workers.size(); ++i) {
        EXPECT_FALSE(worker_on_cpu0[i]) << "worker " << workers[i] << " may run on the poll CPU";
    }
}

} // namespace
} // namespace vdh

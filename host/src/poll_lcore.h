// SPDX-License-Identifier: MIT
// PollLcore: one DPDK lcore that serves a set of queues. It busy-polls while there is
// work, and after idle_poll_us without work it arms guest kicks, re-checks, and sleeps in
// epoll on the kick eventfds (plus plugin wake fds and its own wake eventfd), so an idle
// host uses ~0% CPU. Queues are attached and detached by messages from the control thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <future>
#include <mutex>
#include <vector>

#include "vdh/unique_fd.h"

namespace vdh {

class QueueRuntime;

class PollLcore {
public:
    PollLcore(unsigned lcore_id, unsigned cpu, uint32_t idle_poll_us, uint32_t max_sleep_ms,
              uint32_t queue_slice_us = 0);
    PollLcore(const PollLcore&) = delete;
    PollLcore& operator=(const PollLcore&) = delete;

    /// Creates the epoll and wake fds. Returns false on failure.
    bool init();

    unsigned lcore_id() const noexcept { return lcore_id_; }
    unsigned cpu() const noexcept { return cpu_; }

    /// Control thread: start serving \p q. Returns at once.
    void attach(QueueRuntime* q);
    /// Control thread: stop serving \p q once its in-flight requests completed. The
    /// future is ready when the lcore has let go of it.
    std::future<void> detach(QueueRuntime* q);
    /// Asks run() to return (after detaching everything).
    void request_stop();

    /// Wakes the lcore if it sleeps. Any thread.
    void wake() noexcept;

    /// The lcore main loop (rte_eal_remote_launch target).
    int run();
    static int run_trampoline(void* self);

    /// True on the thread running this lcore's loop.
    bool on_this_lcore() const noexcept;

    uint64_t loops() const noexcept { return loops_.load(std::memory_order_relaxed); }
    uint64_t sleeps() const noexcept { return sleeps_.load(std::memory_order_relaxed); }
    /// TSC cycles spent in loop passes that found work. Any thread.
    uint64_t busy_cycles() const noexcept { return busy_cycles_.load(std::memory_order_relaxed); }
    /// TSC cycles spent in passes without work, spinning before a sleep, and asleep.
    uint64_t idle_cycles() const noexcept {
        return idle_tsc_.load(std::memory_order_relaxed);
    }

private:
    struct Msg {
        QueueRuntime* q = nullptr;
        bool attach = false;
        std::promise<void>* done = nullptr;
    };
    struct Detaching {
        QueueRuntime* q;
        std::promise<void>* done;
    };

    void post(Msg m);
    void process_msgs();
    void finish_detaches();
    void sleep_once();
    void epoll_add(int fd, QueueRuntime* q, bool plugin_fd);
    void epoll_del(int fd);

    unsigned lcore_id_;
    unsigned cpu_;
    uint64_t idle_cycles_ = 0;
    uint32_t max_sleep_ms_;
    uint64_t slice_cycles_ = 0; ///< queue_slice_us in TSC cycles (0 = no slice)
    UniqueFd epfd_;
    UniqueFd wake_efd_;
    std::atomic<bool> stop_{false};
    std::atomic<bool> sleeping_{false};
    std::atomic<bool> msgs_pending_{false};
    std::mutex msg_mu_; ///< guards msgs_ only; held for a push or a swap. Lock order: leaf.
    std::vector<Msg> msgs_;
    std::vector<Msg> msgs_local_;
    std::vector<QueueRuntime*> queues_;      ///< lcore-private
    std::vector<Detaching> detaching_;       ///< lcore-private
    std::atomic<uint64_t> loops_{0};
    std::atomic<uint64_t> sleeps_{0};
    std::atomic<uint64_t> busy_cycles_{0}; ///< written by the lcore only (relaxed store)
    std::atomic<uint64_t> idle_tsc_{0};    ///< written by the lcore only (relaxed store)
    std::atomic<int> thread_tid_{0};
};

} // namespace vdh

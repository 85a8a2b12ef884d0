// SPDX-License-Identifier: MIT
// The poll-mode loop with adaptive sleep. Busy-polls all attached queues in turn (each for
// at most one time slice per pass, so one device's flood delays another by a slice); after
// idle_poll_us without work arms guest kicks, re-checks, and sleeps in epoll (bounded by
// max_sleep_ms) on kick eventfds, plugin wake fds and its own wake eventfd.
#include "poll_lcore.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_pause.h>

#include <algorithm>

#include "log.h"
#include "queue_runtime.h"

namespace vdh {
namespace {
// The wake eventfd's epoll tag (queues use their QueueRuntime pointer).
constexpr uint64_t kWakeTag = 1;
// Low bit of a queue's epoll tag: set for the plugin's wake fd, clear for the kick fd.
// QueueRuntime objects are cache-line aligned, so the bit is free.
constexpr uint64_t kPluginFdBit = 1;
int current_tid() { return static_cast<int>(syscall(SYS_gettid)); }
} // namespace

PollLcore::PollLcore(unsigned lcore_id, unsigned cpu, uint32_t idle_poll_us,
                     uint32_t max_sleep_ms, uint32_t queue_slice_us)
    : lcore_id_(lcore_id), cpu_(cpu), max_sleep_ms_(max_sleep_ms) {
    idle_cycles_ = rte_get_tsc_hz() / 1000000 * idle_poll_us;
    slice_cycles_ = rte_get_tsc_hz() / 1000000 * queue_slice_us;
}

bool PollLcore::init() {
    auto ep = UniqueFd::from_syscall(epoll_create1(EPOLL_CLOEXEC));
    auto ev = UniqueFd::from_syscall(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!ep || !ev) {
        return false;
    }
    epfd_ = std::move(*ep);
    wake_efd_ = std::move(*ev);
    struct epoll_event e {};
    e.events = EPOLLIN;
    e.data.u64 = kWakeTag;
    if (epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, wake_efd_.get(), &e) != 0) {
        return false;
    }
    queues_.reserve(256);
    detaching_.reserve(256);
    msgs_.reserve(64);
    msgs_local_.reserve(64);
    return true;
}

bool PollLcore::on_this_lcore() const noexcept {
    static thread_local int tid = current_tid();
    return thread_tid_.load(std::memory_order_relaxed) == tid;
}

void PollLcore::post(Msg m) {
    {
        std::lock_guard<std::mutex> g(msg_mu_);
        msgs_.push_back(m);
    }
    msgs_pending_.store(true, std::memory_order_release);
    wake();
}

void PollLcore::attach(QueueRuntime* q) { post(Msg{q, true, nullptr}); }

std::future<void> PollLcore::detach(QueueRuntime* q) {
    auto* p = new std::promise<void>();
    std::future<void> f = p->get_future();
    post(Msg{q, false, p});
    return f;
}

void PollLcore::request_stop() {
    stop_.store(true, std::memory_order_release);
    wake();
}

void PollLcore::wake() noexcept {
    // Pairs with the seq_cst fence in sleep_once(): either the lcore sees our work before
    // sleeping, or we see it sleeping and write the eventfd.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (sleeping_.load(std::memory_order_relaxed)) {
        uint64_t one = 1;
        [[maybe_unused]] ssize_t w = ::write(wake_efd_.get(), &one, sizeof(one));
    }
}

void PollLcore::epoll_add(int fd, QueueRuntime* q, bool plugin_fd) {
    if (fd < 0) {
        return;
    }
    struct epoll_event e {};
    e.events = EPOLLIN;
    e.data.u64 = reinterpret_cast<uint64_t>(q) | (plugin_fd ? kPluginFdBit : 0);
    if (epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, fd, &e) != 0 && errno == EEXIST) {
        epoll_ctl(epfd_.get(), EPOLL_CTL_MOD, fd, &e);
    }
}

void PollLcore::epoll_del(int fd) {
    if (fd >= 0) {
        epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, fd, nullptr);
    }
}

void PollLcore::process_msgs() {
    msgs_local_.clear();
    {
        std::lock_guard<std::mutex> g(msg_mu_);
        msgs_local_.swap(msgs_);
        msgs_pending_.store(false, std::memory_order_relaxed);
    }
    for (const Msg& m : msgs_local_) {
        if (m.attach) {
            queues_.push_back(m.q);
            epoll_add(m.q->kick_fd(), m.q, false);
            epoll_add(m.q->wake_fd(), m.q, true);
            m.q->after_sleep();
        } else {
            detaching_.push_back(Detaching{m.q, m.done});
        }
    }
}

void PollLcore::finish_detaches() {
    for (size_t i = 0; i < detaching_.size();) {
        Detaching d = detaching_[i];
        // An abandoned queue (teardown gave up waiting) is let go of when its last late
        // completion arrived, or at shutdown with completions still missing.
        bool drop_stuck = d.q->abandoned() && stop_.load(std::memory_order_acquire);
        if (d.q->inflight() != 0 && !drop_stuck) {
            ++i;
            continue;
        }
        // Drained: publish what another queue's pass completed for it, and let go of it.
        d.q->publish();
        epoll_del(d.q->kick_fd());
        epoll_del(d.q->wake_fd());
        queues_.erase(std::remove(queues_.begin(), queues_.end(), d.q), queues_.end());
        detaching_.erase(detaching_.begin() + static_cast<std::ptrdiff_t>(i));
        d.done->set_value();
        delete d.done;
    }
}

void PollLcore::sleep_once() {
    sleeping_.store(true, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    bool pending = msgs_pending_.load(std::memory_order_acquire) ||
                   stop_.load(std::memory_order_acquire);
    for (const Detaching& d : detaching_) {
        // Draining queues are polled without pause; an abandoned one may stay stuck for
        // long, so it only keeps its fds in the epoll set (completions wake the lcore).
        if (!d.q->abandoned()) {
            pending = true;
        }
    }
    for (QueueRuntime* q : queues_) {
        if (q->prepare_sleep()) {
            pending = true;
        }
    }
    if (!pending) {
        sleeps_.store(sleeps_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        struct epoll_event evs[32];
        int n = epoll_wait(epfd_.get(), evs, 32, static_cast<int>(max_sleep_ms_));
        for (int i = 0; i < n; ++i) {
            uint64_t v;
            uint64_t tag = evs[i].data.u64;
            if (tag == kWakeTag) {
                [[maybe_unused]] ssize_t r = ::read(wake_efd_.get(), &v, sizeof(v));
                continue;
            }
            // epoll reported the eventfd readable, so this read() does not block.
            auto* q = reinterpret_cast<QueueRuntime*>(tag & ~kPluginFdBit);
            int fd = (tag & kPluginFdBit) != 0 ? q->wake_fd() : q->kick_fd();
            [[maybe_unused]] ssize_t r = ::read(fd, &v, sizeof(v));
            if ((tag & kPluginFdBit) == 0) {
                q->stats().add(q->stats().kicks);
            }
        }
    }
    sleeping_.store(false, std::memory_order_relaxed);
    for (QueueRuntime* q : queues_) {
        q->after_sleep();
    }
}

int PollLcore::run() {
    thread_tid_.store(current_tid(), std::memory_order_relaxed);
    VDH_INFO("lcore", "poll lcore %u running on cpu %u", lcore_id_, cpu_);
    uint64_t last_work = rte_rdtsc();
    uint64_t pass_start = last_work; // busy/idle accounting: one rdtsc per pass, as before
    auto account = [](std::atomic<uint64_t>& c, uint64_t v) {
        c.store(c.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
    };
    while (!stop_.load(std::memory_order_acquire) || !queues_.empty()) {
        if (msgs_pending_.load(std::memory_order_acquire)) {
            process_msgs();
        }
        uint32_t work = 0;
        for (QueueRuntime* q : queues_) {
            work += q->poll(slice_cycles_);
        }
        if (!detaching_.empty()) {
            finish_detaches();
        }
        loops_.store(loops_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        uint64_t now = rte_rdtsc();
        account(work > 0 ? busy_cycles_ : idle_tsc_, now - pass_start);
        pass_start = now;
        if (work > 0) {
            last_work = now;
            continue;
        }
        if (now - last_work < idle_cycles_) {
            rte_pause();
            continue;
        }
        if (stop_.load(std::memory_order_acquire) && queues_.empty()) {
            break;
        }
        sleep_once();
        last_work = rte_rdtsc();
        account(idle_tsc_, last_work - now);
        pass_start = last_work;
    }
    VDH_INFO("lcore", "poll lcore %u stopped", lcore_id_);
    return 0;
}

int PollLcore::run_trampoline(void* self) { return static_cast<PollLcore*>(self)->run(); }

} // namespace vdh

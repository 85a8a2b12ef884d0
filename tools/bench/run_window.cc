// SPDX-License-Identifier: MIT
// The measured window of a run: start signal, warm-up and window edges, CPU samples.
#include "bench/run_window.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>

namespace vdh::bench {

int64_t now_ns() noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

void run_window(const RunConfig& config, Timing& timing, std::vector<std::thread>& threads,
                RunResult& r) {
    // Backend CPU, this process's CPU, and both processes' time waiting for a CPU, at the
    // start and the end of the window. The main thread may take them late (it shares the
    // load generator's CPU), so each figure is scaled from the span between the two
    // samples to the window.
    struct Sample {
        double cpu = -1, self = 0, wait = -1, self_wait = -1;
        int64_t t = 0;
    };
    Sample s0, s1;
    auto sample = [&](Sample& s) {
        int64_t a = now_ns();
        s.cpu = config.backend_pid > 0 ? process_cpu_seconds(config.backend_pid) : -1;
        s.wait = config.backend_pid > 0 ? process_wait_seconds(config.backend_pid) : -1;
        s.self = self_cpu_seconds();
        s.self_wait = process_wait_seconds(::getpid());
        s.t = a + (now_ns() - a) / 2;
    };
    auto release = [&] {
        timing.release.store(true, std::memory_order_release);
        for (auto& t : threads) {
            t.join();
        }
    };
    if (timing.by_ops) {
        sample(s0);
        int64_t t0 = now_ns();
        timing.go.store(true, std::memory_order_release);
        while (timing.finished.load(std::memory_order_acquire) < threads.size()) {
            std::this_thread::sleep_for(std::chrono::microseconds(50));
        }
        r.elapsed_s = static_cast<double>(now_ns() - t0) / 1e9;
        sample(s1);
        release();
    } else {
        int64_t start = now_ns() + 1'000'000;
        timing.window_start = start + static_cast<int64_t>(config.warmup_s * 1e9);
        timing.window_end = timing.window_start + static_cast<int64_t>(config.duration_s * 1e9);
        timing.go.store(true, std::memory_order_release);
        auto sleep_until = [](int64_t t) {
            int64_t d = t - now_ns();
            if (d > 0) {
                std::this_thread::sleep_for(std::chrono::nanoseconds(d));
            }
        };
        sleep_until(timing.window_start);
        sample(s0);
        sleep_until(timing.window_end);
        sample(s1);
        release();
        r.elapsed_s = static_cast<double>(timing.window_end - timing.window_start) / 1e9;
    }
    double span_s = static_cast<double>(s1.t - s0.t) / 1e9;
    double scale = span_s > 0 ? r.elapsed_s / span_s : 1.0;
    if (s0.cpu >= 0 && s1.cpu >= 0) {
        r.backend_cpu_s = (s1.cpu - s0.cpu) * scale;
    }
    r.client_cpu_s = (s1.self - s0.self) * scale;
    // Only live threads count: a backend thread that exits in the window takes its wait
    // with it (the workers of this process live until the closing sample).
    if (s0.wait >= 0 && s1.wait >= 0) {
        r.backend_wait_s = std::max(0.0, s1.wait - s0.wait) * scale;
    }
    if (s0.self_wait >= 0 && s1.self_wait >= 0) {
        r.client_wait_s = std::max(0.0, s1.self_wait - s0.self_wait) * scale;
    }
}

} // namespace vdh::bench

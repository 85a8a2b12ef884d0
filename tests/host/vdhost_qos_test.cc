// SPDX-License-Identifier: MIT
// Integration tests of per-device QoS through the real path: the vdhost binary with two
// echo devices on ONE poll lcore, each driven by its own frontend thread (pinned to the
// other CPU) that keeps a fixed number of requests in flight. Shows that a limited device
// holds its request or byte rate within 10% while an unlimited device on the same lcore
// keeps (nearly) the rate it has alone, and that a live change over the control socket
// (`qos NAME iops=N`) acts at once. Then a virtio-fs share driven by vdhost-bench: its
// bandwidth and request limits, and a live change.
#include <gtest/gtest.h>

#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

#include "../../plugins/echo/echo_protocol.h"
#include "echo_load.h"
#include "frontend/device.h"
#include "frontend/guest_memory.h"
#include "vdh/unique_fd.h"
#include "vdhost_process.h"

namespace vdh {
namespace {

using frontend::Device;
using frontend::DeviceOptions;
using frontend::GuestMemory;
using frontend::GuestMemoryOptions;
using frontend::Segment;
using frontend::UsedElem;
using testing::control;
using testing::kDepth;
using testing::kLimitedDepth;
using testing::kQueueSize;
using testing::Load;
using testing::TempDir;
using testing::VdhostProcess;
using Clock = std::chrono::steady_clock;

/// Requests (and device-written bytes) per second that the devices named in \p devices
/// completed on queue 1 over \p window, after \p warmup, as vdhost's own counters say.
/// Counted by the device, not by the driver thread: a driver that this shared machine
/// starves for a while counts a backlog of up to its whole depth late (seen: 500/s read
/// as 906/s when 512 completions of the previous, unlimited phase were counted inside the
/// window).
struct Rates {
    std::vector<double> ops;
    std::vector<double> bytes;
};

struct Served {
    long requests;
    long bytes;
};

Served served(const std::string& stats, const std::string& device) {
    size_t at = stats.find("\"name\":\"" + device + "\"");
    EXPECT_NE(at, std::string::npos) << device << " not in " << stats;
    size_t q1 = stats.find("\"index\":1", at);
    return {testing::json_number(stats, "requests", q1),
            testing::json_number(stats, "bytes_out", q1)};
}

Rates measure(const std::string& ctl, const std::vector<std::string>& devices,
              std::chrono::milliseconds warmup, std::chrono::milliseconds window) {
    std::this_thread::sleep_for(warmup);
    std::string s0 = control(ctl, "stats");
    auto t0 = Clock::now();
    std::this_thread::sleep_for(window);
    std::string s1 = control(ctl, "stats");
    double s = std::chrono::duration<double>(Clock::now() - t0).count();
    Rates r;
    for (const std::string& d : devices) {
        Served a = served(s0, d);
        Served b = served(s1, d);
        r.ops.push_back(static_cast<double>(b.requests - a.requests) / s);
        r.bytes.push_back(static_cast<double>(b.bytes - a.bytes) / s);
    }
    return r;
}

class VdhostQos : public ::testing::Test {
  protected:
    /// e0 with \p e0_qos (a flow mapping or ""), e1 unlimited, both on the poll lcore of
    /// CPU 1.
    void start(const std::string& e0_qos) {
        sock0_ = dir_.file("e0.sock");
        sock1_ = dir_.file("e1.sock");
        ctl_ = dir_.file("ctl.sock");
        std::string yaml = "host:\n  poll_lcores: [1]\n  control_socket: " + ctl_ +
                           "\ndevices:\n"
                           "  - name: e0\n    type: echo\n    socket: " +
                           sock0_ + "\n" + (e0_qos.empty() ? "" : "    qos: " + e0_qos + "\n") +
                           "  - name: e1\n    type: echo\n    socket: " + sock1_ + "\n";
        ASSERT_TRUE(vdhost_.start(dir_, yaml, {sock0_, sock1_, ctl_})) << vdhost_.log();
    }

    TempDir dir_;
    VdhostProcess vdhost_;
    std::string sock0_;
    std::string sock1_;
    std::string ctl_;
};

TEST_F(VdhostQos, LimitedDeviceHoldsItsIopsWhileAnUnlimitedOneOnTheSameLcoreKeepsItsRate) {
    // burst_ms 50: here the poll lcore shares its CPU with other builds and is preempted
    // for several ms at a time while the unlimited device keeps it busy; budget unused for
    // longer than burst_ms is lost (with the default 10 ms, 1750-1950/s were seen instead
    // of 2000). On a dedicated poll CPU the default is enough.
    start("{iops: 2000, burst_ms: 50}");
    Load limited(sock0_, 0, kLimitedDepth);
    Load unlimited(sock1_, 0);
    unlimited.start();
    limited.pause(true);
    limited.start();
    // Rounds of "unlimited alone" then "both", back to back, so that the load of this
    // shared machine weighs on both alike; the rates are summed over the rounds.
    constexpr int kRounds = 3;
    double solo = 0;
    double together = 0;
    double limited_rate = 0;
    for (int r = 0; r < kRounds; ++r) {
        // The lcore's sleeps in each phase, for the record (printed, not asserted).
        auto sleeps = [&] { return testing::json_number(testing::vdhost_stats(ctl_), "sleeps"); };
        limited.pause(true);
        long s0 = sleeps();
        double alone =
            measure(ctl_, {"e1"}, std::chrono::milliseconds(300), std::chrono::milliseconds(1000))
                .ops[0];
        solo += alone;
        long s1 = sleeps();
        limited.pause(false);
        Rates both = measure(ctl_, {"e0", "e1"}, std::chrono::milliseconds(300),
                             std::chrono::milliseconds(1000));
        limited_rate += both.ops[0];
        together += both.ops[1];
        std::printf("round %d: solo unlimited %.0f/s (%ld lcore sleeps); together: limited "
                    "%.0f/s, unlimited %.0f/s (%ld lcore sleeps)\n",
                    r, alone, s1 - s0, both.ops[0], both.ops[1], sleeps() - s1);
    }
    solo /= kRounds;
    together /= kRounds;
    limited_rate /= kRounds;
    limited.stop();
    unlimited.stop();
    ASSERT_FALSE(limited.failed());
    ASSERT_FALSE(unlimited.failed());
    std::printf("mean: unlimited alone %.0f/s; together: limited %.0f/s, unlimited %.0f/s "
                "(%.0f%% of alone)\n",
                solo, limited_rate, together, 100.0 * together / solo);
    std::string stats = testing::vdhost_stats(ctl_);
    // The limit: 2000/s within 10%.
    EXPECT_NEAR(limited_rate, 2000.0, 200.0) << stats;
    // The unlimited device keeps at least 80% of its rate alone. Without the limit the
    // other device, driven as hard, would take about half of the lcore and of the driver
    // CPU; the 20% margin covers the limited driver's own wakeups on the shared driver CPU
    // (about 2000 a second) and the noise of a machine shared with other builds.
    // (Seen on this machine: the unlimited device is faster together than alone, 140-180%.
    // Alone, the lcore dozes off between the unlimited driver's batches (150-200 sleeps a
    // second, each needing a kick to end); together, the limited device's request every
    // 0.5 ms keeps it awake (10-100 sleeps). So the bound is conservative.)
    EXPECT_GT(solo, 10000.0) << "the unlimited device is far slower than expected";
    EXPECT_GE(together, 0.8 * solo) << stats;
    // The throttle showed up in the counters, and nothing failed.
    auto e0 = stats.find("\"name\":\"e0\"");
    ASSERT_NE(e0, std::string::npos);
    EXPECT_GT(testing::json_number(stats, "qos_throttled", stats.find("\"index\":1", e0)), 0);
    EXPECT_EQ(testing::json_number(stats, "errors", stats.find("\"index\":1", e0)), 0);
}

TEST_F(VdhostQos, LimitedDeviceHoldsItsBandwidth) {
    // 64 KiB written by the device per request; each chain is charged 65544 bytes (its
    // 8-byte request plus the 64 KiB buffer).
    start("{bandwidth: 20MiB, burst_ms: 50}");
    Load limited(sock0_, 65536, 64); // 200 ms of the limit
    Load unlimited(sock1_, 0);
    limited.start();
    unlimited.start();
    Rates r = measure(ctl_, {"e0", "e1"}, std::chrono::milliseconds(500),
                      std::chrono::milliseconds(3000));
    limited.stop();
    unlimited.stop();
    ASSERT_FALSE(limited.failed());
    double mib = r.bytes[0] / (1 << 20);
    std::printf("limited %.2f MiB/s (%.0f requests/s); unlimited %.0f requests/s\n", mib, r.ops[0],
                r.ops[1]);
    EXPECT_NEAR(mib, 20.0 * 65536 / 65544, 2.0);
    EXPECT_GT(r.ops[1], 10 * r.ops[0]);
}

TEST_F(VdhostQos, LiveChangeOverTheControlSocketActsAtOnce) {
    start("{iops: 1000, burst_ms: 50}"); // 50 ms: see the first test
    Load limited(sock0_, 0, kLimitedDepth);
    limited.start();
    double before =
        measure(ctl_, {"e0"}, std::chrono::milliseconds(300), std::chrono::milliseconds(1500))
            .ops[0];
    EXPECT_EQ(control(ctl_, "qos e0 iops=4000"), // burst_ms stays
              "{\"device\":\"e0\",\"qos\":{\"iops\":4000,\"bandwidth\":0,\"burst_ms\":50}}\n");
    double raised =
        measure(ctl_, {"e0"}, std::chrono::milliseconds(200), std::chrono::milliseconds(1500))
            .ops[0];
    EXPECT_EQ(control(ctl_, "qos e0 iops=0"),
              "{\"device\":\"e0\",\"qos\":{\"iops\":0,\"bandwidth\":0,\"burst_ms\":50}}\n");
    double lifted =
        measure(ctl_, {"e0"}, std::chrono::milliseconds(200), std::chrono::milliseconds(1000))
            .ops[0];
    EXPECT_EQ(control(ctl_, "qos e0 iops=500"),
              "{\"device\":\"e0\",\"qos\":{\"iops\":500,\"bandwidth\":0,\"burst_ms\":50}}\n");
    double lowered =
        measure(ctl_, {"e0"}, std::chrono::milliseconds(200), std::chrono::milliseconds(1500))
            .ops[0];
    limited.stop();
    ASSERT_FALSE(limited.failed());
    std::printf("1000/s: %.0f; 4000/s: %.0f; unlimited: %.0f; 500/s: %.0f\n", before, raised,
                lifted, lowered);
    EXPECT_NEAR(before, 1000.0, 100.0);
    EXPECT_NEAR(raised, 4000.0, 400.0);
    EXPECT_GT(lifted, 3 * 4000.0);
    EXPECT_NEAR(lowered, 500.0, 50.0);
    // Bad commands change nothing and say why.
    EXPECT_EQ(control(ctl_, "qos e0 iops=-1"),
              "{\"error\":\"bad argument iops=-1 (expected iops=N, bandwidth=RATE or "
              "burst_ms=N)\"}\n");
    EXPECT_EQ(control(ctl_, "qos e0 bandwidth=10"),
              "{\"error\":\"bandwidth: out of range: 10 bytes/s (expected 0 = unlimited, or "
              "1024..1099511627776)\"}\n");
    EXPECT_EQ(control(ctl_, "qos nope iops=1"), "{\"error\":\"no device named nope\"}\n");
    EXPECT_EQ(control(ctl_, "qos e0"),
              "{\"device\":\"e0\",\"qos\":{\"iops\":500,\"bandwidth\":0,\"burst_ms\":50}}\n");
    EXPECT_NE(testing::vdhost_stats(ctl_).find("\"qos\":{\"iops\":500,\"bandwidth\":0"),
              std::string::npos);
}

TEST_F(VdhostQos, ThrottledDeviceAloneDoesNotKeepTheLcoreBusy) {
    start("{iops: 200}");
    Load limited(sock0_, 0);
    limited.start();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    long t0 = vdhost_.cpu_ticks();
    auto c0 = Clock::now();
    std::this_thread::sleep_for(std::chrono::seconds(2));
    long t1 = vdhost_.cpu_ticks();
    double s = std::chrono::duration<double>(Clock::now() - c0).count();
    uint64_t n = limited.done();
    limited.stop();
    double cpu = static_cast<double>(t1 - t0) / static_cast<double>(sysconf(_SC_CLK_TCK)) / s;
    std::printf("vdhost CPU %.0f%% while a throttled device waits (%llu requests done)\n",
                100.0 * cpu, static_cast<unsigned long long>(n));
    // A busy-polling lcore would use 100% of its CPU. Throttled at 200/s, the lcore sleeps
    // until each deadline (every ~5 ms, half of the default 10 ms burst) and polls
    // idle_poll_us (200 µs) after each batch: ~5% plus the work itself.
    EXPECT_LT(cpu, 0.3);
}

/// Runs vdhost-bench on \p sock (one request queue, depth 8, 3 s) and returns the MB/s
/// (10^6 bytes) and ops/s of the single result row of \p workload; -1 when it failed.
std::pair<double, double> bench(const std::string& sock, const std::string& workload, bool prepare,
                                std::string* out) {
    std::string cmd = std::string(VDHOST_BENCH_PATH) + " -s " + sock + " -w " + workload +
                      " -d 8 --duration 3 --file-size-mib 16" + (prepare ? "" : " --no-prepare") +
                      " 2>&1";
    out->clear();
    if (testing::run_command(cmd, out) != 0) {
        return {-1, -1};
    }
    // "fuse  WORKLOAD  qs thr qd  ops/s  MB/s ..."
    auto p = out->find("fuse       " + workload);
    if (p == std::string::npos) {
        return {-1, -1};
    }
    std::istringstream row(out->substr(p));
    std::string label, name;
    int qs = 0, thr = 0, qd = 0;
    double ops = -1, mbs = -1;
    row >> label >> name >> qs >> thr >> qd >> ops >> mbs;
    return {mbs, ops};
}

TEST_F(VdhostQos, VirtiofsShareHoldsItsBandwidthAndIopsAndTakesALiveChange) {
    std::string share = dir_.file("share");
    ASSERT_EQ(mkdir(share.c_str(), 0755), 0);
    std::string sock = dir_.file("fs0.sock");
    ctl_ = dir_.file("ctl.sock");
    std::string yaml = "host:\n  poll_lcores: [1]\n  control_socket: " + ctl_ +
                       "\ndevices:\n  - name: fs0\n    type: virtiofs\n    socket: " + sock +
                       "\n    qos: {bandwidth: 20MiB, iops: 2000, burst_ms: 50}\n"
                       "    config: {shared_dir: " +
                       share + ", tag: fs0}\n";
    ASSERT_TRUE(vdhost_.start(dir_, yaml, {sock, ctl_})) << vdhost_.log();
    // 128 KiB READs: each chain is charged the 128 KiB it offers plus ~100 bytes of FUSE
    // headers, so 20 MiB/s is ~160 READs/s, 20.97 MB/s of data.
    std::string out;
    auto [mbs, ops] = bench(sock, "read-128k-seq", true, &out);
    EXPECT_NEAR(mbs, 20.97, 2.1) << out;
    // GETATTR: small chains, the request limit applies.
    auto [gmbs, gops] = bench(sock, "getattr", false, &out);
    (void)gmbs;
    EXPECT_NEAR(gops, 2000.0, 200.0) << out;
    // Live: 5 MiB/s.
    EXPECT_EQ(control(ctl_, "qos fs0 bandwidth=5MiB"),
              "{\"device\":\"fs0\",\"qos\":{\"iops\":2000,\"bandwidth\":5242880,"
              "\"burst_ms\":50}}\n");
    auto [mbs5, ops5] = bench(sock, "read-128k-seq", false, &out);
    (void)ops5;
    EXPECT_NEAR(mbs5, 5.24, 0.53) << out;
    std::printf("virtio-fs: 20MiB/s limit %.2f MB/s (%.0f READs/s); getattr %.0f/s; 5MiB/s "
                "limit %.2f MB/s\n",
                mbs, ops, gops, mbs5);
}

} // namespace
} // namespace vdh

// SPDX-License-Identifier: MIT
// Tests of QosControl (the live QoS setting lcores read without locks): versions, and
// readers that never see a torn setting while another thread changes it.
#include "qos_control.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace vdh {
namespace {

TEST(QosControl, VersionIsZeroOnlyWhileUnlimited) {
    QosControl c;
    EXPECT_EQ(c.version(), 0u);
    c.set(QosConfig{100, 0, 10});
    uint64_t v1 = c.version();
    EXPECT_NE(v1, 0u);
    c.set(QosConfig{100, 0, 10});
    EXPECT_NE(c.version(), v1); // every change is seen, even to the same value
    c.set(QosConfig{0, 0, 20});
    EXPECT_EQ(c.version(), 0u);
    EXPECT_EQ(c.get(), (QosConfig{0, 0, 20}));
    c.set(QosConfig{0, 4096, 20});
    EXPECT_GT(c.version(), v1);
    EXPECT_EQ(QosControl::unlimited().version(), 0u);
}

TEST(QosControl, ReadersNeverSeeATornSetting) {
    // Settings whose three fields agree (iops = k, bandwidth = k << 20, burst_ms = k).
    QosControl c(QosConfig{1, 1ULL << 20, 1});
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> reads{0};
    std::atomic<uint64_t> torn{0};
    std::thread reader([&] {
        while (!stop.load(std::memory_order_relaxed)) {
            QosConfig q = c.get();
            if (q.bandwidth != q.iops << 20 || q.burst_ms != q.iops) {
                torn.fetch_add(1);
            }
            reads.fetch_add(1, std::memory_order_relaxed);
        }
    });
    while (reads.load() == 0) {
        std::this_thread::yield();
    }
    // Write until the reader has overlapped many writes (bounded in time: a loaded machine
    // may starve the reader).
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    uint64_t k = 1;
    for (uint64_t r0 = reads.load();
         reads.load() - r0 < 200000 && std::chrono::steady_clock::now() < end; ++k) {
        uint64_t x = k % 5000 + 1;
        c.set(QosConfig{x, x << 20, static_cast<uint32_t>(x)});
    }
    stop = true;
    reader.join();
    EXPECT_GT(reads.load(), 0u);
    EXPECT_EQ(torn.load(), 0u);
}

TEST(QosConfig, ParsesByteRates) {
    uint64_t v = 0;
    std::string why;
    struct Case {
        const char* text;
        uint64_t value;
    };
    for (Case t : {Case{"0", 0}, Case{"65536", 65536}, Case{"100MiB", 100ULL << 20},
                   Case{"100M", 100ULL << 20}, Case{"20MB/s", 20000000}, Case{"1GiB/s", 1ULL << 30},
                   Case{"4 KiB", 4096}, Case{"3KB", 3000}, Case{"2T", 2ULL << 40}, Case{"7B", 7}}) {
        ASSERT_TRUE(parse_byte_rate(t.text, &v, &why)) << t.text << ": " << why;
        EXPECT_EQ(v, t.value) << t.text;
    }
    for (const char* bad :
         {"", "MiB", "-5", "1.5MiB", "5 Mbit", "99999999999999999999", "20000000TiB"}) {
        EXPECT_FALSE(parse_byte_rate(bad, &v, &why)) << bad;
        EXPECT_FALSE(why.empty());
    }
}

TEST(QosConfig, RangeChecksNameTheKey) {
    EXPECT_EQ(qos_check(QosConfig{}), "");
    EXPECT_EQ(qos_check(QosConfig{QosConfig::kMaxIops, QosConfig::kMaxBandwidth, 1}), "");
    EXPECT_EQ(qos_check(QosConfig{QosConfig::kMaxIops + 1, 0, 10}).rfind("iops: ", 0), 0u);
    EXPECT_EQ(qos_check(QosConfig{0, 1023, 10}).rfind("bandwidth: ", 0), 0u);
    EXPECT_EQ(qos_check(QosConfig{0, 0, 0}).rfind("burst_ms: ", 0), 0u);
    EXPECT_EQ(qos_json(QosConfig{2000, 1048576, 10}),
              "{\"iops\":2000,\"bandwidth\":1048576,\"burst_ms\":10}");
}

} // namespace
} // namespace vdh

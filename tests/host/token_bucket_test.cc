// SPDX-License-Identifier: MIT
// Tests of TokenBucket on a simulated clock (1 GHz, so one cycle is one nanosecond):
// long-run request and byte rates, the burst after an idle period, overdraw by a request
// larger than the burst, the split of a device's rate over lcores, and live changes.
#include "token_bucket.h"

#include <gtest/gtest.h>

#include "qos_control.h"

namespace vdh {
namespace {

constexpr uint64_t kHz = 1000000000; // simulated TSC: 1 cycle = 1 ns
constexpr uint64_t kSecond = kHz;
constexpr uint64_t kStart = 1000 * kSecond;

/// Offers requests of \p bytes as fast as the bucket admits them, stepping the clock by
/// \p step cycles, from \p from for \p duration cycles. Returns how many were admitted.
uint64_t drive(TokenBucket& b, uint64_t from, uint64_t duration, uint64_t bytes,
               uint64_t step = 1000) {
    uint64_t n = 0;
    for (uint64_t now = from; now < from + duration; now += step) {
        while (b.admits(now)) {
            b.charge(now, bytes);
            ++n;
        }
    }
    return n;
}

TokenBucket make(const QosConfig& c, uint32_t split = 1) {
    TokenBucket b;
    b.prepare(kHz, split);
    b.configure(c, kStart);
    return b;
}

TEST(TokenBucket, HoldsTheRequestRateAfterTheInitialBurst) {
    TokenBucket b = make(QosConfig{2000, 0, 10});
    // 10 s at 2000/s plus the initial burst of 10 ms (20 requests) and the first one.
    uint64_t n = drive(b, kStart, 10 * kSecond, 4096);
    EXPECT_GE(n, 20000u);
    EXPECT_LE(n, 20000u + 21u);
}

TEST(TokenBucket, HoldsTheByteRateWhateverTheRequestSize) {
    for (uint64_t size : {512ULL, 4096ULL, 65536ULL, 1ULL << 20}) {
        TokenBucket b = make(QosConfig{0, 20ULL << 20, 10});
        uint64_t n = drive(b, kStart, 10 * kSecond, size);
        double bytes = static_cast<double>(n * size);
        // 200 MiB plus at most the burst (0.2 MiB) and one overdrawing request.
        EXPECT_GE(bytes, 200.0 * (1 << 20)) << size;
        EXPECT_LE(bytes, 200.0 * (1 << 20) + 0.2 * (1 << 20) + 2.0 * size) << size;
    }
}

TEST(TokenBucket, BothLimitsApplyAndTheTighterWins) {
    // 64 KiB requests: 10 MiB/s allows 160/s, 1000 IOPS would allow 1000/s.
    TokenBucket b = make(QosConfig{1000, 10ULL << 20, 10});
    uint64_t n = drive(b, kStart, 10 * kSecond, 65536);
    EXPECT_NEAR(static_cast<double>(n), 1600.0, 5.0);
    // 512-byte requests: now the request limit is the tighter one.
    TokenBucket c = make(QosConfig{1000, 10ULL << 20, 10});
    EXPECT_NEAR(static_cast<double>(drive(c, kStart, 10 * kSecond, 512)), 10000.0, 15.0);
}

TEST(TokenBucket, IdleTimeBuysAtMostOneBurst) {
    TokenBucket b = make(QosConfig{1000, 0, 50});
    drive(b, kStart, kSecond, 0);
    // After 10 s of silence, at most burst_ms of requests (50) plus one pass at once.
    uint64_t t = kStart + 11 * kSecond;
    uint64_t n = 0;
    while (b.admits(t)) {
        b.charge(t, 0);
        ++n;
    }
    EXPECT_EQ(n, 51u);
    EXPECT_FALSE(b.admits(t));
    EXPECT_GT(b.next_admit(), t);
    EXPECT_TRUE(b.admits(b.next_admit()));
}

TEST(TokenBucket, ARequestLargerThanTheBurstPassesAndTheNextOnesPayItsDebt) {
    TokenBucket b = make(QosConfig{0, 1ULL << 20, 10}); // 1 MiB/s, burst ~10 KiB
    ASSERT_TRUE(b.admits(kStart));
    b.charge(kStart, 4ULL << 20); // 4 MiB at once: 4 s of budget
    EXPECT_FALSE(b.admits(kStart + 3 * kSecond));
    uint64_t next = b.next_admit();
    EXPECT_GT(next, kStart + 3 * kSecond + 980 * (kSecond / 1000));
    EXPECT_LE(next, kStart + 4 * kSecond);
    EXPECT_TRUE(b.admits(next));
}

TEST(TokenBucket, WakeAtIsHalfABurstAfterTheNextAdmission) {
    TokenBucket b = make(QosConfig{1000, 0, 10});
    while (b.admits(kStart)) {
        b.charge(kStart, 0);
    }
    EXPECT_EQ(b.wake_at(), b.next_admit() + 5 * (kSecond / 1000));
    // Waking there, the lcore finds a batch: about 5 ms of requests.
    uint64_t t = b.wake_at();
    uint64_t n = 0;
    while (b.admits(t)) {
        b.charge(t, 0);
        ++n;
    }
    EXPECT_EQ(n, 6u);
}

TEST(TokenBucket, SplitOverLcoresDividesTheRate) {
    TokenBucket b = make(QosConfig{3000, 0, 10}, 3);
    EXPECT_EQ(b.cycles_per_op(), kSecond / 1000);
    EXPECT_NEAR(static_cast<double>(drive(b, kStart, 10 * kSecond, 0)), 10000.0, 12.0);
}

TEST(TokenBucket, UnlimitedDimensionsNeverThrottle) {
    TokenBucket b = make(QosConfig{0, 0, 10});
    for (int i = 0; i < 100000; ++i) {
        ASSERT_TRUE(b.admits(kStart));
        b.charge(kStart, 1ULL << 20);
    }
}

TEST(TokenBucket, ARaisedLimitActsAtOnceAndDebtIsForgiven) {
    TokenBucket b = make(QosConfig{0, 1024, 10}); // 1 KiB/s
    b.charge(kStart, 1ULL << 30);                 // a 1 GiB request: 12 days of debt
    EXPECT_FALSE(b.admits(kStart + 1000 * kSecond));
    b.configure(QosConfig{0, 1ULL << 30, 10}, kStart + kSecond);
    EXPECT_TRUE(b.admits(kStart + kSecond));
    uint64_t n = drive(b, kStart + kSecond, kSecond, 1ULL << 20);
    EXPECT_NEAR(static_cast<double>(n), 1024.0, 15.0);
}

TEST(TokenBucket, SyncAppliesOnlyANewVersion) {
    QosControl ctl(QosConfig{1000, 0, 10});
    TokenBucket b;
    b.prepare(kHz, 1);
    b.sync(ctl, ctl.version(), kStart);
    EXPECT_EQ(b.cycles_per_op(), kSecond / 1000);
    uint64_t v = ctl.version();
    ctl.set(QosConfig{4000, 0, 10});
    EXPECT_NE(ctl.version(), v);
    b.sync(ctl, v, kStart); // same version as applied: nothing changes
    EXPECT_EQ(b.cycles_per_op(), kSecond / 1000);
    b.sync(ctl, ctl.version(), kStart);
    EXPECT_EQ(b.cycles_per_op(), kSecond / 4000);
    // prepare() (a new session) forgets the applied version: the same one applies again.
    b.prepare(kHz, 2);
    b.sync(ctl, ctl.version(), kStart);
    EXPECT_EQ(b.cycles_per_op(), 2 * kSecond / 4000);
}

TEST(TokenBucket, TheSmallestRateWithTheLargestRequestDoesNotOverflow) {
    TokenBucket b = make(QosConfig{0, QosConfig::kMinBandwidth, QosConfig::kMaxBurstMs}, 64);
    b.charge(kStart, UINT32_MAX);
    b.charge(kStart, UINT32_MAX);
    EXPECT_FALSE(b.admits(kStart + 365 * 24 * 3600 * kSecond));
    EXPECT_GT(b.next_admit(), kStart);
}

} // namespace
} // namespace vdh

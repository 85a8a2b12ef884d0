// SPDX-License-Identifier: MIT
// FuseCounters / FuseCounterSink / FuseStats: per-queue blocks are single-writer and
// cache-line sized, the shared block takes concurrent writers without losing counts, and a
// snapshot sums every block.
#include "fuse/fuse_counters.h"

#include <cerrno>

#include <gtest/gtest.h>

#include <memory>
#include <thread>
#include <vector>

namespace vdh::virtiofs {
namespace {

static_assert(alignof(FuseCounters) == kCacheLine, "one block per cache line set");
static_assert(sizeof(FuseCounters) % kCacheLine == 0, "no block shares a line with another");

TEST(FuseCounterSink, SingleWriterAddsRequestsAndUndo) {
    FuseCounters block;
    FuseCounterSink sink(&block, true);
    EXPECT_TRUE(sink.single_writer());
    sink.request(15);
    sink.request(15);
    sink.request(1000); // beyond the slots: slot 0
    sink.add(&FuseCounters::errors, 3);
    sink.add(&FuseCounters::async_submitted);
    sink.add(&FuseCounters::async_submitted);
    sink.undo(&FuseCounters::async_submitted);
    EXPECT_EQ(block.requests[15].load(), 2u);
    EXPECT_EQ(block.requests[0].load(), 1u);
    EXPECT_EQ(block.errors.load(), 3u);
    EXPECT_EQ(block.async_submitted.load(), 1u);
}

TEST(FuseCounterSink, SharedBlockLosesNothingUnderConcurrentWriters) {
    FuseCounters shared;
    constexpr int kThreads = 4;
    constexpr int kEach = 50000;
    std::vector<std::thread> ts;
    for (int t = 0; t < kThreads; ++t) {
        ts.emplace_back([&] {
            FuseCounterSink sink(&shared, false);
            for (int i = 0; i < kEach; ++i) {
                sink.request(26);
                sink.add(&FuseCounters::errors);
            }
        });
    }
    for (auto& t : ts) {
        t.join();
    }
    EXPECT_EQ(shared.requests[26].load(), uint64_t{kThreads} * kEach);
    EXPECT_EQ(shared.errors.load(), uint64_t{kThreads} * kEach);
}

TEST(FuseCounterSink, OwnBlocksOfConcurrentQueuesSumExactly) {
    // One writer per block, as one lcore per queue: plain load+store loses nothing, and
    // a reader running meanwhile never sees more than was counted.
    constexpr int kQueues = 3;
    constexpr uint64_t kEach = 200000;
    std::unique_ptr<FuseCounters[]> blocks(new FuseCounters[kQueues]);
    for (int q = 1; q < kQueues; ++q) {
        EXPECT_GE(reinterpret_cast<uintptr_t>(&blocks[q]) -
                      reinterpret_cast<uintptr_t>(&blocks[q - 1]),
                  kCacheLine);
        EXPECT_EQ(reinterpret_cast<uintptr_t>(&blocks[q]) % kCacheLine, 0u);
    }
    std::atomic<bool> writing{true};
    std::thread reader([&] {
        uint64_t last = 0;
        while (writing.load()) {
            FuseStats s;
            for (int q = 0; q < kQueues; ++q) {
                s.add(blocks[q]);
            }
            EXPECT_LE(s.requests[3], kQueues * kEach);
            EXPECT_GE(s.requests[3], last); // counts only grow
            last = s.requests[3];
        }
    });
    std::vector<std::thread> ts;
    for (int q = 0; q < kQueues; ++q) {
        ts.emplace_back([&, q] {
            FuseCounterSink sink(&blocks[q], true);
            for (uint64_t i = 0; i < kEach; ++i) {
                sink.request(3);
            }
        });
    }
    for (auto& t : ts) {
        t.join();
    }
    writing.store(false);
    reader.join();
    FuseStats s;
    for (int q = 0; q < kQueues; ++q) {
        s.add(blocks[q]);
    }
    EXPECT_EQ(s.requests[3], kQueues * kEach);
    EXPECT_EQ(s.total_requests(), kQueues * kEach);
}

TEST(FuseStats, SumsEveryField) {
    FuseCounters a;
    FuseCounters b;
    auto fields = {&FuseCounters::errors,          &FuseCounters::malformed,
                   &FuseCounters::unsupported,     &FuseCounters::async_submitted,
                   &FuseCounters::async_fallbacks, &FuseCounters::hiprio_rejected,
                   &FuseCounters::oversize,        &FuseCounters::blocking_refused,
                   &FuseCounters::session_resets,  &FuseCounters::session_busy,
                   &FuseCounters::inline_writes};
    uint64_t v = 1;
    for (auto f : fields) {
        FuseCounterSink(&a, true).add(f, v);
        FuseCounterSink(&b, false).add(f, 100 * v);
        ++v;
    }
    FuseCounterSink(&a, true).request(1);
    FuseCounterSink(&b, true).request(2);
    FuseStats s;
    s.add(a);
    s.add(b);
    EXPECT_EQ(s.errors, 101u);
    EXPECT_EQ(s.malformed, 202u);
    EXPECT_EQ(s.unsupported, 303u);
    EXPECT_EQ(s.async_submitted, 404u);
    EXPECT_EQ(s.async_fallbacks, 505u);
    EXPECT_EQ(s.hiprio_rejected, 606u);
    EXPECT_EQ(s.oversize, 707u);
    EXPECT_EQ(s.blocking_refused, 808u);
    EXPECT_EQ(s.session_resets, 909u);
    EXPECT_EQ(s.session_busy, 1010u);
    EXPECT_EQ(s.inline_writes, 1111u);
    EXPECT_EQ(s.total_requests(), 2u);
}

TEST(FuseStats, SumsErrnosBytesAndLatency) {
    FuseCounters a;
    FuseCounters b;
    FuseCounterSink(&a, true).error(ENOENT);
    FuseCounterSink(&b, false).error(ENOENT);
    FuseCounterSink(&b, false).error(100000); // beyond the slots: counted as "other"
    FuseCounterSink(&a, true).add(&FuseCounters::bytes_read, 4096);
    FuseCounterSink(&b, true).add(&FuseCounters::bytes_written, 10);
    FuseCounterSink(&a, true).latency(15, 100);      // bucket 0
    FuseCounterSink(&b, false).latency(15, 1 << 20); // 2^20 cycles: bucket 21 - 8 = 13
    FuseStats s;
    s.add(a);
    s.add(b);
    EXPECT_EQ(s.errors, 3u);
    EXPECT_EQ(s.errnos[ENOENT], 2u);
    EXPECT_EQ(s.errnos[0], 1u);
    EXPECT_EQ(s.bytes_read, 4096u);
    EXPECT_EQ(s.bytes_written, 10u);
    EXPECT_EQ(s.latency[15][0], 1u);
    EXPECT_EQ(s.latency[15][13], 1u);
    EXPECT_EQ(s.latency_cycles[15], 100u + (1u << 20));
}

TEST(FuseLatencyBucket, Log2Bounds) {
    EXPECT_EQ(fuse_latency_bucket(0), 0u);
    EXPECT_EQ(fuse_latency_bucket(255), 0u);  // < 2^8: first bucket
    EXPECT_EQ(fuse_latency_bucket(256), 1u);  // < 2^9
    EXPECT_EQ(fuse_latency_bucket(511), 1u);
    EXPECT_EQ(fuse_latency_bucket(512), 2u);
    EXPECT_EQ(fuse_latency_bucket(uint64_t{1} << 30), kFuseLatencyBuckets - 1);
    EXPECT_EQ(fuse_latency_bucket(~uint64_t{0}), kFuseLatencyBuckets - 1);
}

} // namespace
} // namespace vdh::virtiofs

// SPDX-License-Identifier: MIT
// QueueEpochs and the per-queue lookup caches of HandleTable: a removed entry is dropped at
// once when no queue is inside a request, only after the requests that may hold a cached
// pointer to it ended otherwise, never while one of them runs; cache hits borrow (no
// reference), stale entries are never returned, and the budget unit and fd of a released
// handle come back when the last request that could see it ends.
#include "queue_epochs.h"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "filesystem.h"
#include "handle_table.h"

namespace vdh::virtiofs::passthrough {
namespace {

struct Node : Retirable {
    int value = 7;
};

std::shared_ptr<HandleData> make_handle(GuestFdBudget& b, uint64_t nodeid) {
    auto fd = UniqueFd::from_syscall(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    EXPECT_TRUE(fd.has_value());
    return std::make_shared<HandleData>(nodeid, O_RDONLY, std::move(*fd), std::move(*b.acquire()));
}

TEST(QueueEpochs, RetiredEntryDropsAtOnceWhenNoQueueIsInside) {
    QueueEpochs e;
    auto n = std::make_shared<Node>();
    std::weak_ptr<Node> w = n;
    e.retire(std::move(n), e.bump());
    EXPECT_TRUE(w.expired());
    EXPECT_EQ(e.retired(), 0u);
}

TEST(QueueEpochs, RetiredEntryWaitsForRequestsThatBeganBefore) {
    QueueEpochs e;
    e.enter(3);
    e.enter(5);
    auto n = std::make_shared<Node>();
    std::weak_ptr<Node> w = n;
    e.retire(std::move(n), e.bump());
    EXPECT_FALSE(w.expired()) << "queue 3 and 5 may still use it";
    EXPECT_EQ(e.retired(), 1u);
    e.exit(3);
    EXPECT_FALSE(w.expired()) << "queue 5 may still use it";
    e.exit(5); // the last one drops it
    EXPECT_TRUE(w.expired());
    EXPECT_EQ(e.retired(), 0u);
}

TEST(QueueEpochs, RequestsThatBeganAfterTheRemovalDoNotHoldIt) {
    QueueEpochs e;
    auto n = std::make_shared<Node>();
    std::weak_ptr<Node> w = n;
    const uint64_t gen = e.bump();
    e.enter(1); // sees the new generation: cannot have found the removed entry
    e.retire(std::move(n), gen);
    EXPECT_TRUE(w.expired());
    e.exit(1);
}

TEST(QueueEpochs, BusyQueuesDoNotStarveRetirement) {
    // Two queues always inside some request: each new request starts at the new
    // generation, so the entry goes once both old requests ended.
    QueueEpochs e;
    e.enter(1);
    e.enter(2);
    auto n = std::make_shared<Node>();
    std::weak_ptr<Node> w = n;
    e.retire(std::move(n), e.bump());
    e.exit(1);
    e.enter(1);
    EXPECT_FALSE(w.expired());
    e.exit(2);
    EXPECT_TRUE(w.expired());
    e.exit(1);
}

TEST(QueueEpochs, DestructorDropsWhatIsStillRetired) {
    std::weak_ptr<Node> w;
    {
        QueueEpochs e;
        e.enter(0);
        auto n = std::make_shared<Node>();
        w = n;
        e.retire(std::move(n), e.bump());
        EXPECT_FALSE(w.expired());
        e.exit(0);
        e.enter(0); // not needed for the destructor, which drops everything
    }
    EXPECT_TRUE(w.expired());
}

TEST(QueueLookupCache, FindsOnlyAtTheGenerationItWasFilled) {
    QueueLookupCache<Node> c;
    Node a;
    Node b;
    EXPECT_EQ(c.find(3, 1), nullptr);
    c.fill(3, 1, &a);
    EXPECT_EQ(c.find(3, 1), &a);
    EXPECT_EQ(c.find(3, 2), nullptr) << "stale after a removal";
    EXPECT_EQ(c.find(11, 1), nullptr) << "same slot, other key";
    c.fill(11, 1, &b);
    EXPECT_EQ(c.find(11, 1), &b);
    EXPECT_EQ(c.find(3, 1), nullptr);
}

TEST(EpochSection, InactiveWithoutASlot) {
    QueueEpochs e;
    EXPECT_FALSE(EpochSection(&e, kNoQueue).active());
    EXPECT_FALSE(EpochSection(&e, QueueEpochs::kMaxQueues).active());
    EXPECT_FALSE(EpochSection(nullptr, 1).active());
    EXPECT_TRUE(EpochSection(&e, 1).active());
}

TEST(HandleTableCache, HitBorrowsAndChecksTheNodeId) {
    QueueEpochs e;
    GuestFdBudget budget(0);
    HandleTable t(&e);
    auto fh = t.insert(make_handle(budget, 5));
    ASSERT_TRUE(fh.has_value());
    EpochSection s(&e, 1);
    auto miss = t.find(s, *fh, 5);
    ASSERT_TRUE(miss.has_value());
    EXPECT_TRUE(miss->owned() != nullptr) << "first lookup: locked, owns a reference";
    auto hit = t.find(s, *fh, 5);
    ASSERT_TRUE(hit.has_value());
    EXPECT_EQ(hit->owned(), nullptr) << "cache hit: borrowed, no reference count";
    EXPECT_EQ(hit->get(), miss->get());
    EXPECT_EQ(t.find(s, *fh, 6).error(), EBADF) << "fh of another inode, from the cache too";
    EXPECT_EQ(t.find(s, *fh + 1, 5).error(), EBADF);
    // Off the lcores (no section): the locked lookup.
    EpochSection none(&e, kNoQueue);
    auto locked = t.find(none, *fh, 5);
    ASSERT_TRUE(locked.has_value());
    EXPECT_TRUE(locked->owned() != nullptr);
}

TEST(HandleTableCache, ReleaseOnAnotherQueueWaitsForTheRequestUsingIt) {
    QueueEpochs e;
    GuestFdBudget budget(4);
    HandleTable t(&e);
    auto fh = t.insert(make_handle(budget, 5));
    ASSERT_TRUE(fh.has_value());
    {
        EpochSection warm(&e, 1);
        ASSERT_TRUE(t.find(warm, *fh, 5).has_value()); // fills queue 1's cache
    }
    std::weak_ptr<HandleData> w;
    int fd = -1;
    {
        EpochSection s(&e, 1);
        auto h = t.find(s, *fh, 5);
        ASSERT_TRUE(h.has_value());
        ASSERT_EQ(h->owned(), nullptr);
        w = (*h)->weak_from_this();
        fd = (*h)->fd.get();
        std::thread other([&] { // RELEASE on queue 2's lcore
            auto removed = t.remove(*fh, 5);
            ASSERT_TRUE(removed.has_value());
        });
        other.join();
        EXPECT_FALSE(w.expired()) << "queue 1 is still using it";
        EXPECT_EQ(::fcntl(fd, F_GETFD), FD_CLOEXEC) << "its fd is still open";
        EXPECT_EQ(budget.in_use(), 1u);
        EXPECT_EQ(t.find(s, *fh, 5).error(), EBADF) << "gone for new lookups at once";
    }
    EXPECT_TRUE(w.expired());
    EXPECT_EQ(::fcntl(fd, F_GETFD), -1) << "closed when the request ended";
    EXPECT_EQ(budget.in_use(), 0u);
    EXPECT_EQ(e.retired(), 0u);
}

TEST(HandleTableCache, ClearRetiresEverything) {
    QueueEpochs e;
    GuestFdBudget budget(4);
    HandleTable t(&e);
    ASSERT_TRUE(t.insert(make_handle(budget, 5)).has_value());
    ASSERT_TRUE(t.insert(make_handle(budget, 6)).has_value());
    e.enter(2);
    t.clear();
    EXPECT_EQ(budget.in_use(), 2u);
    EXPECT_EQ(e.retired(), 2u);
    e.exit(2);
    EXPECT_EQ(budget.in_use(), 0u);
    EXPECT_EQ(e.retired(), 0u);
}

TEST(HandleTableCache, ConcurrentLookupsAndReleasesNeverSeeAClosedHandle) {
    // Queue 1 looks a handle up through its cache and uses the fd; queue 2 opens and
    // releases handles all the time. A handle queue 1 found stays open until its request
    // ends (run under ASan for use-after-free checks).
    QueueEpochs e;
    GuestFdBudget budget(0);
    HandleTable t(&e);
    std::atomic<uint64_t> current{0};
    std::atomic<bool> stop{false};
    std::atomic<int> bad{0};
    std::atomic<uint64_t> hits{0};
    std::thread reader([&] {
        while (!stop.load()) {
            const uint64_t fh = current.load();
            EpochSection s(&e, 1);
            auto h = t.find(s, fh, 5);
            if (!h) {
                continue;
            }
            hits.fetch_add(h->owned() == nullptr ? 1 : 0, std::memory_order_relaxed);
            if ((*h)->nodeid != 5 || ::fcntl((*h)->fd.get(), F_GETFD) == -1) {
                bad.fetch_add(1);
            }
        }
    });
    for (int i = 0; i < 20000; ++i) {
        auto fh = t.insert(make_handle(budget, 5));
        ASSERT_TRUE(fh.has_value());
        current.store(*fh);
        for (int k = 0; k < 20; ++k) {
            std::this_thread::yield();
        }
        ASSERT_TRUE(t.remove(*fh, 5).has_value());
    }
    stop.store(true);
    reader.join();
    EXPECT_EQ(bad.load(), 0);
    EXPECT_EQ(e.retired(), 0u);
    EXPECT_EQ(budget.in_use(), 0u);
    EXPECT_EQ(t.size(), 0u);
}

} // namespace
} // namespace vdh::virtiofs::passthrough

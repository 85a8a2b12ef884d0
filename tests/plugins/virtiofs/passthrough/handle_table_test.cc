// SPDX-License-Identifier: MIT
// HandleTable: counter fh values, validation against the node id, removal and release
// of fds and budget units.

#include "handle_table.h"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "test_util.h"

namespace vdh::virtiofs::passthrough {
namespace {

std::shared_ptr<HandleData> make_handle(GuestFdBudget& b, uint64_t nodeid, int flags) {
    auto fd = UniqueFd::from_syscall(::open("/dev/null", flags | O_CLOEXEC));
    EXPECT_TRUE(fd.has_value());
    return std::make_shared<HandleData>(nodeid, flags, std::move(*fd), std::move(*b.acquire()));
}

TEST(HandleTable, CountersValidatedAgainstNodeId) {
    GuestFdBudget budget(0);
    HandleTable t;
    auto fh1 = t.insert(make_handle(budget, 5, O_RDONLY));
    auto fh2 = t.insert(make_handle(budget, 6, O_RDWR));
    ASSERT_TRUE(fh1.has_value() && fh2.has_value());
    EXPECT_NE(*fh1, 0u);
    EXPECT_EQ(*fh2, *fh1 + 1);
    auto h = t.get(*fh1, 5);
    ASSERT_TRUE(h.has_value());
    EXPECT_FALSE((*h)->writable());
    EXPECT_TRUE((*t.get(*fh2, 6))->writable());
    EXPECT_EQ(t.get(*fh1, 6).error(), EBADF) << "fh of another inode";
    EXPECT_EQ(t.get(12345, 5).error(), EBADF);
    EXPECT_EQ(t.get(0, 5).error(), EBADF);
    EXPECT_EQ(t.remove(*fh1, 6).error(), EBADF);
    EXPECT_EQ(t.size(), 2u);
}

TEST(HandleTable, RemoveReleasesFdAndBudgetAfterLastUser) {
    GuestFdBudget budget(0);
    HandleTable t;
    int fds0 = testing::count_open_fds();
    auto fh = t.insert(make_handle(budget, 7, O_RDONLY));
    ASSERT_TRUE(fh.has_value());
    EXPECT_EQ(testing::count_open_fds(), fds0 + 1);
    auto in_flight = t.get(*fh, 7); // a concurrent user
    auto removed = t.remove(*fh, 7);
    ASSERT_TRUE(removed.has_value());
    EXPECT_EQ(t.get(*fh, 7).error(), EBADF);
    removed = make_err(EIO);
    EXPECT_EQ(testing::count_open_fds(), fds0 + 1) << "kept alive by the in-flight user";
    in_flight = make_err(EIO);
    EXPECT_EQ(testing::count_open_fds(), fds0);
    EXPECT_EQ(budget.in_use(), 0u);
}

TEST(HandleTable, ClearDropsAll) {
    GuestFdBudget budget(0);
    HandleTable t;
    int fds0 = testing::count_open_fds();
    for (int i = 0; i < 5; ++i) {
        ASSERT_TRUE(t.insert(make_handle(budget, 1, O_RDONLY)).has_value());
    }
    t.clear();
    EXPECT_EQ(t.size(), 0u);
    EXPECT_EQ(budget.in_use(), 0u);
    EXPECT_EQ(testing::count_open_fds(), fds0);
    EXPECT_EQ(t.insert(nullptr).error(), EINVAL);
}

} // namespace
} // namespace vdh::virtiofs::passthrough

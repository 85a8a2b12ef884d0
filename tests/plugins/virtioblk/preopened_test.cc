// SPDX-License-Identifier: MIT
// Unit tests of the registry of backing files opened before the sandbox: a file is taken
// once, by the block it was left for; the same block left again replaces (and closes) the
// stale file.
#include "preopened.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

namespace vdh::virtioblk {
namespace {

BackingFile file(uint64_t size) {
    BackingFile b;
    b.fd = UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    b.size_bytes = size;
    return b;
}

TEST(Preopened, TakenOnceByItsBlock) {
    put_preopened("a.yaml", "\n  path: /x\n", file(1));
    put_preopened("a.yaml", "\n\n\n  path: /x\n", file(2)); // another device's block
    EXPECT_FALSE(take_preopened("b.yaml", "\n  path: /x\n").has_value());
    auto b = take_preopened("a.yaml", "\n  path: /x\n");
    ASSERT_TRUE(b.has_value());
    EXPECT_EQ(b->size_bytes, 1u);
    EXPECT_TRUE(b->fd.valid());
    EXPECT_FALSE(take_preopened("a.yaml", "\n  path: /x\n").has_value());
    b = take_preopened("a.yaml", "\n\n\n  path: /x\n");
    ASSERT_TRUE(b.has_value());
    EXPECT_EQ(b->size_bytes, 2u);
}

TEST(Preopened, LeavingTheSameBlockAgainClosesTheStaleFile) {
    BackingFile first = file(1);
    const int stale = first.fd.get();
    put_preopened("a.yaml", "path: /y\n", std::move(first));
    put_preopened("a.yaml", "path: /y\n", file(2));
    ASSERT_GE(stale, 0);
    EXPECT_EQ(::fcntl(stale, F_GETFD), -1); // closed (file(2) was opened before it closed)
    EXPECT_EQ(errno, EBADF);
    auto b = take_preopened("a.yaml", "path: /y\n");
    ASSERT_TRUE(b.has_value());
    EXPECT_EQ(b->size_bytes, 2u);
    EXPECT_FALSE(take_preopened("a.yaml", "path: /y\n").has_value());
}

} // namespace
} // namespace vdh::virtioblk

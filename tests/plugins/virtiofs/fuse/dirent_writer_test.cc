// SPDX-License-Identifier: MIT
// DirentWriter: record layout (fuse_dirent / fuse_direntplus, 8-byte padding), the budget,
// and records that straddle iovec boundaries.
#include "fuse/dirent_writer.h"

#include <dirent.h>
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "fuse_test_util.h"

namespace vdh::virtiofs {
namespace {

using test::Bytes;
using test::bytes_of;
using test::cat;

Bytes dirent(uint64_t ino, uint64_t off, uint32_t type, std::string_view name) {
    fuse_dirent d{};
    d.ino = ino;
    d.off = off;
    d.namelen = static_cast<uint32_t>(name.size());
    d.type = type;
    Bytes b(fuse_dirent_size(name.size()), 0);
    std::memcpy(b.data(), &d, FUSE_NAME_OFFSET);
    if (!name.empty()) {
        std::memcpy(b.data() + FUSE_NAME_OFFSET, name.data(), name.size());
    }
    return b;
}

TEST(DirentWriter, WritesPaddedRecords) {
    Bytes buf(256, 0xEE);
    iovec iov{buf.data(), buf.size()};
    IovecCursor out(&iov, 1);
    DirentWriter w(&out, 256, false);
    EXPECT_FALSE(w.plus());
    EXPECT_TRUE(w.add("a", 10, DT_REG, 1, nullptr));
    EXPECT_TRUE(w.add("12345678", 11, DT_DIR, 2, nullptr));  // exactly 32: no padding
    EXPECT_TRUE(w.add("123456789", 12, DT_LNK, 3, nullptr)); // 33 -> 40
    EXPECT_EQ(w.written(), 32u + 32u + 40u);
    EXPECT_EQ(w.count(), 3u);
    Bytes expect = cat({dirent(10, 1, DT_REG, "a"), dirent(11, 2, DT_DIR, "12345678"),
                        dirent(12, 3, DT_LNK, "123456789")});
    EXPECT_EQ(Bytes(buf.begin(), buf.begin() + 104), expect);
    EXPECT_EQ(buf[104], 0xEE);
}

TEST(DirentWriter, StopsAtBudgetWithoutPartialRecord) {
    Bytes buf(256, 0xEE);
    iovec iov{buf.data(), buf.size()};
    IovecCursor out(&iov, 1);
    DirentWriter w(&out, 63, false);
    EXPECT_TRUE(w.add("a", 1, DT_REG, 1, nullptr));
    EXPECT_FALSE(w.add("b", 2, DT_REG, 2, nullptr));
    EXPECT_EQ(w.written(), 32u);
    EXPECT_EQ(w.count(), 1u);
    EXPECT_EQ(buf[32], 0xEE); // nothing of the second record
    // Exactly filling works.
    Bytes buf2(64, 0xEE);
    iovec iov2{buf2.data(), buf2.size()};
    IovecCursor out2(&iov2, 1);
    DirentWriter w2(&out2, 1000, false); // the cursor bounds it to 64
    EXPECT_TRUE(w2.add("a", 1, DT_REG, 1, nullptr));
    EXPECT_TRUE(w2.add("b", 2, DT_REG, 2, nullptr));
    EXPECT_FALSE(w2.add("c", 3, DT_REG, 3, nullptr));
    EXPECT_EQ(w2.written(), 64u);
}

TEST(DirentWriter, PlusRecordsAcrossIovecs) {
    std::vector<Bytes> bufs = {Bytes(7, 0xEE), Bytes(100, 0xEE), Bytes(3, 0xEE), Bytes(300, 0xEE)};
    std::vector<iovec> iov;
    for (Bytes& b : bufs) {
        iov.push_back({b.data(), b.size()});
    }
    IovecCursor out(iov.data(), static_cast<uint32_t>(iov.size()));
    DirentWriter w(&out, 320, true);
    EXPECT_TRUE(w.plus());
    fuse_entry_out e{};
    e.nodeid = 5;
    e.attr.ino = 99;
    e.attr.mode = 0100644;
    EXPECT_TRUE(w.add("file", 99, DT_REG, 1, &e));
    EXPECT_TRUE(w.add("other", 100, DT_REG, 2, nullptr)); // null entry: zeroed
    EXPECT_FALSE(w.add("third", 101, DT_REG, 3, &e));
    EXPECT_EQ(w.written(), 320u);
    Bytes all;
    for (const Bytes& b : bufs) {
        all.insert(all.end(), b.begin(), b.end());
    }
    Bytes expect = cat({bytes_of(e), dirent(99, 1, DT_REG, "file"), bytes_of(fuse_entry_out{}),
                        dirent(100, 2, DT_REG, "other")});
    ASSERT_EQ(expect.size(), 320u);
    EXPECT_EQ(Bytes(all.begin(), all.begin() + 320), expect);
    for (size_t i = 320; i < all.size(); ++i) {
        ASSERT_EQ(all[i], 0xEE) << i;
    }
}

} // namespace
} // namespace vdh::virtiofs

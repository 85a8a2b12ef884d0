// SPDX-License-Identifier: MIT
// Unit tests of the backing file: regular files (capacity rounded to blocks, read-only and
// O_DIRECT opens), a block device, and everything else refused with a config error naming
// the key (directories, character devices, FIFOs without blocking, missing paths, files
// smaller than a block).
#include "backing_file.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "../../host/temp_dir.h"
#include "loop_device.h"

namespace vdh::virtioblk {
namespace {

using testing::TempDir;

BlkProfile profile(const std::string& path) {
    BlkProfile p;
    p.path = path;
    p.path_pos = SourcePos{4, 13};
    p.block_size_pos = SourcePos{5, 19};
    return p;
}

void make_file(const std::string& path, off_t size) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, size), 0);
    ::close(fd);
}

TEST(BackingFile, RegularFileCapacityRoundsDownToBlocks) {
    TempDir dir;
    const std::string img = dir.file("disk.img");
    make_file(img, 3 * 4096 + 700);
    std::string err;
    auto b = open_backing(profile(img), "vdhost.yaml", &err);
    ASSERT_TRUE(b.has_value()) << err;
    EXPECT_FALSE(b->block_device);
    EXPECT_EQ(b->size_bytes, 3u * 4096 + 700);
    EXPECT_EQ(b->capacity_bytes, 3u * 4096 + 512);
    EXPECT_EQ(::fcntl(b->fd.get(), F_GETFL) & (O_ACCMODE | O_NONBLOCK), O_RDWR);
    EXPECT_NE(::fcntl(b->fd.get(), F_GETFD) & FD_CLOEXEC, 0);
    BlkProfile p4k = profile(img);
    p4k.block_size = 4096;
    b = open_backing(p4k, "vdhost.yaml", &err);
    ASSERT_TRUE(b.has_value()) << err;
    EXPECT_EQ(b->capacity_bytes, 3u * 4096);
}

TEST(BackingFile, ReadOnlyOpensReadOnly) {
    TempDir dir;
    const std::string img = dir.file("disk.img");
    make_file(img, 4096);
    ASSERT_EQ(::chmod(img.c_str(), 0444), 0);
    BlkProfile p = profile(img);
    p.readonly = true;
    std::string err;
    auto b = open_backing(p, "vdhost.yaml", &err);
    ASSERT_TRUE(b.has_value()) << err;
    EXPECT_EQ(::fcntl(b->fd.get(), F_GETFL) & O_ACCMODE, O_RDONLY);
    char c = 0;
    EXPECT_EQ(::pwrite(b->fd.get(), &c, 1, 0), -1);
}

TEST(BackingFile, DirectOpensWithODirect) {
    TempDir dir;
    const std::string img = dir.file("disk.img");
    make_file(img, 1 << 20);
    BlkProfile p = profile(img);
    p.direct = true;
    p.block_size = 4096;
    std::string err;
    auto b = open_backing(p, "vdhost.yaml", &err);
    if (!b && err.find("does not support it") != std::string::npos) {
        GTEST_SKIP() << err;
    }
    ASSERT_TRUE(b.has_value()) << err;
    EXPECT_NE(::fcntl(b->fd.get(), F_GETFL) & O_DIRECT, 0);
    EXPECT_GT(b->dio_align, 0u);
    EXPECT_EQ(4096 % b->dio_align, 0u);
}

TEST(BackingFile, BlockDeviceSizeAndLogicalBlockSize) {
    TempDir dir;
    const std::string img = dir.file("loop.img");
    make_file(img, 8 << 20);
    testing::LoopDevice loop;
    const std::string dev = loop.attach(img, 4096);
    if (dev.empty()) {
        GTEST_SKIP() << "no loop device (needs root and losetup)";
    }
    BlkProfile p = profile(dev);
    p.block_size = 4096;
    std::string err;
    auto b = open_backing(p, "vdhost.yaml", &err);
    ASSERT_TRUE(b.has_value()) << err;
    EXPECT_TRUE(b->block_device);
    EXPECT_EQ(b->size_bytes, 8u << 20);
    EXPECT_EQ(b->capacity_bytes, 8u << 20);
    EXPECT_EQ(b->dio_align, 4096u); // the logical block size, without an ioctl
    // O_DIRECT with blocks smaller than the device's is refused, at block_size.
    p.direct = true;
    p.block_size = 512;
    EXPECT_FALSE(open_backing(p, "vdhost.yaml", &err).has_value());
    EXPECT_EQ(err, "vdhost.yaml:5:19: config.block_size: 512 is not a multiple of " + dev +
                       "'s direct I/O alignment 4096 (direct: true)");
    p.block_size = 8192;
    b = open_backing(p, "vdhost.yaml", &err);
    ASSERT_TRUE(b.has_value()) << err;
    EXPECT_NE(::fcntl(b->fd.get(), F_GETFL) & O_DIRECT, 0);
}

TEST(BackingFile, RefusesWhatIsNeitherFileNorBlockDevice) {
    TempDir dir;
    std::string err;
    EXPECT_FALSE(open_backing(profile(dir.path()), "vdhost.yaml", &err).has_value());
    EXPECT_EQ(err, "vdhost.yaml:4:13: config.path: " + dir.path() +
                       " is a directory (expected a regular file or a block device)");
    EXPECT_FALSE(open_backing(profile("/dev/null"), "vdhost.yaml", &err).has_value());
    EXPECT_EQ(err, "vdhost.yaml:4:13: config.path: /dev/null is a character device (expected "
                   "a regular file or a block device)");
    // A FIFO without a writer would block an open for reading: it is refused first.
    const std::string fifo = dir.file("fifo");
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    BlkProfile p = profile(fifo);
    p.readonly = true;
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_FALSE(open_backing(p, "vdhost.yaml", &err).has_value());
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(1));
    EXPECT_EQ(err, "vdhost.yaml:4:13: config.path: " + fifo +
                       " is a FIFO (expected a regular file or a block device)");
    // A symbolic link to a regular file is followed.
    const std::string img = dir.file("disk.img");
    make_file(img, 4096);
    const std::string link = dir.file("link.img");
    ASSERT_EQ(::symlink(img.c_str(), link.c_str()), 0);
    EXPECT_TRUE(open_backing(profile(link), "vdhost.yaml", &err).has_value()) << err;
}

TEST(BackingFile, MissingOrTooSmall) {
    TempDir dir;
    std::string err;
    const std::string missing = dir.file("missing.img");
    EXPECT_FALSE(open_backing(profile(missing), "vdhost.yaml", &err).has_value());
    EXPECT_EQ(err, "vdhost.yaml:4:13: config.path: cannot use " + missing +
                       ": No such file or directory");
    const std::string tiny = dir.file("tiny.img");
    make_file(tiny, 4095);
    BlkProfile p = profile(tiny);
    p.block_size = 4096;
    EXPECT_FALSE(open_backing(p, "vdhost.yaml", &err).has_value());
    EXPECT_EQ(err, "vdhost.yaml:4:13: config.path: " + tiny +
                       " holds 4095 bytes: less than one block of block_size 4096");
}

} // namespace
} // namespace vdh::virtioblk

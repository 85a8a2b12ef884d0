// SPDX-License-Identifier: MIT
// Tests of the disk's write-path choice (plugins/virtioblk/blk_write_path.*) and of the
// profile key `write_path`: read-only disks punt, O_DIRECT disks and block devices never go
// inline (auto punts, nowait is accepted, inline is an error naming the key), a page-cache
// file on a local filesystem gets the filesystem's path, checked against the kernel itself.
#include "blk_write_path.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/uio.h>
#include <unistd.h>

#include <string>

#include "../../host/temp_dir.h"
#include "vdh/unique_fd.h"

namespace vdh::virtioblk {
namespace {

/// Independent of the code under test: does \p dir take a 4 KiB RWF_NOWAIT write?
bool kernel_takes_nowait(const std::string& dir) {
    auto fd = UniqueFd::from_syscall(::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
    if (!fd) {
        return false;
    }
    static char buf[4096];
    struct iovec iov = {buf, sizeof(buf)};
    if (::pwritev2(fd->get(), &iov, 1, 0, RWF_NOWAIT) == 4096) {
        return true;
    }
    // EAGAIN can mean "would allocate": an overwrite of a written page is the real question.
    return errno == EAGAIN && ::pwrite(fd->get(), buf, sizeof(buf), 0) == 4096 &&
           ::pwritev2(fd->get(), &iov, 1, 0, RWF_NOWAIT) == 4096;
}

BlkProfile profile(const std::string& yaml) {
    std::string err;
    auto p = parse_blk_profile(yaml, "disk.yaml", "d", &err);
    EXPECT_TRUE(p.has_value()) << err;
    return p ? *p : BlkProfile{};
}

TEST(BlkWritePath, ProfileKeyParsesEveryValueAndRefusesOthers) {
    EXPECT_EQ(profile("path: /x\n").write_path, WritePath::Auto);
    EXPECT_FALSE(profile("path: /x\n").write_path_written);
    EXPECT_EQ(profile("path: /x\nwrite_path: auto\n").write_path, WritePath::Auto);
    EXPECT_EQ(profile("path: /x\nwrite_path: nowait\n").write_path, WritePath::Nowait);
    EXPECT_EQ(profile("path: /x\nwrite_path: punt\n").write_path, WritePath::Punt);
    BlkProfile p = profile("path: /x\nwrite_path: inline\n");
    EXPECT_EQ(p.write_path, WritePath::Inline);
    EXPECT_TRUE(p.write_path_written);
    EXPECT_EQ(p.write_path_pos.line, 2);
    EXPECT_EQ(p.write_path_pos.column, 13);
    std::string err;
    EXPECT_FALSE(parse_blk_profile("path: /x\nwrite_path: fast\n", "disk.yaml", "d", &err));
    EXPECT_EQ(err, "disk.yaml:2:13: config.write_path: expected one of auto, nowait, inline, "
                   "punt, got \"fast\"");
}

TEST(BlkWritePath, ReadOnlyDiskPunts) {
    BlkProfile p = profile("path: /x\nreadonly: true\nwrite_path: inline\n");
    BackingFile b;
    std::string err;
    ASSERT_TRUE(resolve_blk_write_path(p, b, "disk.yaml", &err)) << err;
    EXPECT_EQ(b.write_path, WritePath::Punt);
    EXPECT_NE(b.write_path_reason.find("read-only"), std::string::npos);
}

TEST(BlkWritePath, DirectAndBlockDevicesNeverGoInline) {
    for (int kind = 0; kind < 2; ++kind) {
        const std::string direct = kind == 0 ? "direct: true\n" : "";
        BackingFile b;
        b.block_device = kind == 1;
        std::string err;
        BlkProfile p = profile("path: /x\n" + direct);
        ASSERT_TRUE(resolve_blk_write_path(p, b, "disk.yaml", &err)) << err;
        EXPECT_EQ(b.write_path, WritePath::Punt) << kind;
        p = profile("path: /x\n" + direct + "write_path: nowait\n");
        ASSERT_TRUE(resolve_blk_write_path(p, b, "disk.yaml", &err)) << err;
        EXPECT_EQ(b.write_path, WritePath::Nowait) << kind;
        p = profile("path: /x\n" + direct + "write_path: inline\n");
        EXPECT_FALSE(resolve_blk_write_path(p, b, "disk.yaml", &err));
        const std::string at = kind == 0 ? "disk.yaml:3:13" : "disk.yaml:2:13";
        EXPECT_EQ(err.rfind(at + ": config.write_path: write_path: inline, but /x is ", 0), 0u)
            << err;
    }
}

TEST(BlkWritePath, PageCacheFileGetsItsFilesystemsPath) {
    testing::TempDir dir;
    const std::string img = dir.file("disk.img");
    BlkProfile p = profile("path: " + img + "\n");
    BackingFile b;
    std::string err;
    ASSERT_TRUE(resolve_blk_write_path(p, b, "disk.yaml", &err)) << err;
    // The test directory is on a local filesystem (ext4, tmpfs or xfs here).
    EXPECT_EQ(b.write_path, kernel_takes_nowait(dir.path()) ? WritePath::Nowait : WritePath::Inline)
        << b.write_path_reason;
    EXPECT_FALSE(b.write_path_reason.empty());
    p = profile("path: " + img + "\nwrite_path: punt\n");
    ASSERT_TRUE(resolve_blk_write_path(p, b, "disk.yaml", &err)) << err;
    EXPECT_EQ(b.write_path, WritePath::Punt);
    // Inline on a filesystem that is no local page-cache one (procfs): refused, naming the key;
    // without the key written, the error points at path.
    p = profile("path: /proc/disk.img\nwrite_path: inline\n");
    EXPECT_FALSE(resolve_blk_write_path(p, b, "disk.yaml", &err));
    EXPECT_EQ(err.rfind("disk.yaml:2:13: config.write_path: write_path: inline, but ", 0), 0u)
        << err;
    p = profile("path: /nonexistent-dir-vdh/disk.img\n");
    EXPECT_FALSE(resolve_blk_write_path(p, b, "disk.yaml", &err));
    EXPECT_EQ(err.rfind("disk.yaml:1:7: config.path: ", 0), 0u) << err;
}

} // namespace
} // namespace vdh::virtioblk

// SPDX-License-Identifier: MIT
// Tests of GuestMemory: region layout (split, gaps, one memfd with offsets), gpa<->host
// translation at region edges, copies across boundaries, the allocator (alignment, reuse,
// exhaustion, never crossing regions), reserve() and hot-added regions.
#include "frontend/guest_memory.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cstring>
#include <set>
#include <vector>

namespace vdh::frontend {
namespace {

std::unique_ptr<GuestMemory> make(const GuestMemoryOptions& o) {
    auto m = GuestMemory::create(o);
    EXPECT_TRUE(m.has_value()) << (m ? 0 : m.error());
    return m ? std::move(*m) : nullptr;
}

TEST(GuestMemory, SingleRegionTranslatesInsideAndRejectsOutside) {
    auto mem = make({.base_gpa = 0x100000, .size = 64 * 1024});
    ASSERT_TRUE(mem);
    ASSERT_EQ(mem->regions().size(), 1u);
    const GuestRegion& r = mem->regions()[0];
    EXPECT_EQ(r.gpa, 0x100000u);
    EXPECT_EQ(r.size, 64u * 1024);
    EXPECT_EQ(r.fd_offset, 0u);
    EXPECT_GE(r.fd, 0);

    auto first = mem->translate(0x100000, 1);
    ASSERT_TRUE(first);
    EXPECT_EQ(*first, static_cast<void*>(r.host));
    auto last = mem->translate(0x100000 + 64 * 1024 - 8, 8);
    ASSERT_TRUE(last);
    EXPECT_EQ(*last, static_cast<void*>(r.host + 64 * 1024 - 8));

    EXPECT_EQ(mem->translate(0x100000 - 1, 1).error(), EFAULT);
    EXPECT_EQ(mem->translate(0x100000 + 64 * 1024, 1).error(), EFAULT);
    EXPECT_EQ(mem->translate(0x100000 + 64 * 1024 - 8, 9).error(), EFAULT);
    EXPECT_EQ(mem->translate(0, 1).error(), EFAULT);
    // A huge length must not wrap around.
    EXPECT_EQ(mem->translate(0x100000, UINT64_MAX).error(), EFAULT);

    auto back = mem->to_gpa(r.host + 100, 4);
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, 0x100000u + 100);
    int on_stack = 0;
    EXPECT_EQ(mem->to_gpa(&on_stack).error(), EFAULT);
}

TEST(GuestMemory, SplitRegionsWithGapsUseSeparateFds) {
    auto mem = make({.base_gpa = 0, .size = 4 * 16384, .num_regions = 4, .region_gap = 0x10000});
    ASSERT_TRUE(mem);
    auto regs = mem->regions();
    ASSERT_EQ(regs.size(), 4u);
    std::set<int> fds;
    for (size_t i = 0; i < regs.size(); i++) {
        EXPECT_EQ(regs[i].gpa, i * (16384 + 0x10000));
        EXPECT_EQ(regs[i].size, 16384u);
        EXPECT_EQ(regs[i].fd_offset, 0u);
        fds.insert(regs[i].fd);
    }
    EXPECT_EQ(fds.size(), 4u);
    // Inside the gap: not guest memory.
    EXPECT_EQ(mem->translate(16384, 1).error(), EFAULT);
    uint8_t b = 1;
    EXPECT_EQ(mem->write(16384 - 1, &b, 2).error(), EFAULT);
    // Region 2 translates to its own mapping.
    auto p = mem->translate(regs[2].gpa + 10, 4);
    ASSERT_TRUE(p);
    EXPECT_EQ(*p, static_cast<void*>(regs[2].host + 10));
}

TEST(GuestMemory, ContiguousGpaButSeparateMappingsAtBoundary) {
    auto mem = make({.base_gpa = 0x40000, .size = 8 * 4096, .num_regions = 2});
    ASSERT_TRUE(mem);
    auto regs = mem->regions();
    ASSERT_EQ(regs.size(), 2u);
    uint64_t boundary = regs[1].gpa;
    EXPECT_EQ(boundary, regs[0].gpa + regs[0].size);
    // A range crossing the boundary has no single host pointer...
    EXPECT_EQ(mem->translate(boundary - 8, 16).error(), EFAULT);
    // ...but the copy helpers handle it, and the bytes land in both regions.
    std::vector<uint8_t> in(64);
    for (size_t i = 0; i < in.size(); i++) {
        in[i] = static_cast<uint8_t>(i + 1);
    }
    ASSERT_TRUE(mem->write(boundary - 32, in.data(), in.size()));
    EXPECT_EQ(std::memcmp(regs[0].host + regs[0].size - 32, in.data(), 32), 0);
    EXPECT_EQ(std::memcmp(regs[1].host, in.data() + 32, 32), 0);
    std::vector<uint8_t> out(64);
    ASSERT_TRUE(mem->read(boundary - 32, out.data(), out.size()));
    EXPECT_EQ(in, out);
}

TEST(GuestMemory, SingleFdRegionsAreWindowsAtOffsets) {
    auto mem = make({.base_gpa = 0, .size = 3 * 8192, .num_regions = 3, .single_fd = true});
    ASSERT_TRUE(mem);
    auto regs = mem->regions();
    ASSERT_EQ(regs.size(), 3u);
    for (size_t i = 0; i < regs.size(); i++) {
        EXPECT_EQ(regs[i].fd, regs[0].fd);
        EXPECT_EQ(regs[i].fd_offset, i * 8192);
    }
    // Writes through the region mapping are visible through an independent mapping of the
    // fd at the region's offset (what a backend does with mmap_offset).
    const char msg[] = "region-two";
    ASSERT_TRUE(mem->write(regs[2].gpa + 100, msg, sizeof(msg)));
    void* whole = ::mmap(nullptr, 3 * 8192, PROT_READ, MAP_SHARED, regs[0].fd, 0);
    ASSERT_NE(whole, MAP_FAILED);
    EXPECT_STREQ(static_cast<const char*>(whole) + regs[2].fd_offset + 100, msg);
    ::munmap(whole, 3 * 8192);
}

TEST(GuestMemory, RejectsBadLayouts) {
    EXPECT_EQ(GuestMemory::create({.size = 0}).error(), EINVAL);
    EXPECT_EQ(GuestMemory::create({.size = 4096 + 1}).error(), EINVAL);
    EXPECT_EQ(GuestMemory::create({.base_gpa = 100, .size = 4096}).error(), EINVAL);
    EXPECT_EQ(GuestMemory::create({.size = 9 * 4096, .num_regions = 9}).error(), EINVAL);
    EXPECT_EQ(GuestMemory::create({.size = 4096, .num_regions = 2}).error(), EINVAL);
    EXPECT_EQ(GuestMemory::create({.region_sizes = {4096, 100}}).error(), EINVAL);
}

TEST(GuestMemory, ExplicitRegionSizesAndMemoryTable) {
    auto mem = make({.base_gpa = 0x1000, .region_sizes = {4096, 3 * 4096}, .region_gap = 4096});
    ASSERT_TRUE(mem);
    std::vector<MemoryRegionDesc> descs;
    std::vector<int> fds;
    mem->memory_table(descs, fds);
    ASSERT_EQ(descs.size(), 2u);
    ASSERT_EQ(fds.size(), 2u);
    EXPECT_EQ(descs[0].guest_phys_addr, 0x1000u);
    EXPECT_EQ(descs[0].memory_size, 4096u);
    EXPECT_EQ(descs[1].guest_phys_addr, 0x3000u);
    EXPECT_EQ(descs[1].memory_size, 3u * 4096);
    EXPECT_EQ(descs[1].userspace_addr, reinterpret_cast<uintptr_t>(mem->regions()[1].host));
    EXPECT_EQ(descs[1].mmap_offset, 0u);
    EXPECT_EQ(fds[1], mem->regions()[1].fd);
}

TEST(GuestMemory, AllocatorHonoursAlignmentAndDoesNotOverlap) {
    auto mem = make({.base_gpa = 0x10000, .size = 64 * 1024});
    ASSERT_TRUE(mem);
    uint64_t total = mem->bytes_free();
    EXPECT_EQ(total, 64u * 1024);
    std::vector<std::pair<uint64_t, uint64_t>> got;
    for (uint64_t align : {1, 16, 64, 4096, 2, 8192}) {
        auto a = mem->allocate(100, align);
        ASSERT_TRUE(a);
        EXPECT_EQ(*a % align, 0u) << "align " << align;
        got.emplace_back(*a, 100);
    }
    for (size_t i = 0; i < got.size(); i++) {
        for (size_t j = i + 1; j < got.size(); j++) {
            bool disjoint = got[i].first + got[i].second <= got[j].first ||
                            got[j].first + got[j].second <= got[i].first;
            EXPECT_TRUE(disjoint) << i << " vs " << j;
        }
    }
    EXPECT_EQ(mem->bytes_free(), total - 600);
    for (auto& [gpa, len] : got) {
        ASSERT_TRUE(mem->free(gpa));
    }
    EXPECT_EQ(mem->bytes_free(), total);
    // Everything merged back: the whole region is one allocation again.
    auto all = mem->allocate(64 * 1024, 4096);
    ASSERT_TRUE(all);
    EXPECT_EQ(*all, 0x10000u);
    EXPECT_EQ(mem->allocate(1).error(), ENOMEM);
    ASSERT_TRUE(mem->free(*all));
}

TEST(GuestMemory, AllocatorRejectsBadArgumentsAndDoubleFree) {
    auto mem = make({.size = 8192});
    ASSERT_TRUE(mem);
    EXPECT_EQ(mem->allocate(0).error(), EINVAL);
    EXPECT_EQ(mem->allocate(16, 3).error(), EINVAL);
    EXPECT_EQ(mem->allocate(16, 0).error(), EINVAL);
    EXPECT_EQ(mem->allocate(8193).error(), ENOMEM);
    auto a = mem->allocate(16);
    ASSERT_TRUE(a);
    EXPECT_EQ(*a, 0u); // gpa 0 is a valid allocation
    EXPECT_EQ(mem->free(*a + 1).error(), EINVAL);
    EXPECT_TRUE(mem->free(*a));
    EXPECT_EQ(mem->free(*a).error(), EINVAL);
}

TEST(GuestMemory, AllocationsNeverCrossRegions) {
    // Two 8 KiB regions, contiguous in GPA: 16 KiB free, but no 10 KiB host-contiguous run.
    auto mem = make({.base_gpa = 0, .size = 16384, .num_regions = 2});
    ASSERT_TRUE(mem);
    EXPECT_EQ(mem->allocate(10 * 1024).error(), ENOMEM);
    auto a = mem->allocate(6 * 1024);
    auto b = mem->allocate(6 * 1024);
    ASSERT_TRUE(a);
    ASSERT_TRUE(b);
    EXPECT_LT(*a, 8192u);
    EXPECT_GE(*b, 8192u);
    EXPECT_TRUE(mem->ptr<uint8_t>(*b, 6 * 1024) != nullptr);
    ASSERT_TRUE(mem->free(*a));
    ASSERT_TRUE(mem->free(*b));
    // Freed ranges of adjacent regions do not merge into one cross-region range.
    EXPECT_EQ(mem->allocate(10 * 1024).error(), ENOMEM);
}

TEST(GuestMemory, ReserveCanSpanRegionsAndDetectsConflicts) {
    auto mem = make({.base_gpa = 0, .size = 16384, .num_regions = 2});
    ASSERT_TRUE(mem);
    ASSERT_TRUE(mem->reserve(8192 - 100, 200)); // straddles the boundary
    EXPECT_EQ(mem->bytes_free(), 16384u - 200);
    EXPECT_EQ(mem->reserve(8192 - 50, 10).error(), EBUSY);
    EXPECT_EQ(mem->reserve(8192 + 99, 10).error(), EBUSY);
    EXPECT_EQ(mem->reserve(16384 - 10, 20).error(), EFAULT);
    // The allocator works around the reservation.
    auto a = mem->allocate(8192 - 100);
    ASSERT_TRUE(a);
    EXPECT_EQ(*a, 0u);
    ASSERT_TRUE(mem->free(8192 - 100));
    ASSERT_TRUE(mem->free(*a));
    EXPECT_EQ(mem->bytes_free(), 16384u);
    auto whole0 = mem->allocate(8192);
    auto whole1 = mem->allocate(8192);
    EXPECT_TRUE(whole0);
    EXPECT_TRUE(whole1);
}

TEST(GuestMemory, AddRegionExtendsTranslationAndAllocator) {
    auto mem = make({.base_gpa = 0, .size = 4096});
    ASSERT_TRUE(mem);
    auto a = mem->allocate(4096);
    ASSERT_TRUE(a);
    EXPECT_EQ(mem->allocate(64).error(), ENOMEM);
    EXPECT_EQ(mem->add_region(0, 4096).error(), EEXIST);
    EXPECT_EQ(mem->add_region(0x100000 + 1, 4096).error(), EINVAL);
    ASSERT_TRUE(mem->add_region(0x100000, 8192));
    ASSERT_EQ(mem->regions().size(), 2u);
    EXPECT_NE(mem->regions()[1].fd, mem->regions()[0].fd);
    auto b = mem->allocate(64);
    ASSERT_TRUE(b);
    EXPECT_GE(*b, 0x100000u);
    auto p = mem->translate(0x100000 + 8192 - 1, 1);
    EXPECT_TRUE(p);
    for (uint64_t i = 2; i < kMaxMemRegions; i++) {
        ASSERT_TRUE(mem->add_region(0x1000000 * i, 4096));
    }
    EXPECT_EQ(mem->add_region(0x40000000, 4096).error(), ENOSPC);
}

} // namespace
} // namespace vdh::frontend

// SPDX-License-Identifier: MIT
// Tests of SplitVirtqueue against a tiny in-test DEVICE side that reads the rings from the
// same GuestMemory by gpa (pop avail, walk the chain, write used, signal per flags/event
// idx): direct and indirect chains, wraparound, event idx on both sides, interrupt and
// notification suppression, waiting on the call eventfd, and the raw malformed-ring helpers.
#include "frontend/split_virtqueue.h"

#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <optional>
#include <thread>
#include <vector>

#include "backend_wire.h"

namespace vdh::frontend {
namespace {

using namespace std::chrono_literals;
using testing::drain_eventfd;

/// The device's view of one chain.
struct DevChain {
    uint16_t head = 0;
    bool indirect = false;
    std::vector<VringDesc> readable;
    std::vector<VringDesc> writable;
};

/// Device-side ring access through GuestMemory gpa translation (independent of the
/// driver's own pointers). Validates chains like a careful device would.
class DeviceSide {
public:
    DeviceSide(GuestMemory& mem, SplitVirtqueue& vq) : mem_(mem), vq_(vq), size_(vq.size()) {
        desc_ = mem.ptr<VringDesc>(vq.desc_gpa(), desc_table_bytes(size_));
        avail_ = mem.ptr<uint16_t>(vq.avail_gpa(), avail_ring_bytes(size_));
        used_ = mem.ptr<uint8_t>(vq.used_gpa(), used_ring_bytes(size_));
    }

    bool event_idx = false;
    uint16_t last_avail = 0;
    uint16_t used_idx = 0;
    uint64_t signals = 0;
    std::string error;

    uint16_t avail_idx() const {
        return std::atomic_ref<uint16_t>(avail_[1]).load(std::memory_order_acquire);
    }
    uint16_t avail_flags() const { return std::atomic_ref<uint16_t>(avail_[0]).load(); }
    uint16_t used_event() const {
        return std::atomic_ref<uint16_t>(avail_[2 + size_]).load(std::memory_order_acquire);
    }
    void set_avail_event(uint16_t v) {
        std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(used_ + 4 + 8 * size_)).store(v);
        std::atomic_thread_fence(std::memory_order_seq_cst);
    }
    void set_used_flags(uint16_t v) {
        std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(used_)).store(v);
        std::atomic_thread_fence(std::memory_order_seq_cst);
    }

    /// Pops the next available chain; nullopt if none or malformed (then `error` says why).
    std::optional<DevChain> pop() {
        if (avail_idx() == last_avail) {
            return std::nullopt;
        }
        uint16_t head = avail_[2 + (last_avail & (size_ - 1))];
        last_avail++;
        if (event_idx) {
            set_avail_event(last_avail);
        }
        DevChain c;
        c.head = head;
        if (head >= size_) {
            error = "head out of range";
            return std::nullopt;
        }
        const VringDesc* table = desc_;
        uint32_t table_size = size_;
        uint16_t i = head;
        if (desc_[head].flags & kDescFIndirect) {
            c.indirect = true;
            table_size = desc_[head].len / sizeof(VringDesc);
            table = mem_.ptr<VringDesc>(desc_[head].addr, desc_[head].len);
            if (table == nullptr || desc_[head].len % sizeof(VringDesc) != 0) {
                error = "bad indirect table";
                return std::nullopt;
            }
            i = 0;
        }
        for (uint32_t hops = 0;; hops++) {
            if (hops >= table_size) {
                error = "descriptor loop";
                return std::nullopt;
            }
            const VringDesc& d = table[i];
            if (d.flags & kDescFIndirect) {
                error = "nested indirect";
                return std::nullopt;
            }
            if (d.flags & kDescFWrite) {
                c.writable.push_back(d);
            } else {
                if (!c.writable.empty()) {
                    error = "readable after writable";
                    return std::nullopt;
                }
                c.readable.push_back(d);
            }
            if (!(d.flags & kDescFNext)) {
                break;
            }
            if (d.next >= table_size) {
                error = "next out of range";
                return std::nullopt;
            }
            i = d.next;
        }
        return c;
    }

    /// Appends a used element and signals the call fd if the driver wants an interrupt.
    void push(uint32_t id, uint32_t len) {
        auto* ring = reinterpret_cast<VringUsedElem*>(used_ + 4);
        ring[used_idx & (size_ - 1)] = VringUsedElem{id, len};
        uint16_t old = used_idx;
        used_idx++;
        std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(used_ + 2))
            .store(used_idx, std::memory_order_release);
        std::atomic_thread_fence(std::memory_order_seq_cst);
        bool need = event_idx ? vring_need_event(used_event(), used_idx, old)
                              : (avail_flags() & kAvailFNoInterrupt) == 0;
        if (need) {
            uint64_t one = 1;
            EXPECT_EQ(::write(vq_.call_fd(), &one, sizeof(one)), 8);
            signals++;
        }
    }

    /// Reads the readable part of a chain into one buffer.
    std::vector<uint8_t> gather(const DevChain& c) const {
        std::vector<uint8_t> out;
        for (const VringDesc& d : c.readable) {
            size_t at = out.size();
            out.resize(at + d.len);
            EXPECT_TRUE(mem_.read(d.addr, out.data() + at, d.len));
        }
        return out;
    }

    /// Writes `data` over the writable part; returns bytes written.
    uint32_t scatter(const DevChain& c, const std::vector<uint8_t>& data) const {
        size_t off = 0;
        for (const VringDesc& d : c.writable) {
            size_t n = std::min<size_t>(d.len, data.size() - off);
            EXPECT_TRUE(mem_.write(d.addr, data.data() + off, n));
            off += n;
            if (off == data.size()) {
                break;
            }
        }
        return static_cast<uint32_t>(off);
    }

    /// Echo device: answers each chain with its readable bytes, bitwise inverted.
    size_t serve_all() {
        size_t n = 0;
        while (auto c = pop()) {
            std::vector<uint8_t> in = gather(*c);
            for (auto& b : in) {
                b = static_cast<uint8_t>(~b);
            }
            push(c->head, scatter(*c, in));
            n++;
        }
        return n;
    }

private:
    GuestMemory& mem_;
    SplitVirtqueue& vq_;
    uint16_t size_;
    VringDesc* desc_ = nullptr;
    uint16_t* avail_ = nullptr;
    uint8_t* used_ = nullptr;
};

class SplitVirtqueueTest : public ::testing::Test {
protected:
    void make(uint16_t size, const GuestMemoryOptions& o = {.base_gpa = 0x10000,
                                                            .size = 1 << 20}) {
        auto m = GuestMemory::create(o);
        ASSERT_TRUE(m);
        mem_ = std::move(*m);
        free_at_start_ = mem_->bytes_free();
        auto q = SplitVirtqueue::create(*mem_, size);
        ASSERT_TRUE(q);
        vq_ = std::move(*q);
        dev_ = std::make_unique<DeviceSide>(*mem_, *vq_);
    }

    uint64_t buf(uint32_t len, uint8_t fill) {
        auto gpa = mem_->allocate(len, 8);
        EXPECT_TRUE(gpa);
        std::memset(mem_->ptr<uint8_t>(*gpa, len), fill, len);
        return *gpa;
    }

    std::unique_ptr<GuestMemory> mem_;
    std::unique_ptr<SplitVirtqueue> vq_;
    std::unique_ptr<DeviceSide> dev_;
    uint64_t free_at_start_ = 0;
};

TEST_F(SplitVirtqueueTest, CreateRejectsBadSizes) {
    auto m = GuestMemory::create({.size = 256 << 10});
    ASSERT_TRUE(m);
    EXPECT_EQ(SplitVirtqueue::create(**m, 0).error(), EINVAL);
    EXPECT_EQ(SplitVirtqueue::create(**m, 100).error(), EINVAL);
    EXPECT_EQ(SplitVirtqueue::create(**m, 65535).error(), EINVAL);
    EXPECT_EQ(SplitVirtqueue::create(**m, 32768).error(), ENOMEM); // 256 KiB is too small
    auto q = SplitVirtqueue::create(**m, 256);
    ASSERT_TRUE(q);
    EXPECT_EQ((*q)->num_free(), 256);
    EXPECT_NE((*q)->kick_fd(), (*q)->call_fd());
}

TEST_F(SplitVirtqueueTest, DirectChainRoundTrip) {
    make(16);
    uint64_t r1 = buf(10, 0x11);
    auto* r2 = mem_->ptr<uint8_t>(buf(20, 0x22), 20);
    uint64_t w1 = buf(16, 0);
    uint64_t w2 = buf(64, 0);
    Segment rd[] = {Segment::guest(r1, 10), Segment::from_host(r2, 20)};
    Segment wr[] = {Segment::guest(w1, 16), Segment::guest(w2, 64)};
    auto head = vq_->add_chain(rd, wr);
    ASSERT_TRUE(head);
    EXPECT_EQ(vq_->num_free(), 12);
    EXPECT_EQ(vq_->in_flight(), 1);

    auto c = dev_->pop();
    ASSERT_TRUE(c) << dev_->error;
    EXPECT_EQ(c->head, *head);
    EXPECT_FALSE(c->indirect);
    ASSERT_EQ(c->readable.size(), 2u);
    ASSERT_EQ(c->writable.size(), 2u);
    EXPECT_EQ(c->readable[0].addr, r1);
    EXPECT_EQ(c->readable[0].len, 10u);
    EXPECT_EQ(c->readable[1].addr, *mem_->to_gpa(r2));
    EXPECT_EQ(c->writable[0].addr, w1);
    EXPECT_EQ(c->writable[1].len, 64u);
    std::vector<uint8_t> in = dev_->gather(*c);
    ASSERT_EQ(in.size(), 30u);
    EXPECT_EQ(in[0], 0x11);
    EXPECT_EQ(in[29], 0x22);
    std::vector<uint8_t> reply(40, 0x7e);
    dev_->push(c->head, dev_->scatter(*c, reply));

    auto used = vq_->poll_used();
    ASSERT_EQ(used.size(), 1u);
    EXPECT_EQ(used[0].id, *head);
    EXPECT_EQ(used[0].len, 40u);
    EXPECT_FALSE(used[0].unexpected);
    EXPECT_EQ(mem_->ptr<uint8_t>(w2, 64)[23], 0x7e);
    EXPECT_EQ(mem_->ptr<uint8_t>(w2, 64)[24], 0x00);
    EXPECT_EQ(vq_->num_free(), 16);
    EXPECT_EQ(vq_->in_flight(), 0);
    EXPECT_TRUE(vq_->poll_used().empty());
}

TEST_F(SplitVirtqueueTest, IndirectChainUsesOneDescriptorAndFreesTable) {
    make(8);
    uint64_t r = buf(8, 0x33);
    uint64_t w = buf(8, 0);
    uint64_t after_bufs = mem_->bytes_free();
    Segment rd[] = {Segment::guest(r, 4), Segment::guest(r + 4, 4)};
    Segment wr[] = {Segment::guest(w, 8)};
    auto head = vq_->add_chain(rd, wr, /*indirect=*/true);
    ASSERT_TRUE(head);
    EXPECT_EQ(vq_->num_free(), 7);
    EXPECT_LT(mem_->bytes_free(), after_bufs); // the table came from guest memory
    VringDesc d = vq_->read_desc(*head);
    EXPECT_EQ(d.flags, kDescFIndirect);
    EXPECT_EQ(d.len, 3 * sizeof(VringDesc));

    auto c = dev_->pop();
    ASSERT_TRUE(c) << dev_->error;
    EXPECT_TRUE(c->indirect);
    EXPECT_EQ(c->readable.size(), 2u);
    EXPECT_EQ(c->writable.size(), 1u);
    dev_->push(c->head, 5);
    auto used = vq_->poll_used();
    ASSERT_EQ(used.size(), 1u);
    EXPECT_EQ(used[0].len, 5u);
    EXPECT_EQ(vq_->num_free(), 8);
    EXPECT_EQ(mem_->bytes_free(), after_bufs);
}

TEST_F(SplitVirtqueueTest, WrapsAroundThreeTimesQueueSizeWithMixedChains) {
    constexpr uint16_t kSize = 8;
    make(kSize);
    uint64_t data = buf(4096, 0);
    uint64_t reply = buf(4096, 0);
    uint32_t seq = 0;
    int completed = 0;
    // Keep up to 3 chains in flight, of 1-4 descriptors, alternating indirect.
    while (completed < 3 * kSize + 5) {
        std::vector<uint16_t> heads;
        for (int k = 0; k < 3; k++, seq++) {
            uint32_t nread = 1 + seq % 3;
            std::vector<Segment> rd;
            for (uint32_t i = 0; i < nread; i++) {
                uint64_t gpa = data + (seq % 16) * 256 + i * 8;
                uint32_t v = seq * 10 + i;
                ASSERT_TRUE(mem_->write(gpa, &v, 4));
                rd.push_back(Segment::guest(gpa, 4));
            }
            std::vector<Segment> wr{Segment::guest(reply + (seq % 16) * 256, 16)};
            auto head = vq_->add_chain(rd, wr, seq % 2 == 1);
            ASSERT_TRUE(head) << "seq " << seq << " err " << head.error();
            heads.push_back(*head);
        }
        EXPECT_EQ(dev_->serve_all(), 3u) << dev_->error;
        auto used = vq_->poll_used();
        ASSERT_EQ(used.size(), 3u);
        for (int k = 0; k < 3; k++) {
            uint32_t s = seq - 3 + k;
            EXPECT_EQ(used[k].id, heads[k]);
            EXPECT_EQ(used[k].len, 4 * (1 + s % 3));
            uint32_t got;
            ASSERT_TRUE(mem_->read(reply + (s % 16) * 256, &got, 4));
            EXPECT_EQ(got, ~(s * 10));
        }
        completed += 3;
    }
    EXPECT_EQ(vq_->avail_idx(), seq);
    EXPECT_EQ(vq_->used_idx(), seq);
    EXPECT_EQ(vq_->num_free(), kSize);
    EXPECT_EQ(vq_->in_flight(), 0);
    EXPECT_EQ(vq_->stats().used_consumed, seq);
}

TEST_F(SplitVirtqueueTest, IndexesWrapPast65535) {
    make(4);
    uint64_t b = buf(8, 1);
    Segment rd[] = {Segment::guest(b, 8)};
    for (uint32_t i = 0; i < 65536 + 10; i++) {
        ASSERT_TRUE(vq_->add_chain(rd, {}));
        ASSERT_EQ(dev_->serve_all(), 1u);
        UsedElem e;
        ASSERT_EQ(vq_->poll_used(std::span<UsedElem>(&e, 1)), 1u);
        ASSERT_FALSE(e.unexpected);
    }
    EXPECT_EQ(vq_->avail_idx(), 10);
    EXPECT_EQ(vq_->last_used_idx(), 10);
    EXPECT_EQ(vq_->num_free(), 4);
}

TEST_F(SplitVirtqueueTest, RunsOutOfDescriptorsWithEnospc) {
    make(4);
    uint64_t b = buf(64, 0);
    Segment one[] = {Segment::guest(b, 8)};
    Segment two[] = {Segment::guest(b, 8), Segment::guest(b + 8, 8)};
    ASSERT_TRUE(vq_->add_chain(two, {}));
    ASSERT_TRUE(vq_->add_chain(one, {}));
    EXPECT_EQ(vq_->add_chain(two, {}).error(), ENOSPC);
    EXPECT_EQ(vq_->num_free(), 1);
    ASSERT_TRUE(vq_->add_chain(two, one, /*indirect=*/true)); // one slot is enough
    EXPECT_EQ(vq_->add_chain(one, {}).error(), ENOSPC);
    EXPECT_EQ(vq_->add_chain({}, {}).error(), EINVAL);
    std::vector<Segment> five(5, Segment::guest(b, 1));
    EXPECT_EQ(vq_->add_chain(five, {}, true).error(), EINVAL); // longer than the queue
    EXPECT_EQ(dev_->serve_all(), 3u);
    EXPECT_EQ(vq_->poll_used().size(), 3u);
    EXPECT_EQ(vq_->num_free(), 4);
}

TEST_F(SplitVirtqueueTest, HostSegmentOutsideGuestMemoryFailsWithoutSideEffects) {
    make(4);
    uint8_t outside[16];
    Segment rd[] = {Segment::from_host(outside, sizeof(outside))};
    EXPECT_EQ(vq_->add_chain(rd, {}).error(), EFAULT);
    EXPECT_EQ(vq_->num_free(), 4);
    EXPECT_EQ(vq_->avail_idx(), 0);
    EXPECT_FALSE(dev_->pop());
}

TEST_F(SplitVirtqueueTest, KickRespectsNoNotifyFlag) {
    make(8);
    uint64_t b = buf(8, 0);
    Segment rd[] = {Segment::guest(b, 8)};
    ASSERT_TRUE(vq_->add_chain(rd, {}));
    auto k = vq_->kick();
    ASSERT_TRUE(k);
    EXPECT_TRUE(*k);
    EXPECT_EQ(drain_eventfd(vq_->kick_fd()), 1u);
    dev_->set_used_flags(kUsedFNoNotify);
    ASSERT_TRUE(vq_->add_chain(rd, {}));
    k = vq_->kick();
    ASSERT_TRUE(k);
    EXPECT_FALSE(*k);
    EXPECT_EQ(drain_eventfd(vq_->kick_fd()), 0u);
    ASSERT_TRUE(vq_->force_kick());
    EXPECT_EQ(drain_eventfd(vq_->kick_fd()), 1u);
    EXPECT_EQ(vq_->stats().kicks_suppressed, 1u);
    EXPECT_EQ(vq_->stats().kicks_sent, 2u);
}

TEST_F(SplitVirtqueueTest, EventIdxKicksOnlyWhenPassingAvailEvent) {
    make(16);
    vq_->set_event_idx(true);
    dev_->event_idx = true;
    uint64_t b = buf(8, 0);
    Segment rd[] = {Segment::guest(b, 8)};
    // avail_event starts at 0: the first chain (idx 0 -> 1) needs a kick.
    ASSERT_TRUE(vq_->add_chain(rd, {}));
    EXPECT_TRUE(*vq_->kick());
    // The device asks to be kicked only once avail idx moves past 5.
    dev_->set_avail_event(5);
    std::vector<bool> kicked;
    for (int i = 0; i < 6; i++) {
        ASSERT_TRUE(vq_->add_chain(rd, {}));
        kicked.push_back(*vq_->kick()); // idx becomes 2..7
    }
    EXPECT_EQ(kicked, (std::vector<bool>{false, false, false, false, true, false}));
    EXPECT_EQ(drain_eventfd(vq_->kick_fd()), 2u);
    // A batch that jumps over avail_event still kicks once.
    dev_->set_avail_event(8);
    for (int i = 0; i < 3; i++) {
        ASSERT_TRUE(vq_->add_chain(rd, {})); // idx 8, 9, 10
    }
    EXPECT_TRUE(*vq_->kick());
}

TEST_F(SplitVirtqueueTest, EventIdxDriverPublishesUsedEvent) {
    make(16);
    vq_->set_event_idx(true);
    dev_->event_idx = true;
    uint64_t b = buf(8, 0);
    Segment wr[] = {Segment::guest(b, 8)};
    for (int i = 0; i < 3; i++) {
        ASSERT_TRUE(vq_->add_chain({}, wr));
    }
    auto c1 = dev_->pop();
    auto c2 = dev_->pop();
    auto c3 = dev_->pop();
    ASSERT_TRUE(c1 && c2 && c3);
    EXPECT_EQ(dev_->avail_idx(), 3);
    dev_->push(c1->head, 0); // used 0 -> 1 crosses used_event 0: interrupt
    dev_->push(c2->head, 0); // used 1 -> 2: driver has not asked again, no interrupt
    EXPECT_EQ(dev_->signals, 1u);
    EXPECT_EQ(vq_->poll_used().size(), 2u);
    EXPECT_EQ(vq_->used_event(), 2);
    dev_->push(c3->head, 0); // crosses the new used_event
    EXPECT_EQ(dev_->signals, 2u);
    EXPECT_EQ(drain_eventfd(vq_->call_fd()), 2u);
    EXPECT_EQ(vq_->poll_used().size(), 1u);
}

TEST_F(SplitVirtqueueTest, InterruptsOffSetsFlagAndWaitUsedStillPolls) {
    make(8);
    vq_->set_interrupts(false);
    EXPECT_EQ(dev_->avail_flags(), kAvailFNoInterrupt);
    uint64_t b = buf(8, 5);
    Segment rd[] = {Segment::guest(b, 8)};
    ASSERT_TRUE(vq_->add_chain(rd, {}));
    std::thread device([&] {
        std::this_thread::sleep_for(20ms);
        dev_->serve_all();
    });
    auto used = vq_->wait_used(5000ms);
    device.join();
    ASSERT_TRUE(used);
    EXPECT_EQ(used->size(), 1u);
    EXPECT_EQ(dev_->signals, 0u);
    vq_->set_interrupts(true);
    EXPECT_EQ(dev_->avail_flags(), 0);
}

TEST_F(SplitVirtqueueTest, EventIdxInterruptsOffPutsUsedEventFarBehind) {
    make(8);
    vq_->set_event_idx(true);
    dev_->event_idx = true;
    vq_->set_interrupts(false);
    EXPECT_EQ(dev_->avail_flags(), 0); // flags stay 0 with EVENT_IDX
    uint64_t b = buf(8, 5);
    Segment rd[] = {Segment::guest(b, 8)};
    for (int i = 0; i < 4; i++) {
        ASSERT_TRUE(vq_->add_chain(rd, {}));
    }
    EXPECT_EQ(dev_->serve_all(), 4u);
    EXPECT_EQ(dev_->signals, 0u);
    EXPECT_EQ(vq_->poll_used().size(), 4u);
}

TEST_F(SplitVirtqueueTest, WaitUsedTimesOutWhenDeviceIsIdle) {
    make(8);
    uint64_t b = buf(8, 0);
    Segment rd[] = {Segment::guest(b, 8)};
    ASSERT_TRUE(vq_->add_chain(rd, {}));
    auto t0 = std::chrono::steady_clock::now();
    auto used = vq_->wait_used(50ms);
    auto elapsed = std::chrono::steady_clock::now() - t0;
    ASSERT_FALSE(used);
    EXPECT_EQ(used.error(), ETIMEDOUT);
    EXPECT_GE(elapsed, 50ms);
    EXPECT_LT(elapsed, 2000ms);
}

TEST_F(SplitVirtqueueTest, WaitUsedWakesOnCallEventfd) {
    make(8);
    uint64_t b = buf(8, 0);
    Segment rd[] = {Segment::guest(b, 8)};
    ASSERT_TRUE(vq_->add_chain(rd, {}));
    std::thread device([&] {
        std::this_thread::sleep_for(30ms);
        dev_->serve_all();
    });
    auto t0 = std::chrono::steady_clock::now();
    auto used = vq_->wait_used(10000ms);
    auto elapsed = std::chrono::steady_clock::now() - t0;
    device.join();
    ASSERT_TRUE(used);
    EXPECT_EQ(used->size(), 1u);
    EXPECT_EQ(dev_->signals, 1u);
    EXPECT_GE(vq_->stats().interrupts, 1u);
    EXPECT_LT(elapsed, 5000ms);
}

TEST_F(SplitVirtqueueTest, ReplaceCallFdReturnsThePreviousOne) {
    make(8);
    int before = vq_->call_fd();
    auto old = vq_->replace_call_fd();
    ASSERT_TRUE(old);
    EXPECT_EQ(old->get(), before);
    EXPECT_NE(vq_->call_fd(), before);
    EXPECT_GE(vq_->call_fd(), 0);
}

TEST_F(SplitVirtqueueTest, RawHelpersBuildMalformedRings) {
    make(8);
    auto ids = vq_->reserve_descs(2);
    ASSERT_TRUE(ids);
    ASSERT_EQ(ids->size(), 2u);
    EXPECT_EQ(vq_->num_free(), 6);
    uint64_t b = buf(8, 0);
    uint16_t a = (*ids)[0];
    uint16_t c = (*ids)[1];
    // a -> c -> a: a loop.
    vq_->write_desc(a, VringDesc{b, 8, kDescFNext, c});
    vq_->write_desc(c, VringDesc{b, 8, kDescFNext, a});
    vq_->publish_raw_head(a);
    EXPECT_FALSE(dev_->pop());
    EXPECT_EQ(dev_->error, "descriptor loop");
    // A device that gives the bad head back with len 0 is reported as expected.
    dev_->push(a, 0);
    auto used = vq_->poll_used();
    ASSERT_EQ(used.size(), 1u);
    EXPECT_EQ(used[0].id, a);
    EXPECT_FALSE(used[0].unexpected);
    EXPECT_EQ(vq_->num_free(), 6); // raw descriptors stay reserved
    vq_->release_descs(*ids);
    EXPECT_EQ(vq_->num_free(), 8);

    // An out-of-range head.
    vq_->publish_raw_head(200);
    EXPECT_FALSE(dev_->pop());
    EXPECT_EQ(dev_->error, "head out of range");

    // A device returning an id nobody submitted is flagged.
    dev_->push(3, 0);
    used = vq_->poll_used();
    ASSERT_EQ(used.size(), 1u);
    EXPECT_TRUE(used[0].unexpected);
    EXPECT_EQ(vq_->stats().unexpected_used, 1u);

    // avail->idx jumps far ahead of what was published.
    vq_->set_avail_ring(2, 7);
    vq_->set_avail_idx(static_cast<uint16_t>(dev_->last_avail + 100));
    EXPECT_EQ(dev_->avail_idx(), dev_->last_avail + 100);
    EXPECT_EQ(vq_->avail_idx(), dev_->last_avail + 100);
}

TEST_F(SplitVirtqueueTest, DestructionReturnsRingMemory) {
    make(64);
    uint64_t b = buf(8, 0);
    Segment rd[] = {Segment::guest(b, 8)};
    ASSERT_TRUE(vq_->add_chain(rd, rd, true)); // leaves an indirect table in flight
    vq_.reset();
    ASSERT_TRUE(mem_->free(b));
    EXPECT_EQ(mem_->bytes_free(), free_at_start_);
}

} // namespace
} // namespace vdh::frontend

// SPDX-License-Identifier: MIT
// FuseChannel: the benchmark's guest side. Memfd guest memory, a vhost-user frontend Device
// set up as QEMU does (queue 0 hiprio, 1..N requests), FUSE_INIT, and pre-allocated request
// slots whose buffers and descriptors are reserved up front, so the request path never
// allocates. Chains look like the Linux driver's (header, args, one descriptor per page).
#pragma once

#include <linux/fuse.h>
#include <poll.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "frontend/device.h"
#include "frontend/guest_memory.h"
#include "frontend/split_virtqueue.h"
#include "vdh/result.h"

namespace vdh::bench {

struct ChannelOptions {
    std::string socket_path;
    uint16_t request_queues = 1;
    uint16_t queue_size = 1024;
    /// Use indirect tables when the device offers INDIRECT_DESC (the Linux driver does).
    bool indirect = true;
    /// Split data and reply pages into descriptors of this many bytes (4096: one per page,
    /// as the Linux driver maps them); 0: one descriptor per part. Direct chains always
    /// use one descriptor per part.
    uint32_t segment_size = 4096;
    /// Busy-poll the used rings (interrupts off); else wait on the call eventfds.
    bool poll = false;
    /// Request slots per request queue (the largest queue depth needed).
    uint32_t slots_per_queue = 1;
    /// Data buffer per slot (largest READ/WRITE/READDIRPLUS payload).
    uint32_t data_capacity = 4096;
    /// FUSE_INIT flags offered (64 bits; the high half goes in flags2).
    uint64_t init_flags = 0;
    std::chrono::milliseconds connect_timeout{10000};
};

/// The INIT flags vdhost-bench offers by default: what a Linux 6.x virtio-fs guest offers,
/// minus the writeback cache (every WRITE reaches the device) and ACLs.
inline constexpr uint64_t kDefaultInitFlags =
    FUSE_ASYNC_READ | FUSE_POSIX_LOCKS | FUSE_ATOMIC_O_TRUNC | FUSE_EXPORT_SUPPORT |
    FUSE_BIG_WRITES | FUSE_FLOCK_LOCKS | FUSE_HAS_IOCTL_DIR | FUSE_AUTO_INVAL_DATA |
    FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO | FUSE_ASYNC_DIO | FUSE_PARALLEL_DIROPS |
    FUSE_MAX_PAGES | FUSE_SUBMOUNTS | FUSE_INIT_EXT;

/// One pre-allocated request. Layout of `page` (4 KiB of guest memory): the in header and
/// arguments from 0, the out header at kOutHeaderOff, small replies right after it. `data`
/// holds a WRITE payload or a READ/READDIRPLUS reply.
struct Slot {
    static constexpr uint32_t kPageBytes = 4096;
    static constexpr uint32_t kOutHeaderOff = 2560;
    static constexpr uint32_t kSmallReplyOff = kOutHeaderOff + sizeof(fuse_out_header);
    static constexpr uint32_t kSmallReplyMax = kPageBytes - kSmallReplyOff;
    static constexpr uint32_t kMaxArgs = kOutHeaderOff - sizeof(fuse_in_header);
    static constexpr uint32_t kMaxDirect = 5;

    uint8_t* page = nullptr;
    uint64_t page_gpa = 0;
    uint8_t* data = nullptr;
    uint64_t data_gpa = 0;
    uint32_t data_cap = 0;
    frontend::VringDesc* table = nullptr; ///< indirect table, or null (direct chains)
    uint64_t table_gpa = 0;
    uint32_t table_cap = 0;
    uint16_t head = 0;                       ///< ring descriptor id of the chain head
    uint16_t direct_ids[kMaxDirect] = {};    ///< direct mode: the slot's reserved ids
    uint16_t queue = 0;
    uint32_t index = 0; ///< position in its queue's slot array

    // The request being built or in flight.
    uint32_t args_len = 0;   ///< argument bytes after the in header
    uint32_t write_len = 0;  ///< WRITE payload in `data`
    uint32_t reply_len = 0;  ///< payload bytes offered after the out header
    bool reply_in_data = false;
    bool expect_reply = true; ///< false for FORGET: no writable part at all
    uint64_t unique = 0;
    uint32_t used_len = 0;
    bool in_flight = false;

    fuse_in_header& in_header() noexcept {
        // Safety: page is 4 KiB of guest memory owned by this slot; the header is at 0.
        return *reinterpret_cast<fuse_in_header*>(page);
    }
    uint8_t* args() noexcept { return page + sizeof(fuse_in_header); }
    const fuse_out_header& out_header() const noexcept {
        // Safety: page is 4 KiB of guest memory; the header lies inside it, aligned.
        return *reinterpret_cast<const fuse_out_header*>(page + kOutHeaderOff);
    }
    /// Reply payload: what the device wrote after the out header, bounded by what we
    /// offered and by used_len and out_header().len.
    std::span<const uint8_t> payload() const noexcept;
};

/// Threads: each request queue is driven by one thread at a time; FORGETs on the hiprio
/// queue may come from any thread (a mutex guards that queue).
class FuseChannel {
public:
    /// Connects, starts the device, sends FUSE_INIT. Allocates.
    static Result<std::unique_ptr<FuseChannel>> connect(const ChannelOptions& options,
                                                        std::string* why);
    FuseChannel(const FuseChannel&) = delete;
    FuseChannel& operator=(const FuseChannel&) = delete;
    ~FuseChannel();

    /// Stops the device (SET_VRING_ENABLE 0 + GET_VRING_BASE) and disconnects.
    void close() noexcept;

    const fuse_init_out& init_reply() const noexcept { return init_out_; }
    /// Largest READ and WRITE payloads the device accepts (from the INIT reply).
    uint32_t max_read() const noexcept { return max_read_; }
    uint32_t max_write() const noexcept { return max_write_; }
    bool indirect() const noexcept { return indirect_; }
    uint64_t features() const noexcept { return device_->features(); }
    uint16_t request_queues() const noexcept { return options_.request_queues; }
    const ChannelOptions& options() const noexcept { return options_; }

    /// Slot \p i of request queue \p q (1-based queue index).
    Slot& slot(uint16_t q, uint32_t i) noexcept { return queues_[q]->slots[i]; }

    // ---- building a request (hot path: no alloc) --------------------------------------

    /// Starts a request in \p s: clears the in header and the shape, sets opcode/nodeid and
    /// this process's credentials; the reply gets the small area (`reply_len` bytes).
    static void begin(Slot& s, uint32_t opcode, uint64_t nodeid, uint32_t reply_len) noexcept;
    /// Appends argument bytes; false when they do not fit.
    static bool append(Slot& s, const void* p, uint32_t n) noexcept;
    static bool append_name(Slot& s, std::string_view name) noexcept;
    /// The reply goes to the data buffer (READ, READDIRPLUS): \p n bytes after the header.
    static void reply_to_data(Slot& s, uint32_t n) noexcept;

    // ---- ring operations (hot path: no alloc) ------------------------------------------

    /// Publishes \p s on its queue with a fresh unique (no kick).
    void submit(Slot& s) noexcept;
    /// Notifies the device of \p q's new requests unless it suppressed notifications.
    void kick(uint16_t q) noexcept;
    /// Takes completions of \p q; each completed slot gets used_len and in_flight = false.
    /// Returns how many were stored in \p out. Unexpected used ids are counted.
    size_t poll(uint16_t q, std::span<Slot*> out) noexcept;
    /// Waits up to \p timeout for a completion (or a call eventfd signal) on any of
    /// \p queues; returns at once if one is ready. In poll mode this only spins once.
    void wait_any(std::span<const uint16_t> queues, int timeout_ms) noexcept;
    uint64_t unexpected_completions() const noexcept;

    // ---- blocking calls (setup; slot 0 of queue 1 unless given) ------------------------

    /// Submits \p s, kicks and spins until it completes (other completions on its queue
    /// are an error: EPROTO). ETIMEDOUT after \p timeout.
    Status call(Slot& s, std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));
    /// The slot blocking calls use.
    Slot& setup_slot() noexcept { return slot(1, 0); }

    /// FUSE_FORGET(\p nodeid, \p nlookup) on the hiprio queue, not waited for (any thread).
    Status forget(uint64_t nodeid, uint64_t nlookup) noexcept;
    /// Waits until the device has returned every FORGET buffer.
    Status drain_forgets(std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));
    uint64_t forgets_sent() const noexcept { return forgets_sent_; }

private:
    struct QueueState {
        frontend::SplitVirtqueue* vq = nullptr;
        std::vector<Slot> slots;
        std::vector<Slot*> by_head; ///< head id -> slot
        std::vector<frontend::UsedElem> used;
        uint64_t next_unique = 1;
    };
    struct ForgetSlot {
        uint8_t* buf = nullptr;
        uint64_t gpa = 0;
        bool busy = false;
    };

    explicit FuseChannel(const ChannelOptions& options) : options_(options) {}
    Status setup(std::string* why);
    Status init(std::string* why);
    size_t reclaim_forgets() noexcept; // with forget_mu_ held

    ChannelOptions options_;
    std::unique_ptr<frontend::GuestMemory> mem_;
    std::unique_ptr<frontend::Device> device_;
    std::vector<std::unique_ptr<QueueState>> queues_; ///< index 0: hiprio (no slots)
    bool indirect_ = false;
    uint32_t segment_ = 0;
    uint32_t uid_ = 0, gid_ = 0, pid_ = 0;
    fuse_init_out init_out_{};
    uint32_t max_read_ = 0, max_write_ = 0;

    std::mutex forget_mu_; ///< guards the hiprio queue and forget_slots_. Lock order: leaf.
    std::vector<ForgetSlot> forget_slots_;
    std::vector<uint16_t> forget_free_;
    std::vector<frontend::UsedElem> forget_used_;
    uint64_t forgets_sent_ = 0;
    uint64_t forget_unique_ = 1;
    std::atomic<uint64_t> unexpected_{0};
};

} // namespace vdh::bench

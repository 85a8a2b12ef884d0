// SPDX-License-Identifier: MIT
// BlkChannel: the benchmark's virtio-blk guest side. Memfd guest memory, a vhost-user
// frontend Device negotiated as QEMU 7.2's vhost-user-blk-pci does (the CONFIG protocol
// feature and GET_CONFIG for the capacity, block size and segment limits), and pre-allocated
// request slots whose header, status byte, data buffer and descriptors are reserved up
// front, so the request path never allocates. Chains look like the Linux driver's: header,
// one descriptor per data page, status. The load loop lives in blk_runner.
#pragma once

#include <linux/virtio_blk.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "frontend/device.h"
#include "frontend/guest_memory.h"
#include "frontend/split_virtqueue.h"
#include "vdh/result.h"

namespace vdh::bench {

struct BlkChannelOptions {
    std::string socket_path;
    uint16_t queues = 1;
    /// QEMU 7.2's vhost-user-blk-pci default.
    uint16_t queue_size = 128;
    /// Use indirect tables when the device offers INDIRECT_DESC (the Linux driver does).
    bool indirect = true;
    /// Split the data into descriptors of this many bytes (4096: one per page, as a guest's
    /// scattered pages); 0: one descriptor. Direct chains always use one.
    uint32_t segment_size = 4096;
    /// Busy-poll the used rings (interrupts off); else wait on the call eventfds.
    bool poll = false;
    /// Request slots per queue (the largest queue depth needed).
    uint32_t slots_per_queue = 1;
    /// Data buffer per slot (the largest request).
    uint32_t data_capacity = 4096;
    std::chrono::milliseconds connect_timeout{10000};
};

/// Virtio-blk feature bits vdhost-bench asks for: what a Linux 6.x guest takes, minus the
/// ones no workload here uses (geometry, SCSI, secure erase).
inline constexpr uint64_t kBlkWantedFeatures =
    (1ULL << VIRTIO_BLK_F_SIZE_MAX) | (1ULL << VIRTIO_BLK_F_SEG_MAX) |
    (1ULL << VIRTIO_BLK_F_RO) | (1ULL << VIRTIO_BLK_F_BLK_SIZE) | (1ULL << VIRTIO_BLK_F_FLUSH) |
    (1ULL << VIRTIO_BLK_F_TOPOLOGY) | (1ULL << VIRTIO_BLK_F_MQ) |
    (1ULL << VIRTIO_BLK_F_DISCARD) | (1ULL << VIRTIO_BLK_F_WRITE_ZEROES);

/// What the device said about itself (GET_CONFIG and the negotiated features).
struct BlkGeometry {
    uint64_t capacity_bytes = 0;
    uint32_t block_size = 512; ///< blk_size with VIRTIO_BLK_F_BLK_SIZE, else 512
    uint32_t seg_max = 0;      ///< 0: no limit given
    uint32_t size_max = 0;     ///< 0: no limit given
    uint16_t num_queues = 1;   ///< with VIRTIO_BLK_F_MQ, else 1
    bool read_only = false;
    bool flush = false;
};

/// One pre-allocated request. `meta` (64 bytes of guest memory) holds the request header
/// at 0 and the status byte at kStatusOff; `data` the payload of an IN or OUT.
struct BlkSlot {
    static constexpr uint32_t kMetaBytes = 64;
    static constexpr uint32_t kStatusOff = 32;
    static constexpr uint8_t kStatusUnset = 0xee; ///< no device writes this status
    static constexpr uint32_t kMaxDirect = 3;

    uint8_t* meta = nullptr;
    uint64_t meta_gpa = 0;
    uint8_t* data = nullptr;
    uint64_t data_gpa = 0;
    uint32_t data_cap = 0;
    frontend::VringDesc* table = nullptr; ///< indirect table, or null (direct chains)
    uint64_t table_gpa = 0;
    uint32_t table_cap = 0;
    uint16_t head = 0;                    ///< ring descriptor id of the chain head
    uint16_t direct_ids[kMaxDirect] = {}; ///< direct mode: the slot's reserved ids
    uint16_t queue = 0;
    uint32_t index = 0; ///< position in its queue's slot array

    // The request being built or in flight.
    uint32_t type = VIRTIO_BLK_T_IN;
    uint64_t sector = 0;   ///< in 512-byte units, as virtio-blk counts
    uint32_t len = 0;      ///< data bytes (0 for FLUSH)
    uint32_t used_len = 0; ///< what the device put in the used ring
    bool in_flight = false;

    uint8_t status() const noexcept { return meta[kStatusOff]; }
};

/// Threads: each queue is driven by one thread at a time.
class BlkChannel {
public:
    /// Connects, reads the config space, starts the device. EOPNOTSUPP (with \p why) when
    /// the backend lacks the CONFIG protocol feature. Allocates.
    static Result<std::unique_ptr<BlkChannel>> connect(const BlkChannelOptions& options,
                                                       std::string* why);
    BlkChannel(const BlkChannel&) = delete;
    BlkChannel& operator=(const BlkChannel&) = delete;
    ~BlkChannel();

    /// Stops the device (SET_VRING_ENABLE 0 + GET_VRING_BASE) and disconnects.
    void close() noexcept;

    const BlkGeometry& geometry() const noexcept { return geo_; }
    uint64_t features() const noexcept { return device_->features(); }
    bool indirect() const noexcept { return indirect_; }
    uint16_t queues() const noexcept { return options_.queues; }
    const BlkChannelOptions& options() const noexcept { return options_; }
    /// Largest data bytes one request may carry here (data buffer, seg_max, size_max).
    uint32_t max_request_bytes() const noexcept { return max_request_; }

    /// Slot \p i of queue \p q (0-based, as virtio-blk numbers its request queues).
    BlkSlot& slot(uint16_t q, uint32_t i) noexcept { return queues_[q]->slots[i]; }

    // ---- ring operations (hot path: no alloc) ------------------------------------------

    /// Sets the request in \p s: \p type (VIRTIO_BLK_T_IN/OUT/FLUSH), byte \p offset (a
    /// multiple of 512) and \p len data bytes (at most max_request_bytes()).
    static void prepare(BlkSlot& s, uint32_t type, uint64_t offset, uint32_t len) noexcept;
    /// Publishes \p s on its queue (no kick).
    void submit(BlkSlot& s) noexcept;
    /// Notifies the device of \p q's new requests unless it suppressed notifications.
    void kick(uint16_t q) noexcept;
    /// Takes completions of \p q; each completed slot gets used_len and in_flight = false.
    /// Returns how many were stored in \p out. Unexpected used ids are counted.
    size_t poll(uint16_t q, std::span<BlkSlot*> out) noexcept;
    /// Waits up to \p timeout_ms for a completion (or a call eventfd signal) on any of
    /// \p queues; returns at once if one is ready. In poll mode it returns at once.
    void wait_any(std::span<const uint16_t> queues, int timeout_ms) noexcept;
    uint64_t unexpected_completions() const noexcept;

    // ---- blocking calls (setup) --------------------------------------------------------

    /// Submits \p s, kicks and spins until it completes (another completion on its queue is
    /// EPROTO); then its status must be VIRTIO_BLK_S_OK (EIO otherwise). ETIMEDOUT after
    /// \p timeout.
    Status call(BlkSlot& s, std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));
    /// The slot blocking calls use.
    BlkSlot& setup_slot() noexcept { return slot(0, 0); }

private:
    struct QueueState {
        frontend::SplitVirtqueue* vq = nullptr;
        std::vector<BlkSlot> slots;
        std::vector<BlkSlot*> by_head; ///< head id -> slot
        std::vector<frontend::UsedElem> used;
    };

    explicit BlkChannel(const BlkChannelOptions& options) : options_(options) {}
    Status setup(std::string* why);
    Status read_config(std::string* why);

    BlkChannelOptions options_;
    std::unique_ptr<frontend::GuestMemory> mem_;
    std::unique_ptr<frontend::Device> device_;
    std::vector<std::unique_ptr<QueueState>> queues_;
    BlkGeometry geo_;
    bool indirect_ = false;
    uint32_t segment_ = 0;
    uint32_t max_request_ = 0;
    std::atomic<uint64_t> unexpected_{0};
};

} // namespace vdh::bench

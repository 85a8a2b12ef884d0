// SPDX-License-Identifier: MIT
// BlkRequester: the driver side of virtio-blk requests over a SplitVirtqueue, laid out the
// way Linux's virtio_blk lays them out (the 16-byte header in its own readable descriptor,
// the data in one or more descriptors, the status byte in its own writable descriptor), plus
// a raw mode for malformed chains. One request at a time (it waits for each), or many in
// flight with submit()/wait(). For tests and tools, not a hot path (it allocates).
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <vector>

#include "frontend/split_virtqueue.h"
#include "vdh/result.h"

namespace vdh::frontend {

// virtio-blk wire values (linux/virtio_blk.h).
inline constexpr uint32_t kBlkTIn = 0;
inline constexpr uint32_t kBlkTOut = 1;
inline constexpr uint32_t kBlkTFlush = 4;
inline constexpr uint32_t kBlkTGetId = 8;
inline constexpr uint32_t kBlkTDiscard = 11;
inline constexpr uint32_t kBlkTWriteZeroes = 13;
inline constexpr uint32_t kBlkFlagUnmap = 1;
inline constexpr uint8_t kBlkSOk = 0;
inline constexpr uint8_t kBlkSIoErr = 1;
inline constexpr uint8_t kBlkSUnsupp = 2;
inline constexpr uint32_t kBlkIdBytes = 20;

/// The 16-byte little-endian struct virtio_blk_outhdr.
std::vector<uint8_t> blk_header(uint32_t type, uint64_t sector, uint32_t ioprio = 0);
/// One 16-byte struct virtio_blk_discard_write_zeroes.
std::vector<uint8_t> blk_segment(uint64_t sector, uint32_t num_sectors, uint32_t flags = 0);

struct BlkReply {
    uint8_t status = 0xff;     ///< the status byte (the last writable byte)
    uint32_t used_len = 0;     ///< what the device put in the used ring
    std::vector<uint8_t> data; ///< the writable bytes before the status (IN, GET_ID)
};

class BlkRequester {
  public:
    struct Options {
        bool indirect = false; ///< each chain in an indirect table
        /// Data buffers are split into descriptors of at most this many bytes (0: one).
        uint32_t max_segment = 0;
        std::chrono::milliseconds timeout{5000};
    };

    /// \p vq (and its GuestMemory) must outlive the requester.
    explicit BlkRequester(SplitVirtqueue& vq) : vq_(vq) {}
    BlkRequester(SplitVirtqueue& vq, const Options& o) : vq_(vq), options_(o) {}

    Result<BlkReply> read(uint64_t sector, uint32_t len);
    Result<BlkReply> write(uint64_t sector, std::span<const uint8_t> data);
    Result<BlkReply> flush();
    Result<BlkReply> get_id();
    Result<BlkReply> discard(uint64_t sector, uint32_t num_sectors, uint32_t flags = 0);
    Result<BlkReply> write_zeroes(uint64_t sector, uint32_t num_sectors, uint32_t flags = 0);

    /// A request as separate parts: \p readable buffers (each its own descriptor, or split
    /// by max_segment) and \p writable buffer sizes (the last byte of the last one is the
    /// status). Any layout, malformed ones included.
    Result<BlkReply> raw(const std::vector<std::vector<uint8_t>>& readable,
                         const std::vector<uint32_t>& writable);

    /// Starts a request like raw() without waiting; returns its head id. Results come from
    /// wait() (in completion order).
    Result<uint16_t> submit(const std::vector<std::vector<uint8_t>>& readable,
                            const std::vector<uint32_t>& writable);
    /// Waits for one completion of a submit(); \p id receives its head id.
    Result<BlkReply> wait(uint16_t* id);

  private:
    struct Pending {
        uint16_t head = 0;
        std::vector<uint64_t> bufs;                          ///< guest buffers to free
        std::vector<std::pair<uint64_t, uint32_t>> writable; ///< gpa, size
    };
    Result<BlkReply> finish(Pending& p, uint32_t used_len);

    SplitVirtqueue& vq_;
    Options options_;
    std::vector<Pending> pending_;
};

} // namespace vdh::frontend

// SPDX-License-Identifier: MIT
// RequestHelper: one-request-at-a-time convenience over a SplitVirtqueue for tests of simple
// devices: copy the request into guest buffers, add the chain, kick, wait for its completion
// and hand back the used length and the bytes the device wrote. Not for load generation
// (it allocates and waits per request).
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <vector>

#include "frontend/split_virtqueue.h"
#include "vdh/result.h"

namespace vdh::frontend {

class RequestHelper {
public:
    struct Options {
        /// Put the chain in an indirect table.
        bool indirect = false;
        /// Split each buffer into descriptors of at most this many bytes (0: one descriptor
        /// per direction), to exercise the device's scatter-gather handling.
        uint32_t max_segment = 0;
        std::chrono::milliseconds timeout{5000};
    };

    struct Reply {
        uint32_t used_len = 0;     ///< what the device put in the used ring
        std::vector<uint8_t> data; ///< the first min(used_len, writable_size) written bytes
    };

    /// `vq` (and its GuestMemory) must outlive the helper.
    explicit RequestHelper(SplitVirtqueue& vq) : vq_(vq) {}
    RequestHelper(SplitVirtqueue& vq, const Options& options) : vq_(vq), options_(options) {}

    /// Submits `readable` as the device-readable part and `writable_size` bytes of
    /// device-writable space, then waits for that chain. ETIMEDOUT if the device does not
    /// answer, EPROTO if a different or unexpected id completes first, EMSGSIZE if the
    /// device claims to have written more than it was given. Allocates.
    Result<Reply> submit(std::span<const uint8_t> readable, uint32_t writable_size);

private:
    SplitVirtqueue& vq_;
    Options options_;
};

} // namespace vdh::frontend

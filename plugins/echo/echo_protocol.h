// SPDX-License-Identifier: MIT
// The echo test plugin's request format, shared with the tests that drive it: the first
// 8 readable bytes of a request say what the device should do.
#pragma once

#include <cstdint>

namespace vdh::echo {

enum EchoOp : uint32_t {
    kEchoOpEcho = 0,  ///< copy the payload after the header into the writable part
    kEchoOpAsync = 1, ///< same, completed arg µs later from another thread
    kEchoOpFail = 2,  ///< fail with -arg (chain returned with 0 bytes)
    kEchoOpFill = 3,  ///< fill the whole writable part with byte arg
    /// Stuck until a kEchoOpRelease arrives on any echo device of the process (a request
    /// that never completes on its own). stop() does not cancel it. On release it fills
    /// its writable part with byte arg, then completes.
    kEchoOpHold = 4,
    /// Releases every held request of the process; completes at once with 0 bytes.
    kEchoOpRelease = 5,
};

struct EchoHeader {
    uint32_t op;
    uint32_t arg;
};

} // namespace vdh::echo

// SPDX-License-Identifier: MIT
// FuseRequest: one FUSE request's pre-allocated guest buffers (device-readable "in" area,
// device-writable "out" area, indirect descriptor table) plus the builder and reply views
// the client uses on them. Made by FuseSession::alloc_request() and reused for any number
// of requests, so building, submitting and reading replies never allocate. Not for ring
// work: FuseSession turns a request into descriptors.
#pragma once

#include <linux/fuse.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>

#include "frontend/split_virtqueue.h"

namespace vdh::fuse_client {

inline constexpr uint32_t kInHeaderSize = sizeof(fuse_in_header);   // 40
inline constexpr uint32_t kOutHeaderSize = sizeof(fuse_out_header); // 16

/// A reusable request slot. Layout of the in area: fuse_in_header, the fixed arguments and
/// names (append*()), then an optional data part (append_data(), e.g. WRITE payload). The
/// out area receives fuse_out_header + reply payload. The data part and the out payload are
/// split into descriptors of SessionOptions::segment_size bytes, as the Linux driver maps
/// one descriptor per page.
///
/// Threads: a request belongs to the thread driving the queue it is submitted on while it
/// is in flight; between requests any one thread may use it. No member allocates.
class FuseRequest {
public:
    FuseRequest(const FuseRequest&) = delete;
    FuseRequest& operator=(const FuseRequest&) = delete;

    uint32_t in_capacity() const noexcept { return in_cap_; }
    uint32_t out_capacity() const noexcept { return out_cap_; }

    // ---- building (only while not in flight) ------------------------------------------

    /// Starts a new request: zeroes the in header, sets opcode, nodeid and the session's
    /// uid/gid/pid, drops earlier arguments and data, offers the whole out area and leaves
    /// raw mode. FuseSession::submit() fills in len and unique.
    void begin(uint32_t opcode, uint64_t nodeid) noexcept;
    /// The in header, for tests that tweak fields after begin().
    fuse_in_header& in_header() noexcept;
    /// Appends \p n argument bytes. False (request unchanged) when they do not fit or after
    /// append_data().
    bool append(const void* p, size_t n) noexcept;
    template <typename T>
    bool append(const T& v) noexcept {
        return append(&v, sizeof(T));
    }
    /// Appends \p name and its terminating NUL.
    bool append_name(std::string_view name) noexcept;
    /// Opens the data part with \p n bytes and returns where to put them (in guest memory,
    /// so a WRITE payload needs no extra copy); nullptr if it does not fit or a data part
    /// already exists.
    uint8_t* append_data(size_t n) noexcept;
    /// Bytes in the in area so far (header included).
    uint32_t in_len() const noexcept { return in_len_; }
    /// Device-writable bytes to offer (clamped to out_capacity(); 0 = no writable part, as
    /// FORGET). begin() resets it to out_capacity().
    void set_out_len(uint32_t n) noexcept { out_len_ = n < out_cap_ ? n : out_cap_; }
    uint32_t out_len() const noexcept { return out_len_; }
    /// Raw mode: submit() sends the in area exactly as written (len and unique untouched),
    /// for hand-made malformed requests. Replaces the in area with \p bytes; false if they
    /// do not fit. The next begin() leaves raw mode.
    bool set_raw(std::span<const uint8_t> bytes) noexcept;
    bool raw() const noexcept { return raw_; }

    // ---- state and reply (after completion) --------------------------------------------

    bool in_flight() const noexcept { return in_flight_; }
    /// The cookie given to submit().
    uint64_t cookie() const noexcept { return cookie_; }
    /// The unique submit() used (or the raw header's).
    uint64_t unique() const noexcept { return unique_; }
    /// Bytes the device reported in the used ring.
    uint32_t used_len() const noexcept { return used_len_; }
    /// True when the device wrote at least a whole out header.
    bool has_reply() const noexcept {
        return used_len_ >= kOutHeaderSize && out_len_ >= kOutHeaderSize;
    }
    /// The out header as the device wrote it (zeroed by submit()).
    const fuse_out_header& out_header() const noexcept;
    /// The reply payload: min(used_len, out_header.len, offered) minus the header; empty
    /// without a reply.
    std::span<const uint8_t> out_payload() const noexcept;
    /// Copies the first sizeof(T) payload bytes into \p out; false if the payload is
    /// shorter.
    template <typename T>
    bool payload_as(T* out) const noexcept {
        auto p = out_payload();
        if (p.size() < sizeof(T)) {
            return false;
        }
        std::memcpy(out, p.data(), sizeof(T));
        return true;
    }
    /// The reply's positive errno (-out_header.error), 0 on success, EPROTO without a
    /// complete reply header, with a unique other than the request's, or with a header
    /// len outside [16, used_len].
    int reply_errno() const noexcept;

    /// Guest addresses, for tests that look at the buffers.
    uint64_t in_gpa() const noexcept { return in_gpa_; }
    uint64_t out_gpa() const noexcept { return out_gpa_; }

private:
    friend class FuseSession;
    FuseRequest() = default;

    // Guest buffers (owned by the session's GuestMemory; freed by the session).
    uint8_t* in_ = nullptr;
    uint64_t in_gpa_ = 0;
    uint32_t in_cap_ = 0;
    uint8_t* out_ = nullptr;
    uint64_t out_gpa_ = 0;
    uint32_t out_cap_ = 0;
    frontend::VringDesc* table_ = nullptr; ///< indirect table (guest memory), or null
    uint64_t table_gpa_ = 0;
    uint32_t max_segments_ = 0;            ///< capacity of table_ / descs_
    std::unique_ptr<uint16_t[]> descs_;    ///< direct mode: descriptor ids of the chain
    uint16_t n_descs_ = 0;

    // Builder state.
    uint32_t in_len_ = kInHeaderSize;
    uint32_t data_off_ = 0; ///< start of the data part, 0 = none
    uint32_t out_len_ = 0;
    bool raw_ = false;
    uint32_t uid_ = 0, gid_ = 0, pid_ = 0;

    // Submission state.
    bool in_flight_ = false;
    uint16_t queue_ = 0;
    uint16_t head_ = 0;
    uint64_t cookie_ = 0;
    uint64_t unique_ = 0;
    uint32_t used_len_ = 0;
};

} // namespace vdh::fuse_client

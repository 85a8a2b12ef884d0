// SPDX-License-Identifier: MIT
// VhostUserConnection: the frontend's end of a vhost-user UNIX socket. It frames messages
// (header + payload + SCM_RIGHTS fds), waits for replies with a timeout so a dead backend
// fails a test instead of hanging it, and honours REPLY_ACK. Typed helpers cover the requests
// the frontend sends; send_message()/receive() stay public for tests that need raw access.
// Not thread-safe: one thread owns a connection.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "frontend/vhost_user_messages.h"
#include "vdh/result.h"
#include "vdh/unique_fd.h"

namespace vdh::frontend {

/// One received message: header, raw payload bytes and any fds that came with it.
struct Message {
    MsgHeader header{};
    std::vector<uint8_t> payload;
    std::vector<UniqueFd> fds;

    /// Copies the payload into a T when it is at least sizeof(T) bytes; EBADMSG otherwise.
    template <typename T>
    Result<T> payload_as() const noexcept;
};

class VhostUserConnection {
public:
    using Millis = std::chrono::milliseconds;
    static constexpr Millis kDefaultTimeout{5000};

    /// Connects to the UNIX socket at `path`, retrying while it does not exist or refuses
    /// (the backend may still be starting) until `timeout`; ETIMEDOUT then.
    static Result<VhostUserConnection> connect(const std::string& path,
                                               Millis timeout = kDefaultTimeout);
    /// Wraps an already connected stream socket (e.g. one end of a socketpair).
    static VhostUserConnection adopt(UniqueFd fd) { return VhostUserConnection(std::move(fd)); }

    VhostUserConnection(VhostUserConnection&&) noexcept = default;
    VhostUserConnection& operator=(VhostUserConnection&&) noexcept = default;

    bool connected() const noexcept { return fd_.valid(); }
    int fd() const noexcept { return fd_.get(); }
    /// Closes the socket; later calls fail with ENOTCONN.
    void close() noexcept { fd_.reset(); }

    /// How long to wait for any reply (default 5 s).
    void set_reply_timeout(Millis t) noexcept { reply_timeout_ = t; }
    Millis reply_timeout() const noexcept { return reply_timeout_; }
    /// When on, every request that has no reply of its own is sent with NEED_REPLY and its
    /// ack is awaited (a non-zero ack becomes EIO). Turned on automatically by a successful
    /// set_protocol_features() that includes REPLY_ACK.
    void set_reply_ack(bool on) noexcept { reply_ack_ = on; }
    bool reply_ack() const noexcept { return reply_ack_; }

    // ---- typed requests ------------------------------------------------------------------
    Result<uint64_t> get_features();
    Status set_features(uint64_t features);
    Status set_owner();
    Status reset_owner();
    Result<uint64_t> get_protocol_features();
    Status set_protocol_features(uint64_t features);
    Result<uint64_t> get_queue_num();
    /// `regions[i]` travels with `fds[i]`; both spans must have the same size (≤ 8).
    Status set_mem_table(std::span<const MemoryRegionDesc> regions, std::span<const int> fds);
    Status set_vring_num(uint32_t index, uint32_t num);
    Status set_vring_base(uint32_t index, uint32_t base);
    /// Returns the backend's last avail index for the vring (and stops it, per the spec).
    Result<uint32_t> get_vring_base(uint32_t index);
    Status set_vring_addr(const VringAddr& addr);
    /// `fd < 0` sends the "no fd" flag instead of an fd.
    Status set_vring_kick(uint32_t index, int fd);
    Status set_vring_call(uint32_t index, int fd);
    Status set_vring_err(uint32_t index, int fd);
    Status set_vring_enable(uint32_t index, bool enable);
    Status set_backend_req_fd(int fd);
    /// GET_CONFIG for `size` (≤ 256) bytes at `offset`; returns the config bytes.
    Result<std::vector<uint8_t>> get_config(uint32_t offset, uint32_t size, uint32_t flags = 0);
    /// SET_CONFIG of `bytes` (≤ 256) at `offset`; with REPLY_ACK on, a refusal is EIO.
    Status set_config(uint32_t offset, std::span<const uint8_t> bytes, uint32_t flags = 0);

    // ---- raw access ------------------------------------------------------------------------

    /// Sends one message: header {request, flags | version, size} + payload + fds.
    Status send_message(uint32_t request, uint32_t flags, const void* payload, uint32_t size,
                        std::span<const int> fds = {});
    /// Receives one message (any direction), waiting at most `timeout`. ETIMEDOUT on timeout,
    /// ECONNRESET when the peer closed, EMSGSIZE for an oversized payload.
    Result<Message> receive(Millis timeout);
    /// Sends a request and returns its reply, checked to be a reply to `request`
    /// (EPROTO otherwise).
    Result<Message> call(Request request, const void* payload, uint32_t size,
                         std::span<const int> fds = {});
    /// Sends a request that has no reply of its own; with REPLY_ACK on, waits for the ack.
    Status send_no_reply(Request request, const void* payload, uint32_t size,
                         std::span<const int> fds = {});

private:
    explicit VhostUserConnection(UniqueFd fd) noexcept : fd_(std::move(fd)) {}
    Status set_vring_fd(Request request, uint32_t index, int fd);
    Result<uint64_t> get_u64(Request request);
    Status set_u64(Request request, uint64_t value);

    UniqueFd fd_;
    Millis reply_timeout_ = kDefaultTimeout;
    bool reply_ack_ = false;
};

template <typename T>
Result<T> Message::payload_as() const noexcept {
    if (payload.size() < sizeof(T)) {
        return make_err(EBADMSG);
    }
    T v;
    __builtin_memcpy(&v, payload.data(), sizeof(T));
    return v;
}

} // namespace vdh::frontend

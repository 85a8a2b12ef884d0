// SPDX-License-Identifier: MIT
// VhostUserConnection implementation: connect-with-retry, sendmsg/recvmsg framing with
// SCM_RIGHTS, poll()-based reply timeouts, REPLY_ACK handling and the typed requests.
#include "frontend/vhost_user_connection.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <thread>

namespace vdh::frontend {

namespace {

using Clock = std::chrono::steady_clock;

const char* const kRequestNames[] = {
    "NONE",          "GET_FEATURES",          "SET_FEATURES",          "SET_OWNER",
    "RESET_OWNER",   "SET_MEM_TABLE",         "SET_LOG_BASE",          "SET_LOG_FD",
    "SET_VRING_NUM", "SET_VRING_ADDR",        "SET_VRING_BASE",        "GET_VRING_BASE",
    "SET_VRING_KICK", "SET_VRING_CALL",       "SET_VRING_ERR",         "GET_PROTOCOL_FEATURES",
    "SET_PROTOCOL_FEATURES", "GET_QUEUE_NUM", "SET_VRING_ENABLE",      "SEND_RARP",
    "NET_SET_MTU",   "SET_BACKEND_REQ_FD",    "IOTLB_MSG",             "SET_VRING_ENDIAN",
    "GET_CONFIG",    "SET_CONFIG",
};

/// Waits until `fd` is readable or `deadline` passes (ETIMEDOUT).
Status wait_readable(int fd, Clock::time_point deadline) {
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        int ms = static_cast<int>(std::max<int64_t>(0, left.count()));
        pollfd p{fd, POLLIN, 0};
        int rc = ::poll(&p, 1, ms);
        if (rc > 0) {
            return ok(); // readable, or HUP/ERR: the read reports which
        }
        if (rc == 0) {
            return make_err(ETIMEDOUT);
        }
        if (errno != EINTR) {
            return errno_err();
        }
    }
}

/// Moves every SCM_RIGHTS fd of `msg` into `out` (so none can leak).
void collect_fds(msghdr& msg, std::vector<UniqueFd>& out) {
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        const auto* data = reinterpret_cast<const unsigned char*>(CMSG_DATA(c));
        for (size_t i = 0; i < n; i++) {
            int fd;
            std::memcpy(&fd, data + i * sizeof(int), sizeof(int));
            out.emplace_back(fd);
        }
    }
}

/// Reads exactly `len` bytes (fds, if any, are collected) before `deadline`.
Status read_exact(int sock, uint8_t* buf, size_t len, std::vector<UniqueFd>& fds,
                  Clock::time_point deadline) {
    alignas(cmsghdr) unsigned char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
    size_t done = 0;
    while (done < len) {
        VDH_TRY(wait_readable(sock, deadline));
        iovec iov{buf + done, len - done};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof(control);
        ssize_t n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                continue;
            }
            return errno_err();
        }
        collect_fds(msg, fds);
        if ((msg.msg_flags & MSG_CTRUNC) != 0) {
            return make_err(EMSGSIZE); // more fds than a vhost-user message may carry
        }
        if (n == 0) {
            return make_err(ECONNRESET);
        }
        done += static_cast<size_t>(n);
    }
    return ok();
}

} // namespace

const char* request_name(uint32_t request) noexcept {
    if (request < std::size(kRequestNames)) {
        return kRequestNames[request];
    }
    return "UNKNOWN";
}

Result<VhostUserConnection> VhostUserConnection::connect(const std::string& path, Millis timeout) {
    sockaddr_un addr{};
    if (path.size() >= sizeof(addr.sun_path)) {
        return make_err(ENAMETOOLONG);
    }
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    auto deadline = Clock::now() + timeout;
    for (;;) {
        auto sock = UniqueFd::from_syscall(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!sock) {
            return Err{sock.error()};
        }
        if (::connect(sock->get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0) {
            return VhostUserConnection(std::move(*sock));
        }
        int err = errno;
        // The backend may not have created (or started listening on) its socket yet.
        if (err != ENOENT && err != ECONNREFUSED && err != EINTR && err != EAGAIN) {
            return make_err(err);
        }
        if (Clock::now() >= deadline) {
            return make_err(ETIMEDOUT);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

Status VhostUserConnection::send_message(uint32_t request, uint32_t flags, const void* payload,
                                         uint32_t size, std::span<const int> fds) {
    if (!fd_) {
        return make_err(ENOTCONN);
    }
    if (size > kMaxPayload || fds.size() > kMaxFds || (size > 0 && payload == nullptr)) {
        return make_err(EINVAL);
    }
    MsgHeader hdr{request, (flags & ~kVersionMask) | kVersion, size};
    iovec iov[2] = {{&hdr, sizeof(hdr)}, {const_cast<void*>(payload), size}};
    alignas(cmsghdr) unsigned char control[CMSG_SPACE(sizeof(int) * kMaxFds)] = {};
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = size > 0 ? 2 : 1;
    if (!fds.empty()) {
        msg.msg_control = control;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
        std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    size_t total = sizeof(hdr) + size;
    size_t sent = 0;
    while (sent < total) {
        ssize_t n = ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno_err();
        }
        sent += static_cast<size_t>(n);
        // A short write: skip what went out; the fds went with the first byte.
        msg.msg_control = nullptr;
        msg.msg_controllen = 0;
        size_t skip = static_cast<size_t>(n);
        while (msg.msg_iovlen > 0 && skip >= msg.msg_iov[0].iov_len) {
            skip -= msg.msg_iov[0].iov_len;
            msg.msg_iov++;
            msg.msg_iovlen--;
        }
        if (msg.msg_iovlen > 0) {
            msg.msg_iov[0].iov_base = static_cast<uint8_t*>(msg.msg_iov[0].iov_base) + skip;
            msg.msg_iov[0].iov_len -= skip;
        }
    }
    return ok();
}

Result<Message> VhostUserConnection::receive(Millis timeout) {
    if (!fd_) {
        return make_err(ENOTCONN);
    }
    auto deadline = Clock::now() + timeout;
    Message m;
    VDH_TRY(read_exact(fd_.get(), reinterpret_cast<uint8_t*>(&m.header), sizeof(m.header), m.fds,
                       deadline));
    if (m.header.size > kMaxPayload) {
        return make_err(EMSGSIZE);
    }
    m.payload.resize(m.header.size);
    if (m.header.size > 0) {
        VDH_TRY(read_exact(fd_.get(), m.payload.data(), m.header.size, m.fds, deadline));
    }
    return m;
}

Result<Message> VhostUserConnection::call(Request request, const void* payload, uint32_t size,
                                          std::span<const int> fds) {
    auto req = static_cast<uint32_t>(request);
    VDH_TRY(send_message(req, 0, payload, size, fds));
    auto reply = receive(reply_timeout_);
    if (!reply) {
        return reply;
    }
    const MsgHeader& h = reply->header;
    if (h.request != req || (h.flags & kFlagReply) == 0 || (h.flags & kVersionMask) != kVersion) {
        return make_err(EPROTO);
    }
    return reply;
}

Status VhostUserConnection::send_no_reply(Request request, const void* payload, uint32_t size,
                                          std::span<const int> fds) {
    if (!reply_ack_) {
        return send_message(static_cast<uint32_t>(request), 0, payload, size, fds);
    }
    auto req = static_cast<uint32_t>(request);
    VDH_TRY(send_message(req, kFlagNeedReply, payload, size, fds));
    auto reply = receive(reply_timeout_);
    if (!reply) {
        return Err{reply.error()};
    }
    const MsgHeader& h = reply->header;
    if (h.request != req || (h.flags & kFlagReply) == 0) {
        return make_err(EPROTO);
    }
    auto ack = reply->payload_as<uint64_t>();
    if (!ack) {
        return Err{ack.error()};
    }
    // The spec only says "zero on success"; the backend's errno is not carried.
    return *ack == 0 ? ok() : Status(make_err(EIO));
}

// ---- typed requests ----------------------------------------------------------------------

Result<uint64_t> VhostUserConnection::get_u64(Request request) {
    auto reply = call(request, nullptr, 0);
    if (!reply) {
        return Err{reply.error()};
    }
    return reply->payload_as<uint64_t>();
}

Status VhostUserConnection::set_u64(Request request, uint64_t value) {
    return send_no_reply(request, &value, sizeof(value));
}

Result<uint64_t> VhostUserConnection::get_features() { return get_u64(Request::GetFeatures); }

Status VhostUserConnection::set_features(uint64_t features) {
    return set_u64(Request::SetFeatures, features);
}

Status VhostUserConnection::set_owner() { return send_no_reply(Request::SetOwner, nullptr, 0); }

Status VhostUserConnection::reset_owner() {
    return send_no_reply(Request::ResetOwner, nullptr, 0);
}

Result<uint64_t> VhostUserConnection::get_protocol_features() {
    return get_u64(Request::GetProtocolFeatures);
}

Status VhostUserConnection::set_protocol_features(uint64_t features) {
    // REPLY_ACK only applies from the next message on, so this one is never acked.
    VDH_TRY(send_message(static_cast<uint32_t>(Request::SetProtocolFeatures), 0, &features,
                         sizeof(features)));
    reply_ack_ = (features & kPfReplyAck) != 0;
    return ok();
}

Result<uint64_t> VhostUserConnection::get_queue_num() { return get_u64(Request::GetQueueNum); }

Status VhostUserConnection::set_mem_table(std::span<const MemoryRegionDesc> regions,
                                          std::span<const int> fds) {
    if (regions.size() != fds.size() || regions.size() > kMaxMemRegions) {
        return make_err(EINVAL);
    }
    MemoryTable table{};
    table.nregions = static_cast<uint32_t>(regions.size());
    std::copy(regions.begin(), regions.end(), table.regions);
    // Like QEMU, send only the populated entries.
    auto size = static_cast<uint32_t>(offsetof(MemoryTable, regions) +
                                      regions.size() * sizeof(MemoryRegionDesc));
    return send_no_reply(Request::SetMemTable, &table, size, fds);
}

Status VhostUserConnection::set_vring_num(uint32_t index, uint32_t num) {
    VringState s{index, num};
    return send_no_reply(Request::SetVringNum, &s, sizeof(s));
}

Status VhostUserConnection::set_vring_base(uint32_t index, uint32_t base) {
    VringState s{index, base};
    return send_no_reply(Request::SetVringBase, &s, sizeof(s));
}

Result<uint32_t> VhostUserConnection::get_vring_base(uint32_t index) {
    VringState s{index, 0};
    auto reply = call(Request::GetVringBase, &s, sizeof(s));
    if (!reply) {
        return Err{reply.error()};
    }
    auto state = reply->payload_as<VringState>();
    if (!state) {
        return Err{state.error()};
    }
    if (state->index != index) {
        return make_err(EPROTO);
    }
    return state->num;
}

Status VhostUserConnection::set_vring_addr(const VringAddr& addr) {
    return send_no_reply(Request::SetVringAddr, &addr, sizeof(addr));
}

Status VhostUserConnection::set_vring_fd(Request request, uint32_t index, int fd) {
    uint64_t payload = index & kVringIndexMask;
    if (fd < 0) {
        payload |= kVringNoFd;
        return send_no_reply(request, &payload, sizeof(payload));
    }
    int fds[1] = {fd};
    return send_no_reply(request, &payload, sizeof(payload), fds);
}

Status VhostUserConnection::set_vring_kick(uint32_t index, int fd) {
    return set_vring_fd(Request::SetVringKick, index, fd);
}

Status VhostUserConnection::set_vring_call(uint32_t index, int fd) {
    return set_vring_fd(Request::SetVringCall, index, fd);
}

Status VhostUserConnection::set_vring_err(uint32_t index, int fd) {
    return set_vring_fd(Request::SetVringErr, index, fd);
}

Status VhostUserConnection::set_vring_enable(uint32_t index, bool enable) {
    VringState s{index, enable ? 1u : 0u};
    return send_no_reply(Request::SetVringEnable, &s, sizeof(s));
}

Status VhostUserConnection::set_backend_req_fd(int fd) {
    int fds[1] = {fd};
    return send_no_reply(Request::SetBackendReqFd, nullptr, 0, fds);
}

Result<std::vector<uint8_t>> VhostUserConnection::get_config(uint32_t offset, uint32_t size,
                                                             uint32_t flags) {
    if (size > kMaxConfigSize) {
        return make_err(EINVAL);
    }
    uint8_t buf[sizeof(ConfigHeader) + kMaxConfigSize] = {};
    ConfigHeader hdr{offset, size, flags};
    std::memcpy(buf, &hdr, sizeof(hdr));
    auto reply = call(Request::GetConfig, buf, static_cast<uint32_t>(sizeof(hdr) + size));
    if (!reply) {
        return Err{reply.error()};
    }
    auto rhdr = reply->payload_as<ConfigHeader>();
    if (!rhdr) {
        return Err{rhdr.error()};
    }
    // A backend that fails GET_CONFIG answers with size 0 (QEMU treats that as an error).
    if (rhdr->size != size || reply->payload.size() < sizeof(ConfigHeader) + size) {
        return make_err(EIO);
    }
    auto first = reply->payload.begin() + sizeof(ConfigHeader);
    return std::vector<uint8_t>(first, first + size);
}

Status VhostUserConnection::set_config(uint32_t offset, std::span<const uint8_t> bytes,
                                       uint32_t flags) {
    if (bytes.size() > kMaxConfigSize) {
        return make_err(EINVAL);
    }
    uint8_t buf[sizeof(ConfigHeader) + kMaxConfigSize] = {};
    ConfigHeader hdr{offset, static_cast<uint32_t>(bytes.size()), flags};
    std::memcpy(buf, &hdr, sizeof(hdr));
    if (!bytes.empty()) {
        std::memcpy(buf + sizeof(hdr), bytes.data(), bytes.size());
    }
    return send_no_reply(Request::SetConfig, buf,
                         static_cast<uint32_t>(sizeof(hdr) + bytes.size()));
}

} // namespace vdh::frontend

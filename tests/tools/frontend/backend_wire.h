// SPDX-License-Identifier: MIT
// Test-only BACKEND side of the vhost-user wire: a temp directory for sockets, a listening
// UNIX socket, and raw recvmsg/sendmsg framing written independently of the library's
// VhostUserConnection, so the tests check the frontend against a second implementation.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "frontend/vhost_user_messages.h"
#include "vdh/unique_fd.h"

namespace vdh::frontend::testing {

/// A fresh directory under /tmp, removed (with its files) on destruction.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::string& path() const { return path_; }
    std::string file(const std::string& name) const { return path_ + "/" + name; }

private:
    std::string path_;
};

/// Binds and listens on a UNIX socket at `path`; invalid fd on failure.
UniqueFd listen_unix(const std::string& path);
/// accept() with a poll() timeout; invalid fd on timeout or error.
UniqueFd accept_with_timeout(int listen_fd, int timeout_ms);

/// One message as the backend sees it.
struct RawMsg {
    MsgHeader hdr{};
    std::vector<uint8_t> payload;
    std::vector<UniqueFd> fds;

    template <typename T>
    T as() const {
        T v{};
        __builtin_memcpy(&v, payload.data(),
                         payload.size() < sizeof(T) ? payload.size() : sizeof(T));
        return v;
    }
};

enum class RecvStatus { Ok, Timeout, Closed, Error };

/// Receives one message (header, then payload; fds from either read).
RecvStatus raw_recv(int fd, RawMsg& msg, int timeout_ms);
/// Sends one message with the given header fields verbatim.
bool raw_send(int fd, uint32_t request, uint32_t flags, const void* payload, uint32_t size,
              const std::vector<int>& fds = {});
/// Sends a reply (flags = version | reply) to `req`.
bool raw_reply(int fd, const RawMsg& req, const void* payload, uint32_t size);
/// Sends the REPLY_ACK answer (u64 status) if `req` asked for one; returns true if it did.
bool raw_ack_if_needed(int fd, const RawMsg& req, uint64_t status = 0);

/// Number of open fds of this process (for leak checks in fixtures).
int count_open_fds();

/// Reads and returns an eventfd counter (0 if nothing pending).
uint64_t drain_eventfd(int fd);

} // namespace vdh::frontend::testing

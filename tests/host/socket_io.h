// SPDX-License-Identifier: MIT
// Socket helpers for the host tests: a bound datagram socket (sd_notify's NOTIFY_SOCKET),
// one datagram, and a stream read to the peer's close.
#pragma once

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>

#include "vdh/unique_fd.h"

namespace vdh::testing {

/// A datagram socket bound at \p address ("/path" or "@name" for an abstract one), with a
/// receive timeout of \p timeout_s seconds.
inline UniqueFd bind_dgram(const std::string& address, int timeout_s) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, address.data(), address.size());
    if (address[0] == '@') {
        sa.sun_path[0] = '\0';
    }
    socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.size());
    EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), len), 0) << std::strerror(errno);
    timeval tv{timeout_s, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/// One datagram, or "<recv: ERROR>".
inline std::string receive(const UniqueFd& fd) {
    char buf[4096];
    ssize_t n = ::recv(fd.get(), buf, sizeof(buf), 0);
    return n < 0 ? "<recv: " + std::string(std::strerror(errno)) + ">"
                 : std::string(buf, static_cast<size_t>(n));
}

/// Everything the peer sends on \p fd until it closes (\p idle_ms without data ends it too).
inline std::string read_until_closed(int fd, int idle_ms = 3000) {
    std::string out;
    char buf[8192];
    for (;;) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, idle_ms) != 1) {
            break;
        }
        ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) {
            break;
        }
        out.append(buf, static_cast<size_t>(n));
    }
    return out;
}

} // namespace vdh::testing

// SPDX-License-Identifier: MIT
// Control socket client (see control_client.h).
#include "control_client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "unix_address.h"
#include "vdh/unique_fd.h"

namespace vdh {
namespace {


bool write_all(int fd, const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
        ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
        if (n <= 0) {
            if (n < 0 && errno == EINTR) {
                continue;
            }
            return false;
        }
        off += static_cast<size_t>(n);
    }
    return true;
}

} // namespace

bool control_request(const std::string& path, const std::string& command, std::string* reply,
                     std::string* err, const std::string& body) {
    sockaddr_un addr;
    if (!unix_address(path, &addr)) {
        *err = "socket path too long";
        return false;
    }
    auto fd = UniqueFd::from_syscall(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) {
        *err = strerror(errno);
        return false;
    }
    if (connect(fd->get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        *err = "cannot connect to " + path + ": " + strerror(errno);
        return false;
    }
    std::string request = command;
    if (!body.empty()) {
        request += " <<" + std::to_string(body.size());
    }
    request += "\n" + body;
    if (!write_all(fd->get(), request)) {
        *err = strerror(errno);
        return false;
    }
    reply->clear();
    char buf[4096];
    for (;;) {
        ssize_t n = ::recv(fd->get(), buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        reply->append(buf, static_cast<size_t>(n));
    }
    return true;
}

} // namespace vdh

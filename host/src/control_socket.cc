// SPDX-License-Identifier: MIT
// Control socket server and client.
#include "control_socket.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "log.h"

namespace vdh {
namespace {

bool fill_addr(const std::string& path, sockaddr_un* a) {
    std::memset(a, 0, sizeof(*a));
    a->sun_family = AF_UNIX;
    if (path.size() >= sizeof(a->sun_path)) {
        return false;
    }
    std::memcpy(a->sun_path, path.c_str(), path.size() + 1);
    return true;
}

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

ControlSocket::~ControlSocket() { stop(); }

bool ControlSocket::start(const std::string& path, Handler handler, std::string* err) {
    sockaddr_un addr;
    if (!fill_addr(path, &addr)) {
        *err = "control socket path too long: " + path;
        return false;
    }
    struct stat st;
    if (lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            *err = path + " exists and is not a socket";
            return false;
        }
        unlink(path.c_str());
    }
    auto fd = UniqueFd::from_syscall(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    auto ev = UniqueFd::from_syscall(eventfd(0, EFD_CLOEXEC));
    if (!fd || !ev) {
        *err = std::string("control socket: ") + strerror(errno);
        return false;
    }
    if (bind(fd->get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        listen(fd->get(), 16) != 0) {
        *err = "control socket " + path + ": " + strerror(errno);
        return false;
    }
    path_ = path;
    handler_ = std::move(handler);
    listen_fd_ = std::move(*fd);
    stop_efd_ = std::move(*ev);
    thread_ = std::thread([this] { serve(); });
    return true;
}

void ControlSocket::stop() {
    if (!thread_.joinable()) {
        return;
    }
    uint64_t one = 1;
    [[maybe_unused]] ssize_t w = ::write(stop_efd_.get(), &one, sizeof(one));
    thread_.join();
    listen_fd_.reset();
    unlink(path_.c_str());
}

void ControlSocket::serve() {
    for (;;) {
        struct pollfd p[2] = {{listen_fd_.get(), POLLIN, 0}, {stop_efd_.get(), POLLIN, 0}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            return;
        }
        if (p[1].revents != 0) {
            return;
        }
        UniqueFd c(accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!c) {
            continue;
        }
        // One command per connection, a line of at most 256 bytes, 1 s to send it.
        char buf[256];
        size_t len = 0;
        while (len < sizeof(buf) - 1) {
            struct pollfd cp = {c.get(), POLLIN, 0};
            if (poll(&cp, 1, 1000) <= 0) {
                break;
            }
            ssize_t n = ::recv(c.get(), buf + len, sizeof(buf) - 1 - len, 0);
            if (n <= 0) {
                break;
            }
            len += static_cast<size_t>(n);
            if (std::memchr(buf, '\n', len) != nullptr) {
                break;
            }
        }
        std::string cmd(buf, len);
        while (!cmd.empty() && (cmd.back() == '\n' || cmd.back() == '\r' || cmd.back() == ' ')) {
            cmd.pop_back();
        }
        std::string reply = handler_(cmd);
        reply += "\n";
        write_all(c.get(), reply);
    }
}

bool control_request(const std::string& path, const std::string& command, std::string* reply,
                     std::string* err) {
    sockaddr_un addr;
    if (!fill_addr(path, &addr)) {
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
    if (!write_all(fd->get(), command + "\n")) {
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

// SPDX-License-Identifier: MIT
// Test-only backend wire helpers: see backend_wire.h.
#include "backend_wire.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace vdh::frontend::testing {

TempDir::TempDir() {
    char tmpl[] = "/tmp/vdh-frontend-test.XXXXXX";
    const char* p = ::mkdtemp(tmpl);
    path_ = p != nullptr ? p : "";
}

TempDir::~TempDir() {
    if (!path_.empty()) {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
}

UniqueFd listen_unix(const std::string& path) {
    UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!s) {
        return {};
    }
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    if (::bind(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0 ||
        ::listen(s.get(), 4) < 0) {
        return {};
    }
    return s;
}

UniqueFd accept_with_timeout(int listen_fd, int timeout_ms) {
    pollfd p{listen_fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) {
        return {};
    }
    return UniqueFd(::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC));
}

namespace {

RecvStatus read_part(int fd, uint8_t* buf, size_t len, std::vector<UniqueFd>& fds,
                     int timeout_ms) {
    size_t done = 0;
    while (done < len) {
        pollfd p{fd, POLLIN, 0};
        int rc = ::poll(&p, 1, timeout_ms);
        if (rc == 0) {
            return RecvStatus::Timeout;
        }
        if (rc < 0) {
            return RecvStatus::Error;
        }
        alignas(cmsghdr) unsigned char control[CMSG_SPACE(sizeof(int) * 16)];
        iovec iov{buf + done, len - done};
        msghdr m{};
        m.msg_iov = &iov;
        m.msg_iovlen = 1;
        m.msg_control = control;
        m.msg_controllen = sizeof(control);
        ssize_t n = ::recvmsg(fd, &m, MSG_CMSG_CLOEXEC);
        if (n == 0) {
            return RecvStatus::Closed;
        }
        if (n < 0) {
            return errno == ECONNRESET ? RecvStatus::Closed : RecvStatus::Error;
        }
        for (cmsghdr* c = CMSG_FIRSTHDR(&m); c != nullptr; c = CMSG_NXTHDR(&m, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < k; i++) {
                    int f;
                    std::memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                    fds.emplace_back(f);
                }
            }
        }
        done += static_cast<size_t>(n);
    }
    return RecvStatus::Ok;
}

} // namespace

RecvStatus raw_recv(int fd, RawMsg& msg, int timeout_ms) {
    msg = RawMsg{};
    RecvStatus s = read_part(fd, reinterpret_cast<uint8_t*>(&msg.hdr), sizeof(msg.hdr), msg.fds,
                             timeout_ms);
    if (s != RecvStatus::Ok) {
        return s;
    }
    if (msg.hdr.size > 65536) {
        return RecvStatus::Error;
    }
    msg.payload.resize(msg.hdr.size);
    if (msg.hdr.size == 0) {
        return RecvStatus::Ok;
    }
    return read_part(fd, msg.payload.data(), msg.hdr.size, msg.fds, timeout_ms);
}

bool raw_send(int fd, uint32_t request, uint32_t flags, const void* payload, uint32_t size,
              const std::vector<int>& fds) {
    std::vector<uint8_t> buf(sizeof(MsgHeader) + size);
    MsgHeader h{request, flags, size};
    std::memcpy(buf.data(), &h, sizeof(h));
    if (size > 0) {
        std::memcpy(buf.data() + sizeof(h), payload, size);
    }
    iovec iov{buf.data(), buf.size()};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    alignas(cmsghdr) unsigned char control[CMSG_SPACE(sizeof(int) * 8)] = {};
    if (!fds.empty()) {
        m.msg_control = control;
        m.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
        cmsghdr* c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
        std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    return ::sendmsg(fd, &m, MSG_NOSIGNAL) == static_cast<ssize_t>(buf.size());
}

bool raw_reply(int fd, const RawMsg& req, const void* payload, uint32_t size) {
    return raw_send(fd, req.hdr.request, kVersion | kFlagReply, payload, size);
}

bool raw_ack_if_needed(int fd, const RawMsg& req, uint64_t status) {
    if ((req.hdr.flags & kFlagNeedReply) == 0) {
        return false;
    }
    return raw_reply(fd, req, &status, sizeof(status));
}

int count_open_fds() {
    int n = 0;
    std::error_code ec;
    for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
        n++;
    }
    return n;
}

uint64_t drain_eventfd(int fd) {
    uint64_t v = 0;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) {
        return 0;
    }
    if (::read(fd, &v, sizeof(v)) != sizeof(v)) {
        return 0;
    }
    return v;
}

} // namespace vdh::frontend::testing

// SPDX-License-Identifier: MIT
// systemd notify protocol over a kept AF_UNIX datagram socket (see sd_notify.h).
#include "sd_notify.h"

#include "log.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

namespace vdh {
namespace {

std::string status_line(std::string_view status) {
    std::string s = "STATUS=";
    for (char c : status) {
        s += c == '\n' ? ' ' : c;
    }
    return s;
}

} // namespace

std::string sd_ready_message(std::string_view status) {
    std::string m = "READY=1";
    if (!status.empty()) {
        m += "\n" + status_line(status);
    }
    return m;
}

Result<SdNotifier> SdNotifier::connect(std::string_view address, std::string* err) {
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (address.empty() || (address[0] != '/' && address[0] != '@') ||
        address.size() > sizeof(sa.sun_path) - (address[0] == '/' ? 1 : 0) ||
        address.find('\0') != std::string_view::npos) {
        *err = "NOTIFY_SOCKET=" + std::string(address) +
               ": expected an absolute path or @name of at most " +
               std::to_string(sizeof(sa.sun_path) - 1) + " bytes";
        return make_err(EINVAL);
    }
    std::memcpy(sa.sun_path, address.data(), address.size());
    if (address[0] == '@') {
        sa.sun_path[0] = '\0'; // abstract namespace
    }
    const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.size() +
                                            (address[0] == '/' ? 1 : 0));
    UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) {
        int e = errno;
        *err = std::string("NOTIFY_SOCKET: socket: ") + std::strerror(e);
        return make_err(e);
    }
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&sa), len) != 0) {
        int e = errno;
        *err = "NOTIFY_SOCKET=" + std::string(address) + ": connect: " + std::strerror(e);
        return make_err(e);
    }
    return SdNotifier(std::move(fd));
}

Result<SdNotifier> SdNotifier::from_environment(std::string* err) {
    const char* v = std::getenv("NOTIFY_SOCKET");
    std::string address = v != nullptr ? v : "";
    ::unsetenv("NOTIFY_SOCKET");
    if (address.empty()) {
        return SdNotifier();
    }
    return connect(address, err);
}

Status SdNotifier::send(std::string_view state) const {
    if (!fd_) {
        return ok();
    }
    ssize_t n;
    do {
        n = ::send(fd_.get(), state.data(), state.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        return errno_err();
    }
    return ok();
}

void SdNotifier::send_or_warn(std::string_view state) const {
    Status s = send(state);
    if (!s) {
        VDH_WARN("host", "NOTIFY_SOCKET: cannot send %.*s: %s",
                 static_cast<int>(state.find('\n') == std::string_view::npos ? state.size()
                                                                             : state.find('\n')),
                 state.data(), std::strerror(s.error()));
    }
}

void SdNotifier::ready(std::string_view status) const {
    send_or_warn(sd_ready_message(status));
}

void SdNotifier::status(std::string_view status) const {
    send_or_warn(status_line(status));
}

void SdNotifier::stopping() const {
    send_or_warn("STOPPING=1");
}

void SdNotifier::reloading() const {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    const unsigned long long usec = static_cast<unsigned long long>(ts.tv_sec) * 1000000ULL +
                                    static_cast<unsigned long long>(ts.tv_nsec) / 1000ULL;
    send_or_warn("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

SdNotifier sd_notifier_from_environment() {
    std::string err;
    auto n = SdNotifier::from_environment(&err);
    if (!n) {
        VDH_WARN("host", "%s (readiness is not reported to systemd)", err.c_str());
        return SdNotifier();
    }
    if (n->active()) {
        VDH_DEBUG("host", "NOTIFY_SOCKET connected: readiness goes to systemd");
    }
    return std::move(*n);
}

} // namespace vdh

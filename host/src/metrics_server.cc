// SPDX-License-Identifier: MIT
// The Prometheus endpoint's thread: a poll() loop over the listening socket, a stop
// eventfd and up to kMaxClients non-blocking client sockets (see metrics_server.h).
#include "metrics_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "log.h"

namespace vdh {
namespace {

std::string response(const char* status, const char* type, const std::string& body,
                     bool with_body) {
    std::string r = std::string("HTTP/1.0 ") + status + "\r\nContent-Type: " + type +
                    "\r\nContent-Length: " + std::to_string(body.size()) +
                    "\r\nConnection: close\r\n\r\n";
    if (with_body) {
        r += body;
    }
    return r;
}

} // namespace

bool parse_metrics_address(const std::string& s, MetricsAddress* out, std::string* err) {
    MetricsAddress a;
    if (s.rfind("unix:", 0) == 0) {
        a.unix_socket = true;
        a.path = s.substr(5);
        if (a.path.empty() || a.path[0] != '/') {
            *err = "expected unix:/absolute/path";
            return false;
        }
        if (a.path.size() >= sizeof(sockaddr_un{}.sun_path)) {
            *err = "socket path longer than " + std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) +
                   " bytes";
            return false;
        }
        *out = a;
        return true;
    }
    size_t colon = s.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 >= s.size()) {
        *err = "expected unix:/path, ADDRESS:PORT or [IPV6]:PORT";
        return false;
    }
    std::string host = s.substr(0, colon);
    std::string port = s.substr(colon + 1);
    if (host.front() == '[') {
        if (host.back() != ']') {
            *err = "expected [IPV6]:PORT";
            return false;
        }
        host = host.substr(1, host.size() - 2);
    }
    unsigned long p = 0;
    for (char ch : port) {
        if (ch < '0' || ch > '9' || p > 65535) {
            *err = "port must be a number 1..65535";
            return false;
        }
        p = p * 10 + static_cast<unsigned long>(ch - '0');
    }
    if (p == 0 || p > 65535) {
        *err = "port must be a number 1..65535";
        return false;
    }
    in6_addr a6{};
    in_addr a4{};
    if (inet_pton(AF_INET, host.c_str(), &a4) != 1 && inet_pton(AF_INET6, host.c_str(), &a6) != 1) {
        *err = "'" + host + "' is not a numeric IPv4 or IPv6 address";
        return false;
    }
    a.host = host;
    a.port = static_cast<uint16_t>(p);
    *out = a;
    return true;
}

std::string metrics_http_response(const std::string& head,
                                  const std::function<std::string()>& body) {
    const char* text = "text/plain; charset=utf-8";
    size_t eol = head.find_first_of("\r\n");
    std::string line = head.substr(0, eol);
    size_t sp1 = line.find(' ');
    size_t sp2 = sp1 == std::string::npos ? std::string::npos : line.find(' ', sp1 + 1);
    if (sp1 == std::string::npos || sp2 == std::string::npos ||
        line.compare(sp2 + 1, 5, "HTTP/") != 0) {
        return response("400 Bad Request", text, "bad request\n", true);
    }
    const std::string method = line.substr(0, sp1);
    std::string target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    target = target.substr(0, target.find('?'));
    if (method != "GET" && method != "HEAD") {
        return response("405 Method Not Allowed", text, "only GET /metrics\n", true);
    }
    if (target != "/metrics") {
        return response("404 Not Found", text, "only GET /metrics\n", method == "GET");
    }
    return response("200 OK", "text/plain; version=0.0.4; charset=utf-8", body(),
                    method == "GET");
}

MetricsServer::~MetricsServer() { stop(); }

bool MetricsServer::start(const MetricsAddress& addr, const MetricsRegistry* reg,
                          std::string* err) {
    reg_ = reg;
    const std::string name = addr.unix_socket ? "unix:" + addr.path
                                              : addr.host + ":" + std::to_string(addr.port);
    sockaddr_storage ss{};
    socklen_t len = 0;
    int family = AF_UNIX;
    if (addr.unix_socket) {
        auto* un = reinterpret_cast<sockaddr_un*>(&ss);
        un->sun_family = AF_UNIX;
        std::memcpy(un->sun_path, addr.path.c_str(), addr.path.size() + 1);
        len = sizeof(sockaddr_un);
        struct stat st;
        if (lstat(addr.path.c_str(), &st) == 0) {
            if (!S_ISSOCK(st.st_mode)) {
                *err = "metrics socket " + addr.path + " exists and is not a socket";
                return false;
            }
            unlink(addr.path.c_str());
        }
    } else {
        auto* in4 = reinterpret_cast<sockaddr_in*>(&ss);
        if (inet_pton(AF_INET, addr.host.c_str(), &in4->sin_addr) == 1) {
            family = AF_INET;
            in4->sin_family = AF_INET;
            in4->sin_port = htons(addr.port);
            len = sizeof(sockaddr_in);
        } else {
            auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
            family = AF_INET6;
            in6->sin6_family = AF_INET6;
            in6->sin6_port = htons(addr.port);
            inet_pton(AF_INET6, addr.host.c_str(), &in6->sin6_addr);
            len = sizeof(sockaddr_in6);
        }
    }
    auto fd = UniqueFd::from_syscall(
        ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) {
        *err = "metrics endpoint " + name + ": socket: " + std::strerror(errno);
        return false;
    }
    if (family != AF_UNIX) {
        int one = 1;
        setsockopt(fd->get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    }
    if (::bind(fd->get(), reinterpret_cast<sockaddr*>(&ss), len) != 0 ||
        ::listen(fd->get(), 128) != 0) {
        *err = "metrics endpoint " + name + ": " + std::strerror(errno);
        return false;
    }
    unix_path_ = addr.unix_socket ? addr.path : "";
    StreamServer::Limits limits;
    limits.max_clients = kMaxClients;
    limits.max_request = 2 * kMaxRequest; // the head's own limit answers 400 first
    limits.client_timeout_ms = kClientTimeoutMs;
    auto respond = [this](const std::string& in) -> std::optional<std::string> {
        size_t end = in.find("\r\n\r\n");
        if (end == std::string::npos) {
            end = in.find("\n\n");
        }
        if (end != std::string::npos) {
            return metrics_http_response(in.substr(0, end),
                                         [this] { return format_prometheus(reg_->collect()); });
        }
        if (in.size() > kMaxRequest) {
            return metrics_http_response("", {}); // 400
        }
        return std::nullopt;
    };
    if (!server_.start(std::move(*fd), limits, respond, err)) {
        *err = "metrics endpoint " + name + ": " + *err;
        return false;
    }
    VDH_INFO("host", "metrics endpoint on %s", name.c_str());
    return true;
}

void MetricsServer::stop() {
    server_.stop();
    if (!unix_path_.empty()) {
        unlink(unix_path_.c_str());
        unix_path_.clear();
    }
}

} // namespace vdh

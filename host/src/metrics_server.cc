// SPDX-License-Identifier: MIT
// The Prometheus endpoint's thread: a poll() loop over the listening socket, a stop
// eventfd and up to kMaxClients non-blocking client sockets (see metrics_server.h).
#include "metrics_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "log.h"

namespace vdh {
namespace {

int64_t now_ms() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

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

struct Client {
    UniqueFd fd;
    std::string in;
    std::string out;
    size_t sent = 0;
    int64_t deadline = 0;
    bool responding = false;
};

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
    auto ev = UniqueFd::from_syscall(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!ev) {
        *err = std::string("metrics endpoint: eventfd: ") + std::strerror(errno);
        return false;
    }
    listen_fd_ = std::move(*fd);
    stop_efd_ = std::move(*ev);
    unix_path_ = addr.unix_socket ? addr.path : "";
    thread_ = std::thread([this] { run(); });
    VDH_INFO("host", "metrics endpoint on %s", name.c_str());
    return true;
}

void MetricsServer::stop() {
    if (thread_.joinable()) {
        uint64_t one = 1;
        [[maybe_unused]] ssize_t w = ::write(stop_efd_.get(), &one, sizeof(one));
        thread_.join();
    }
    if (listen_fd_.get() >= 0 && !unix_path_.empty()) {
        unlink(unix_path_.c_str());
    }
    listen_fd_.reset();
    stop_efd_.reset();
}

void MetricsServer::run() {
    std::vector<Client> clients;
    clients.reserve(kMaxClients);
    std::vector<pollfd> pfds;
    int64_t accept_paused_until = 0; // out of fds: stop polling the listener for a while
    for (;;) {
        pfds.clear();
        const int64_t now = now_ms();
        pfds.push_back({stop_efd_.get(), POLLIN, 0});
        pfds.push_back({now >= accept_paused_until ? listen_fd_.get() : -1, POLLIN, 0});
        int timeout = now >= accept_paused_until ? -1 : static_cast<int>(accept_paused_until - now);
        for (const Client& c : clients) {
            pfds.push_back({c.fd.get(), static_cast<short>(c.responding ? POLLOUT : POLLIN), 0});
            const int64_t left = c.deadline > now ? c.deadline - now : 0;
            timeout = timeout < 0 || left < timeout ? static_cast<int>(left) : timeout;
        }
        int n = ::poll(pfds.data(), pfds.size(), timeout);
        if (n < 0 && errno != EINTR) {
            VDH_ERR("host", "metrics endpoint: poll: %s", std::strerror(errno));
            return;
        }
        if (pfds[0].revents != 0) {
            return; // stop()
        }
        const int64_t t = now_ms();
        // Clients first (pfds[2 + i] is clients[i]); then new connections.
        for (size_t i = 0; i < clients.size(); ++i) {
            Client& c = clients[i];
            const short re = pfds[2 + i].revents;
            bool done = t >= c.deadline || (re & (POLLERR | POLLNVAL)) != 0;
            if (!done && !c.responding && (re & (POLLIN | POLLHUP)) != 0) {
                char buf[2048];
                ssize_t r = ::recv(c.fd.get(), buf, sizeof(buf), 0);
                if (r <= 0) {
                    done = r == 0 || (errno != EAGAIN && errno != EINTR);
                } else {
                    c.in.append(buf, static_cast<size_t>(r));
                    size_t end = c.in.find("\r\n\r\n");
                    if (end == std::string::npos) {
                        end = c.in.find("\n\n");
                    }
                    if (end != std::string::npos) {
                        c.out = metrics_http_response(c.in.substr(0, end), [this] {
                            return format_prometheus(reg_->collect());
                        });
                        c.responding = true;
                    } else if (c.in.size() > kMaxRequest) {
                        c.out = metrics_http_response("", {}); // 400
                        c.responding = true;
                    }
                }
            }
            if (!done && c.responding && (re & POLLOUT) != 0) {
                ssize_t w = ::send(c.fd.get(), c.out.data() + c.sent, c.out.size() - c.sent,
                                   MSG_NOSIGNAL | MSG_DONTWAIT);
                if (w > 0) {
                    c.sent += static_cast<size_t>(w);
                    done = c.sent == c.out.size();
                } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                    done = true;
                }
            }
            if (done) {
                clients[i].fd.reset();
            }
        }
        // Drop finished clients (keeping pfds' indexes valid above, so after the loop).
        for (size_t i = 0; i < clients.size();) {
            if (clients[i].fd.get() < 0) {
                clients[i] = std::move(clients.back());
                clients.pop_back();
            } else {
                ++i;
            }
        }
        if ((pfds[1].revents & POLLIN) != 0) {
            for (;;) {
                int cfd = ::accept4(listen_fd_.get(), nullptr, nullptr,
                                    SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0) {
                    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                        errno == ENOMEM) {
                        // The pending connection stays readable: without a pause this
                        // loop would spin until an fd is free.
                        accept_paused_until = t + 100;
                    }
                    break; // EAGAIN: drained
                }
                UniqueFd fd(cfd);
                if (clients.size() >= static_cast<size_t>(kMaxClients)) {
                    continue; // too many at once: closed at once
                }
                Client c;
                c.fd = std::move(fd);
                c.deadline = t + kClientTimeoutMs;
                clients.push_back(std::move(c));
            }
        }
    }
}

} // namespace vdh

// SPDX-License-Identifier: MIT
// Control socket server and client.
#include "control_socket.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>

#include "json_text.h"
#include "log.h"
#include "unix_address.h"

namespace vdh {

ControlSocket::~ControlSocket() { stop(); }

struct ControlSocket::Client {
    UniqueFd fd;
    std::string in;
    std::string out;
    size_t out_off = 0;
    size_t body_len = 0;     ///< announced by " <<N"
    size_t line_len = 0;     ///< length of the request line once seen (0: not yet)
    bool replied = false;
    int64_t deadline_ms = 0;
};

namespace {

int64_t now_ms() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

} // namespace

bool ControlSocket::start(const std::string& path, Handler handler, std::string* err) {
    sockaddr_un addr;
    if (!unix_address(path, &addr)) {
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
    auto fd = UniqueFd::from_syscall(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    auto ev = UniqueFd::from_syscall(eventfd(0, EFD_CLOEXEC));
    auto pe = UniqueFd::from_syscall(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!fd || !ev || !pe) {
        *err = std::string("control socket: ") + strerror(errno);
        return false;
    }
    if (bind(fd->get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        listen(fd->get(), 64) != 0) {
        *err = "control socket " + path + ": " + strerror(errno);
        return false;
    }
    path_ = path;
    handler_ = std::move(handler);
    listen_fd_ = std::move(*fd);
    stop_efd_ = std::move(*ev);
    post_efd_ = std::move(*pe);
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

void ControlSocket::post(std::function<void()> fn) {
    {
        std::lock_guard<std::mutex> g(post_mu_);
        posted_.push_back(std::move(fn));
    }
    uint64_t one = 1;
    [[maybe_unused]] ssize_t w = ::write(post_efd_.get(), &one, sizeof(one));
}

bool ControlSocket::on_readable(Client& c) {
    char buf[4096];
    for (;;) {
        ssize_t n = ::recv(c.fd.get(), buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }
        if (n <= 0) {
            return false; // closed before a complete request, or an error
        }
        c.in.append(buf, static_cast<size_t>(n));
        if (c.in.size() > kMaxLine + kMaxBody + 1) {
            return false;
        }
        if (c.line_len == 0) {
            size_t nl = c.in.find('\n');
            if (nl == std::string::npos) {
                if (c.in.size() > kMaxLine) {
                    c.out = json_error("request line longer than " + std::to_string(kMaxLine) +
                                        " bytes") + "\n";
                    c.replied = true;
                    return true;
                }
                continue;
            }
            c.line_len = nl + 1;
            std::string line = c.in.substr(0, nl);
            size_t mark = line.rfind(" <<");
            if (mark != std::string::npos) {
                char* end = nullptr;
                unsigned long long len = std::strtoull(line.c_str() + mark + 3, &end, 10);
                if (end == line.c_str() + mark + 3 || *end != '\0' || len > kMaxBody) {
                    c.out = json_error("bad body length (at most " + std::to_string(kMaxBody) +
                                        " bytes)") + "\n";
                    c.replied = true;
                    return true;
                }
                c.body_len = static_cast<size_t>(len);
            }
        }
        if (c.line_len != 0 && c.in.size() >= c.line_len + c.body_len) {
            break;
        }
    }
    if (c.line_len == 0 || c.in.size() < c.line_len + c.body_len) {
        return true; // more to come
    }
    std::string line = c.in.substr(0, c.line_len - 1);
    if (c.body_len != 0 || line.find(" <<") != std::string::npos) {
        line.erase(line.rfind(" <<"));
    }
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) {
        line.pop_back();
    }
    std::string body = c.in.substr(c.line_len, c.body_len);
    c.out = handler_(line, body) + "\n";
    c.replied = true;
    return true;
}

void ControlSocket::serve() {
    std::vector<std::unique_ptr<Client>> clients;
    std::vector<struct pollfd> pfds;
    int64_t next_tick = tick_ ? now_ms() + tick_ms_ : 0;
    for (;;) {
        pfds.clear();
        pfds.push_back({listen_fd_.get(), POLLIN, 0});
        pfds.push_back({stop_efd_.get(), POLLIN, 0});
        pfds.push_back({post_efd_.get(), POLLIN, 0});
        int64_t now = now_ms();
        int timeout = tick_ ? static_cast<int>(std::max<int64_t>(0, next_tick - now)) : -1;
        for (const auto& c : clients) {
            pfds.push_back({c->fd.get(), static_cast<short>(c->replied ? POLLOUT : POLLIN), 0});
            int left = static_cast<int>(std::max<int64_t>(0, c->deadline_ms - now));
            timeout = timeout < 0 ? left : std::min(timeout, left);
        }
        if (poll(pfds.data(), pfds.size(), timeout) < 0) {
            if (errno == EINTR) {
                continue;
            }
            return;
        }
        if (pfds[1].revents != 0) {
            return;
        }
        if (tick_ && now_ms() >= next_tick) {
            tick_();
            next_tick = now_ms() + tick_ms_;
        }
        if (pfds[2].revents != 0) {
            uint64_t v;
            [[maybe_unused]] ssize_t r = ::read(post_efd_.get(), &v, sizeof(v));
            std::vector<std::function<void()>> work;
            {
                std::lock_guard<std::mutex> g(post_mu_);
                work.swap(posted_);
            }
            for (auto& fn : work) {
                fn();
            }
        }
        now = now_ms();
        std::vector<bool> drop(clients.size(), false);
        for (size_t i = 0; i < clients.size(); ++i) {
            Client& c = *clients[i];
            short ev = pfds[3 + i].revents;
            if (ev != 0 && !c.replied) {
                drop[i] = !on_readable(c);
            }
            if (!drop[i] && c.replied && (ev & (POLLOUT | POLLERR | POLLHUP)) != 0) {
                while (c.out_off < c.out.size()) {
                    ssize_t n = ::send(c.fd.get(), c.out.data() + c.out_off,
                                       c.out.size() - c.out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
                    if (n < 0 && errno == EINTR) {
                        continue;
                    }
                    if (n <= 0) {
                        break;
                    }
                    c.out_off += static_cast<size_t>(n);
                }
                drop[i] = c.out_off == c.out.size() || (ev & (POLLERR | POLLHUP)) != 0;
            }
            drop[i] = drop[i] || now >= c.deadline_ms;
        }
        for (size_t i = clients.size(); i-- > 0;) {
            if (drop[i]) {
                clients.erase(clients.begin() + static_cast<std::ptrdiff_t>(i));
            }
        }
        if (pfds[0].revents != 0) {
            for (;;) {
                UniqueFd c(accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
                if (!c) {
                    break;
                }
                if (clients.size() >= kMaxClients) {
                    // Full: the client that has waited longest without completing a
                    // request makes room, so idle connections cannot lock others out.
                    auto oldest = std::min_element(
                        clients.begin(), clients.end(), [](const auto& a, const auto& b) {
                            return a->deadline_ms < b->deadline_ms;
                        });
                    clients.erase(oldest);
                }
                auto cl = std::make_unique<Client>();
                cl->fd = std::move(c);
                cl->deadline_ms = now_ms() + kClientTimeoutMs;
                clients.push_back(std::move(cl));
            }
        }
    }
}

} // namespace vdh

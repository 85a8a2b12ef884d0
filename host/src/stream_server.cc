// SPDX-License-Identifier: MIT
// The serving loop of the control socket and the metrics endpoint (see stream_server.h).
#include "stream_server.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

namespace vdh {
namespace {

int64_t now_ms() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

/// How long a full process fd table keeps the listener out of poll().
constexpr int64_t kAcceptPauseMs = 100;

} // namespace

void StreamServer::set_tick(std::function<void()> fn, int interval_ms) {
    tick_ = std::move(fn);
    tick_ms_ = interval_ms;
}

bool StreamServer::start(UniqueFd listen_fd, Limits limits, Respond respond, std::string* err) {
    auto stop = UniqueFd::from_syscall(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    auto post = UniqueFd::from_syscall(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!stop || !post) {
        *err = std::string("eventfd: ") + std::strerror(errno);
        return false;
    }
    limits_ = limits;
    respond_ = std::move(respond);
    listen_fd_ = std::move(listen_fd);
    stop_efd_ = std::move(*stop);
    post_efd_ = std::move(*post);
    thread_ = std::thread([this] { run(); });
    return true;
}

void StreamServer::stop() {
    if (thread_.joinable()) {
        uint64_t one = 1;
        [[maybe_unused]] ssize_t w = ::write(stop_efd_.get(), &one, sizeof(one));
        thread_.join();
    }
    listen_fd_.reset();
}

void StreamServer::post(std::function<void()> fn) {
    {
        std::lock_guard<std::mutex> g(post_mu_);
        posted_.push_back(std::move(fn));
    }
    uint64_t one = 1;
    [[maybe_unused]] ssize_t w = ::write(post_efd_.get(), &one, sizeof(one));
}

void StreamServer::run_posted() {
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

bool StreamServer::read_request(Client& c) {
    char buf[4096];
    for (;;) {
        ssize_t n = ::recv(c.fd.get(), buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return true; // all there is for now
        }
        if (n <= 0) {
            return false; // closed before a complete request, or an error
        }
        c.in.append(buf, static_cast<size_t>(n));
        if (std::optional<std::string> reply = respond_(c.in)) {
            c.out = std::move(*reply);
            c.replied = true;
            return true;
        }
        if (c.in.size() > limits_.max_request) {
            return false;
        }
    }
}

bool StreamServer::write_reply(Client& c) {
    while (c.sent < c.out.size()) {
        ssize_t n = ::send(c.fd.get(), c.out.data() + c.sent, c.out.size() - c.sent,
                           MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
        }
        c.sent += static_cast<size_t>(n);
    }
    return false; // all sent
}

void StreamServer::accept_clients(std::vector<Client>* clients, int64_t* accept_paused_until) {
    for (;;) {
        UniqueFd fd(accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
        if (!fd) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                // The pending connection stays readable: without a pause the loop would
                // spin until an fd is free.
                *accept_paused_until = now_ms() + kAcceptPauseMs;
            }
            return; // EAGAIN: drained
        }
        if (clients->size() >= limits_.max_clients) {
            // Full: the client that has waited longest makes room, so idle connections
            // cannot lock others out.
            clients->erase(std::min_element(clients->begin(), clients->end(),
                                            [](const Client& a, const Client& b) {
                                                return a.deadline_ms < b.deadline_ms;
                                            }));
        }
        Client c;
        c.fd = std::move(fd);
        c.deadline_ms = now_ms() + limits_.client_timeout_ms;
        clients->push_back(std::move(c));
    }
}

void StreamServer::run() {
    std::vector<Client> clients;
    std::vector<struct pollfd> pfds;
    int64_t accept_paused_until = 0;
    int64_t next_tick = tick_ ? now_ms() + tick_ms_ : 0;
    for (;;) {
        const int64_t now = now_ms();
        const bool accepting = now >= accept_paused_until;
        pfds.clear();
        pfds.push_back({stop_efd_.get(), POLLIN, 0});
        pfds.push_back({post_efd_.get(), POLLIN, 0});
        pfds.push_back({accepting ? listen_fd_.get() : -1, POLLIN, 0});
        int64_t wake = accepting ? -1 : accept_paused_until;
        if (tick_) {
            wake = wake < 0 ? next_tick : std::min(wake, next_tick);
        }
        for (const Client& c : clients) {
            pfds.push_back({c.fd.get(), static_cast<short>(c.replied ? POLLOUT : POLLIN), 0});
            wake = wake < 0 ? c.deadline_ms : std::min(wake, c.deadline_ms);
        }
        int timeout = wake < 0 ? -1 : static_cast<int>(std::max<int64_t>(0, wake - now));
        if (poll(pfds.data(), pfds.size(), timeout) < 0 && errno != EINTR) {
            return;
        }
        if (pfds[0].revents != 0) {
            return; // stop()
        }
        if (pfds[1].revents != 0) {
            run_posted();
        }
        if (tick_ && now_ms() >= next_tick) {
            tick_();
            next_tick = now_ms() + tick_ms_;
        }
        const int64_t t = now_ms();
        // Clients first (pfds[3 + i] is clients[i]); then new connections.
        std::vector<bool> drop(clients.size(), false);
        for (size_t i = 0; i < clients.size(); ++i) {
            Client& c = clients[i];
            const short ev = pfds[3 + i].revents;
            if (ev != 0 && !c.replied) {
                drop[i] = !read_request(c);
            }
            if (!drop[i] && c.replied && (ev & (POLLOUT | POLLERR | POLLHUP)) != 0) {
                drop[i] = !write_reply(c) || (ev & (POLLERR | POLLHUP)) != 0;
            }
            drop[i] = drop[i] || (ev & POLLNVAL) != 0 || t >= c.deadline_ms;
        }
        for (size_t i = clients.size(); i-- > 0;) {
            if (drop[i]) {
                clients.erase(clients.begin() + static_cast<std::ptrdiff_t>(i));
            }
        }
        if (pfds[2].revents != 0) {
            accept_clients(&clients, &accept_paused_until);
        }
    }
}

} // namespace vdh

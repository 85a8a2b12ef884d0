// SPDX-License-Identifier: MIT
// StreamServer: the serving loop shared by the control socket and the metrics endpoint.
// One thread accepts on a listening stream socket and serves many clients at once, one
// request and one reply per connection: sockets are non-blocking, each client has a
// deadline for its whole exchange and a cap on what it may send, when every slot is taken
// the oldest client makes room, and when the process is out of fds accepting pauses
// instead of spinning. So a slow, silent or flooding client costs one slot until its
// deadline and never stalls the others. The protocol (framing, the reply) is the owner's.
// The thread also runs posted work and a periodic tick, for owners that need their own
// thread to do things (the control socket's reload and housekeeping).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "vdh/unique_fd.h"

namespace vdh {

class StreamServer {
public:
    struct Limits {
        size_t max_clients = 64;      ///< served at once
        size_t max_request = 8192;    ///< bytes a client may send without a reply being due
        int client_timeout_ms = 5000; ///< for a client's whole exchange
    };
    /// Called with everything a client has sent so far: the complete reply once the request
    /// is complete (or refused), or nullopt to wait for more. Runs on the server's thread.
    using Respond = std::function<std::optional<std::string>(const std::string& in)>;

    StreamServer() = default;
    ~StreamServer() { stop(); }
    StreamServer(const StreamServer&) = delete;
    StreamServer& operator=(const StreamServer&) = delete;

    /// Runs \p fn on the server's thread every \p interval_ms. Before start().
    void set_tick(std::function<void()> fn, int interval_ms);

    /// Serves \p listen_fd (bound, listening, non-blocking) on a new thread. False + \p err
    /// when the thread's eventfds cannot be made.
    bool start(UniqueFd listen_fd, Limits limits, Respond respond, std::string* err);
    /// Stops the thread and closes every socket. Safe to call more than once.
    void stop();

    /// Runs \p fn on the server's thread at its next turn. Any thread.
    void post(std::function<void()> fn);

private:
    struct Client {
        UniqueFd fd;
        std::string in;
        std::string out;
        size_t sent = 0;
        bool replied = false;
        int64_t deadline_ms = 0;
    };
    void run();
    /// Reads what \p c sent and asks for the reply. False: drop the client.
    bool read_request(Client& c);
    /// Sends what is left of the reply. False: done or failed (drop the client).
    bool write_reply(Client& c);
    void accept_clients(std::vector<Client>* clients, int64_t* accept_paused_until);
    void run_posted();

    Limits limits_;
    Respond respond_;
    UniqueFd listen_fd_;
    UniqueFd stop_efd_;
    UniqueFd post_efd_;
    std::mutex post_mu_;
    std::vector<std::function<void()>> posted_;
    std::function<void()> tick_;
    int tick_ms_ = 0;
    std::thread thread_;
};

} // namespace vdh

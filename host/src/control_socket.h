// SPDX-License-Identifier: MIT
// The control socket: a UNIX stream socket that answers text commands with one line of
// JSON (see control_commands.h for the commands). Served by its own thread (a
// StreamServer: many clients at once, each with a size limit and a deadline, the oldest
// client dropped when every slot is taken), never by a poll lcore. A request is one line;
// a line ending in " <<N" is followed by a body of N bytes (at most kMaxBody). One request
// per connection: the reply is followed by the server's close. `vdhostctl` and
// `vdhost --stats` are its clients.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "stream_server.h"

namespace vdh {

class ControlSocket {
public:
    /// Runs one request (its line without " <<N", and its body) on the control thread.
    using Handler = std::function<std::string(const std::string& line, const std::string& body)>;

    static constexpr size_t kMaxLine = 4096;
    static constexpr size_t kMaxBody = 256 * 1024;
    static constexpr size_t kMaxClients = 64;
    /// A client has this long to send its request and read the reply.
    static constexpr int kClientTimeoutMs = 5000;

    ControlSocket() = default;
    ~ControlSocket();
    ControlSocket(const ControlSocket&) = delete;
    ControlSocket& operator=(const ControlSocket&) = delete;

    /// Binds \p path (replacing a stale socket) and starts serving. False + \p err on error.
    bool start(const std::string& path, Handler handler, std::string* err);
    /// Stops the thread and removes the socket file.
    void stop();

    /// Runs \p fn on the control thread every \p interval_ms (housekeeping). Before start().
    void set_tick(std::function<void()> fn, int interval_ms) {
        server_.set_tick(std::move(fn), interval_ms);
    }

    /// Runs \p fn on the control thread at its next turn (any thread; e.g. SIGHUP's reload).
    void post(std::function<void()> fn) { server_.post(std::move(fn)); }

private:
    /// The reply to what a client sent so far, once its request is complete.
    std::optional<std::string> respond(const std::string& in);

    std::string path_;
    Handler handler_;
    StreamServer server_;
};

} // namespace vdh

// SPDX-License-Identifier: MIT
// The control socket: a UNIX stream socket that answers one-line text commands with JSON
// ("stats": state and per-queue counters of every device; "ping"). Served by its own
// thread, never by a poll lcore. `vdhost --stats SOCKET` is its client.
#pragma once

#include <functional>
#include <string>
#include <thread>

#include "vdh/unique_fd.h"

namespace vdh {

class ControlSocket {
public:
    using Handler = std::function<std::string(const std::string& command)>;

    ControlSocket() = default;
    ~ControlSocket();
    ControlSocket(const ControlSocket&) = delete;
    ControlSocket& operator=(const ControlSocket&) = delete;

    /// Binds \p path (replacing a stale socket) and starts serving. False + \p err on error.
    bool start(const std::string& path, Handler handler, std::string* err);
    /// Stops the thread and removes the socket file.
    void stop();

private:
    void serve();

    std::string path_;
    Handler handler_;
    UniqueFd listen_fd_;
    UniqueFd stop_efd_;
    std::thread thread_;
};

/// Client: sends \p command to the socket at \p path and returns the reply.
bool control_request(const std::string& path, const std::string& command, std::string* reply,
                     std::string* err);

} // namespace vdh

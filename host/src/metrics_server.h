// SPDX-License-Identifier: MIT
// MetricsServer: the Prometheus endpoint (host.metrics.listen). One thread (a StreamServer:
// many clients at once, each with a deadline for its whole exchange and a bounded request
// size, so a slow or silent client costs one fd until its deadline and never stalls the
// others) serves `GET /metrics` over HTTP/1.0 (text exposition format 0.0.4) on a UNIX
// socket or a local TCP address. The listening socket is made in
// start(), before the seccomp allow-list exists; the thread only accepts, reads, writes.
// Not for control commands (control_socket.h).
#pragma once

#include <functional>
#include <string>

#include "metrics.h"
#include "stream_server.h"

namespace vdh {

/// A parsed host.metrics.listen value.
struct MetricsAddress {
    bool unix_socket = false;
    std::string path; ///< unix: socket path
    std::string host; ///< tcp: numeric IPv4 or IPv6 address
    uint16_t port = 0;
};

/// Parses "unix:/abs/path", "IPv4:port" or "[IPv6]:port" (numeric addresses only). Returns
/// false and sets \p err (what was expected) when \p s is none of them.
bool parse_metrics_address(const std::string& s, MetricsAddress* out, std::string* err);

/// The answer to one HTTP request head (\p head: the bytes up to the blank line) as a
/// complete HTTP/1.0 response: 200 with \p body() for GET (or HEAD) /metrics, 404 for
/// another path, 405 for another method, 400 for a malformed request line.
std::string metrics_http_response(const std::string& head,
                                  const std::function<std::string()>& body);

class MetricsServer {
public:
    /// Most clients served at once; a new one beyond it takes the oldest one's slot.
    static constexpr int kMaxClients = 64;
    /// Most bytes of a request head.
    static constexpr size_t kMaxRequest = 8192;
    /// How long one client may take for its whole exchange.
    static constexpr int kClientTimeoutMs = 5000;

    MetricsServer() = default;
    ~MetricsServer();
    MetricsServer(const MetricsServer&) = delete;
    MetricsServer& operator=(const MetricsServer&) = delete;

    /// Binds and listens on \p addr and starts the thread, answering from \p reg (which
    /// must outlive stop()). Returns false and sets \p err (naming the address) on failure.
    bool start(const MetricsAddress& addr, const MetricsRegistry* reg, std::string* err);
    /// Stops the thread and closes every socket (the UNIX socket file is removed).
    void stop();

private:
    const MetricsRegistry* reg_ = nullptr;
    std::string unix_path_;
    StreamServer server_;
};

} // namespace vdh

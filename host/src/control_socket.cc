// SPDX-License-Identifier: MIT
// Control socket server: binding, and the framing of a request (see control_socket.h).
#include "control_socket.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "json_text.h"
#include "unix_address.h"

namespace vdh {

ControlSocket::~ControlSocket() { stop(); }

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
    if (!fd) {
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
    StreamServer::Limits limits;
    limits.max_clients = kMaxClients;
    limits.max_request = kMaxLine + kMaxBody + 1;
    limits.client_timeout_ms = kClientTimeoutMs;
    if (!server_.start(std::move(*fd), limits,
                       [this](const std::string& in) { return respond(in); }, err)) {
        *err = "control socket: " + *err;
        return false;
    }
    return true;
}

void ControlSocket::stop() {
    if (path_.empty()) {
        return;
    }
    server_.stop();
    unlink(path_.c_str());
    path_.clear();
}

std::optional<std::string> ControlSocket::respond(const std::string& in) {
    size_t nl = in.find('\n');
    if (nl == std::string::npos) {
        if (in.size() > kMaxLine) {
            return json_error("request line longer than " + std::to_string(kMaxLine) + " bytes") +
                   "\n";
        }
        return std::nullopt;
    }
    std::string line = in.substr(0, nl);
    size_t body_len = 0;
    if (size_t mark = line.rfind(" <<"); mark != std::string::npos) {
        char* end = nullptr;
        unsigned long long len = std::strtoull(line.c_str() + mark + 3, &end, 10);
        if (end == line.c_str() + mark + 3 || *end != '\0' || len > kMaxBody) {
            return json_error("bad body length (at most " + std::to_string(kMaxBody) + " bytes)") +
                   "\n";
        }
        body_len = static_cast<size_t>(len);
        line.erase(mark);
    }
    if (in.size() < nl + 1 + body_len) {
        return std::nullopt; // the body is still coming
    }
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) {
        line.pop_back();
    }
    return handler_(line, in.substr(nl + 1, body_len)) + "\n";
}

} // namespace vdh

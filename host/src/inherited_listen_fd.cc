// SPDX-License-Identifier: MIT
// Inherited listening sockets (see inherited_listen_fd.h): validation, and their adoption
// in place of the socket rte_vhost binds to the same path.
#include "inherited_listen_fd.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>

#include "vdh/unique_fd.h"

namespace vdh {
namespace {

std::mutex g_mu; // guards g_adopted; leaf lock
/// Adopted sockets by path: the fd until bind() takes it, then an empty UniqueFd (the path
/// stays, so is_adopted_path() keeps answering for unregistration).
std::map<std::string, UniqueFd> g_adopted;

std::string errno_text(const char* what) {
    return std::string(what) + ": " + std::strerror(errno);
}

} // namespace

bool inspect_listen_fd(int fd, std::string* path, std::string* why) {
    if (fd < 0) {
        *why = "expected a file descriptor number (0 or more)";
        return false;
    }
    if (fcntl(fd, F_GETFD) < 0) {
        *why = "fd " + std::to_string(fd) + " is not open (" + std::strerror(errno) + ")";
        return false;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) {
        *why = "fd " + std::to_string(fd) + " is not a socket";
        return false;
    }
    int domain = 0;
    int type = 0;
    int listening = 0;
    socklen_t len = sizeof(int);
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0) {
        *why = "fd " + std::to_string(fd) + ": " + errno_text("getsockopt(SO_DOMAIN)");
        return false;
    }
    len = sizeof(int);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) {
        *why = "fd " + std::to_string(fd) + ": " + errno_text("getsockopt(SO_TYPE)");
        return false;
    }
    if (domain != AF_UNIX || type != SOCK_STREAM) {
        *why = "fd " + std::to_string(fd) + " is not a UNIX stream socket (domain " +
               std::to_string(domain) + ", type " + std::to_string(type) + ")";
        return false;
    }
    len = sizeof(int);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0) {
        *why = "fd " + std::to_string(fd) + ": " + errno_text("getsockopt(SO_ACCEPTCONN)");
        return false;
    }
    if (listening == 0) {
        *why = "fd " + std::to_string(fd) +
               " is a UNIX stream socket that is not listening (it must be bound and listen()ed "
               "on, not connected)";
        return false;
    }
    sockaddr_un un{};
    socklen_t alen = sizeof(un);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&un), &alen) != 0) {
        *why = "fd " + std::to_string(fd) + ": " + errno_text("getsockname");
        return false;
    }
    size_t plen =
        alen > offsetof(sockaddr_un, sun_path) ? alen - offsetof(sockaddr_un, sun_path) : 0;
    if (plen == 0 || un.sun_path[0] == '\0') {
        *why = "fd " + std::to_string(fd) +
               " is listening on an unnamed or abstract address; vdhost needs a socket bound to "
               "a path";
        return false;
    }
    std::string p(un.sun_path, strnlen(un.sun_path, std::min(plen, sizeof(un.sun_path))));
    if (p[0] != '/') {
        *why = "fd " + std::to_string(fd) + " is bound to the relative path \"" + p +
               "\"; vdhost needs an absolute path";
        return false;
    }
    if (p.size() >= sizeof(un.sun_path)) {
        *why = "fd " + std::to_string(fd) + " is bound to a path that fills sun_path";
        return false;
    }
    *path = std::move(p);
    return true;
}

void adopt_listen_fd(const std::string& path, int fd) {
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    std::lock_guard<std::mutex> g(g_mu);
    g_adopted[path] = UniqueFd(fd);
}

bool is_adopted_path(const std::string& path) {
    std::lock_guard<std::mutex> g(g_mu);
    return g_adopted.count(path) != 0;
}

bool bind_adopted_listen_fd(int sockfd, const sockaddr* addr, socklen_t len, int* ret) {
    if (addr == nullptr || len <= offsetof(sockaddr_un, sun_path) || addr->sa_family != AF_UNIX) {
        return false;
    }
    const auto* un = reinterpret_cast<const sockaddr_un*>(addr);
    size_t max = std::min<size_t>(len - offsetof(sockaddr_un, sun_path), sizeof(un->sun_path));
    std::string path(un->sun_path, strnlen(un->sun_path, max));
    std::lock_guard<std::mutex> g(g_mu);
    auto it = g_adopted.find(path);
    if (it == g_adopted.end() || !it->second.valid()) {
        return false;
    }
    if (dup3(it->second.get(), sockfd, O_CLOEXEC) < 0) {
        *ret = -1;
        return true;
    }
    it->second.reset(); // sockfd is the socket now
    *ret = 0;
    return true;
}

} // namespace vdh

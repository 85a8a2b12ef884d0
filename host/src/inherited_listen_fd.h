// SPDX-License-Identifier: MIT
// Listening sockets inherited from a launcher (device key `socket_fd`, e.g. libvirt's
// `virtiofsd --fd=N`): the launcher created, bound and listened on the socket, and a
// frontend may already wait in its backlog. rte_vhost registers sockets only by path, so
// the socket is adopted when rte_vhost binds its own socket to the same path: the bind()
// wrapper linked into vdhost (bind_wrap.cc, -Wl,--wrap=bind) puts the inherited socket in
// place of rte_vhost's with dup3() and reports success, so rte_vhost's listen() and accept()
// run on the launcher's socket and no waiting connection is lost.
#pragma once

#include <sys/socket.h>

#include <string>

namespace vdh {

/// Checks that \p fd is an open AF_UNIX SOCK_STREAM socket that is listening
/// (SO_ACCEPTCONN) and bound to an absolute path of at most 107 bytes. Returns true and
/// that path in \p path; else false and the reason in \p why (for a config error).
bool inspect_listen_fd(int fd, std::string* path, std::string* why);

/// Takes \p fd (close-on-exec from now on) as the socket for \p path: the next bind() of an
/// AF_UNIX socket to exactly \p path is replaced by it (bind_adopted_listen_fd). A second
/// adoption of the same path replaces the first. Called before rte_vhost_driver_register.
void adopt_listen_fd(const std::string& path, int fd);

/// True while an adopted socket for \p path waits for its bind(), or was bound by it.
bool is_adopted_path(const std::string& path);

/// For the bind() wrapper: when \p addr names an adopted path, moves the adopted socket onto
/// \p sockfd (dup3, O_CLOEXEC; the inherited number is closed), sets \p *ret to 0 (or -1
/// and errno) and returns true. Otherwise returns false and the real bind() must run.
bool bind_adopted_listen_fd(int sockfd, const sockaddr* addr, socklen_t len, int* ret);

} // namespace vdh

// SPDX-License-Identifier: MIT
// The bind() wrapper linked into vdhost (-Wl,--wrap=bind, see host/meson.build): a bind()
// to the path of an adopted inherited socket (device key socket_fd) takes that socket
// instead (inherited_listen_fd.h). Every other bind() is the real one. Not part of the host
// library, so tests link without the wrap.
#include <sys/socket.h>

#include "inherited_listen_fd.h"

extern "C" int __real_bind(int fd, const sockaddr* addr, socklen_t len);

extern "C" int __wrap_bind(int fd, const sockaddr* addr, socklen_t len) {
    int ret = 0;
    if (vdh::bind_adopted_listen_fd(fd, addr, len, &ret)) {
        return ret;
    }
    return __real_bind(fd, addr, len);
}

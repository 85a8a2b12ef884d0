// SPDX-License-Identifier: MIT
// A UNIX socket address from a path (servers and clients of the control socket).
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <string>

namespace vdh {

/// Fills \p a for \p path. False when the path does not fit sun_path.
inline bool unix_address(const std::string& path, sockaddr_un* a) {
    std::memset(a, 0, sizeof(*a));
    a->sun_family = AF_UNIX;
    if (path.size() >= sizeof(a->sun_path)) {
        return false;
    }
    std::memcpy(a->sun_path, path.c_str(), path.size() + 1);
    return true;
}

} // namespace vdh

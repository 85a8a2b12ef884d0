// SPDX-License-Identifier: MIT
// The control socket's client side (vdhostctl, `vdhost --stats`): one request, one reply.
// Kept apart from the server so that a client links neither DPDK nor the host.
#pragma once

#include <string>

namespace vdh {

/// Sends \p command (and \p body, if any, with the " <<N" framing of control_socket.h) to
/// the socket at \p path and returns the reply line. False + \p err when the socket cannot
/// be reached or the connection fails.
bool control_request(const std::string& path, const std::string& command, std::string* reply,
                     std::string* err, const std::string& body = "");

} // namespace vdh

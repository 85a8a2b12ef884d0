// SPDX-License-Identifier: MIT
// Where vhost-user and control sockets live: a directory nobody else can write (whoever
// can create a socket there can pose as the device and receive a guest's memory), and the
// socket files' mode and group. Cold path (start-up).
#pragma once

#include <cstdint>
#include <string>

namespace vdh {

/// Owner and mode rules for a socket directory, as an error text: "" when \p dir (its
/// lstat result given as \p uid / \p mode) is acceptable for a process running as \p euid.
/// A socket directory must be a real directory (not a symlink) owned by \p euid or root and
/// writable by nobody else.
std::string socket_dir_problem(const std::string& dir, uint32_t uid, uint32_t mode, uint32_t euid);

/// Makes \p dir a safe socket directory: creates it 0700 (0710 with group \p gid when
/// \p with_group, so the group can reach sockets inside) and its missing parents 0755;
/// when it exists, refuses it unless socket_dir_problem() finds nothing, and refuses
/// ancestors that someone else could rename it through (writable by group or others
/// without the sticky bit, or owned by another user). Returns false with a message naming
/// the path and the reason.
bool secure_socket_dir(const std::string& dir, bool with_group, uint32_t gid, std::string* err);

/// Gives the socket file \p path mode \p mode and, when \p with_group, group \p gid.
bool apply_socket_access(const std::string& path, uint32_t mode, bool with_group, uint32_t gid,
                         std::string* err);

/// The directory part of \p path ("/" for "/x", "." for "x").
std::string parent_dir(const std::string& path);

} // namespace vdh

// SPDX-License-Identifier: MIT
// Containment at every open made for a guest (CVE-2020-35517 class): whatever the guest
// sends, the host opens nothing but regular files and directories, and no open waits
// (a FIFO without a writer, a device, a lease). Every path that opens a file for I/O
// (OPEN, CREATE of an existing name, TMPFILE, /proc/self/fd reopens, open_by_handle_at,
// lock fds, setattr's truncate fd, syncfs) adds guest_open_flags() and passes the result
// through check_guest_open(); where the type is known before the open (InodeStore::open,
// CREATE of an existing name), check_guest_open_type() refuses it before anything is
// opened. O_PATH opens (inode pins, lookups) open nothing and are not routed here; the
// mount-fd manager does its own equivalent check (mount_fd.cc).
// Device nodes and FIFOs can still be created (MKNOD), looked up and listed.
#pragma once

#include <fcntl.h>
#include <sys/types.h>

#include "vdh/result.h"
#include "vdh/unique_fd.h"

namespace vdh::virtiofs::passthrough {

/// Added to every open on a guest's behalf: never block in open(2), never acquire a
/// controlling terminal, never leak into a child.
inline constexpr int kGuestOpenForced = O_NONBLOCK | O_NOCTTY | O_CLOEXEC;

/// The flags to hand the kernel for an I/O open with the guest's \p flags: the forced
/// flags added, and flags that would create or name something else (O_CREAT, O_EXCL,
/// O_TMPFILE, O_PATH) removed. Callers that create add O_CREAT|O_EXCL themselves.
/// Hot path: no alloc, no block, no throw.
int guest_open_flags(int flags) noexcept;

/// The one rule of what may be opened for a guest, by file type (\p mode's S_IFMT bits):
/// a regular file or a directory; ELOOP for a symlink, EBADF for anything else (device
/// node, FIFO, socket; as virtiofsd for special files). Callers that know the type before
/// the open check it here first, so that nothing else is opened at all; check_guest_open()
/// applies it again to the kernel's answer.
/// Hot path: no alloc, no block, no throw.
Status check_guest_open_type(mode_t mode) noexcept;

/// Checks what the kernel opened for a guest: \p opened must pass check_guest_open_type()
/// according to fstat of the new fd (the kernel's answer, not what we believed before the
/// open: a handle or a magic link may resolve to something else than expected).
/// Otherwise the fd is closed and that error returned. Then O_NONBLOCK is cleared unless
/// \p guest_flags asked for it. An error in \p opened is passed through unchanged.
/// Hot path: no alloc, no block, no throw (fstat and fcntl only).
Result<UniqueFd> check_guest_open(Result<UniqueFd> opened, int guest_flags) noexcept;

} // namespace vdh::virtiofs::passthrough

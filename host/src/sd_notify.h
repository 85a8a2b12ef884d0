// SPDX-License-Identifier: MIT
// systemd's notify protocol (Type=notify) without libsystemd: READY=1, STATUS=,
// RELOADING=1 and STOPPING=1 as datagrams to $NOTIFY_SOCKET (a path, or "@name" for an
// abstract socket). The socket is opened and connected when the notifier is made, before
// vdhost enters its sandbox (where the socket's path is not visible); each message is
// then one send() on the kept fd, which the seccomp allow-list permits.
#pragma once

#include <string>
#include <string_view>

#include "vdh/result.h"
#include "vdh/unique_fd.h"

namespace vdh {

class SdNotifier {
  public:
    /// An inactive notifier: every send is a no-op that succeeds.
    SdNotifier() = default;

    /// Reads $NOTIFY_SOCKET and removes it from the environment (children do not inherit
    /// it). Unset or empty: an inactive notifier. Otherwise connects an AF_UNIX datagram
    /// socket to it; fails with the errno of socket()/connect(), or EINVAL when the value
    /// is neither an absolute path nor "@name" or does not fit sockaddr_un. \p err says
    /// what failed.
    static Result<SdNotifier> from_environment(std::string* err);

    /// Connects to \p address ("/path" or "@abstract").
    static Result<SdNotifier> connect(std::string_view address, std::string* err);

    bool active() const { return static_cast<bool>(fd_); }

    /// Sends \p state (newline-separated VAR=value lines) as one datagram. Never blocks.
    Status send(std::string_view state) const;

    // Each of these sends one message and logs a warning when it cannot be sent (systemd
    // is gone, or its queue is full): vdhost goes on either way.
    /// READY=1, with STATUS=\p status when not empty.
    void ready(std::string_view status) const;
    /// STATUS=\p status.
    void status(std::string_view status) const;
    /// STOPPING=1.
    void stopping() const;
    /// RELOADING=1 with MONOTONIC_USEC= (Type=notify-reload wants it); follow with ready()
    /// when the reload is done.
    void reloading() const;

  private:
    explicit SdNotifier(UniqueFd fd) : fd_(std::move(fd)) {}
    void send_or_warn(std::string_view state) const;

    UniqueFd fd_;
};

/// SdNotifier::from_environment(), or, when that fails, an inactive notifier and a logged
/// warning (as libsystemd's sd_notify, a broken NOTIFY_SOCKET does not stop vdhost).
SdNotifier sd_notifier_from_environment();

/// The datagram of ready(): "READY=1" and, when \p status is not empty, "\nSTATUS=..." with
/// any newline in \p status replaced by a space (one variable per line).
std::string sd_ready_message(std::string_view status);

} // namespace vdh

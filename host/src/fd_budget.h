// SPDX-License-Identifier: MIT
// The process fd budget: RLIMIT_NOFILE as vdhost sets it at start, a reserve for the
// host's own fds (vhost-user sockets and the kick/call/memory fds rte_vhost holds per
// device, lcore epoll and event fds, the control socket, plugins' libraries), and what
// each device's plugin reserves at create() through vdh_host_api::reserve_fds. A config
// whose reservations cannot all fit is refused before anything serves, so one tenant's
// files can never take the fds another tenant or the host needs. Control thread only.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace vdh {

/// The host's own fds: a base plus per poll lcore plus per device (listen and connection
/// sockets, backend request fd, up to 8 memory-region fds, and kick, call and error fds
/// for every one of the device's possible queues).
uint64_t host_fd_reserve(size_t devices, size_t lcores);

/// The host's own fds for one device (the per-device part of host_fd_reserve()); a device
/// added while running reserves them with its plugin's.
uint64_t device_host_fds();

/// RLIMIT_NOFILE of the process: what it is, and what may be set.
struct NofileLimits {
    uint64_t soft = 0;
    uint64_t hard = 0;
    uint64_t nr_open = 0; ///< fs.nr_open: the ceiling even for a privileged process
};

/// Reads the current limits (and fs.nr_open).
NofileLimits read_nofile_limits();

/// Sets the soft limit to \p target (raising the hard limit too when \p target is above
/// it, which needs CAP_SYS_RESOURCE). Returns false and sets \p err on failure.
bool set_nofile_limit(uint64_t target, std::string* err);

/// Accounts reservations against a limit.
class FdBudget {
  public:
    FdBudget(uint64_t limit, uint64_t host_reserve) : limit_(limit), host_reserve_(host_reserve) {}

    /// Reserves \p n fds for \p device. When the total would exceed the limit, reserves
    /// nothing and returns false with a message that names every number.
    bool reserve(const std::string& device, uint64_t n, std::string* err);

    /// Reserves \p n more fds for the host's own use on behalf of \p device (its vhost-user
    /// socket, connection, memory and ring fds). Fails as reserve() does.
    bool reserve_host(uint64_t n, const std::string& device, std::string* err);
    /// Gives back \p n fds of the host's reserve.
    void release_host(uint64_t n) noexcept { host_reserve_ -= std::min(n, host_reserve_); }

    /// Gives back everything \p device reserved (a device removed while running).
    /// Returns how many fds were freed.
    uint64_t release(const std::string& device);

    /// A new limit (once start-up has fixed RLIMIT_NOFILE's hard limit).
    void set_limit(uint64_t limit) noexcept;

    /// Total the host and all devices need.
    uint64_t needed() const noexcept { return host_reserve_ + reserved_; }
    uint64_t limit() const noexcept { return limit_; }
    uint64_t host_reserve() const noexcept { return host_reserve_; }
    uint64_t reserved() const noexcept { return reserved_; }
    /// Devices that reserved, with their amounts, in order.
    const std::vector<std::pair<std::string, uint64_t>>& devices() const noexcept {
        return devices_;
    }

  private:
    uint64_t limit_;
    uint64_t host_reserve_;
    uint64_t reserved_ = 0;
    std::vector<std::pair<std::string, uint64_t>> devices_;
};

} // namespace vdh

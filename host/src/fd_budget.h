// SPDX-License-Identifier: MIT
// The process fd budget: RLIMIT_NOFILE as vdhost sets it at start, a reserve for the
// host's own fds (vhost-user sockets and the kick/call/memory fds the transport holds
// per device, lcore epoll and event fds, the control socket, plugins' libraries), and what
// each device's plugin reserves at create() through vdh_host_api::reserve_fds. A config
// whose reservations cannot all fit is refused before anything serves, so one tenant's
// files can never take the fds another tenant or the host needs. Control thread only.
#pragma once

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

/// Accounts reservations against a limit. Each reservation belongs to an owner (a Device),
/// which gives back all of its own at once, so two devices of the same name (one removed but
/// not yet freed, one new) never free each other's fds.
class FdBudget {
  public:
    FdBudget(uint64_t limit, uint64_t host_reserve) : limit_(limit), host_reserve_(host_reserve) {}

    /// Reserves \p n fds for \p device (held by \p owner). When the total would exceed the
    /// limit, reserves nothing and returns false with a message that names every number.
    bool reserve(const std::string& device, uint64_t n, std::string* err,
                 const void* owner = nullptr);

    /// Reserves \p n more fds for the host's own use on behalf of \p device (its vhost-user
    /// socket, connection, memory and ring fds), held by \p owner. Counted in
    /// host_reserve(). Fails as reserve() does.
    bool reserve_host(const void* owner, const std::string& device, uint64_t n,
                      std::string* err);

    /// Gives back everything \p owner reserved, for the host and for its plugin.
    void release(const void* owner);

    /// A new limit (once start-up has fixed RLIMIT_NOFILE's hard limit).
    void set_limit(uint64_t limit) noexcept { limit_ = limit; }

    /// Total the host and all devices need.
    uint64_t needed() const noexcept { return host_reserve_ + reserved_; }
    uint64_t limit() const noexcept { return limit_; }
    uint64_t host_reserve() const noexcept { return host_reserve_; }
    uint64_t reserved() const noexcept { return reserved_; }
    /// Devices' own reservations (names and amounts), in order.
    std::vector<std::pair<std::string, uint64_t>> devices() const;

  private:
    struct Reservation {
        const void* owner;
        std::string device;
        uint64_t n;
        bool host; ///< the host's fds for the device (in host_reserve_)
    };
    /// Does \p n more fit? Else sets \p err with every number.
    bool fits(const std::string& device, uint64_t n, std::string* err) const;

    uint64_t limit_;
    uint64_t host_reserve_;
    uint64_t reserved_ = 0;
    std::vector<Reservation> reservations_;
};

} // namespace vdh

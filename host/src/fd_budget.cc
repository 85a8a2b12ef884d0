// SPDX-License-Identifier: MIT
// RLIMIT_NOFILE handling and fd reservation accounting (see fd_budget.h).
#include "fd_budget.h"

#include <sys/resource.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace vdh {
namespace {
constexpr uint64_t kBaseFds = 128;        ///< stdio, EAL, logs, plugin .so files, spare
constexpr uint64_t kFdsPerLcore = 4;      ///< epoll + wake eventfd, spare
constexpr uint64_t kMaxDeviceQueues = 64; ///< Device::kMaxQueues
constexpr uint64_t kFdsPerDevice = 12 + 3 * kMaxDeviceQueues;
} // namespace

uint64_t host_fd_reserve(size_t devices, size_t lcores) {
    return kBaseFds + kFdsPerLcore * lcores + kFdsPerDevice * devices;
}

uint64_t device_host_fds() { return kFdsPerDevice; }

NofileLimits read_nofile_limits() {
    NofileLimits l;
    struct rlimit r {};
    if (getrlimit(RLIMIT_NOFILE, &r) == 0) {
        l.soft = r.rlim_cur;
        l.hard = r.rlim_max;
    }
    l.nr_open = 1048576;
    if (FILE* f = std::fopen("/proc/sys/fs/nr_open", "re")) {
        unsigned long long v = 0;
        if (std::fscanf(f, "%llu", &v) == 1 && v > 0) {
            l.nr_open = v;
        }
        std::fclose(f);
    }
    if (l.hard > l.nr_open) {
        l.hard = l.nr_open; // RLIM_INFINITY: the kernel caps open fds at nr_open anyway
    }
    if (l.soft > l.hard) {
        l.soft = l.hard;
    }
    return l;
}

bool set_nofile_limit(uint64_t target, std::string* err) {
    struct rlimit r {};
    if (getrlimit(RLIMIT_NOFILE, &r) != 0) {
        *err = std::string("getrlimit(RLIMIT_NOFILE): ") + std::strerror(errno);
        return false;
    }
    struct rlimit n = r;
    n.rlim_cur = target;
    if (r.rlim_max != RLIM_INFINITY && target > r.rlim_max) {
        n.rlim_max = target;
    }
    if (setrlimit(RLIMIT_NOFILE, &n) != 0) {
        *err = "setrlimit(RLIMIT_NOFILE, " + std::to_string(target) + "): " + std::strerror(errno);
        return false;
    }
    return true;
}

bool FdBudget::fits(const std::string& device, uint64_t n, std::string* err) const {
    if (n <= limit_ && host_reserve_ + reserved_ <= limit_ - n) {
        return true;
    }
    std::string others;
    for (const auto& [name, count] : devices()) {
        others += (others.empty() ? "" : ", ") + name + " " + std::to_string(count);
    }
    uint64_t used = host_reserve_ + reserved_;
    *err = "device " + device + ": cannot reserve " + std::to_string(n) +
           " fds: the process fd limit (RLIMIT_NOFILE) is " + std::to_string(limit_) +
           ", the host reserves " + std::to_string(host_reserve_) + " for its own fds" +
           (others.empty() ? "" : " and earlier devices reserved " + others) + ", so " +
           std::to_string(used >= limit_ ? 0 : limit_ - used) +
           " are left; lower the device's fd budget (virtio-fs: fd_limit) or raise the hard "
           "limit (ulimit -Hn, systemd LimitNOFILE=)";
    return false;
}

bool FdBudget::reserve(const std::string& device, uint64_t n, std::string* err,
                       const void* owner) {
    if (!fits(device, n, err)) {
        return false;
    }
    reserved_ += n;
    reservations_.push_back(Reservation{owner, device, n, false});
    return true;
}

bool FdBudget::reserve_host(const void* owner, const std::string& device, uint64_t n,
                            std::string* err) {
    if (!fits(device, n, err)) {
        return false;
    }
    host_reserve_ += n;
    reservations_.push_back(Reservation{owner, device, n, true});
    return true;
}

void FdBudget::release(const void* owner) {
    for (auto it = reservations_.begin(); it != reservations_.end();) {
        if (it->owner == owner) {
            (it->host ? host_reserve_ : reserved_) -= it->n;
            it = reservations_.erase(it);
        } else {
            ++it;
        }
    }
}

std::vector<std::pair<std::string, uint64_t>> FdBudget::devices() const {
    std::vector<std::pair<std::string, uint64_t>> out;
    for (const Reservation& r : reservations_) {
        if (!r.host) {
            out.emplace_back(r.device, r.n);
        }
    }
    return out;
}

} // namespace vdh

// SPDX-License-Identifier: MIT
// Supplementary groups and capability checks (see privileges.h).
#include "privileges.h"

#include <grp.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

namespace vdh {

bool drop_supplementary_groups(std::string* err) {
    if (setgroups(0, nullptr) == 0) {
        return true;
    }
    int e = errno;
    if (getgroups(0, nullptr) == 0) {
        return true; // nothing to drop
    }
    *err = std::string("cannot drop supplementary groups (setgroups: ") + std::strerror(e) +
           "); run vdhost without supplementary groups or with CAP_SETGID";
    return false;
}

bool has_cap_sys_resource() {
    constexpr int kCapSysResource = 24;
    std::ifstream f("/proc/self/status");
    std::string line;
    while (std::getline(f, line)) {
        if (line.rfind("CapEff:", 0) == 0) {
            unsigned long long caps = std::strtoull(line.c_str() + 7, nullptr, 16);
            return (caps >> kCapSysResource) & 1;
        }
    }
    return false;
}

} // namespace vdh

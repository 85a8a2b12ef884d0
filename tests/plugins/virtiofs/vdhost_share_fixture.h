// SPDX-License-Identifier: MIT
// Helpers shared by the virtio-fs integration tests that run the real vdhost binary
// (../../host/vdhost_process.h) on shared directories and drive it with the FUSE client:
// config snippets for virtio-fs devices, host-side file contents, the plugin's stats and
// vdhost's open fd count.
#pragma once

#include <dirent.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include "../../host/vdhost_process.h"

namespace vdh::testing {

/// \p n bytes that differ per \p seed and per 4 KiB page (catches misplaced blocks).
inline std::vector<uint8_t> pattern(size_t n, uint32_t seed) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) {
        v[i] = static_cast<uint8_t>((i * 131 + seed) ^ (i >> 12));
    }
    return v;
}

/// Writes \p data to \p path on the host (created or truncated).
inline void write_host_file(const std::string& path, const std::vector<uint8_t>& data) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
}

inline std::vector<uint8_t> read_host_file(const std::string& path) {
    std::string s = read_file(path);
    return std::vector<uint8_t>(s.begin(), s.end());
}

/// The bytes of a FUSE argument struct.
template <typename T> std::span<const uint8_t> as_bytes(const T& v) {
    return {reinterpret_cast<const uint8_t*>(&v), sizeof(T)};
}

/// The host section of a vdhost config (\p poll_lcores as YAML, e.g. "[0, 1]"), with a
/// short idle poll so tests do not wait on sleeping lcores; devices follow.
inline std::string host_yaml(const std::string& poll_lcores, const std::string& control_socket) {
    return "host:\n  poll_lcores: " + poll_lcores + "\n  control_socket: " + control_socket +
           "\n  idle_poll_us: 100\n  max_sleep_ms: 50\n"
           "devices:\n";
}

/// One virtio-fs device of the devices list, sharing \p shared_dir, on \p lcore (YAML:
/// "0" or "[0, 1]"). \p config_extra: more profile keys, each a line indented 6 spaces.
inline std::string virtiofs_device_yaml(const std::string& name, const std::string& socket,
                                        const std::string& lcore, const std::string& shared_dir,
                                        const std::string& config_extra = "") {
    return "  - name: " + name + "\n    type: virtiofs\n    socket: " + socket +
           "\n    lcore: " + lcore + "\n    config:\n      shared_dir: " + shared_dir + "\n" +
           config_extra;
}

/// Number after "key": in the plugin stats of \p device (of the first device when empty)
/// in vdhost's stats JSON \p stats, or -1.
inline long plugin_stat(const std::string& stats, const std::string& key,
                        const std::string& device = "") {
    size_t p = 0;
    if (!device.empty()) {
        p = stats.find("\"name\":\"" + device + "\"");
        if (p == std::string::npos) {
            return -1;
        }
    }
    p = stats.find("\"plugin\":", p);
    return p == std::string::npos ? -1 : json_number(stats, key, p);
}

/// Open fds of process \p pid, or -1.
inline int fd_count(pid_t pid) {
    int n = 0;
    DIR* d = ::opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
    if (d == nullptr) {
        return -1;
    }
    while (dirent* e = ::readdir(d)) {
        n += e->d_name[0] != '.' ? 1 : 0;
    }
    ::closedir(d);
    return n;
}

} // namespace vdh::testing

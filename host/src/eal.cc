// SPDX-License-Identifier: MIT
// EAL bring-up for a host without hugepages. Flags verified with DPDK 22.11 (see
// shared/reference/rte_vhost.md §3.1): --in-memory is refused together with --no-huge,
// so --no-shconf keeps several vdhost processes apart.
#include "eal.h"

#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>

#include <cstdlib>
#include <cstring>

namespace vdh {
namespace {

std::string file_prefix() { return "vdhost-" + std::to_string(getpid()); }

} // namespace

std::string eal_runtime_dir() {
    // eal_get_runtime_dir(): /var/run for root, else $XDG_RUNTIME_DIR or /tmp; then "dpdk".
    const char* base = "/var/run";
    if (getuid() != 0) {
        const char* xdg = getenv("XDG_RUNTIME_DIR");
        base = xdg != nullptr ? xdg : "/tmp";
    }
    return std::string(base) + "/dpdk/" + file_prefix();
}

std::vector<std::string> build_eal_args(const HostConfig& cfg, unsigned online_cpus,
                                        const std::vector<std::string>& cli_overrides) {
    std::vector<std::string> a;
    a.push_back("vdhost");
    // lcore 0 = main (control) lcore, allowed on every CPU; lcores 1..N = poll lcores.
    std::string lcores = "0@(0-" + std::to_string(online_cpus - 1) + ")";
    for (size_t i = 0; i < cfg.poll_lcores.size(); ++i) {
        lcores += "," + std::to_string(i + 1) + "@" + std::to_string(cfg.poll_lcores[i]);
    }
    a.push_back("--lcores=" + lcores);
    a.push_back("--main-lcore=0");
    a.push_back("--no-huge");
    a.push_back("-m");
    a.push_back("64");
    a.push_back("--no-pci");
    a.push_back("--no-shconf");
    a.push_back("--iova-mode=va");
    if (!cfg.telemetry) {
        a.push_back("--no-telemetry");
    }
    a.push_back("--file-prefix=" + file_prefix());
    a.push_back("--log-level=lib.eal:warning");
    a.push_back("--log-level=lib.vhost.config:warning");
    a.push_back("--log-level=lib.vhost.data:warning");
    for (const auto& s : cfg.eal_args) {
        a.push_back(s);
    }
    for (const auto& s : cli_overrides) {
        a.push_back(s);
    }
    return a;
}

bool eal_init(const std::vector<std::string>& args, std::string* err) {
    std::vector<char*> argv;
    std::vector<std::string> copy = args; // rte_eal_init may permute argv
    for (auto& s : copy) {
        argv.push_back(s.data());
    }
    argv.push_back(nullptr);
    int rc = rte_eal_init(static_cast<int>(copy.size()), argv.data());
    if (rc < 0) {
        *err = std::string("EAL initialisation failed: ") + rte_strerror(rte_errno);
        return false;
    }
    return true;
}

void eal_cleanup() { rte_eal_cleanup(); }

} // namespace vdh

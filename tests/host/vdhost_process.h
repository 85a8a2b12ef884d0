// SPDX-License-Identifier: MIT
// Test fixture helper: runs the real vdhost binary on a temporary config, waits for its
// sockets, reads its control socket, and sends it signals. Used by the integration tests
// (and the virtio-fs tests) that drive vdhost through the vhost-user frontend library.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "temp_dir.h"

namespace vdh::testing {

inline bool wait_for_path(const std::string& path, std::chrono::milliseconds timeout) {
    auto end = std::chrono::steady_clock::now() + timeout;
    struct stat st;
    while (std::chrono::steady_clock::now() < end) {
        if (stat(path.c_str(), &st) == 0) {
            return true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
}

inline std::string read_file(const std::string& path) {
    std::ifstream f(path);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

/// One vdhost process.
class VdhostProcess {
public:
    VdhostProcess() = default;
    ~VdhostProcess() { kill_hard(); }

    /// Runs in the child just before exec (e.g. to lower resource limits).
    void set_child_setup(std::function<void()> f) { child_setup_ = std::move(f); }

    /// Writes \p yaml to DIR/vdhost.yaml and starts vdhost on it; stderr goes to
    /// DIR/vdhost.log. Waits until every path in \p wait_paths exists.
    bool start(const TempDir& dir, const std::string& yaml,
               const std::vector<std::string>& wait_paths,
               std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
        config_ = dir.file("vdhost.yaml");
        log_ = dir.file("vdhost.log");
        std::ofstream(config_) << yaml;
        pid_ = fork();
        if (pid_ == 0) {
            int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            dup2(fd, 1);
            dup2(fd, 2);
            if (child_setup_) {
                child_setup_();
            }
            execl(VDHOST_PATH, "vdhost", "--config", config_.c_str(), "--plugin-dir",
                  PLUGIN_BUILD_DIR, "--log-level", "debug", static_cast<char*>(nullptr));
            _exit(127);
        }
        for (const auto& p : wait_paths) {
            if (!wait_for_path(p, timeout)) {
                return false;
            }
        }
        return true;
    }

    pid_t pid() const { return pid_; }
    std::string log() const { return read_file(log_); }

    /// Sends \p sig and waits for the exit; returns the exit status (or -1000-signal).
    int stop(int sig = SIGTERM, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
        if (pid_ <= 0) {
            return -1;
        }
        ::kill(pid_, sig);
        auto end = std::chrono::steady_clock::now() + timeout;
        int status = 0;
        while (std::chrono::steady_clock::now() < end) {
            pid_t r = waitpid(pid_, &status, WNOHANG);
            if (r == pid_) {
                pid_ = -1;
                return WIFEXITED(status) ? WEXITSTATUS(status) : -1000 - WTERMSIG(status);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        kill_hard();
        return -2;
    }

    /// True while the process runs.
    bool alive() {
        if (pid_ <= 0) {
            return false;
        }
        int status;
        return waitpid(pid_, &status, WNOHANG) == 0;
    }

    /// CPU time (user+sys) in clock ticks, from /proc.
    long cpu_ticks() const {
        std::string s = read_file("/proc/" + std::to_string(pid_) + "/stat");
        auto rp = s.rfind(')');
        if (rp == std::string::npos) {
            return -1;
        }
        std::istringstream in(s.substr(rp + 2));
        std::string f;
        long utime = 0;
        long stime = 0;
        for (int i = 3; i <= 15 && in >> f; ++i) {
            if (i == 14) {
                utime = std::stol(f);
            } else if (i == 15) {
                stime = std::stol(f);
            }
        }
        return utime + stime;
    }

private:
    void kill_hard() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            int status;
            waitpid(pid_, &status, 0);
            pid_ = -1;
        }
    }

    pid_t pid_ = -1;
    std::function<void()> child_setup_;
    std::string config_;
    std::string log_;
};

/// Runs the shell command \p cmd to its end, appending its standard output to \p out.
/// Returns its exit status, or -1 when it could not run or was killed by a signal.
inline int run_command(const std::string& cmd, std::string* out) {
    FILE* p = popen(cmd.c_str(), "r");
    if (p == nullptr) {
        return -1;
    }
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0) {
        out->append(buf, n);
    }
    int rc = pclose(p);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/// Runs `vdhost --stats SOCKET` and returns its output.
inline std::string vdhost_stats(const std::string& control_socket) {
    std::string out;
    run_command(std::string(VDHOST_PATH) + " --stats " + control_socket + " 2>&1", &out);
    return out;
}

/// Runs `vdhost --check-config CONFIG` (plugins from the build tree) and returns its exit
/// status, with its output (stdout and stderr) in \p out. With \p nofile ("SOFT:HARD"), it
/// runs under that RLIMIT_NOFILE and without CAP_SYS_RESOURCE, so the hard limit is final.
inline int vdhost_check_config(const std::string& config, std::string* out,
                               const std::string& nofile = "") {
    std::string cmd = std::string(VDHOST_PATH) + " --check-config " + config + " --plugin-dir " +
                      PLUGIN_BUILD_DIR;
    if (!nofile.empty()) {
        cmd = "prlimit --nofile=" + nofile + " capsh --drop=cap_sys_resource -- -c 'exec " + cmd +
              "'";
    }
    return run_command(cmd + " 2>&1", out);
}

/// Extracts the number after "\"key\":" at or after position \p from (crude JSON read).
inline long json_number(const std::string& json, const std::string& key, size_t from = 0) {
    auto p = json.find("\"" + key + "\":", from);
    if (p == std::string::npos) {
        return -1;
    }
    return std::strtol(json.c_str() + p + key.size() + 3, nullptr, 10);
}

} // namespace vdh::testing

// SPDX-License-Identifier: MIT
// Test helper: a loop block device over a file (losetup), detached on destruction, so the
// virtio-blk tests can back a disk with a real block device. Needs root; attach() fails
// (and tests skip) where loop devices are not available.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace vdh::testing {

class LoopDevice {
  public:
    LoopDevice() = default;
    ~LoopDevice() { detach(); }
    LoopDevice(const LoopDevice&) = delete;
    LoopDevice& operator=(const LoopDevice&) = delete;

    /// Attaches \p file with logical blocks of \p sector_size bytes. Returns the device path,
    /// or "" on failure.
    std::string attach(const std::string& file, unsigned sector_size = 512) {
        const std::string cmd = "losetup -f --show --sector-size " + std::to_string(sector_size) +
                                " '" + file + "' 2>/dev/null";
        FILE* p = popen(cmd.c_str(), "r");
        if (p == nullptr) {
            return "";
        }
        char buf[256] = {};
        const bool got = std::fgets(buf, sizeof(buf), p) != nullptr;
        const int rc = pclose(p);
        if (!got || !WIFEXITED(rc) || WEXITSTATUS(rc) != 0) {
            return "";
        }
        path_ = buf;
        while (!path_.empty() && (path_.back() == '\n' || path_.back() == ' ')) {
            path_.pop_back();
        }
        return path_;
    }

    void detach() {
        if (!path_.empty()) {
            const std::string cmd = "losetup -d '" + path_ + "' 2>/dev/null";
            [[maybe_unused]] int rc = std::system(cmd.c_str());
            path_.clear();
        }
    }

    const std::string& path() const { return path_; }

  private:
    std::string path_;
};

} // namespace vdh::testing

// SPDX-License-Identifier: MIT
// Helpers for the passthrough backend tests: a RAII temporary directory under /tmp, an
// open-fd counter (/proc/self/fd) and probes for capabilities a test may need (file
// handles on the temp filesystem, open_by_handle_at permission).
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace vdh::virtiofs::passthrough::testing {

/// A fresh directory under /tmp, removed recursively (permissions reset first) on
/// destruction. Tests each make their own, so they can run in parallel.
class TempDir {
public:
    TempDir() {
        char tmpl[] = "/tmp/vdh-pt-XXXXXX";
        const char* p = ::mkdtemp(tmpl);
        path_ = p != nullptr ? p : "";
    }
    ~TempDir() {
        std::error_code ec;
        if (path_.empty()) {
            return;
        }
        for (auto it = std::filesystem::recursive_directory_iterator(path_, ec);
             !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
            if (it->is_directory(ec) && !it->is_symlink(ec)) {
                ::chmod(it->path().c_str(), 0700);
            }
        }
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::string& path() const { return path_; }
    std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

private:
    std::string path_;
};

/// Number of open fds of this process.
inline int count_open_fds() {
    int n = 0;
    DIR* d = ::opendir("/proc/self/fd");
    if (d == nullptr) {
        return -1;
    }
    while (struct dirent* e = ::readdir(d)) {
        if (e->d_name[0] != '.') {
            ++n;
        }
    }
    ::closedir(d);
    return n - 1; // the DIR's own fd
}

/// True when \p dir's filesystem can produce file handles and this process may open them.
bool handles_usable(const std::string& dir);

/// Writes \p data into a new file \p path (mode 0644).
void write_file(const std::string& path, const std::string& data, mode_t mode = 0644);
/// Host inode number of \p path (lstat).
uint64_t ino_of(const std::string& path);

} // namespace vdh::virtiofs::passthrough::testing

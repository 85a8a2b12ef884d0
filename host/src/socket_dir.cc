// SPDX-License-Identifier: MIT
// Socket directory checks and socket file permissions (see socket_dir.h).
#include "socket_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace vdh {
namespace {

std::string octal(uint32_t mode) {
    char buf[16];
    std::snprintf(buf, sizeof(buf), "%04o", mode & 07777);
    return buf;
}

/// An existing ancestor of a socket directory: owned by us or root; writable by others
/// only with the sticky bit (then they cannot rename or remove what is ours in it).
std::string ancestor_problem(const std::string& dir, const struct stat& st, uint32_t euid) {
    if (st.st_uid != euid && st.st_uid != 0) {
        return dir + " (an ancestor of the socket directory) is owned by uid " +
               std::to_string(st.st_uid) + ", not by us (uid " + std::to_string(euid) + ") or root";
    }
    if ((st.st_mode & 022) != 0 && (st.st_mode & S_ISVTX) == 0) {
        return dir + " (an ancestor of the socket directory) has mode " + octal(st.st_mode) +
               ": writable by group or others without the sticky bit";
    }
    return "";
}

} // namespace

std::string parent_dir(const std::string& path) {
    auto slash = path.rfind('/');
    if (slash == std::string::npos) {
        return ".";
    }
    if (slash == 0) {
        return "/";
    }
    return path.substr(0, slash);
}

std::string socket_dir_problem(const std::string& dir, uint32_t uid, uint32_t mode, uint32_t euid) {
    if (S_ISLNK(mode)) {
        return "socket directory " + dir + " is a symbolic link (expected a directory)";
    }
    if (!S_ISDIR(mode)) {
        return "socket directory " + dir + " exists and is not a directory";
    }
    if (uid != euid && uid != 0) {
        return "socket directory " + dir + " is owned by uid " + std::to_string(uid) +
               ", not by us (uid " + std::to_string(euid) +
               ") or root: whoever owns it can pose as the device";
    }
    if ((mode & 022) != 0) {
        return "socket directory " + dir + " has mode " + octal(mode) +
               ": writable by group or others, who could pose as the device (expected at most "
               "0755; vdhost creates it 0700)";
    }
    return "";
}

bool secure_socket_dir(const std::string& dir, bool with_group, uint32_t gid, std::string* err) {
    uint32_t euid = geteuid();
    // Ancestors, top-down: each must exist or be created by us.
    for (size_t pos = 1; pos < dir.size(); ++pos) {
        pos = dir.find('/', pos);
        if (pos == std::string::npos) {
            break;
        }
        std::string a = dir.substr(0, pos);
        struct stat st;
        if (stat(a.c_str(), &st) != 0) {
            if (errno != ENOENT || (mkdir(a.c_str(), 0755) != 0 && errno != EEXIST) ||
                stat(a.c_str(), &st) != 0) {
                *err = "cannot create " + a + ": " + std::strerror(errno);
                return false;
            }
        }
        if (!S_ISDIR(st.st_mode)) {
            *err = a + " (an ancestor of the socket directory " + dir + ") is not a directory";
            return false;
        }
        std::string p = ancestor_problem(a, st, euid);
        if (!p.empty()) {
            *err = p;
            return false;
        }
    }
    struct stat st;
    if (lstat(dir.c_str(), &st) != 0) {
        if (errno != ENOENT) {
            *err = "socket directory " + dir + ": " + std::strerror(errno);
            return false;
        }
        if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
            *err = "cannot create socket directory " + dir + ": " + std::strerror(errno);
            return false;
        }
        if (lstat(dir.c_str(), &st) != 0) {
            *err = "socket directory " + dir + ": " + std::strerror(errno);
            return false;
        }
        // Created just now (or raced): the checks below decide either way.
        if (S_ISDIR(st.st_mode) && st.st_uid == euid) {
            uint32_t mode = with_group ? 0710 : 0700;
            if ((with_group && chown(dir.c_str(), static_cast<uid_t>(-1), gid) != 0) ||
                chmod(dir.c_str(), mode) != 0 || lstat(dir.c_str(), &st) != 0) {
                *err =
                    "socket directory " + dir + ": cannot set group/mode: " + std::strerror(errno);
                return false;
            }
        }
    }
    std::string p = socket_dir_problem(dir, st.st_uid, st.st_mode, euid);
    if (!p.empty()) {
        *err = p;
        return false;
    }
    return true;
}

bool apply_socket_access(const std::string& path, uint32_t mode, bool with_group, uint32_t gid,
                         std::string* err) {
    // The *at forms: a device added while running gets here under the seccomp allow-list,
    // which has them and not chmod/chown.
    if (with_group &&
        fchownat(AT_FDCWD, path.c_str(), static_cast<uid_t>(-1), gid, AT_SYMLINK_NOFOLLOW) != 0) {
        *err = "cannot give socket " + path + " group " + std::to_string(gid) + ": " +
               std::strerror(errno);
        return false;
    }
    if (fchmodat(AT_FDCWD, path.c_str(), mode, 0) != 0) {
        *err =
            "cannot set mode " + octal(mode) + " on socket " + path + ": " + std::strerror(errno);
        return false;
    }
    return true;
}

} // namespace vdh

// SPDX-License-Identifier: MIT
// vdhost-virtiofsd: takes virtiofsd's command line (compat_options.h), writes the matching
// vdhost config into a sealed memfd and execs vdhost (next to this binary, else the install
// bindir) with `--config /proc/self/fd/N`. An inherited --fd socket is checked here and
// passed through the exec; vdhost adopts it (socket_fd, inherited_listen_fd.h).
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "compat_options.h"
#include "inherited_listen_fd.h"
#include "vdh/unique_fd.h"
#include "vdh_build_config.h"

namespace {

constexpr const char* kProg = "vdhost-virtiofsd";

int fail(const std::string& msg) {
    std::fprintf(stderr, "%s: %s\n", kProg, msg.c_str());
    return 1;
}

std::string absolute(const std::string& p) {
    if (p.empty() || p[0] == '/') {
        return p;
    }
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof(cwd)) == nullptr) {
        return p;
    }
    return std::string(cwd) + "/" + p;
}

/// vdhost next to this binary (install bindir or build tree), else the configured bindir.
std::string find_vdhost() {
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        std::string dir(self, static_cast<size_t>(n));
        dir.resize(dir.rfind('/') + 1);
        if (access((dir + "vdhost").c_str(), X_OK) == 0) {
            return dir + "vdhost";
        }
    }
    return VDH_COMPAT_BINDIR "/vdhost";
}

int run(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    std::string err;
    auto opts = vdh::compat::parse_compat_args(args, &err);
    if (!opts) {
        return fail(err);
    }
    vdh::compat::CompatOptions& o = *opts;
    switch (o.action) {
    case vdh::compat::CompatAction::Help:
        std::fputs(vdh::compat::usage_text().c_str(), stdout);
        return 0;
    case vdh::compat::CompatAction::Version:
        std::printf("%s %s (vdhost %s)\n", kProg, VDH_VERSION, VDH_VERSION);
        return 0;
    case vdh::compat::CompatAction::PrintCapabilities:
        std::fputs(vdh::compat::capabilities_json().c_str(), stdout);
        return 0;
    case vdh::compat::CompatAction::Run:
        break;
    }
    bool debug = o.log_level == "debug";
    bool info = debug || o.log_level == "info";
    for (const auto& ig : o.ignored) {
        if (debug || (info && ig.warn)) {
            std::fprintf(stderr, "%s: %s ignored: %s\n", kProg, ig.option.c_str(),
                         ig.reason.c_str());
        }
    }
    o.shared_dir = absolute(o.shared_dir);
    o.socket_path = absolute(o.socket_path);
    if (o.fd >= 0) {
        std::string path;
        if (!vdh::inspect_listen_fd(o.fd, &path, &err)) {
            return fail("--fd=" + std::to_string(o.fd) + ": " + err);
        }
        int flags = fcntl(o.fd, F_GETFD);
        if (flags < 0 || fcntl(o.fd, F_SETFD, flags & ~FD_CLOEXEC) != 0) {
            return fail("--fd=" + std::to_string(o.fd) +
                        ": cannot keep it open across exec: " + std::strerror(errno));
        }
    }
    const std::string yaml = vdh::compat::build_vdhost_config(o);
    if (debug) {
        std::fprintf(stderr, "%s: vdhost config:\n%s", kProg, yaml.c_str());
    }
    // The config: a sealed memfd (no file on disk, nothing can change it), inherited by
    // vdhost, which reads it once at start-up, before its sandbox.
    auto memfd =
        vdh::UniqueFd::from_syscall(memfd_create("vdhost-virtiofsd.yaml", MFD_ALLOW_SEALING));
    if (!memfd) {
        return fail(std::string("memfd_create: ") + std::strerror(memfd.error()));
    }
    size_t off = 0;
    while (off < yaml.size()) {
        ssize_t w = write(memfd->get(), yaml.data() + off, yaml.size() - off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return fail(std::string("writing the config: ") + std::strerror(errno));
        }
        off += static_cast<size_t>(w);
    }
    if (fcntl(memfd->get(), F_ADD_SEALS,
              F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
        return fail(std::string("sealing the config: ") + std::strerror(errno));
    }
    const std::string vdhost = find_vdhost();
    const std::string config = "/proc/self/fd/" + std::to_string(memfd->get());
    std::vector<char*> av{const_cast<char*>(vdhost.c_str()), const_cast<char*>("--config"),
                          const_cast<char*>(config.c_str()), nullptr};
    execv(vdhost.c_str(), av.data());
    return fail("cannot run " + vdhost + ": " + std::strerror(errno));
}

} // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        return fail(std::string("fatal: ") + e.what());
    }
}

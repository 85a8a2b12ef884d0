// SPDX-License-Identifier: MIT
// Integration tests of the process sandbox through the real path: the vdhost binary (run as
// root) with two virtio-fs shares, looked at from outside through /proc/PID. Its root holds
// nothing of the host but the shares and the socket directory (plus the few read-only system
// entries the process itself needs), every share is bound nodev/nosuid (a device node in a
// share cannot be opened through it), a read-only share is bound read-only, and every
// thread runs with no_new_privs, the seccomp filter and the reduced capability sets. Also
// the chroot mode, which must leave no mount behind on the host when vdhost exits.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <linux/capability.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "vdh/unique_fd.h"
#include "vdhost_process.h"

namespace vdh {
namespace {

namespace fs = std::filesystem;
using testing::read_file;
using testing::TempDir;
using testing::VdhostProcess;

/// The capabilities vdhost must keep, and only these (independent of sandbox.cc's list).
uint64_t expected_caps() {
    uint64_t m = 0;
    for (int c : {CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID,
                  CAP_SETGID, CAP_SETUID, CAP_MKNOD, CAP_SETFCAP, CAP_LEASE}) {
        m |= uint64_t{1} << c;
    }
    return m;
}

/// The value of "Key:" in a /proc status file, or "".
std::string status_field(const std::string& status, const std::string& key) {
    std::istringstream in(status);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(key + ":", 0) == 0) {
            size_t v = line.find_first_not_of(" \t", key.size() + 1);
            return v == std::string::npos ? "" : line.substr(v);
        }
    }
    return "";
}

/// One line of /proc/PID/mountinfo: mount point and per-mount options.
struct MountLine {
    std::string point;
    std::string options;
    std::string fstype;
};

std::vector<MountLine> mountinfo(pid_t pid) {
    std::vector<MountLine> out;
    std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/mountinfo"));
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream f(line);
        std::string id, parent, dev, root, point, opts, tok;
        f >> id >> parent >> dev >> root >> point >> opts;
        while (f >> tok && tok != "-") {
        }
        std::string type;
        f >> type;
        out.push_back({point, opts, type});
    }
    return out;
}

bool has_opt(const std::string& opts, const std::string& o) {
    return ("," + opts + ",").find("," + o + ",") != std::string::npos;
}

bool under(const std::string& path, const std::string& dir) {
    return path == dir || path.rfind(dir + "/", 0) == 0;
}

class VdhostSandbox : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_EQ(geteuid(), 0u) << "the sandbox needs root";
        share1_ = dir_.file("share1");
        share2_ = dir_.file("share2");
        sockets_ = dir_.file("sockets");
        ASSERT_EQ(mkdir(share1_.c_str(), 0755), 0);
        ASSERT_EQ(mkdir(share2_.c_str(), 0755), 0);
        std::ofstream(share1_ + "/hello") << "hello";
        std::ofstream(share2_ + "/readme") << "read me";
        // Next to the shares, not in them: must not be visible inside.
        std::ofstream(dir_.file("secret")) << "host secret";
    }

    std::string yaml(const std::string& host_extra) const {
        return "host:\n  poll_lcores: [1]\n  control_socket: " + sockets_ + "/ctl.sock\n" +
               host_extra +
               "devices:\n"
               "  - name: fs1\n    type: virtiofs\n    socket: " + sockets_ + "/fs1.sock\n"
               "    config: {shared_dir: " + share1_ + ", fd_limit: 4096}\n"
               "  - name: fs2\n    type: virtiofs\n    socket: " + sockets_ + "/fs2.sock\n"
               "    config: {shared_dir: " + share2_ + ", readonly: true, fd_limit: 4096}\n";
    }

    bool start(const std::string& host_extra) {
        if (!vdhost_.start(
                dir_, yaml(host_extra),
                {sockets_ + "/fs1.sock", sockets_ + "/fs2.sock", sockets_ + "/ctl.sock"})) {
            return false;
        }
        // The seccomp filter goes on after the sockets exist, just before "ready".
        for (int i = 0; i < 400; ++i) {
            if (vdhost_.log().find(" ready: ") != std::string::npos) {
                return true;
            }
            usleep(25 * 1000);
        }
        return false;
    }

    std::string root() const { return "/proc/" + std::to_string(vdhost_.pid()) + "/root"; }

    /// Every path visible in vdhost's root, as vdhost sees it (the /proc mount not walked).
    std::vector<std::string> visible_paths() const {
        std::vector<std::string> out;
        const std::string r = root();
        std::error_code ec;
        fs::recursive_directory_iterator it(r, fs::directory_options::none, ec);
        EXPECT_FALSE(ec) << ec.message();
        for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
            std::string p = it->path().string().substr(r.size());
            if (p == "/proc") {
                it.disable_recursion_pending();
            }
            out.push_back(p);
        }
        EXPECT_FALSE(ec) << ec.message();
        return out;
    }

    /// The checks common to both modes: nothing of the host outside the allowed places.
    void expect_only_shares_visible() {
        const std::string runtime = "/var/run/dpdk/vdhost-" + std::to_string(vdhost_.pid());
        std::vector<std::string> allowed = {share1_, share2_, sockets_, "/proc",
                                            "/sys/devices/system/cpu", "/sys/module", runtime};
        std::vector<std::string> paths = visible_paths();
        EXPECT_GT(paths.size(), 5u);
        bool saw_hello = false;
        bool saw_readme = false;
        for (const auto& p : paths) {
            bool ok = false;
            for (const auto& a : allowed) {
                // Inside an allowed directory, or one of the directories leading to it.
                ok = ok || under(p, a) || under(a, p);
            }
            EXPECT_TRUE(ok) << "host path visible in the sandbox: " << p;
            saw_hello = saw_hello || p == share1_ + "/hello";
            saw_readme = saw_readme || p == share2_ + "/readme";
        }
        EXPECT_TRUE(saw_hello);
        EXPECT_TRUE(saw_readme);
        struct stat st;
        for (const std::string& host_only :
             {dir_.file("secret"), dir_.file("vdhost.yaml"), std::string("/etc/passwd"),
              std::string("/usr"), std::string("/dev"), std::string("/sys/class"),
              std::string("/proc/sys"), std::string("/proc/kcore")}) {
            EXPECT_NE(lstat((root() + host_only).c_str(), &st), 0) << host_only << " is visible";
        }
        // The same file, the same content: the shares are the host's directories.
        EXPECT_EQ(read_file(root() + share1_ + "/hello"), "hello");
    }

    void expect_confined_process() {
        const pid_t pid = vdhost_.pid();
        std::string status = read_file("/proc/" + std::to_string(pid) + "/status");
        EXPECT_EQ(status_field(status, "NoNewPrivs"), "1");
        EXPECT_EQ(status_field(status, "Seccomp"), "2");
        EXPECT_EQ(std::stoull(status_field(status, "CapBnd"), nullptr, 16), expected_caps());
        EXPECT_EQ(std::stoull(status_field(status, "CapPrm"), nullptr, 16), expected_caps());
        EXPECT_EQ(std::stoull(status_field(status, "CapInh"), nullptr, 16), 0u);
        EXPECT_EQ(std::stoull(status_field(status, "CapAmb"), nullptr, 16), 0u);
        // Every thread (EAL's, rte_vhost's, the lcores, the blocking pool) too.
        int threads = 0;
        for (const auto& t : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
            std::string ts = read_file(t.path().string() + "/status");
            EXPECT_EQ(status_field(ts, "Seccomp"), "2") << t.path();
            EXPECT_EQ(status_field(ts, "NoNewPrivs"), "1") << t.path();
            uint64_t bnd = std::stoull(status_field(ts, "CapBnd"), nullptr, 16);
            uint64_t eff = std::stoull(status_field(ts, "CapEff"), nullptr, 16);
            EXPECT_EQ(bnd, expected_caps()) << t.path();
            EXPECT_EQ(eff & ~expected_caps(), 0u) << t.path();
            ++threads;
        }
        EXPECT_GT(threads, 2);
    }

    TempDir dir_;
    std::string share1_;
    std::string share2_;
    std::string sockets_;
    VdhostProcess vdhost_;
};

TEST_F(VdhostSandbox, NamespaceRootHoldsOnlySharesAndSockets) {
    ASSERT_TRUE(start("")) << vdhost_.log(); // the defaults: namespace + seccomp kill
    expect_only_shares_visible();
    // A different mount namespace from ours.
    EXPECT_NE(fs::read_symlink("/proc/self/ns/mnt"),
              fs::read_symlink("/proc/" + std::to_string(vdhost_.pid()) + "/ns/mnt"));
    EXPECT_EQ(vdhost_.stop(), 0) << vdhost_.log();
}

TEST_F(VdhostSandbox, WithoutTelemetryTheRuntimeDirectoryIsNotBound) {
    ASSERT_TRUE(start("  telemetry: false\n")) << vdhost_.log();
    const std::string runtime_dir = "/var/run/dpdk/vdhost-" + std::to_string(vdhost_.pid());
    for (const auto& m : mountinfo(vdhost_.pid())) {
        EXPECT_NE(m.point, runtime_dir);
    }
    struct stat st;
    EXPECT_NE(::stat(runtime_dir.c_str(), &st), 0); // nothing created on the host
    EXPECT_EQ(vdhost_.stop(), 0) << vdhost_.log();
}

TEST_F(VdhostSandbox, EveryMountIsNodevNosuidAndReadOnlyShareIsReadOnly) {
    ASSERT_TRUE(start("")) << vdhost_.log();
    const std::string runtime_dir = "/var/run/dpdk/vdhost-" + std::to_string(vdhost_.pid());
    auto mounts = mountinfo(vdhost_.pid());
    std::set<std::string> points;
    for (const auto& m : mounts) {
        points.insert(m.point);
        EXPECT_TRUE(has_opt(m.options, "nodev")) << m.point << " " << m.options;
        EXPECT_TRUE(has_opt(m.options, "nosuid")) << m.point << " " << m.options;
        if (m.point == "/" || m.point == share2_ || m.point == "/sys/devices/system/cpu") {
            EXPECT_TRUE(has_opt(m.options, "ro")) << m.point << " " << m.options;
        }
        if (m.point == share1_ || m.point == sockets_ || m.point == runtime_dir) {
            EXPECT_TRUE(has_opt(m.options, "rw")) << m.point << " " << m.options;
        }
        if (m.point == sockets_ || m.point == runtime_dir) {
            EXPECT_TRUE(has_opt(m.options, "noexec")) << m.point << " " << m.options;
        }
        if (m.point == "/") {
            EXPECT_EQ(m.fstype, "tmpfs");
        }
    }
    // host.telemetry (default true): DPDK's runtime directory, where its telemetry socket
    // lives, is bound from the host like a socket directory.
    EXPECT_EQ(points, (std::set<std::string>{"/", "/proc", "/sys/devices/system/cpu", share1_,
                                             share2_, sockets_, runtime_dir}));
    EXPECT_EQ(vdhost_.stop(), 0) << vdhost_.log();
}

TEST_F(VdhostSandbox, DeviceNodeInShareCannotBeOpenedThroughSandbox) {
    ASSERT_TRUE(start("")) << vdhost_.log();
    // The host's /dev/zero, as a node in a share (what a guest's MKNOD creates).
    const std::string node = share1_ + "/zero";
    ASSERT_EQ(mknod(node.c_str(), S_IFCHR | 0666, makedev(1, 5)), 0) << strerror(errno);
    UniqueFd host_fd(open(node.c_str(), O_RDONLY));
    ASSERT_TRUE(host_fd.valid()) << "the node itself works on the host: " << strerror(errno);
    host_fd.reset();
    // Through vdhost's root the node is listed, but the kernel refuses to open it (nodev).
    struct stat st;
    ASSERT_EQ(lstat((root() + node).c_str(), &st), 0);
    EXPECT_TRUE(S_ISCHR(st.st_mode));
    UniqueFd fd(open((root() + node).c_str(), O_RDONLY));
    int e = errno;
    EXPECT_FALSE(fd.valid()) << "device node opened through the sandbox";
    EXPECT_EQ(e, EACCES);
    EXPECT_EQ(vdhost_.stop(), 0) << vdhost_.log();
}

TEST_F(VdhostSandbox, EveryThreadHasNoNewPrivsSeccompAndReducedCaps) {
    ASSERT_TRUE(start("")) << vdhost_.log();
    expect_confined_process();
    EXPECT_EQ(vdhost_.stop(), 0) << vdhost_.log();
}

TEST_F(VdhostSandbox, ChrootModeHoldsTheSameAndLeavesNoMountBehind) {
    ASSERT_TRUE(start("  sandbox: chroot\n")) << vdhost_.log();
    // Same mount namespace as ours: the prepared root is a mount of the host's namespace...
    EXPECT_EQ(fs::read_symlink("/proc/self/ns/mnt"),
              fs::read_symlink("/proc/" + std::to_string(vdhost_.pid()) + "/ns/mnt"));
    std::string staged;
    for (const auto& m : mountinfo(getpid())) {
        if (m.point.rfind("/run/vdhost-sandbox.", 0) == 0 &&
            m.point.find('/', 5) == std::string::npos && m.fstype == "tmpfs") {
            staged = m.point;
        }
    }
    ASSERT_FALSE(staged.empty()) << "no /run/vdhost-sandbox.* tmpfs in our mountinfo";
    expect_only_shares_visible();
    expect_confined_process();
    EXPECT_EQ(vdhost_.stop(), 0) << vdhost_.log();
    // ...which is gone (with its bind mounts and directory) once vdhost has exited.
    bool gone = false;
    for (int i = 0; i < 100 && !gone; ++i) {
        gone = read_file("/proc/self/mountinfo").find(staged) == std::string::npos &&
               access(staged.c_str(), F_OK) != 0;
        if (!gone) {
            usleep(50 * 1000);
        }
    }
    EXPECT_TRUE(gone) << staged << " still mounted or present";
}

TEST_F(VdhostSandbox, NoneModeKeepsTheHostView) {
    ASSERT_TRUE(start("  sandbox: none\n  seccomp: none\n")) << vdhost_.log();
    struct stat st;
    EXPECT_EQ(lstat((root() + dir_.file("secret")).c_str(), &st), 0);
    std::string status = read_file("/proc/" + std::to_string(vdhost_.pid()) + "/status");
    EXPECT_EQ(status_field(status, "Seccomp"), "0");
    EXPECT_EQ(vdhost_.stop(), 0) << vdhost_.log();
}

} // namespace
} // namespace vdh

// SPDX-License-Identifier: MIT
// vdhost as a systemd service, through the real binary (default sandbox: namespace and
// seccomp: kill; echo devices): READY=1 on $NOTIFY_SOCKET (a path or an abstract socket)
// only once the device and control sockets accept connections, STOPPING=1 at SIGTERM and
// a clean exit; journal-format log lines when $JOURNAL_STREAM names stderr's file; the
// default config path; and the unit file packaging/systemd/vdhost.service: its ExecStart
// line run as written (config path swapped for a temporary one) with NOTIFY_SOCKET set,
// under the unit's capability bounding set.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "vdh/unique_fd.h"
#include "vdh_build_config.h"
#include "socket_io.h"
#include "vdhost_process.h"

namespace vdh {
namespace {

using testing::TempDir;
using testing::VdhostProcess;
using testing::receive;

/// NOTIFY_SOCKET for a vdhost under test (20 s: it starts a sandbox and EAL first).
UniqueFd bind_notify_socket(const std::string& address) {
    return testing::bind_dgram(address, 20);
}

/// Whether a stream connection to the UNIX socket \p path is accepted (it listens).
bool accepts(const std::string& path) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path.c_str());
    return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0;
}

std::string echo_config(const TempDir& dir, const std::string& extra_host = "") {
    return "host:\n  poll_lcores: [1]\n  control_socket: " + dir.file("run/ctl.sock") + "\n" +
           extra_host +
           "devices:\n  - name: e0\n    type: echo\n    socket: " + dir.file("run/e0.sock") + "\n";
}

/// READY=1 arrives once both sockets listen; SIGTERM sends STOPPING=1 and exits 0.
void expect_ready_then_stopping(const std::string& address) {
    TempDir dir;
    UniqueFd notify = bind_notify_socket(address);
    VdhostProcess v;
    v.set_child_setup([&] { ::setenv("NOTIFY_SOCKET", address.c_str(), 1); });
    // No paths to wait for: readiness is what the test waits on.
    ASSERT_TRUE(v.start(dir, echo_config(dir), {}));
    const std::string ready = receive(notify);
    ASSERT_EQ(ready, "READY=1\nSTATUS=serving 1 device(s)") << v.log();
    // At that moment, both sockets accept connections.
    EXPECT_TRUE(accepts(dir.file("run/e0.sock"))) << v.log();
    EXPECT_TRUE(accepts(dir.file("run/ctl.sock"))) << v.log();
    EXPECT_NE(testing::vdhost_stats(dir.file("run/ctl.sock")).find("\"devices\":["),
              std::string::npos);
    // Nothing else was sent before the stop.
    char c;
    EXPECT_EQ(::recv(notify.get(), &c, 1, MSG_DONTWAIT), -1);
    ::kill(v.pid(), SIGTERM);
    EXPECT_EQ(receive(notify), "STOPPING=1") << v.log();
    EXPECT_EQ(v.stop(SIGTERM), 0) << v.log();
    EXPECT_NE(v.log().find("sandbox: namespace"), std::string::npos) << v.log();
    EXPECT_NE(v.log().find("seccomp: kill"), std::string::npos) << v.log();
    EXPECT_NE(v.log().find("stopped"), std::string::npos) << v.log();
}

TEST(VdhostService, NotifiesReadyAndStoppingOnAPathSocket) {
    TempDir outside; // the notify socket is outside the sandbox's root
    expect_ready_then_stopping(outside.file("notify"));
}

TEST(VdhostService, NotifiesReadyAndStoppingOnAnAbstractSocket) {
    expect_ready_then_stopping("@vdh-service-test-" + std::to_string(::getpid()));
}

TEST(VdhostService, BrokenNotifySocketIsAWarningNotAFailure) {
    TempDir dir;
    VdhostProcess v;
    v.set_child_setup([&] { ::setenv("NOTIFY_SOCKET", dir.file("nobody-here").c_str(), 1); });
    ASSERT_TRUE(v.start(dir, echo_config(dir), {dir.file("run/ctl.sock")}));
    EXPECT_TRUE(testing::wait_for_path(dir.file("run/e0.sock"), std::chrono::seconds(5)));
    EXPECT_EQ(v.stop(), 0) << v.log();
    EXPECT_NE(v.log().find("NOTIFY_SOCKET=" + dir.file("nobody-here") +
                           ": connect: No such file or directory (readiness is not reported"),
              std::string::npos)
        << v.log();
}

/// Runs vdhost with stderr on DIR/vdhost.log and JOURNAL_STREAM set to the dev:ino of
/// \p stream_of (the log itself when empty); returns the log.
std::string run_with_journal_stream(const TempDir& dir, const std::string& stream_of) {
    VdhostProcess v;
    v.set_child_setup([&] {
        struct stat st {};
        if (stream_of.empty()) {
            ::fstat(STDERR_FILENO, &st);
        } else {
            ::stat(stream_of.c_str(), &st);
        }
        const std::string val = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
        ::setenv("JOURNAL_STREAM", val.c_str(), 1);
    });
    EXPECT_TRUE(v.start(dir, echo_config(dir), {dir.file("run/ctl.sock")}));
    EXPECT_TRUE(testing::wait_for_path(dir.file("run/e0.sock"), std::chrono::seconds(5)));
    EXPECT_EQ(v.stop(), 0) << v.log();
    return v.log();
}

TEST(VdhostService, JournalStreamGetsPriorityPrefixesWithoutTimestamps) {
    TempDir dir;
    const std::string log = run_with_journal_stream(dir, "");
    std::istringstream in(log);
    std::string line;
    int lines = 0;
    while (std::getline(in, line)) {
        // None of vdhost's lines has the plain format; DPDK's own lines (EAL, VHOST_CONFIG)
        // are not vdhost's and start otherwise.
        EXPECT_EQ(line.find("vdhost["), std::string::npos) << line;
        if (line.rfind("<", 0) != 0) {
            continue;
        }
        ++lines;
        EXPECT_TRUE(line.size() > 3 && line[1] >= '3' && line[1] <= '7' && line[2] == '>') << line;
    }
    EXPECT_GT(lines, 3) << log;
    EXPECT_NE(log.find("<5>host: vdhost "), std::string::npos) << log;            // ready (notice)
    EXPECT_NE(log.find("<6>host: sandbox: namespace"), std::string::npos) << log; // info
    EXPECT_NE(log.find("<7>host: EAL arguments:"), std::string::npos) << log;     // debug
    EXPECT_NE(log.find("<5>host: Terminated received, shutting down"), std::string::npos) << log;
}

TEST(VdhostService, JournalStreamOfAnotherFileKeepsThePlainFormat) {
    TempDir dir;
    std::ofstream(dir.file("other")) << "";
    const std::string log = run_with_journal_stream(dir, dir.file("other"));
    EXPECT_EQ(log.find("<5>host:"), std::string::npos) << log;
    EXPECT_NE(log.find(" vdhost[NOTICE] host: vdhost "), std::string::npos) << log;
}

/// Runs \p argv to its end with stdout and stderr in \p out; returns the exit status.
int run_argv(const std::vector<std::string>& argv, std::string* out) {
    std::string cmd;
    for (const std::string& a : argv) {
        cmd += "'" + a + "' ";
    }
    return testing::run_command(cmd + "2>&1", out);
}

TEST(VdhostService, DefaultConfigIsEtcVdhost) {
    // /etc/vdhost/vdhost.yaml unless the build moved sysconfdir.
    EXPECT_EQ(std::string(VDH_DEFAULT_CONFIG).substr(std::string(VDH_DEFAULT_CONFIG).rfind('/')),
              "/vdhost.yaml");
    std::string help;
    ASSERT_EQ(run_argv({VDHOST_PATH, "--help"}, &help), 0);
    EXPECT_NE(help.find(VDH_DEFAULT_CONFIG), std::string::npos) << help;
    if (::access(VDH_DEFAULT_CONFIG, F_OK) == 0) {
        GTEST_SKIP() << VDH_DEFAULT_CONFIG " exists here: not starting the host's vdhost";
    }
    std::string out;
    EXPECT_EQ(run_argv({VDHOST_PATH}, &out), 1) << out;
    EXPECT_NE(out.find("no --config given and the default config " VDH_DEFAULT_CONFIG
                       " cannot be read: No such file or directory"),
              std::string::npos)
        << out;
    EXPECT_NE(out.find("--config FILE"), std::string::npos) << out;
}

/// The value of the first `KEY=` line of the unit file at \p path.
std::string unit_value(const std::string& path, const std::string& key) {
    std::ifstream f(path);
    std::string line;
    while (std::getline(f, line)) {
        if (line.rfind(key + "=", 0) == 0) {
            return line.substr(key.size() + 1);
        }
    }
    return "";
}

std::vector<std::string> split_words(const std::string& s) {
    std::istringstream in(s);
    std::vector<std::string> words;
    for (std::string w; in >> w;) {
        words.push_back(w);
    }
    return words;
}

TEST(VdhostService, UnitFileVerifies) {
    if (::access("/usr/bin/systemd-analyze", X_OK) != 0) {
        GTEST_SKIP() << "systemd-analyze is not installed";
    }
    // verify needs the ExecStart binary to exist: check a copy whose path is the build's.
    TempDir dir;
    std::ifstream in(UNIT_PATH);
    std::ostringstream text;
    text << in.rdbuf();
    std::string unit = text.str();
    const std::string exec = split_words(unit_value(UNIT_PATH, "ExecStart"))[0];
    unit.replace(unit.find(exec), exec.size(), VDHOST_PATH);
    std::ofstream(dir.file("vdhost.service")) << unit;
    std::string out;
    EXPECT_EQ(testing::run_command("SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no "
                                   "--recursive-errors=no '" +
                                       dir.file("vdhost.service") + "' 2>&1",
                                   &out),
              0)
        << out;
    EXPECT_EQ(out.find("vdhost.service:"), std::string::npos) << out;
}

/// setpriv's --bounding-set value for the unit's CapabilityBoundingSet ("-all,+sys_admin,...").
std::string bounding_set_arg(const std::string& caps) {
    std::string arg = "-all";
    for (std::string c : split_words(caps)) {
        EXPECT_EQ(c.rfind("CAP_", 0), 0u) << c;
        c = c.substr(4);
        for (char& ch : c) {
            ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        }
        arg += ",+" + c;
    }
    return arg;
}

TEST(VdhostService, UnitExecStartRunsWithNotifySocket) {
    EXPECT_EQ(unit_value(UNIT_PATH, "Type"), "notify");
    EXPECT_EQ(unit_value(UNIT_PATH, "ExecReload"), "/bin/kill -HUP $MAINPID");
    EXPECT_EQ(unit_value(UNIT_PATH, "KillSignal"), "SIGTERM");
    std::vector<std::string> argv = split_words(unit_value(UNIT_PATH, "ExecStart"));
    ASSERT_EQ(argv.size(), 3u);
    EXPECT_EQ(argv[0].substr(argv[0].rfind('/')), "/vdhost");
    EXPECT_EQ(argv[1], "--config");
    EXPECT_EQ(argv[2], VDH_DEFAULT_CONFIG);
    // The built binary on a temporary config shaped like configs/default.yaml (a virtio-fs
    // share made by `create: true`; the build tree's plugins), as written in the unit, under
    // the unit's CapabilityBoundingSet and NoNewPrivileges (setpriv does what systemd would).
    TempDir dir;
    argv[0] = VDHOST_PATH;
    argv[2] = dir.file("vdhost.yaml");
    const std::string share = dir.file("srv/share");
    std::ofstream(argv[2]) << "host:\n  poll_lcores: [1]\n  plugin_dir: " PLUGIN_BUILD_DIR
                              "\n  control_socket: "
                           << dir.file("run/vdhost.ctl")
                           << "\ndevices:\n  - name: fs0\n    type: virtiofs\n    socket: "
                           << dir.file("run/fs0.sock")
                           << "\n    config:\n      shared_dir: " << share
                           << "\n      create: true\n";
    const std::string caps = unit_value(UNIT_PATH, "CapabilityBoundingSet");
    ASSERT_FALSE(caps.empty());
    EXPECT_EQ(unit_value(UNIT_PATH, "NoNewPrivileges"), "yes");
    const bool setpriv = ::access("/usr/bin/setpriv", X_OK) == 0;
    std::vector<std::string> cmd;
    if (setpriv) {
        cmd = {"/usr/bin/setpriv", "--bounding-set=" + bounding_set_arg(caps), "--no-new-privs",
               "--"};
    }
    cmd.insert(cmd.end(), argv.begin(), argv.end());
    const std::string address = dir.file("notify");
    UniqueFd notify = bind_notify_socket(address);
    const std::string log = dir.file("vdhost.log");
    pid_t pid = ::fork();
    if (pid == 0) {
        int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ::dup2(fd, 1);
        ::dup2(fd, 2);
        ::setenv("NOTIFY_SOCKET", address.c_str(), 1);
        std::vector<char*> args;
        for (std::string& a : cmd) {
            args.push_back(a.data());
        }
        args.push_back(nullptr);
        ::execv(args[0], args.data());
        ::_exit(127);
    }
    ASSERT_GT(pid, 0);
    EXPECT_EQ(receive(notify), "READY=1\nSTATUS=serving 1 device(s)") << testing::read_file(log);
    EXPECT_TRUE(accepts(dir.file("run/fs0.sock")));
    EXPECT_TRUE(accepts(dir.file("run/vdhost.ctl")));
    struct stat st {};
    EXPECT_EQ(::stat(share.c_str(), &st), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    if (setpriv) {
        // It really ran under the unit's bounding set: CAP_SYS_PTRACE (not in it) is gone.
        const std::string status = testing::read_file("/proc/" + std::to_string(pid) + "/status");
        const auto p = status.find("CapBnd:\t");
        ASSERT_NE(p, std::string::npos);
        const unsigned long long bnd = std::strtoull(status.c_str() + p + 8, nullptr, 16);
        EXPECT_EQ(bnd & (1ULL << 19), 0u) << status.substr(p, 30); // CAP_SYS_PTRACE
    }
    ::kill(pid, SIGTERM);
    EXPECT_EQ(receive(notify), "STOPPING=1");
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << testing::read_file(log);
    if (!setpriv) {
        GTEST_SKIP() << "setpriv is missing: ran without the unit's bounding set";
    }
}

} // namespace
} // namespace vdh

// SPDX-License-Identifier: MIT
// vdhost-virtiofsd through the real path: the binary execs the real vdhost with the
// virtio-fs plugin, and the FUSE client library drives the share. The --fd case does what
// libvirt does: the test creates, binds and listens on the socket, a frontend connects
// BEFORE vdhost-virtiofsd starts (its connection waits in the backlog), then the program is
// started with --fd=N and the early connection must be served (INIT, LOOKUP, OPEN, READ).
#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "../../plugins/virtiofs/vdhost_share_fixture.h"
#include "fuse_client/fuse_session.h"
#include "vdh/unique_fd.h"

namespace vdh {
namespace {

using fuse_client::FuseSession;
using fuse_client::kRootNodeId;
using fuse_client::SessionOptions;
using testing::TempDir;

/// A vdhost-virtiofsd process (vdhost after its exec); stdout and stderr go to a log file.
class CompatProcess {
  public:
    ~CompatProcess() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            int st;
            waitpid(pid_, &st, 0);
        }
    }
    /// Starts it with \p args; \p keep_fd stays open in the child (the inherited socket).
    void start(const std::string& log, const std::vector<std::string>& args, int keep_fd = -1) {
        log_ = log;
        pid_ = fork();
        if (pid_ == 0) {
            int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            dup2(fd, 1);
            dup2(fd, 2);
            if (keep_fd >= 0) {
                fcntl(keep_fd, F_SETFD, 0);
            }
            std::vector<char*> av{const_cast<char*>(VDHOST_VIRTIOFSD_PATH)};
            for (const auto& a : args) {
                av.push_back(const_cast<char*>(a.c_str()));
            }
            av.push_back(nullptr);
            execv(VDHOST_VIRTIOFSD_PATH, av.data());
            _exit(127);
        }
    }
    /// SIGTERM and the exit status (or -1000 - signal, -2 on timeout).
    int stop() {
        ::kill(pid_, SIGTERM);
        return wait_exit(std::chrono::seconds(30));
    }
    int wait_exit(std::chrono::milliseconds timeout) {
        auto end = std::chrono::steady_clock::now() + timeout;
        int st = 0;
        while (std::chrono::steady_clock::now() < end) {
            if (waitpid(pid_, &st, WNOHANG) == pid_) {
                pid_ = -1;
                return WIFEXITED(st) ? WEXITSTATUS(st) : -1000 - WTERMSIG(st);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        return -2;
    }
    std::string log() const { return testing::read_file(log_); }

  private:
    pid_t pid_ = -1;
    std::string log_;
};

/// Runs the program to its end; returns the exit status with stdout+stderr in \p out.
int run(const std::string& args, std::string* out) {
    return testing::run_command(std::string(VDHOST_VIRTIOFSD_PATH) + " " + args + " 2>&1", out);
}

/// LOOKUP, OPEN and READ of \p name in the share's root; returns the bytes read.
std::string read_through(FuseSession* s, const std::string& name) {
    auto e = s->lookup(kRootNodeId, name);
    EXPECT_TRUE(e.has_value()) << "lookup: " << (e ? 0 : e.error());
    if (!e) {
        return "";
    }
    auto f = s->open(e->nodeid, O_RDONLY);
    EXPECT_TRUE(f.has_value()) << "open: " << (f ? 0 : f.error());
    if (!f) {
        return "";
    }
    std::string buf(4096, '\0');
    auto n = s->read(e->nodeid, f->fh, 0, {reinterpret_cast<uint8_t*>(buf.data()), buf.size()});
    EXPECT_TRUE(n.has_value()) << "read: " << (n ? 0 : n.error());
    EXPECT_TRUE(s->release(e->nodeid, f->fh).has_value());
    buf.resize(n ? *n : 0);
    return buf;
}

class VdhostVirtiofsd : public ::testing::Test {
  protected:
    void SetUp() override {
        share_ = dir_.file("share");
        ASSERT_EQ(::mkdir(share_.c_str(), 0755), 0);
        std::ofstream(share_ + "/hello.txt") << "hello from the host\n";
    }
    SessionOptions session_options(const std::string& socket) {
        SessionOptions o;
        o.socket_path = socket;
        o.connect_timeout = std::chrono::seconds(60);
        o.reply_timeout = std::chrono::seconds(60); // vdhost starts after the connect
        return o;
    }
    TempDir dir_;
    std::string share_;
};

TEST_F(VdhostVirtiofsd, ServesAConnectionQueuedOnTheInheritedSocketBeforeItStarted) {
    const std::string sock = dir_.file("libvirt-fs.sock");
    UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM, 0)); // inheritable, as libvirt's
    ASSERT_TRUE(listener.valid());
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, sock.c_str(), sizeof(a.sun_path) - 1);
    ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    ASSERT_EQ(::listen(listener.get(), 4), 0);

    // The frontend connects now; its GET_FEATURES waits for a backend that does not exist.
    // No retry (connect_timeout 1 ms): only the connection made here can succeed.
    SessionOptions so = session_options(sock);
    so.connect_timeout = std::chrono::milliseconds(1);
    auto session = std::async(std::launch::async, [&] { return FuseSession::connect(so); });
    pollfd pfd{listener.get(), POLLIN, 0};
    ASSERT_EQ(::poll(&pfd, 1, 10000), 1) << "the frontend's connection is not in the backlog";

    CompatProcess p;
    p.start(dir_.file("compat.log"),
            {"--fd=" + std::to_string(listener.get()), "--shared-dir=" + share_, "--cache=auto",
             "--thread-pool-size=64", "--announce-submounts", "--sandbox=namespace",
             "--seccomp=kill", "--log-level=debug"},
            listener.get());
    listener.reset(); // only vdhost holds it now
    auto s = session.get();
    ASSERT_TRUE(s.has_value()) << "connect: " << (s ? 0 : s.error()) << "\n" << p.log();
    ASSERT_TRUE((*s)->initialized());
    EXPECT_EQ(read_through(s->get(), "hello.txt"), "hello from the host\n");
    const std::string log = p.log();
    EXPECT_NE(log.find("listening on " + sock + " (inherited fd)"), std::string::npos) << log;
    EXPECT_NE(log.find("--thread-pool-size ignored"), std::string::npos) << log;
    EXPECT_NE(log.find("sandbox: namespace"), std::string::npos) << log;
    struct stat st;
    EXPECT_EQ(::lstat(sock.c_str(), &st), 0) << "the caller's socket file is left alone";
    s->reset();
    EXPECT_EQ(p.stop(), 0) << p.log();
}

TEST_F(VdhostVirtiofsd, SocketPathVariantCreatesAndServesTheSocket) {
    const std::string sock = dir_.file("run/fs.sock");
    CompatProcess p;
    p.start(dir_.file("compat.log"),
            {"--socket-path", sock, "-o", "source=" + share_ + ",cache=none,no_xattr", "--readonly",
             "--log-level", "info"});
    ASSERT_TRUE(testing::wait_for_path(sock, std::chrono::seconds(60))) << p.log();
    auto s = FuseSession::connect(session_options(sock));
    ASSERT_TRUE(s.has_value()) << "connect: " << (s ? 0 : s.error()) << "\n" << p.log();
    EXPECT_EQ(read_through(s->get(), "hello.txt"), "hello from the host\n");
    // --readonly reached the share; cache=none (never) too: files are opened for direct I/O.
    auto c = (*s)->create(kRootNodeId, "new.txt", O_WRONLY, 0644);
    ASSERT_FALSE(c.has_value());
    EXPECT_EQ(c.error(), EROFS);
    auto e = (*s)->lookup(kRootNodeId, "hello.txt");
    ASSERT_TRUE(e.has_value());
    auto f = (*s)->open(e->nodeid, O_RDONLY);
    ASSERT_TRUE(f.has_value());
    EXPECT_NE(f->open_flags & FOPEN_DIRECT_IO, 0u);
    EXPECT_TRUE((*s)->release(e->nodeid, f->fh).has_value());
    s->reset();
    EXPECT_EQ(p.stop(), 0) << p.log();
}

TEST_F(VdhostVirtiofsd, PrintsCapabilitiesVersionAndRejectsWhatItCannotDo) {
    std::string out;
    EXPECT_EQ(run("--print-capabilities", &out), 0);
    EXPECT_EQ(out, "{\n  \"type\": \"fs\",\n  \"features\": [\n    \"separate-options\"\n  ]\n}\n");
    out.clear();
    EXPECT_EQ(run("-V", &out), 0);
    EXPECT_EQ(out.rfind("vdhost-virtiofsd ", 0), 0u) << out;
    out.clear();
    EXPECT_EQ(
        run("--socket-path=" + dir_.file("x.sock") + " --shared-dir=" + share_ + " --daemonize",
            &out),
        1);
    EXPECT_EQ(out, "vdhost-virtiofsd: --daemonize is not supported yet\n");
    // --fd that is not a listening socket: refused before vdhost runs.
    out.clear();
    EXPECT_EQ(run("--fd=0 --shared-dir=" + share_ + " </dev/null", &out), 1);
    EXPECT_EQ(out, "vdhost-virtiofsd: --fd=0: fd 0 is not a socket\n");
    // A share vdhost refuses: vdhost's own error, about the generated config.
    out.clear();
    EXPECT_EQ(run("--socket-path=" + dir_.file("y.sock") + " --shared-dir=" + dir_.file("missing") +
                      " --sandbox=none --seccomp=none",
                  &out),
              1);
    EXPECT_NE(out.find("/proc/self/fd/"), std::string::npos) << out;
    EXPECT_NE(out.find("shared_dir"), std::string::npos) << out;
}

TEST(VhostUserDescriptor, NamesTheInstalledProgramAsAnFsBackend) {
    // libvirt picks a backend by "type" and runs "binary" --print-capabilities.
    const std::string d = testing::read_file(VHOST_USER_DESCRIPTOR);
    EXPECT_NE(d.find("\"type\": \"fs\""), std::string::npos) << d;
    EXPECT_NE(d.find("\"binary\": \"" INSTALL_BINDIR "/vdhost-virtiofsd\""), std::string::npos)
        << d;
    std::string out;
    EXPECT_EQ(testing::run_command("python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); "
                                   "print(sorted(j))' " VHOST_USER_DESCRIPTOR,
                                   &out),
              0);
    EXPECT_EQ(out, "['binary', 'description', 'type']\n");
}

} // namespace
} // namespace vdh

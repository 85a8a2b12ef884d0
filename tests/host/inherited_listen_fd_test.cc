// SPDX-License-Identifier: MIT
// Tests of host/src/inherited_listen_fd.cc (what socket_fd accepts, and the adoption that the
// vdhost binary's bind() wrapper performs) and of the `socket_fd` device key in config.cc.
#include "inherited_listen_fd.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "config.h"
#include "temp_dir.h"
#include "vdh/unique_fd.h"

namespace vdh {
namespace {

sockaddr_un addr_of(const std::string& path) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
    return a;
}

UniqueFd unix_socket(int type = SOCK_STREAM) {
    return UniqueFd(::socket(AF_UNIX, type | SOCK_CLOEXEC, 0));
}

/// A socket bound to \p path, listening when \p listening.
UniqueFd bound(const std::string& path, bool listening) {
    UniqueFd s = unix_socket();
    sockaddr_un a = addr_of(path);
    EXPECT_EQ(::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    if (listening) {
        EXPECT_EQ(::listen(s.get(), 8), 0);
    }
    return s;
}

std::string inspect_err(int fd) {
    std::string path;
    std::string why;
    EXPECT_FALSE(inspect_listen_fd(fd, &path, &why));
    return why;
}

TEST(InheritedListenFd, AcceptsOnlyAListeningUnixStreamSocketBoundToAPath) {
    testing::TempDir dir;
    UniqueFd l = bound(dir.file("l.sock"), true);
    std::string path;
    std::string why;
    ASSERT_TRUE(inspect_listen_fd(l.get(), &path, &why)) << why;
    EXPECT_EQ(path, dir.file("l.sock"));

    UniqueFd b = bound(dir.file("b.sock"), false);
    EXPECT_EQ(inspect_err(b.get()),
              "fd " + std::to_string(b.get()) +
                  " is a UNIX stream socket that is not listening (it must be bound and "
                  "listen()ed on, not connected)");
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    UniqueFd r(p[0]);
    UniqueFd w(p[1]);
    EXPECT_EQ(inspect_err(r.get()), "fd " + std::to_string(r.get()) + " is not a socket");
    UniqueFd d = unix_socket(SOCK_DGRAM);
    EXPECT_NE(inspect_err(d.get()).find("is not a UNIX stream socket"), std::string::npos);
    UniqueFd tcp(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    EXPECT_NE(inspect_err(tcp.get()).find("is not a UNIX stream socket"), std::string::npos);
    int closed = w.get();
    w.reset();
    EXPECT_NE(inspect_err(closed).find("is not open"), std::string::npos);
    // Abstract address: listening, but no path rte_vhost could register.
    UniqueFd abs = unix_socket();
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, "\0vdh-test-abstract", 18);
    ASSERT_EQ(
        ::bind(abs.get(), reinterpret_cast<sockaddr*>(&a), offsetof(sockaddr_un, sun_path) + 18),
        0);
    ASSERT_EQ(::listen(abs.get(), 1), 0);
    EXPECT_NE(inspect_err(abs.get()).find("unnamed or abstract"), std::string::npos);
}

TEST(InheritedListenFd, BindOfTheAdoptedPathTakesTheInheritedSocketAndItsBacklog) {
    testing::TempDir dir;
    const std::string path = dir.file("vhost.sock");
    UniqueFd inherited = bound(path, true);
    const int inherited_no = inherited.get();
    // A frontend connects before anyone accepts: it waits in the backlog.
    UniqueFd client = unix_socket();
    sockaddr_un a = addr_of(path);
    ASSERT_EQ(::connect(client.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    ASSERT_EQ(::write(client.get(), "x", 1), 1);

    adopt_listen_fd(path, inherited.release());
    EXPECT_TRUE(is_adopted_path(path));
    // Another path binds for real.
    UniqueFd other = unix_socket();
    sockaddr_un oa = addr_of(dir.file("other.sock"));
    int ret = -7;
    EXPECT_FALSE(
        bind_adopted_listen_fd(other.get(), reinterpret_cast<sockaddr*>(&oa), sizeof(oa), &ret));
    EXPECT_EQ(ret, -7);

    // What rte_vhost does: a fresh socket, bind(path), listen(), accept().
    UniqueFd fresh = unix_socket();
    ASSERT_TRUE(
        bind_adopted_listen_fd(fresh.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a), &ret));
    EXPECT_EQ(ret, 0);
    EXPECT_EQ(::fcntl(inherited_no, F_GETFD), -1) << "the inherited number is closed";
    EXPECT_EQ(::listen(fresh.get(), 128), 0);
    pollfd pfd{fresh.get(), POLLIN, 0};
    ASSERT_EQ(::poll(&pfd, 1, 1000), 1);
    UniqueFd conn(::accept4(fresh.get(), nullptr, nullptr, SOCK_CLOEXEC));
    ASSERT_TRUE(conn.valid()) << std::strerror(errno);
    char c = 0;
    EXPECT_EQ(::read(conn.get(), &c, 1), 1);
    EXPECT_EQ(c, 'x');
    // Taken once: a second bind to the path is a real one (and fails: the file exists).
    UniqueFd again = unix_socket();
    EXPECT_FALSE(
        bind_adopted_listen_fd(again.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a), &ret));
    EXPECT_TRUE(is_adopted_path(path));
}

std::string device_yaml(const std::string& socket_lines) {
    return "devices:\n"
           "  - name: fs0\n"
           "    type: virtiofs\n" +
           socket_lines;
}

TEST(InheritedListenFd, SocketFdKeyTakesThePathAndRefusesWhatIsNotListening) {
    testing::TempDir dir;
    UniqueFd l = bound(dir.file("l.sock"), true);
    const std::string n = std::to_string(l.get());
    ConfigError err;
    auto cfg = parse_config(device_yaml("    socket_fd: " + n + "\n"), "t.yaml", 4, &err);
    ASSERT_TRUE(cfg.has_value()) << err.message;
    EXPECT_EQ(cfg->devices[0].socket_fd, l.get());
    EXPECT_EQ(cfg->devices[0].socket, dir.file("l.sock"));
    // Both keys: they must agree.
    cfg = parse_config(
        device_yaml("    socket: " + dir.file("l.sock") + "\n    socket_fd: " + n + "\n"), "t.yaml",
        4, &err);
    ASSERT_TRUE(cfg.has_value()) << err.message;
    EXPECT_FALSE(parse_config(device_yaml("    socket: /tmp/x.sock\n    socket_fd: " + n + "\n"),
                              "t.yaml", 4, &err));
    EXPECT_EQ(err.message, "t.yaml:4:13: devices[0].socket: \"/tmp/x.sock\" is not the path "
                           "socket_fd " +
                               n + " is bound to (\"" + dir.file("l.sock") +
                               "\"); give one of them only");
    EXPECT_FALSE(parse_config(device_yaml("    socket_fd: " + n + "\n    socket_mode: \"0660\"\n"),
                              "t.yaml", 4, &err));
    EXPECT_EQ(err.message, "t.yaml:5:18: devices[0].socket_mode: not allowed with socket_fd: "
                           "whoever created the inherited socket set its access");
    UniqueFd b = bound(dir.file("b.sock"), false);
    EXPECT_FALSE(parse_config(device_yaml("    socket_fd: " + std::to_string(b.get()) + "\n"),
                              "t.yaml", 4, &err));
    EXPECT_EQ(err.message, "t.yaml:4:16: devices[0].socket_fd: fd " + std::to_string(b.get()) +
                               " is a UNIX stream socket that is not listening (it must be "
                               "bound and listen()ed on, not connected)");
    EXPECT_FALSE(parse_config(device_yaml("    socket_fd: many\n"), "t.yaml", 4, &err));
    EXPECT_EQ(err.message, "t.yaml:4:16: devices[0].socket_fd: expected unsigned integer, got "
                           "\"many\"");
    // Two devices on one inherited socket.
    EXPECT_FALSE(parse_config(device_yaml("    socket_fd: " + n + "\n") +
                                  "  - name: fs1\n    type: virtiofs\n    socket_fd: " + n + "\n",
                              "t.yaml", 4, &err));
    EXPECT_NE(err.message.find("t.yaml:7:16: devices[1].socket_fd: duplicate socket"),
              std::string::npos)
        << err.message;
}

} // namespace
} // namespace vdh

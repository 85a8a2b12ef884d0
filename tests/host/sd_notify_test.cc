// SPDX-License-Identifier: MIT
// The sd_notify sender against real AF_UNIX datagram sockets (a path and an abstract name):
// the messages, the environment variable's removal, refused addresses, and the inactive
// notifier. vdhost's own use (READY=1 once its sockets listen, STOPPING=1) is checked with
// the real binary in vdhost_service_test.cc.
#include "sd_notify.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "socket_io.h"
#include "temp_dir.h"
#include "vdh/unique_fd.h"

namespace vdh {
namespace {

using testing::receive;

UniqueFd bind_dgram(const std::string& address) { return testing::bind_dgram(address, 5); }

TEST(SdNotify, ReadyMessage) {
    EXPECT_EQ(sd_ready_message(""), "READY=1");
    EXPECT_EQ(sd_ready_message("serving 2 device(s)"), "READY=1\nSTATUS=serving 2 device(s)");
    EXPECT_EQ(sd_ready_message("a\nb"), "READY=1\nSTATUS=a b");
}

TEST(SdNotify, SendsToAPathSocket) {
    testing::TempDir dir;
    const std::string path = dir.file("notify");
    UniqueFd server = bind_dgram(path);
    std::string err;
    auto n = SdNotifier::connect(path, &err);
    ASSERT_TRUE(n.has_value()) << err;
    EXPECT_TRUE(n->active());
    n->ready("up");
    EXPECT_EQ(receive(server), "READY=1\nSTATUS=up");
    n->status("busy");
    EXPECT_EQ(receive(server), "STATUS=busy");
    n->reloading();
    const std::string r = receive(server);
    EXPECT_EQ(r.rfind("RELOADING=1\nMONOTONIC_USEC=", 0), 0u) << r;
    EXPECT_GT(std::strtoull(r.c_str() + r.find('=', 12) + 1, nullptr, 10), 0u) << r;
    n->stopping();
    EXPECT_EQ(receive(server), "STOPPING=1");
    // The peer is gone: the send fails (and the notifier only warns).
    server = UniqueFd();
    EXPECT_FALSE(n->send("READY=1").has_value());
}

TEST(SdNotify, SendsToAnAbstractSocketFromTheEnvironmentAndUnsetsIt) {
    const std::string name = "@vdh-sd-notify-test-" + std::to_string(::getpid());
    UniqueFd server = bind_dgram(name);
    ASSERT_EQ(::setenv("NOTIFY_SOCKET", name.c_str(), 1), 0);
    std::string err;
    auto n = SdNotifier::from_environment(&err);
    ASSERT_TRUE(n.has_value()) << err;
    EXPECT_EQ(std::getenv("NOTIFY_SOCKET"), nullptr);
    ASSERT_TRUE(n->active());
    n->ready("");
    EXPECT_EQ(receive(server), "READY=1");
}

TEST(SdNotify, UnsetIsInactiveAndRefusedAddressesSayWhy) {
    ::unsetenv("NOTIFY_SOCKET");
    std::string err;
    auto n = SdNotifier::from_environment(&err);
    ASSERT_TRUE(n.has_value());
    EXPECT_FALSE(n->active());
    EXPECT_TRUE(n->send("READY=1").has_value()); // no-op

    auto rel = SdNotifier::connect("relative/path", &err);
    ASSERT_FALSE(rel.has_value());
    EXPECT_EQ(rel.error(), EINVAL);
    EXPECT_NE(err.find("expected an absolute path or @name"), std::string::npos) << err;
    EXPECT_FALSE(SdNotifier::connect("/" + std::string(200, 'x'), &err).has_value());
    auto gone = SdNotifier::connect("/nonexistent/vdh-notify", &err);
    ASSERT_FALSE(gone.has_value());
    EXPECT_EQ(gone.error(), ENOENT);
    EXPECT_NE(err.find("connect: No such file or directory"), std::string::npos) << err;

    ::setenv("NOTIFY_SOCKET", "/nonexistent/vdh-notify", 1);
    SdNotifier warned = sd_notifier_from_environment();
    EXPECT_FALSE(warned.active());
    EXPECT_EQ(std::getenv("NOTIFY_SOCKET"), nullptr);
}

} // namespace
} // namespace vdh

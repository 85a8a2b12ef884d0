// SPDX-License-Identifier: MIT
// Tests of host/src/metrics_server.cc: address parsing, the HTTP answers, and a real server
// on a UNIX socket: many clients, a silent client does not hold up the others.
#include "metrics_server.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include <gtest/gtest.h>

#include "socket_io.h"
#include "temp_dir.h"
#include "vdh/unique_fd.h"

namespace vdh {
namespace {

TEST(MetricsAddress, ParsesUnixIpv4Ipv6) {
    MetricsAddress a;
    std::string err;
    ASSERT_TRUE(parse_metrics_address("unix:/run/vdhost/metrics.sock", &a, &err)) << err;
    EXPECT_TRUE(a.unix_socket);
    EXPECT_EQ(a.path, "/run/vdhost/metrics.sock");
    ASSERT_TRUE(parse_metrics_address("127.0.0.1:9464", &a, &err)) << err;
    EXPECT_FALSE(a.unix_socket);
    EXPECT_EQ(a.host, "127.0.0.1");
    EXPECT_EQ(a.port, 9464);
    ASSERT_TRUE(parse_metrics_address("[::1]:80", &a, &err)) << err;
    EXPECT_EQ(a.host, "::1");
    EXPECT_EQ(a.port, 80);
}

TEST(MetricsAddress, RefusesBadValues) {
    MetricsAddress a;
    std::string err;
    for (const char* bad : {"unix:relative", "unix:", "localhost:9464", "127.0.0.1", "1.2.3.4:0",
                            "1.2.3.4:70000", "1.2.3.4:x", "[::1:80", ""}) {
        EXPECT_FALSE(parse_metrics_address(bad, &a, &err)) << bad;
        EXPECT_FALSE(err.empty()) << bad;
    }
}

TEST(MetricsHttp, GetMetricsIs200WithVersion004) {
    std::string r = metrics_http_response("GET /metrics HTTP/1.1\r\nHost: x",
                                          [] { return std::string("a 1\n"); });
    EXPECT_EQ(r.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << r;
    EXPECT_NE(r.find("Content-Type: text/plain; version=0.0.4"), std::string::npos);
    EXPECT_NE(r.find("Content-Length: 4\r\n"), std::string::npos);
    EXPECT_EQ(r.substr(r.size() - 4), "a 1\n");
}

TEST(MetricsHttp, OtherPathsMethodsAndGarbage) {
    bool called = false;
    auto body = [&] {
        called = true;
        return std::string("x");
    };
    EXPECT_EQ(metrics_http_response("GET / HTTP/1.0", body).rfind("HTTP/1.0 404", 0), 0u);
    EXPECT_EQ(metrics_http_response("POST /metrics HTTP/1.0", body).rfind("HTTP/1.0 405", 0),
              0u);
    EXPECT_EQ(metrics_http_response("garbage", body).rfind("HTTP/1.0 400", 0), 0u);
    EXPECT_FALSE(called);
    std::string head = metrics_http_response("HEAD /metrics?x=1 HTTP/1.0", body);
    EXPECT_EQ(head.rfind("HTTP/1.0 200", 0), 0u);
    EXPECT_EQ(head.substr(head.size() - 4), "\r\n\r\n"); // no body for HEAD
}

UniqueFd connect_unix(const std::string& path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0) << strerror(errno);
    return UniqueFd(fd);
}

std::string exchange(int fd, const std::string& req) {
    EXPECT_EQ(::send(fd, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
    return testing::read_until_closed(fd);
}

TEST(MetricsServer, ServesManyClientsWhileOneStaysSilent) {
    testing::TempDir dir;
    const std::string path = dir.path() + "/m.sock";
    MetricsRegistry reg; // empty: the body is just empty text
    MetricsServer srv;
    MetricsAddress a;
    std::string err;
    ASSERT_TRUE(parse_metrics_address("unix:" + path, &a, &err));
    ASSERT_TRUE(srv.start(a, &reg, &err)) << err;
    UniqueFd silent = connect_unix(path);           // never sends a byte
    UniqueFd partial = connect_unix(path);          // sends half a request
    ASSERT_GT(::send(partial.get(), "GET /met", 8, MSG_NOSIGNAL), 0);
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 20; ++i) {
        UniqueFd c = connect_unix(path);
        std::string r = exchange(c.get(), "GET /metrics HTTP/1.0\r\n\r\n");
        EXPECT_EQ(r.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << r;
    }
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
    // The silent client is closed at its deadline.
    pollfd p{silent.get(), POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, MetricsServer::kClientTimeoutMs + 3000), 1);
    char b;
    EXPECT_EQ(::recv(silent.get(), &b, 1, 0), 0);
    srv.stop();
    EXPECT_NE(access(path.c_str(), F_OK), 0); // socket file removed
}

} // namespace
} // namespace vdh

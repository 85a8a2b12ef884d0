// SPDX-License-Identifier: MIT
// Integration test of vdhost's telemetry through the real path: the vdhost binary (default
// sandbox and seccomp: kill) with a virtio-fs share, driven by the FUSE client with a known
// set of requests (GETATTRs, READs of 4 KiB, LOOKUPs failing with ENOENT); then DPDK's own
// client, dpdk-telemetry.py, run as a subprocess, and an HTTP GET of the Prometheus endpoint
// (UNIX socket and TCP) must report exactly those requests.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "../plugins/virtiofs/vdhost_share_fixture.h"
#include "fuse_client/fuse_session.h"
#include "socket_io.h"

namespace vdh {
namespace {

using fuse_client::FuseSession;
using fuse_client::kRootNodeId;
using fuse_client::SessionOptions;
using testing::TempDir;
using testing::VdhostProcess;

constexpr int kGetattrs = 7;
constexpr int kReads = 5;
constexpr uint32_t kReadSize = 4096;
constexpr int kMissing = 3;

std::string http_get(int fd) {
    const std::string req = "GET /metrics HTTP/1.0\r\nHost: vdhost\r\n\r\n";
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
        return "";
    }
    return testing::read_until_closed(fd);
}

std::string http_get_unix(const std::string& path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
    std::string r;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
        r = http_get(fd);
    }
    ::close(fd);
    return r;
}

std::string http_get_tcp(uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string r;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
        r = http_get(fd);
    }
    ::close(fd);
    return r;
}

/// A free local TCP port (bound and released; the kernel hands out another next time).
uint16_t free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    socklen_t len = sizeof(a);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
}

/// The value of the exposition line that starts with \p series ("name{labels}"), or -1.
double prom_value(const std::string& text, const std::string& series) {
    size_t p = text.find("\n" + series + " ");
    if (p == std::string::npos) {
        return -1;
    }
    return std::strtod(text.c_str() + p + 1 + series.size() + 1, nullptr);
}

/// Number after "\"key\": " inside the JSON object that follows "\"object\": {" in \p json,
/// or -1 (dpdk-telemetry.py prints json.dumps output).
long tel_value(const std::string& json, const std::string& object, const std::string& key) {
    size_t p = json.find("\"" + object + "\": {");
    if (p == std::string::npos) {
        return -1;
    }
    size_t end = json.find('}', p);
    size_t k = json.find("\"" + key + "\": ", p);
    if (k == std::string::npos || k > end) {
        return -1;
    }
    return std::strtol(json.c_str() + k + key.size() + 4, nullptr, 10);
}

class VdhostTelemetry : public ::testing::Test {
protected:
    void start(const std::string& listen) {
        share_ = dir_.file("share");
        ASSERT_EQ(::mkdir(share_.c_str(), 0755), 0);
        testing::write_host_file(share_ + "/data", testing::pattern(64 * 1024, 7));
        sock_ = dir_.file("fs0.sock");
        ctl_ = dir_.file("ctl.sock");
        // Default sandbox (namespace) and seccomp (kill): telemetry must work under both.
        const std::string yaml = testing::host_yaml("[0]", ctl_) +
                                 testing::virtiofs_device_yaml("fs0", sock_, "0", share_);
        const std::string host_extra = "  metrics:\n    listen: " + listen + "\n";
        std::string y = yaml;
        y.insert(y.find("devices:\n"), host_extra);
        std::vector<std::string> wait = {sock_, ctl_};
        ASSERT_TRUE(vdhost_.start(dir_, y, wait)) << vdhost_.log();
    }

    void TearDown() override {
        session_.reset();
        if (HasFailure()) {
            ADD_FAILURE() << "vdhost log:\n" << vdhost_.log();
        }
    }

    FuseSession* connect() {
        SessionOptions o;
        o.socket_path = sock_;
        o.num_request_queues = 1;
        o.queue_size = 256;
        o.memory_bytes = 16ULL << 20;
        auto s = FuseSession::connect(o);
        EXPECT_TRUE(s.has_value()) << "connect: " << (s ? 0 : s.error());
        if (!s) {
            return nullptr;
        }
        session_ = std::move(*s);
        return session_.get();
    }

    /// The known workload: kGetattrs GETATTRs, one LOOKUP + OPEN of "data", kReads READs of
    /// kReadSize bytes, kMissing LOOKUPs that fail with ENOENT.
    void run_workload(FuseSession* s) {
        for (int i = 0; i < kGetattrs; ++i) {
            ASSERT_TRUE(s->getattr(kRootNodeId).has_value());
        }
        auto e = s->lookup(kRootNodeId, "data");
        ASSERT_TRUE(e.has_value()) << e.error();
        auto o = s->open(e->nodeid, O_RDONLY);
        ASSERT_TRUE(o.has_value()) << o.error();
        std::vector<uint8_t> buf(kReadSize);
        for (int i = 0; i < kReads; ++i) {
            auto r = s->read(e->nodeid, o->fh, static_cast<uint64_t>(i) * kReadSize, buf);
            ASSERT_TRUE(r.has_value()) << r.error();
            ASSERT_EQ(*r, kReadSize);
        }
        for (int i = 0; i < kMissing; ++i) {
            auto m = s->lookup(kRootNodeId, "missing-" + std::to_string(i));
            ASSERT_FALSE(m.has_value());
            ASSERT_EQ(m.error(), ENOENT);
        }
    }

    /// `dpdk-telemetry.py -f vdhost-PID` fed \p commands on stdin; its output.
    std::string dpdk_telemetry(const std::string& commands) {
        std::string out;
        const std::string cmd = "printf '" + commands + "' | dpdk-telemetry.py -f vdhost-" +
                                std::to_string(vdhost_.pid()) + " 2>&1";
        EXPECT_EQ(testing::run_command(cmd, &out), 0) << out;
        return out;
    }

    TempDir dir_;
    VdhostProcess vdhost_;
    std::string share_;
    std::string sock_;
    std::string ctl_;
    std::unique_ptr<FuseSession> session_;
};

TEST_F(VdhostTelemetry, DpdkTelemetryAndPrometheusCountTheRequestsSent) {
    const std::string msock = dir_.file("metrics/vdhost.sock");
    start("unix:" + msock);
    if (HasFatalFailure()) {
        return;
    }
    FuseSession* s = connect();
    ASSERT_NE(s, nullptr);
    // Before: what connect() sent (INIT) is counted too; the workload adds exact numbers.
    const std::string before = http_get_unix(msock);
    ASSERT_EQ(before.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << before;
    auto delta = [&](const std::string& after, const std::string& series) {
        double b = prom_value(before, series);
        return prom_value(after, series) - (b < 0 ? 0 : b);
    };
    run_workload(s);
    if (HasFatalFailure()) {
        return;
    }

    // (b) Prometheus over HTTP.
    const std::string after = http_get_unix(msock);
    ASSERT_NE(after.find("Content-Type: text/plain; version=0.0.4"), std::string::npos) << after;
    const std::string dev = "device=\"fs0\"";
    EXPECT_EQ(delta(after, "vdhost_fuse_requests_total{" + dev + ",opcode=\"GETATTR\"}"),
              kGetattrs);
    EXPECT_EQ(delta(after, "vdhost_fuse_requests_total{" + dev + ",opcode=\"READ\"}"), kReads);
    EXPECT_EQ(delta(after, "vdhost_fuse_requests_total{" + dev + ",opcode=\"LOOKUP\"}"),
              1 + kMissing);
    EXPECT_EQ(delta(after, "vdhost_fuse_requests_total{" + dev + ",opcode=\"OPEN\"}"), 1);
    EXPECT_EQ(delta(after, "vdhost_fuse_errors_total{" + dev + ",errno=\"ENOENT\"}"), kMissing);
    EXPECT_EQ(delta(after, "vdhost_fuse_read_bytes_total{" + dev + "}"), kReads * kReadSize);
    // Every request has its latency observed once: histogram count == opcode count.
    for (const char* op : {"GETATTR", "READ", "LOOKUP", "OPEN", "INIT"}) {
        const std::string l = dev + ",opcode=\"" + op + "\"";
        const double n = prom_value(after, "vdhost_fuse_requests_total{" + l + "}");
        EXPECT_GT(n, 0) << op;
        EXPECT_EQ(prom_value(after, "vdhost_fuse_request_duration_seconds_count{" + l + "}"), n)
            << op;
        EXPECT_EQ(prom_value(after, "vdhost_fuse_request_duration_seconds_bucket{" + l +
                                        ",le=\"+Inf\"}"),
                  n)
            << op;
        EXPECT_GT(prom_value(after, "vdhost_fuse_request_duration_seconds_sum{" + l + "}"), 0)
            << op;
    }
    // The host's transport counters: the request queue (1) took exactly the workload.
    const int workload = kGetattrs + 1 + 1 + kReads + kMissing;
    EXPECT_EQ(delta(after, "vdhost_queue_requests_total{" + dev + ",queue=\"1\"}"), workload);
    EXPECT_GE(delta(after, "vdhost_queue_batches_total{" + dev + ",queue=\"1\"}"), 1);
    EXPECT_EQ(prom_value(after, "vdhost_queue_broken_total{" + dev + ",queue=\"1\"}"), 0);
    EXPECT_GT(prom_value(after, "vdhost_lcore_busy_seconds_total{lcore=\"1\",cpu=\"0\"}"), 0);
    EXPECT_GT(prom_value(after, "vdhost_lcore_idle_seconds_total{lcore=\"1\",cpu=\"0\"}"), 0);
    EXPECT_NE(after.find("# TYPE vdhost_fuse_request_duration_seconds histogram\n"),
              std::string::npos);

    // (a) DPDK telemetry, with DPDK's own client. Nothing was sent since the GET above.
    const std::string tel =
        dpdk_telemetry("/vdhost/devices\\n/vdhost/device,fs0\\n/vdhost/lcores\\n");
    EXPECT_NE(tel.find("{\"/vdhost/devices\": [\"fs0\"]}"), std::string::npos) << tel;
    auto prom_int = [&](const std::string& series) {
        return static_cast<long>(prom_value(after, series));
    };
    for (const char* op : {"GETATTR", "READ", "LOOKUP", "OPEN"}) {
        const std::string l = "{" + dev + ",opcode=\"" + op + "\"}";
        EXPECT_EQ(tel_value(tel, "fuse_requests_total", op),
                  prom_int("vdhost_fuse_requests_total" + l))
            << op << "\n" << tel;
        EXPECT_EQ(tel_value(tel, "fuse_request_duration_count", op),
                  prom_int("vdhost_fuse_requests_total" + l))
            << op;
    }
    EXPECT_EQ(tel_value(tel, "fuse_errors_total", "ENOENT"),
              prom_int("vdhost_fuse_errors_total{" + dev + ",errno=\"ENOENT\"}"));
    EXPECT_EQ(tel_value(tel, "queue_requests_total", "1"),
              prom_int("vdhost_queue_requests_total{" + dev + ",queue=\"1\"}"));
    EXPECT_EQ(testing::json_number(tel, "fuse_read_bytes_total"),
              prom_int("vdhost_fuse_read_bytes_total{" + dev + "}"));
    EXPECT_GT(tel_value(tel, "1", "busy_cycles"), 0) << tel;
    EXPECT_GT(tel_value(tel, "1", "idle_cycles"), 0) << tel;

    // The same numbers as the control socket's JSON (one more source, same counters).
    const std::string js = testing::vdhost_stats(ctl_);
    EXPECT_EQ(testing::plugin_stat(js, "errors"),
              prom_int("vdhost_fuse_errors_total{" + dev + ",errno=\"ENOENT\"}"));

    session_.reset();
    EXPECT_EQ(vdhost_.stop(), 0) << vdhost_.log();
}

TEST_F(VdhostTelemetry, PrometheusOnTcpUnderSeccomp) {
    const uint16_t port = free_port();
    start("127.0.0.1:" + std::to_string(port));
    if (HasFatalFailure()) {
        return;
    }
    FuseSession* s = connect();
    ASSERT_NE(s, nullptr);
    run_workload(s);
    std::string r = http_get_tcp(port);
    ASSERT_EQ(r.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << r;
    EXPECT_EQ(prom_value(r, "vdhost_fuse_requests_total{device=\"fs0\",opcode=\"GETATTR\"}"),
              kGetattrs);
    // Several clients in a row, and one that never sends: the server must keep answering.
    int silent = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(silent, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    for (int i = 0; i < 5; ++i) {
        EXPECT_EQ(http_get_tcp(port).rfind("HTTP/1.0 200 OK\r\n", 0), 0u);
    }
    ::close(silent);
    session_.reset();
    EXPECT_EQ(vdhost_.stop(), 0) << vdhost_.log();
}

} // namespace
} // namespace vdh

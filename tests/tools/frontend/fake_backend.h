// SPDX-License-Identifier: MIT
// FakeBackend: a test-only vhost-user BACKEND on a UNIX socket, written independently of the
// frontend library (raw framing from backend_wire.h). It negotiates, maps the memory table
// from the received memfds, translates ring addresses through userspace_addr like rte_vhost,
// and runs an "inverting echo" device on every ready vring: each chain's readable bytes,
// bitwise inverted, are written to its writable part. Everything it sees is logged so tests
// can check the frontend's message order and flags.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "backend_wire.h"
#include "frontend/split_virtqueue.h"

namespace vdh::frontend::testing {

struct FakeBackendConfig {
    uint64_t features = kFVersion1 | kFIndirectDesc | kFEventIdx | kFProtocolFeatures;
    uint64_t protocol_features = kPfMq | kPfReplyAck | kPfBackendReq | kPfBackendSendFd;
    uint64_t queue_num = 8;
    /// false: accept and read, but never reply (a hung backend).
    bool answer = true;
    /// Accept and immediately close this many connections first (a backend still busy
    /// with the previous session, as vdhost refuses a second frontend).
    int drop_first_connections = 0;
};

/// One request as received.
struct LoggedRequest {
    uint32_t request;
    uint32_t flags;
    uint32_t size;
    size_t nfds;
};

class FakeBackend {
public:
    FakeBackend(const std::string& path, const FakeBackendConfig& config);
    ~FakeBackend();
    FakeBackend(const FakeBackend&) = delete;
    FakeBackend& operator=(const FakeBackend&) = delete;

    /// Requests of every connection so far, in order.
    std::vector<LoggedRequest> log() const;
    /// Just the request codes.
    std::vector<uint32_t> requests() const;
    uint64_t acked_features() const;
    uint64_t acked_protocol_features() const;
    int connections() const;
    /// Chains completed on vring `q` during the current connection.
    uint64_t served(uint16_t q) const;
    /// Call-eventfd signals sent on vring `q` during the current connection.
    uint64_t signals(uint16_t q) const;
    /// True when every vring named so far is ready (addresses, kick, call) and enabled.
    bool all_rings_ready() const;
    /// Number of memory regions currently mapped.
    size_t mapped_regions() const;
    /// First protocol or ring violation seen (empty if none).
    std::string error() const;
    /// Polls `pred` (called under no lock) until true or timeout.
    template <typename Pred>
    static bool eventually(Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (!pred()) {
            if (std::chrono::steady_clock::now() > deadline) {
                return false;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        return true;
    }

private:
    struct Region {
        uint64_t gpa = 0, size = 0, uaddr = 0, offset = 0;
        uint8_t* map = nullptr; // start of our mmap (offset 0 of the fd)
        size_t map_len = 0;
    };
    struct Vring {
        uint32_t num = 0;
        uint16_t last_avail = 0;
        uint16_t last_used = 0;
        VringAddr addr{};
        bool addr_set = false;
        VringDesc* desc = nullptr;
        uint16_t* avail = nullptr;
        uint8_t* used = nullptr;
        UniqueFd kick;
        UniqueFd call;
        bool enabled = false;
        uint64_t served = 0;
        uint64_t signals = 0;
    };

    void run();
    void serve(int conn);
    void handle(int conn, RawMsg& m);
    void reset_connection();
    void unmap_all();
    void translate_rings();
    bool ready(const Vring& v) const;
    Vring& vring(uint32_t index);
    void fail(const std::string& what);
    uint8_t* gpa_to_ptr(uint64_t gpa, uint64_t len) const;
    uint8_t* va_to_ptr(uint64_t va, uint64_t len) const;
    void process(Vring& v);

    FakeBackendConfig config_;
    UniqueFd listen_;
    UniqueFd stop_fd_;
    mutable std::mutex mu_; // guards everything below; the backend thread holds it per event
    std::vector<LoggedRequest> log_;
    uint64_t features_ = 0;
    uint64_t protocol_features_ = 0;
    int connections_ = 0;
    std::vector<Region> regions_;
    std::vector<Vring> vrings_;
    std::string error_;
    std::thread thread_;
};

} // namespace vdh::frontend::testing

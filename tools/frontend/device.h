// SPDX-License-Identifier: MIT
// Device: a whole vhost-user frontend session, run the way QEMU 7.2 runs one (message order
// in shared/reference/rte_vhost.md §1.3): feature and protocol-feature negotiation, owner,
// memory table, every vring set up and enabled; then stop (disable + GET_VRING_BASE) and
// disconnect. Also mid-run events QEMU produces: a new memory table and a new call eventfd.
// A Device is one session; to reconnect, destroy it and make a new one on the same socket.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "frontend/guest_memory.h"
#include "frontend/split_virtqueue.h"
#include "frontend/vhost_user_connection.h"
#include "vdh/result.h"

namespace vdh::frontend {

struct DeviceOptions {
    std::string socket_path;
    /// Number of virtqueues to set up (all of them: rte_vhost starts the device only when
    /// every vring it knows is ready).
    uint16_t num_queues = 1;
    uint16_t queue_size = 128;
    /// Device-specific and ring feature bits we want (e.g. kFIndirectDesc | kFEventIdx);
    /// only those the backend offers are negotiated. VERSION_1 and PROTOCOL_FEATURES are
    /// always added when offered.
    uint64_t wanted_features = 0;
    /// Protocol features we accept when offered. Default: what this library implements.
    uint64_t wanted_protocol_features = kPfMq | kPfReplyAck | kPfConfig;
    std::chrono::milliseconds connect_timeout{5000};
    std::chrono::milliseconds reply_timeout{5000};
};

class Device {
public:
    enum class State { Connected, Running, Stopped, Disconnected };

    /// Connects and runs the init handshake: GET_FEATURES, GET/SET_PROTOCOL_FEATURES (when
    /// PROTOCOL_FEATURES is offered), GET_QUEUE_NUM (with MQ; EINVAL if fewer queues than
    /// requested), SET_OWNER. Until `connect_timeout`, a missing socket, a refused connect,
    /// or a backend that hangs up before answering GET_FEATURES (still busy with the last
    /// session) is retried. `mem` must outlive the Device. Allocates.
    static Result<std::unique_ptr<Device>> connect(GuestMemory& mem, const DeviceOptions& options);

    Device(const Device&) = delete;
    Device& operator=(const Device&) = delete;
    /// Closes the socket without stop(): a dead backend cannot stall a test's teardown.
    ~Device();

    /// Creates the queues and starts the device: SET_VRING_CALL per queue, SET_FEATURES,
    /// SET_MEM_TABLE, per queue SET_VRING_NUM/BASE(0)/ADDR/KICK, then SET_VRING_ENABLE(1)
    /// on every queue when PROTOCOL_FEATURES was negotiated. Only from Connected.
    Status start();
    /// SET_VRING_ENABLE(0) on every queue (with PROTOCOL_FEATURES), then GET_VRING_BASE on
    /// each; returns the backend's last avail index per queue. Only from Running.
    Result<std::vector<uint32_t>> stop();
    /// Closes the socket (the backend sees the disconnect). Queues stay readable.
    void disconnect() noexcept;

    /// Sends SET_MEM_TABLE again with the current regions (e.g. after
    /// GuestMemory::add_region()), while running.
    Status update_mem_table();
    /// Gives queue `q` a fresh call eventfd and sends it with SET_VRING_CALL, as QEMU does
    /// when it switches between its masked notifier and the irqfd.
    Status flap_vring_call(uint16_t q);
    /// GET_CONFIG of `size` bytes at `offset` (the backend must handle it).
    Result<std::vector<uint8_t>> get_config(uint32_t offset, uint32_t size);
    /// SET_CONFIG of `bytes` at `offset` (acked when REPLY_ACK was negotiated).
    Status set_config(uint32_t offset, std::span<const uint8_t> bytes);

    State state() const noexcept { return state_; }
    uint64_t offered_features() const noexcept { return offered_features_; }
    uint64_t features() const noexcept { return features_; }
    uint64_t offered_protocol_features() const noexcept { return offered_protocol_; }
    uint64_t protocol_features() const noexcept { return protocol_features_; }
    /// GET_QUEUE_NUM's answer, or 0 when MQ was not negotiated.
    uint64_t max_queues() const noexcept { return max_queues_; }
    uint16_t num_queues() const noexcept { return options_.num_queues; }
    /// Queue `q` (valid after start()).
    SplitVirtqueue& queue(uint16_t q) { return *queues_.at(q); }
    GuestMemory& memory() noexcept { return mem_; }
    /// The raw connection, for tests that send hand-made messages.
    VhostUserConnection& connection() noexcept { return conn_; }

private:
    Device(GuestMemory& mem, const DeviceOptions& options, VhostUserConnection conn)
        : mem_(mem), options_(options), conn_(std::move(conn)) {}
    Status handshake();

    GuestMemory& mem_;
    DeviceOptions options_;
    VhostUserConnection conn_;
    State state_ = State::Connected;
    uint64_t offered_features_ = 0;
    bool got_features_ = false; // GET_FEATURES was answered (for connect()'s retry rule)
    uint64_t features_ = 0;
    uint64_t offered_protocol_ = 0;
    uint64_t protocol_features_ = 0;
    uint64_t max_queues_ = 0;
    std::vector<std::unique_ptr<SplitVirtqueue>> queues_;
};

} // namespace vdh::frontend

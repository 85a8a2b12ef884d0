// SPDX-License-Identifier: MIT
// Device implementation: the QEMU-like message sequence over a VhostUserConnection, and the
// queue setup that turns SplitVirtqueue rings into SET_VRING_* messages.
#include "frontend/device.h"

#include <algorithm>
#include <thread>

namespace vdh::frontend {

Result<std::unique_ptr<Device>> Device::connect(GuestMemory& mem, const DeviceOptions& options) {
    if (options.num_queues == 0) {
        return make_err(EINVAL);
    }
    auto deadline = std::chrono::steady_clock::now() + options.connect_timeout;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        auto conn = VhostUserConnection::connect(options.socket_path,
                                                 std::max(left, std::chrono::milliseconds(0)));
        if (!conn) {
            return Err{conn.error()};
        }
        conn->set_reply_timeout(options.reply_timeout);
        std::unique_ptr<Device> dev(new Device(mem, options, std::move(*conn)));
        auto st = dev->handshake();
        if (st) {
            return dev;
        }
        // A backend still tearing down the previous session may accept and then drop a new
        // connection before answering anything (vdhost refuses a second frontend). That is
        // "not ready yet", like a missing socket: retry until connect_timeout.
        bool dropped_at_once =
            (st.error() == ECONNRESET || st.error() == EPIPE) && !dev->got_features_;
        if (!dropped_at_once || std::chrono::steady_clock::now() >= deadline) {
            return Err{st.error()};
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

Device::~Device() { disconnect(); }

Status Device::handshake() {
    auto offered = conn_.get_features();
    if (!offered) {
        return Err{offered.error()};
    }
    offered_features_ = *offered;
    got_features_ = true;
    features_ = offered_features_ & (options_.wanted_features | kFVersion1 | kFProtocolFeatures);

    if ((offered_features_ & kFProtocolFeatures) != 0) {
        auto proto = conn_.get_protocol_features();
        if (!proto) {
            return Err{proto.error()};
        }
        offered_protocol_ = *proto;
        protocol_features_ = offered_protocol_ & options_.wanted_protocol_features;
        // Also turns REPLY_ACK on in the connection when it is part of the set.
        VDH_TRY(conn_.set_protocol_features(protocol_features_));
    }
    if ((protocol_features_ & kPfMq) != 0) {
        auto n = conn_.get_queue_num();
        if (!n) {
            return Err{n.error()};
        }
        max_queues_ = *n;
        if (max_queues_ < options_.num_queues) {
            return make_err(EINVAL);
        }
    }
    return conn_.set_owner();
}

Status Device::start() {
    if (state_ != State::Connected) {
        return make_err(EINVAL);
    }
    queues_.clear();
    for (uint16_t q = 0; q < options_.num_queues; q++) {
        auto vq = SplitVirtqueue::create(mem_, options_.queue_size);
        if (!vq) {
            return Err{vq.error()};
        }
        (*vq)->set_event_idx((features_ & kFEventIdx) != 0);
        queues_.push_back(std::move(*vq));
    }
    // QEMU's vhost_dev_init() sends the call fds first; this also makes the backend
    // allocate every vring before anything else names one.
    for (uint16_t q = 0; q < options_.num_queues; q++) {
        VDH_TRY(conn_.set_vring_call(q, queues_[q]->call_fd()));
    }
    VDH_TRY(conn_.set_features(features_));
    VDH_TRY(update_mem_table());
    for (uint16_t q = 0; q < options_.num_queues; q++) {
        SplitVirtqueue& vq = *queues_[q];
        VDH_TRY(conn_.set_vring_num(q, vq.size()));
        VDH_TRY(conn_.set_vring_base(q, vq.avail_idx()));
        // Frontend virtual addresses, as QEMU sends them: the backend maps them through the
        // memory table's userspace_addr.
        VringAddr addr{};
        addr.index = q;
        addr.desc_user_addr = reinterpret_cast<uintptr_t>(vq.desc());
        addr.used_user_addr = reinterpret_cast<uintptr_t>(vq.used());
        addr.avail_user_addr = reinterpret_cast<uintptr_t>(vq.avail());
        VDH_TRY(conn_.set_vring_addr(addr));
        VDH_TRY(conn_.set_vring_kick(q, vq.kick_fd()));
    }
    if ((features_ & kFProtocolFeatures) != 0) {
        for (uint16_t q = 0; q < options_.num_queues; q++) {
            VDH_TRY(conn_.set_vring_enable(q, true));
        }
    }
    state_ = State::Running;
    return ok();
}

Result<std::vector<uint32_t>> Device::stop() {
    if (state_ != State::Running) {
        return make_err(EINVAL);
    }
    state_ = State::Stopped;
    if ((features_ & kFProtocolFeatures) != 0) {
        for (uint16_t q = 0; q < options_.num_queues; q++) {
            VDH_TRY(conn_.set_vring_enable(q, false));
        }
    }
    std::vector<uint32_t> bases;
    for (uint16_t q = 0; q < options_.num_queues; q++) {
        auto base = conn_.get_vring_base(q);
        if (!base) {
            return Err{base.error()};
        }
        bases.push_back(*base);
    }
    return bases;
}

void Device::disconnect() noexcept {
    conn_.close();
    state_ = State::Disconnected;
}

Status Device::update_mem_table() {
    std::vector<MemoryRegionDesc> regions;
    std::vector<int> fds;
    mem_.memory_table(regions, fds);
    return conn_.set_mem_table(regions, fds);
}

Status Device::flap_vring_call(uint16_t q) {
    if (q >= queues_.size()) {
        return make_err(EINVAL);
    }
    auto old = queues_[q]->replace_call_fd();
    if (!old) {
        return Err{old.error()};
    }
    // `old` closes when this returns, after the backend has been told about the new fd.
    return conn_.set_vring_call(q, queues_[q]->call_fd());
}

Result<std::vector<uint8_t>> Device::get_config(uint32_t offset, uint32_t size) {
    return conn_.get_config(offset, size);
}

Status Device::set_config(uint32_t offset, std::span<const uint8_t> bytes) {
    return conn_.set_config(offset, bytes);
}

} // namespace vdh::frontend

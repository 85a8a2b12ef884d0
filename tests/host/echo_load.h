// SPDX-License-Identifier: MIT
// Test drivers for the real vdhost: a control-socket request, and Load, a frontend
// session on an echo device with a thread that keeps a fixed number of requests in flight
// on queue 1 and counts completions. Shared by the QoS and runtime (live add/remove) tests.
#pragma once

#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "../../plugins/echo/echo_protocol.h"
#include "frontend/device.h"
#include "frontend/guest_memory.h"
#include "vdh/unique_fd.h"

namespace vdh::testing {

using frontend::Device;
using frontend::DeviceOptions;
using frontend::GuestMemory;
using frontend::GuestMemoryOptions;
using frontend::Segment;
using frontend::UsedElem;

constexpr uint16_t kQueueSize = 1024;
/// Requests a driver keeps in flight by default. A limited device gets more (see
/// kLimitedDepth): a driver thread that this shared 2-CPU machine delays for a while must
/// not leave it without waiting requests, or its unused budget is lost after burst_ms.
constexpr unsigned kDepth = 128;
constexpr unsigned kLimitedDepth = 512; // 256 ms of a 2000/s limit

/// Sends one control-socket command and returns the reply.
inline std::string control(const std::string& path, const std::string& cmd) {
    UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
    if (connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
        return "connect failed";
    }
    std::string line = cmd + "\n";
    if (write(fd.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
        return "write failed";
    }
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = read(fd.get(), buf, sizeof(buf))) > 0) {
        out.append(buf, static_cast<size_t>(n));
    }
    return out;
}

/// One frontend session on an echo device and a thread that keeps kDepth requests in
/// flight on queue 1, counting completions (and device-written bytes) as they arrive.
class Load {
  public:
    /// \p fill_bytes 0: empty echo requests (cheapest); else kEchoOpFill into that many
    /// writable bytes (every byte is written by the device, like a READ).
    Load(const std::string& sock, uint32_t fill_bytes, unsigned depth = kDepth)
        : fill_bytes_(fill_bytes), depth_(depth) {
        GuestMemoryOptions mo;
        mo.size = 32 << 20;
        auto m = GuestMemory::create(mo);
        EXPECT_TRUE(m.has_value());
        mem_ = std::move(*m);
        DeviceOptions o;
        o.socket_path = sock;
        o.num_queues = 2;
        o.queue_size = kQueueSize;
        auto d = Device::connect(*mem_, o);
        EXPECT_TRUE(d.has_value()) << "connect " << sock;
        dev_ = std::move(*d);
        EXPECT_TRUE(dev_->start().has_value());
        uint32_t out_len = fill_bytes_ != 0 ? fill_bytes_ : 64;
        echo::EchoHeader h{fill_bytes_ != 0 ? echo::kEchoOpFill : echo::kEchoOpEcho, 0x5a};
        for (unsigned i = 0; i < depth_; ++i) {
            auto in = mem_->allocate(sizeof(h));
            auto out = mem_->allocate(out_len);
            EXPECT_TRUE(in && out);
            EXPECT_TRUE(mem_->write(*in, &h, sizeof(h)).has_value());
            bufs_.push_back({Segment::guest(*in, sizeof(h)), Segment::guest(*out, out_len)});
        }
    }
    ~Load() { stop(); }

    void start() {
        run_ = true;
        thread_ = std::thread([this] { loop(); });
    }
    void stop() {
        run_ = false;
        if (thread_.joinable()) {
            thread_.join();
        }
    }
    /// While paused the driver lets its requests complete without adding new ones.
    void pause(bool on) { paused_ = on; }
    uint64_t done() const { return done_.load(std::memory_order_relaxed); }
    uint64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
    bool failed() const { return failed_.load(); }

  private:
    struct Buf {
        Segment in;
        Segment out;
    };

    void loop() {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(0, &set); // vdhost polls on CPU 1
        pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
        auto& vq = dev_->queue(1);
        std::vector<int> slot_of(kQueueSize, -1);
        auto add = [&](unsigned slot) {
            auto id = vq.add_chain({&bufs_[slot].in, 1}, {&bufs_[slot].out, 1});
            if (!id) {
                failed_ = true;
                return;
            }
            slot_of[*id] = static_cast<int>(slot);
        };
        for (unsigned i = 0; i < depth_; ++i) {
            add(i);
        }
        (void)vq.kick();
        std::vector<UsedElem> used(depth_);
        std::vector<unsigned> idle; // slots held back while paused
        while (run_.load(std::memory_order_relaxed) && !failed_) {
            if (!paused_.load(std::memory_order_relaxed) && !idle.empty()) {
                for (unsigned slot : idle) {
                    add(slot);
                }
                idle.clear();
                (void)vq.kick();
            }
            auto n = vq.wait_used({used.data(), used.size()}, std::chrono::milliseconds(20));
            if (!n) {
                continue; // a timeout while throttled or paused is fine
            }
            uint64_t b = 0;
            bool paused = paused_.load(std::memory_order_relaxed);
            for (size_t i = 0; i < *n; ++i) {
                int slot = used[i].id < kQueueSize ? slot_of[used[i].id] : -1;
                if (slot < 0 || used[i].unexpected) {
                    failed_ = true;
                    break;
                }
                b += used[i].len;
                if (paused) {
                    idle.push_back(static_cast<unsigned>(slot));
                } else {
                    add(static_cast<unsigned>(slot));
                }
            }
            (void)vq.kick();
            done_.fetch_add(*n, std::memory_order_relaxed);
            bytes_.fetch_add(b, std::memory_order_relaxed);
        }
    }

    uint32_t fill_bytes_;
    unsigned depth_;
    std::unique_ptr<GuestMemory> mem_;
    std::unique_ptr<Device> dev_;
    std::vector<Buf> bufs_;
    std::thread thread_;
    std::atomic<bool> run_{false};
    std::atomic<bool> paused_{false};
    std::atomic<bool> failed_{false};
    std::atomic<uint64_t> done_{0};
    std::atomic<uint64_t> bytes_{0};
};

} // namespace vdh::testing

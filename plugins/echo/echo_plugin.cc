// SPDX-License-Identifier: MIT
// The echo test plugin: a tiny device used by the host's tests and as an example of the
// plugin ABI. Each request's readable part starts with an EchoHeader that says what to
// do: echo the payload back, complete it later from another thread, fail it, fill the
// writable part, or hang until released (a stuck request). Device id 0xFFFF (no real
// virtio device). The device is a class on the plugin adapter (vdh/plugin_adapter.h).
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "echo_protocol.h"
#include "vdh/compiler.h"
#include "vdh/iovec_cursor.h"
#include "vdh/plugin_abi.h"
#include "vdh/plugin_adapter.h"
#include "vdh/result.h"

namespace vdh::echo {
namespace {

struct Pending {
    std::chrono::steady_clock::time_point due;
    void* token;
    int64_t result;
};

/// A request held by kEchoOpHold: its writable buffers are written only on release, so a
/// host that unmapped them too early would crash then.
struct Held {
    const void* dev;
    const vdh_host_api* host;
    void* token;
    std::vector<iovec> out;
    uint8_t fill;
};

std::mutex g_held_mu; // guards g_held. Lock order: leaf.
std::vector<Held> g_held;

/// Completes every held request (any device). Returns how many.
size_t release_held() {
    std::vector<Held> todo;
    {
        std::lock_guard<std::mutex> g(g_held_mu);
        todo.swap(g_held);
    }
    for (const Held& h : todo) {
        uint64_t n = 0;
        for (const iovec& v : h.out) {
            std::memset(v.iov_base, h.fill, v.iov_len);
            n += v.iov_len;
        }
        h.host->complete(h.token, static_cast<int64_t>(n));
    }
    return todo.size();
}

/// Forgets the held requests of \p dev without completing them (the device is destroyed).
void forget_held(const void* dev) {
    std::lock_guard<std::mutex> g(g_held_mu);
    g_held.erase(std::remove_if(g_held.begin(), g_held.end(),
                                [dev](const Held& h) { return h.dev == dev; }),
                 g_held.end());
}

/// The device's `config:` block.
struct EchoConfig {
    uint32_t delay_us = 0;   ///< complete every request this late, from the timer thread
    uint32_t fail_every = 0; ///< fail every n-th request with EIO (0: never)
    uint32_t fds = 0;        ///< fds to reserve (the echo device holds none of its own)
};

/// Parses the config block. Fails with a "file:line:col: config.key: ..." message.
Result<EchoConfig> parse_config(const ConfigContext& ctx) {
    EchoConfig cfg;
    const char* origin = ctx.origin;
    try {
        YAML::Node root = YAML::Load(std::string(ctx.config));
        if (!root || root.IsNull()) {
            return cfg;
        }
        if (!root.IsMap()) {
            return ctx.failf(EINVAL, "%s:%d:%d: config: expected a mapping", origin,
                             root.Mark().line + 1, root.Mark().column + 1);
        }
        for (auto it = root.begin(); it != root.end(); ++it) {
            std::string key = it->first.as<std::string>();
            uint32_t* dst = key == "delay_us"     ? &cfg.delay_us
                            : key == "fail_every" ? &cfg.fail_every
                            : key == "fds"        ? &cfg.fds
                                                  : nullptr;
            if (dst == nullptr) {
                return ctx.failf(EINVAL,
                                 "%s:%d:%d: config.%s: unknown key (expected one of: delay_us, "
                                 "fail_every, fds)",
                                 origin, it->first.Mark().line + 1, it->first.Mark().column + 1,
                                 key.c_str());
            }
            try {
                *dst = it->second.as<uint32_t>();
            } catch (const YAML::Exception&) {
                return ctx.failf(EINVAL, "%s:%d:%d: config.%s: expected an unsigned integer",
                                 origin, it->second.Mark().line + 1, it->second.Mark().column + 1,
                                 key.c_str());
            }
        }
    } catch (const YAML::Exception& e) {
        return ctx.failf(EINVAL, "%s:%d:%d: config: %s", origin, e.mark.line + 1,
                         e.mark.column + 1, e.msg.c_str());
    }
    return cfg;
}

/// One echo device. Async completions run on a timer thread to exercise the host's
/// cross-thread completion path.
class EchoDevice {
public:
    EchoDevice(const vdh_host_api* host, uint32_t delay_us, uint32_t fail_every)
        : host_(host), delay_us_(delay_us), fail_every_(fail_every) {}
    ~EchoDevice() {
        stop_thread();
        forget_held(this);
    }

    static Result<std::unique_ptr<EchoDevice>> create(CreateContext& ctx) {
        auto cfg = parse_config(ctx);
        if (!cfg) {
            return Err{cfg.error()};
        }
        // The echo device holds no fds of its own; `fds:` reserves some, for the host's tests.
        if (cfg->fds != 0) {
            VDH_TRY(ctx.reserve_fds(cfg->fds));
        }
        return std::make_unique<EchoDevice>(ctx.host, cfg->delay_us, cfg->fail_every);
    }
    static Status check_config(const ConfigContext& ctx) {
        VDH_TRY(parse_config(ctx));
        return ok();
    }

    int start(uint64_t /*features*/, const vdh_queue_info* /*queues*/, uint16_t /*nq*/) {
        std::lock_guard<std::mutex> g(mu_);
        if (!thread_.joinable()) {
            quit_ = false;
            thread_ = std::thread([this] { timer_loop(); });
        }
        ++starts_;
        return 0;
    }

    void stop() {
        // Complete everything still pending, now: the session ends.
        std::deque<Pending> todo;
        {
            std::lock_guard<std::mutex> g(mu_);
            todo.swap(pending_);
        }
        for (const Pending& p : todo) {
            host_->complete(p.token, -ECANCELED);
        }
    }

    int64_t handle_request(const vdh_request* req) {
        IovecCursor in(req->in, req->n_in);
        IovecCursor out(req->out, req->n_out);
        ++requests_;
        EchoHeader h{};
        if (!in.read(&h, sizeof(h))) {
            return -EINVAL;
        }
        if (fail_every_ != 0 && requests_ % fail_every_ == 0) {
            return -EIO;
        }
        int64_t result = 0;
        switch (h.op) {
        case kEchoOpEcho:
        case kEchoOpAsync: {
            // Copy the payload back, a chunk at a time, into the writable part.
            uint8_t buf[512];
            while (in.remaining() > 0 && out.remaining() > 0) {
                size_t n = std::min({sizeof(buf), in.remaining(), out.remaining()});
                in.read(buf, n);
                out.write(buf, n);
            }
            result = static_cast<int64_t>(out.consumed());
            break;
        }
        case kEchoOpFail:
            return -static_cast<int64_t>(h.arg);
        case kEchoOpHold: {
            Held held{this, host_, req->token,
                      std::vector<iovec>(req->out, req->out + req->n_out),
                      static_cast<uint8_t>(h.arg)};
            std::lock_guard<std::mutex> g(g_held_mu);
            g_held.push_back(std::move(held));
            return VDH_ASYNC;
        }
        case kEchoOpRelease:
            release_held();
            return 0;
        case kEchoOpFill: {
            uint8_t b = static_cast<uint8_t>(h.arg);
            uint8_t buf[512];
            std::memset(buf, b, sizeof(buf));
            while (out.remaining() > 0) {
                out.write(buf, std::min(sizeof(buf), out.remaining()));
            }
            result = static_cast<int64_t>(out.consumed());
            break;
        }
        default:
            return -ENOSYS;
        }
        uint32_t delay = h.op == kEchoOpAsync ? h.arg : delay_us_;
        if (delay == 0) {
            return result;
        }
        {
            std::lock_guard<std::mutex> g(mu_);
            pending_.push_back(Pending{std::chrono::steady_clock::now() +
                                           std::chrono::microseconds(delay),
                                       req->token, result});
        }
        cv_.notify_one();
        return VDH_ASYNC;
    }

    int stats_json(char* buf, size_t len) {
        return std::snprintf(buf, len, "{\"requests\":%llu,\"starts\":%llu}",
                             static_cast<unsigned long long>(requests_),
                             static_cast<unsigned long long>(starts_));
    }

private:
    void timer_loop() {
        std::unique_lock<std::mutex> lk(mu_);
        while (!quit_) {
            if (pending_.empty()) {
                cv_.wait(lk);
                continue;
            }
            auto now = std::chrono::steady_clock::now();
            Pending p = pending_.front();
            if (p.due > now) {
                cv_.wait_until(lk, p.due);
                continue;
            }
            pending_.pop_front();
            lk.unlock();
            host_->complete(p.token, p.result);
            lk.lock();
        }
    }

    void stop_thread() {
        {
            std::lock_guard<std::mutex> g(mu_);
            quit_ = true;
        }
        cv_.notify_all();
        if (thread_.joinable()) {
            thread_.join();
        }
    }

    const vdh_host_api* host_;
    uint32_t delay_us_;
    uint32_t fail_every_;
    std::atomic<uint64_t> requests_{0};
    uint64_t starts_ = 0;
    std::mutex mu_; ///< guards pending_, quit_. Lock order: leaf.
    std::condition_variable cv_;
    std::deque<Pending> pending_;
    bool quit_ = false;
    std::thread thread_;
};

constexpr vdh_plugin_info kInfo = make_plugin_info<EchoDevice>({
    .name = "echo",
    .version = "1.0",
    .virtio_device_id = 0xFFFF,
    .min_queues = 1,
});

} // namespace
} // namespace vdh::echo

extern "C" VDH_EXPORT const vdh_plugin_info* vdh_plugin_entry(void) { return &vdh::echo::kInfo; }

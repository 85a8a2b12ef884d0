// SPDX-License-Identifier: MIT
// The echo test plugin: a tiny device used by the host's tests and as an example of the
// plugin ABI. Each request's readable part starts with an EchoHeader that says what to
// do: echo the payload back, complete it later from another thread, fail it, fill the
// writable part, or hang until released (a stuck request). Device id 0xFFFF (no real
// virtio device).
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

    int start(uint16_t nq) {
        (void)nq;
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

    int64_t handle(const vdh_request* req) {
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

    int stats(char* buf, size_t len) {
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

EchoDevice* self(void* dev) { return static_cast<EchoDevice*>(dev); }

int op_start(void* dev, uint64_t, const vdh_queue_info*, uint16_t nq) {
    return self(dev)->start(nq);
}
void op_stop(void* dev) { self(dev)->stop(); }
int64_t op_handle(void* dev, const vdh_request* req) { return self(dev)->handle(req); }
int op_stats(void* dev, char* buf, size_t len) { return self(dev)->stats(buf, len); }
void op_destroy(void* dev) { delete self(dev); }

const vdh_device_ops g_ops = {
    .struct_size = sizeof(vdh_device_ops),
    .reserved = 0,
    .get_features = nullptr,
    .start = op_start,
    .stop = op_stop,
    .handle_request = op_handle,
    .poll = nullptr,
    .wake_fd = nullptr,
    .stats_json = op_stats,
    .destroy = op_destroy,
    .disconnect = nullptr,
};

/// Parses the config block. Returns false with a "file:line:col: config.key: ..." message.
bool parse(const char* text, size_t len, const char* origin, uint32_t* delay_us,
           uint32_t* fail_every, uint32_t* fds, char* err, size_t err_len) {
    *delay_us = 0;
    *fail_every = 0;
    *fds = 0;
    try {
        YAML::Node root = YAML::Load(std::string(text, len));
        if (!root || root.IsNull()) {
            return true;
        }
        if (!root.IsMap()) {
            std::snprintf(err, err_len, "%s:%d:%d: config: expected a mapping", origin,
                          root.Mark().line + 1, root.Mark().column + 1);
            return false;
        }
        for (auto it = root.begin(); it != root.end(); ++it) {
            std::string key = it->first.as<std::string>();
            uint32_t* dst = key == "delay_us"     ? delay_us
                            : key == "fail_every" ? fail_every
                            : key == "fds"        ? fds
                                                  : nullptr;
            if (dst == nullptr) {
                std::snprintf(err, err_len,
                              "%s:%d:%d: config.%s: unknown key (expected one of: delay_us, "
                              "fail_every, fds)",
                              origin, it->first.Mark().line + 1, it->first.Mark().column + 1,
                              key.c_str());
                return false;
            }
            try {
                *dst = it->second.as<uint32_t>();
            } catch (const YAML::Exception&) {
                std::snprintf(err, err_len, "%s:%d:%d: config.%s: expected an unsigned integer",
                              origin, it->second.Mark().line + 1, it->second.Mark().column + 1,
                              key.c_str());
                return false;
            }
        }
    } catch (const YAML::Exception& e) {
        std::snprintf(err, err_len, "%s:%d:%d: config: %s", origin, e.mark.line + 1,
                      e.mark.column + 1, e.msg.c_str());
        return false;
    }
    return true;
}

int plugin_check(const char* text, size_t len, const char* origin, char* err, size_t err_len) {
    uint32_t a;
    uint32_t b;
    uint32_t c;
    return parse(text, len, origin, &a, &b, &c, err, err_len) ? 0 : -EINVAL;
}

int plugin_create(const vdh_host_api* host, void* host_dev, const char*, const char* text,
                  size_t len, const char* origin, void** dev_out, const vdh_device_ops** ops_out,
                  char* err, size_t err_len) {
    uint32_t delay_us;
    uint32_t fail_every;
    uint32_t fds;
    if (!parse(text, len, origin, &delay_us, &fail_every, &fds, err, err_len)) {
        return -EINVAL;
    }
    // The echo device holds no fds of its own; `fds:` reserves some, for the host's tests.
    if (fds != 0 && VDH_HOST_HAS(host, reserve_fds)) {
        int rc = host->reserve_fds(host_dev, fds, err, err_len);
        if (rc != 0) {
            return rc;
        }
    }
    try {
        *dev_out = new EchoDevice(host, delay_us, fail_every);
    } catch (...) {
        return -ENOMEM;
    }
    *ops_out = &g_ops;
    return 0;
}

const vdh_plugin_info g_info = {
    .struct_size = sizeof(vdh_plugin_info),
    .abi_major = VDH_ABI_MAJOR,
    .abi_minor = VDH_ABI_MINOR,
    .virtio_device_id = 0xFFFF,
    .name = "echo",
    .version = "1.0",
    .device_features = 0,
    .request_ctx_size = 0,
    .min_queues = 1,
    .create = plugin_create,
    .check_config = plugin_check,
};

} // namespace
} // namespace vdh::echo

extern "C" VDH_EXPORT const vdh_plugin_info* vdh_plugin_entry(void) { return &vdh::echo::g_info; }

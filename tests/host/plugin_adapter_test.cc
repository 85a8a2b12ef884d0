// SPDX-License-Identifier: MIT
// Tests of host/include/vdh/plugin_adapter.h: the tables it builds from a class (which ops
// are filled, struct sizes and ABI version), that each op reaches the class's member, that
// exceptions become -errno or error text at the boundary, and the create() context (device
// name, config text, reserve_fds, check-only, log).
#include "vdh/plugin_adapter.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace vdh {
namespace {

int g_live_devices = 0;

/// The required members only.
class MinimalDevice {
public:
    MinimalDevice() { ++g_live_devices; }
    ~MinimalDevice() { --g_live_devices; }
    static Result<std::unique_ptr<MinimalDevice>> create(CreateContext&) {
        return std::make_unique<MinimalDevice>();
    }
    int start(uint64_t, const vdh_queue_info*, uint16_t n) {
        queues = n;
        return 0;
    }
    void stop() {}
    int64_t handle_request(const vdh_request* req) noexcept { return req->queue + 100; }

    uint16_t queues = 0;
};

enum class Throw { None, Runtime, BadAlloc };

/// Every member the adapter knows; `mode` makes each of them throw.
class FullDevice {
public:
    explicit FullDevice(std::string name) : name(std::move(name)) { ++g_live_devices; }
    ~FullDevice() { --g_live_devices; }

    static Result<std::unique_ptr<FullDevice>> create(CreateContext& ctx) {
        const std::string cfg(ctx.config);
        if (cfg == "fail") {
            return ctx.failf(EINVAL, "%s:1:1: config.size: not a number", ctx.origin);
        }
        if (cfg == "throw") {
            throw std::runtime_error("config.path: no such file");
        }
        if (cfg == "oom") {
            throw std::bad_alloc();
        }
        if (cfg == "errno") {
            return make_err(ENODEV);
        }
        if (cfg == "null") {
            return std::unique_ptr<FullDevice>();
        }
        if (cfg == "reserve-many") {
            VDH_TRY(ctx.reserve_fds(1000));
        }
        VDH_TRY(ctx.reserve_fds(7));
        ctx.log(VDH_LOG_NOTICE, ctx.check_only() ? "trial" : "created");
        auto d = std::make_unique<FullDevice>(std::string(ctx.device_name));
        d->host_dev = ctx.host_dev;
        return d;
    }
    static Status check_config(const ConfigContext& ctx) {
        if (ctx.config == "bad") {
            return ctx.fail(EINVAL, std::string(ctx.origin) + ":2:3: config.mode: unknown");
        }
        if (ctx.config == "throw") {
            throw std::invalid_argument("config.mode: broken");
        }
        return ok();
    }
    static Status host_paths(HostPathsContext& ctx) {
        ctx.add("/srv/a", VDH_HOST_PATH_READONLY);
        ctx.add("/srv/b");
        if (ctx.config == "oom") {
            throw std::bad_alloc();
        }
        return ok();
    }

    Status start(uint64_t features, const vdh_queue_info* queues, uint16_t n) {
        maybe_throw();
        if (n == 0) {
            return make_err(EINVAL);
        }
        started_features = features;
        first_queue_size = queues[0].size;
        return ok();
    }
    void stop() {
        ++stops;
        maybe_throw();
    }
    int64_t handle_request(const vdh_request* req) {
        maybe_throw();
        return static_cast<int64_t>(req->out_bytes);
    }
    uint32_t poll(uint16_t queue) {
        maybe_throw();
        return queue + 1u;
    }
    uint32_t flush(uint16_t queue) {
        maybe_throw();
        return queue + 2u;
    }
    int wake_fd(uint16_t queue) const {
        maybe_throw();
        return 40 + queue;
    }
    int stats_json(char* buf, size_t len) const {
        maybe_throw();
        return std::snprintf(buf, len, "{\"name\":\"%s\"}", name.c_str());
    }
    uint64_t get_features() const {
        maybe_throw();
        return 1ull << 3;
    }
    void disconnect() {
        ++disconnects;
        maybe_throw();
    }
    int metrics(vdh_metric_emit_fn emit, void* ctx) const {
        maybe_throw();
        vdh_metric m{};
        m.name = "test_total";
        m.help = "a test counter";
        m.kind = VDH_METRIC_COUNTER;
        m.labels = "";
        m.value = 5;
        emit(ctx, &m);
        return 0;
    }
    void revoke() {
        ++revokes;
        maybe_throw();
    }
    int get_config(uint32_t offset, uint8_t* buf, uint32_t len) const {
        maybe_throw();
        for (uint32_t i = 0; i < len; ++i) {
            buf[i] = offset + i < sizeof(config_space) ? config_space[offset + i] : 0;
        }
        return sizeof(config_space);
    }
    Status set_config(uint32_t offset, const uint8_t* buf, uint32_t len) {
        maybe_throw();
        if (offset != 2 || len != 1) {
            return make_err(EPERM);
        }
        config_space[2] = buf[0];
        return ok();
    }

    void maybe_throw() const {
        if (mode == Throw::Runtime) {
            throw std::runtime_error("boom");
        }
        if (mode == Throw::BadAlloc) {
            throw std::bad_alloc();
        }
    }

    std::string name;
    void* host_dev = nullptr;
    Throw mode = Throw::None;
    uint64_t started_features = 0;
    uint16_t first_queue_size = 0;
    int stops = 0;
    int disconnects = 0;
    int revokes = 0;
    uint8_t config_space[4] = {1, 2, 3, 4};
};

constexpr vdh_plugin_info kMinimalInfo =
    make_plugin_info<MinimalDevice>({.name = "minimal", .version = "0.1", .virtio_device_id = 7});
constexpr vdh_plugin_info kFullInfo = make_plugin_info<FullDevice>({.name = "full",
                                                                     .version = "2.0",
                                                                     .virtio_device_id = 2,
                                                                     .device_features = 1ull << 9,
                                                                     .request_ctx_size = 48,
                                                                     .min_queues = 2});

/// A host table that records what the plugin asked for.
struct FakeHost {
    FakeHost() {
        api.struct_size = sizeof(api);
        api.abi_major = VDH_ABI_MAJOR;
        api.abi_minor = VDH_ABI_MINOR;
        api.host = this;
        api.log = [](void* host, int level, const char* device, const char* msg) {
            static_cast<FakeHost*>(host)->logs.push_back(std::to_string(level) + " " + device +
                                                         ": " + msg);
        };
        api.reserve_fds = [](void* host_dev, uint64_t n, char* err, size_t err_len) {
            auto* self = static_cast<FakeHost*>(host_dev);
            if (n > 100) {
                std::snprintf(err, err_len, "%llu fds do not fit",
                              static_cast<unsigned long long>(n));
                return -EMFILE;
            }
            self->reserved += n;
            return 0;
        };
    }
    /// Calls info.create for device "dev0" with config \p cfg.
    int create(const vdh_plugin_info& info, const std::string& cfg, void** dev,
               const vdh_device_ops** ops) {
        return info.create(&api, this, "dev0", cfg.data(), cfg.size(), "devices.yaml", dev, ops,
                           err, sizeof(err));
    }

    vdh_host_api api{};
    std::vector<std::string> logs;
    uint64_t reserved = 0;
    char err[256] = "stale";
};

TEST(PluginAdapter, InfoCarriesTheDescriptionAndTheAbiVersion) {
    EXPECT_EQ(kFullInfo.struct_size, sizeof(vdh_plugin_info));
    EXPECT_EQ(kFullInfo.abi_major, static_cast<uint32_t>(VDH_ABI_MAJOR));
    EXPECT_EQ(kFullInfo.abi_minor, static_cast<uint32_t>(VDH_ABI_MINOR));
    EXPECT_EQ(kFullInfo.abi_minor, 6u); // set_config is in the table the adapter builds
    EXPECT_STREQ(kFullInfo.name, "full");
    EXPECT_STREQ(kFullInfo.version, "2.0");
    EXPECT_EQ(kFullInfo.virtio_device_id, 2u);
    EXPECT_EQ(kFullInfo.device_features, 1ull << 9);
    EXPECT_EQ(kFullInfo.request_ctx_size, 48u);
    EXPECT_EQ(kFullInfo.min_queues, 2u);
    EXPECT_NE(kFullInfo.create, nullptr);
    EXPECT_NE(kFullInfo.check_config, nullptr);
    EXPECT_NE(kFullInfo.host_paths, nullptr);

    EXPECT_EQ(kMinimalInfo.min_queues, 1u);
    EXPECT_EQ(kMinimalInfo.device_features, 0u);
    EXPECT_EQ(kMinimalInfo.request_ctx_size, 0u);
    EXPECT_NE(kMinimalInfo.create, nullptr);
    EXPECT_EQ(kMinimalInfo.check_config, nullptr);
    EXPECT_EQ(kMinimalInfo.host_paths, nullptr);
}

TEST(PluginAdapter, MinimalClassFillsOnlyTheRequiredOps) {
    const vdh_device_ops& ops = device_ops<MinimalDevice>;
    EXPECT_EQ(ops.struct_size, sizeof(vdh_device_ops));
    EXPECT_NE(ops.start, nullptr);
    EXPECT_NE(ops.stop, nullptr);
    EXPECT_NE(ops.handle_request, nullptr);
    EXPECT_NE(ops.destroy, nullptr);
    EXPECT_FALSE(VDH_OPS_HAS(&ops, get_features));
    EXPECT_FALSE(VDH_OPS_HAS(&ops, poll));
    EXPECT_FALSE(VDH_OPS_HAS(&ops, wake_fd));
    EXPECT_FALSE(VDH_OPS_HAS(&ops, stats_json));
    EXPECT_FALSE(VDH_OPS_HAS(&ops, disconnect));
    EXPECT_FALSE(VDH_OPS_HAS(&ops, flush));
    EXPECT_FALSE(VDH_OPS_HAS(&ops, metrics));
    EXPECT_FALSE(VDH_OPS_HAS(&ops, revoke));
    EXPECT_FALSE(VDH_OPS_HAS(&ops, get_config));
    EXPECT_FALSE(VDH_OPS_HAS(&ops, set_config));

    FakeHost host;
    void* dev = nullptr;
    const vdh_device_ops* got = nullptr;
    ASSERT_EQ(host.create(kMinimalInfo, "", &dev, &got), 0) << host.err;
    EXPECT_EQ(got, &ops);
    EXPECT_STREQ(host.err, ""); // emptied, nothing written
    EXPECT_EQ(g_live_devices, 1);
    vdh_queue_info q[2] = {{0, 8, 0}, {1, 8, 0}};
    EXPECT_EQ(ops.start(dev, 0, q, 2), 0);
    EXPECT_EQ(static_cast<MinimalDevice*>(dev)->queues, 2);
    vdh_request req{};
    req.queue = 1;
    EXPECT_EQ(ops.handle_request(dev, &req), 101);
    ops.stop(dev);
    ops.destroy(dev);
    EXPECT_EQ(g_live_devices, 0);
}

TEST(PluginAdapter, FullClassFillsEveryOpAndReachesItsMembers) {
    const vdh_device_ops& ops = device_ops<FullDevice>;
    EXPECT_EQ(ops.struct_size, sizeof(vdh_device_ops));
    EXPECT_TRUE(VDH_OPS_HAS(&ops, get_features));
    EXPECT_TRUE(VDH_OPS_HAS(&ops, poll));
    EXPECT_TRUE(VDH_OPS_HAS(&ops, wake_fd));
    EXPECT_TRUE(VDH_OPS_HAS(&ops, stats_json));
    EXPECT_TRUE(VDH_OPS_HAS(&ops, disconnect));
    EXPECT_TRUE(VDH_OPS_HAS(&ops, flush));
    EXPECT_TRUE(VDH_OPS_HAS(&ops, metrics));
    EXPECT_TRUE(VDH_OPS_HAS(&ops, revoke));
    EXPECT_TRUE(VDH_OPS_HAS(&ops, get_config));
    EXPECT_TRUE(VDH_OPS_HAS(&ops, set_config));

    FakeHost host;
    void* dev = nullptr;
    const vdh_device_ops* got = nullptr;
    ASSERT_EQ(host.create(kFullInfo, "", &dev, &got), 0) << host.err;
    ASSERT_EQ(got, &ops);
    auto* d = static_cast<FullDevice*>(dev);
    EXPECT_EQ(d->name, "dev0");
    EXPECT_EQ(d->host_dev, &host);
    EXPECT_EQ(host.reserved, 7u);
    ASSERT_EQ(host.logs.size(), 1u);
    EXPECT_EQ(host.logs[0], "5 dev0: created");

    EXPECT_EQ(ops.get_features(dev), 1ull << 3);
    vdh_queue_info q[2] = {{0, 64, 0}, {1, 128, 0}};
    EXPECT_EQ(ops.start(dev, 0x55, q, 2), 0);
    EXPECT_EQ(d->started_features, 0x55u);
    EXPECT_EQ(d->first_queue_size, 64);
    EXPECT_EQ(ops.start(dev, 0, q, 0), -EINVAL); // a Status error becomes -errno
    vdh_request req{};
    req.out_bytes = 4096;
    EXPECT_EQ(ops.handle_request(dev, &req), 4096);
    EXPECT_EQ(ops.poll(dev, 3), 4u);
    EXPECT_EQ(ops.flush(dev, 3), 5u);
    EXPECT_EQ(ops.wake_fd(dev, 1), 41);
    char stats[64];
    EXPECT_EQ(ops.stats_json(dev, stats, sizeof(stats)), 15);
    EXPECT_STREQ(stats, "{\"name\":\"dev0\"}");
    std::vector<std::string> samples;
    EXPECT_EQ(ops.metrics(
                  dev,
                  [](void* ctx, const vdh_metric* m) {
                      static_cast<std::vector<std::string>*>(ctx)->push_back(
                          std::string(m->name) + "=" + std::to_string(m->value));
                  },
                  &samples),
              0);
    EXPECT_EQ(samples, std::vector<std::string>{"test_total=5"});
    uint8_t cfg[6];
    EXPECT_EQ(ops.get_config(dev, 1, cfg, sizeof(cfg)), 4);
    EXPECT_EQ(cfg[0], 2);
    EXPECT_EQ(cfg[2], 4);
    EXPECT_EQ(cfg[3], 0);
    const uint8_t wb = 9;
    EXPECT_EQ(ops.set_config(dev, 2, &wb, 1), 0);
    EXPECT_EQ(d->config_space[2], 9);
    EXPECT_EQ(ops.set_config(dev, 0, &wb, 1), -EPERM);
    ops.stop(dev);
    ops.revoke(dev);
    ops.disconnect(dev);
    EXPECT_EQ(d->stops, 1);
    EXPECT_EQ(d->revokes, 1);
    EXPECT_EQ(d->disconnects, 1);
    ops.destroy(dev);
    EXPECT_EQ(g_live_devices, 0);
}

TEST(PluginAdapter, ExceptionsInDeviceOpsBecomeErrors) {
    const vdh_device_ops& ops = device_ops<FullDevice>;
    FakeHost host;
    void* dev = nullptr;
    const vdh_device_ops* got = nullptr;
    ASSERT_EQ(host.create(kFullInfo, "", &dev, &got), 0) << host.err;
    auto* d = static_cast<FullDevice*>(dev);
    vdh_queue_info q{0, 8, 0};
    vdh_request req{};
    char buf[16];
    uint8_t cfg[4];
    auto emit = [](void*, const vdh_metric*) {};

    d->mode = Throw::Runtime;
    EXPECT_EQ(ops.start(dev, 0, &q, 1), -EIO);
    EXPECT_EQ(ops.handle_request(dev, &req), -EIO);
    EXPECT_EQ(ops.poll(dev, 0), 0u);
    EXPECT_EQ(ops.flush(dev, 0), 0u);
    EXPECT_EQ(ops.wake_fd(dev, 0), -1);
    EXPECT_EQ(ops.get_features(dev), 0u);
    EXPECT_EQ(ops.stats_json(dev, buf, sizeof(buf)), -EIO);
    EXPECT_EQ(ops.metrics(dev, emit, nullptr), -EIO);
    EXPECT_EQ(ops.get_config(dev, 0, cfg, sizeof(cfg)), -EIO);
    EXPECT_EQ(ops.set_config(dev, 2, cfg, 1), -EIO);
    ops.stop(dev); // swallowed
    ops.disconnect(dev);
    ops.revoke(dev);
    EXPECT_EQ(d->stops, 1);
    EXPECT_EQ(d->disconnects, 1);
    EXPECT_EQ(d->revokes, 1);

    d->mode = Throw::BadAlloc;
    EXPECT_EQ(ops.start(dev, 0, &q, 1), -ENOMEM);
    EXPECT_EQ(ops.handle_request(dev, &req), -ENOMEM);
    EXPECT_EQ(ops.poll(dev, 0), 0u);
    EXPECT_EQ(ops.stats_json(dev, buf, sizeof(buf)), -ENOMEM);
    EXPECT_EQ(ops.set_config(dev, 2, cfg, 1), -ENOMEM);

    ops.destroy(dev);
    EXPECT_EQ(g_live_devices, 0);
}

TEST(PluginAdapter, CreateFailuresReturnErrnoAndText) {
    FakeHost host;
    void* dev = nullptr;
    const vdh_device_ops* ops = nullptr;

    EXPECT_EQ(host.create(kFullInfo, "fail", &dev, &ops), -EINVAL);
    EXPECT_STREQ(host.err, "devices.yaml:1:1: config.size: not a number");
    EXPECT_EQ(host.create(kFullInfo, "throw", &dev, &ops), -EINVAL);
    EXPECT_STREQ(host.err, "config.path: no such file");
    EXPECT_EQ(host.create(kFullInfo, "oom", &dev, &ops), -ENOMEM);
    EXPECT_STREQ(host.err, "out of memory");
    EXPECT_EQ(host.create(kFullInfo, "errno", &dev, &ops), -ENODEV);
    EXPECT_STREQ(host.err, std::strerror(ENODEV)); // an error without text gets strerror's
    EXPECT_EQ(host.create(kFullInfo, "null", &dev, &ops), -EIO);
    EXPECT_STREQ(host.err, "create() returned no device");
    // reserve_fds: the host's errno and message, untouched.
    EXPECT_EQ(host.create(kFullInfo, "reserve-many", &dev, &ops), -EMFILE);
    EXPECT_STREQ(host.err, "1000 fds do not fit");
    EXPECT_EQ(dev, nullptr);
    EXPECT_EQ(ops, nullptr);
    EXPECT_EQ(g_live_devices, 0);
    EXPECT_EQ(host.reserved, 0u);

    // A message longer than the buffer is cut, still NUL-terminated.
    char small[8];
    const std::string cfg = "throw";
    EXPECT_EQ(kFullInfo.create(&host.api, &host, "d", cfg.data(), cfg.size(), "x.yaml", &dev,
                               &ops, small, sizeof(small)),
              -EINVAL);
    EXPECT_STREQ(small, "config.");
}

TEST(PluginAdapter, CreateSeesCheckOnlyAndOldHosts) {
    FakeHost host;
    host.api.flags = VDH_HOST_CHECK_ONLY;
    void* dev = nullptr;
    const vdh_device_ops* ops = nullptr;
    ASSERT_EQ(host.create(kFullInfo, "", &dev, &ops), 0) << host.err;
    ASSERT_EQ(host.logs.size(), 1u);
    EXPECT_EQ(host.logs[0], "5 dev0: trial");
    ops->destroy(dev);

    // A 1.0 host table ends before reserve_fds: nothing is reserved, create succeeds.
    FakeHost old;
    old.api.abi_minor = 0;
    old.api.struct_size = offsetof(vdh_host_api, reserve_fds);
    ASSERT_EQ(old.create(kFullInfo, "reserve-many", &dev, &ops), 0) << old.err;
    EXPECT_EQ(old.reserved, 0u);
    ops->destroy(dev);
    EXPECT_EQ(g_live_devices, 0);
}

TEST(PluginAdapter, CheckConfigReturnsErrnoAndText) {
    char err[128] = "stale";
    const std::string good = "good";
    EXPECT_EQ(kFullInfo.check_config(good.data(), good.size(), "c.yaml", err, sizeof(err)), 0);
    EXPECT_STREQ(err, "");
    const std::string bad = "bad";
    EXPECT_EQ(kFullInfo.check_config(bad.data(), bad.size(), "c.yaml", err, sizeof(err)),
              -EINVAL);
    EXPECT_STREQ(err, "c.yaml:2:3: config.mode: unknown");
    const std::string thrower = "throw";
    EXPECT_EQ(
        kFullInfo.check_config(thrower.data(), thrower.size(), "c.yaml", err, sizeof(err)),
        -EINVAL);
    EXPECT_STREQ(err, "config.mode: broken");
}

TEST(PluginAdapter, HostPathsAddsDirectoriesAndCatchesExceptions) {
    using Paths = std::vector<std::pair<std::string, uint32_t>>;
    auto add = [](void* ctx, const char* path, uint32_t flags) {
        static_cast<Paths*>(ctx)->emplace_back(path, flags);
    };
    Paths paths;
    char err[64] = "stale";
    EXPECT_EQ(kFullInfo.host_paths("", 0, "h.yaml", add, &paths, err, sizeof(err)), 0);
    EXPECT_EQ(paths, (Paths{{"/srv/a", VDH_HOST_PATH_READONLY}, {"/srv/b", 0u}}));
    EXPECT_STREQ(err, "");
    const std::string oom = "oom";
    EXPECT_EQ(kFullInfo.host_paths(oom.data(), oom.size(), "h.yaml", add, &paths, err,
                                   sizeof(err)),
              -ENOMEM);
    EXPECT_STREQ(err, "out of memory");
}

} // namespace
} // namespace vdh

// SPDX-License-Identifier: MIT
// The plugin adapter: makes the C plugin ABI (vdh/plugin_abi.h) out of a C++ class, so that
// a device plugin is a class and not a page of noexcept trampolines. Header-only; plugins
// include it, the host never does (it only sees the C tables this fills).
//
// Contract. A plugin is a class T whose members carry the op names of vdh_device_ops, with
// the op's parameters after `void* dev` (the adapter passes *static_cast<T*>(dev)):
//
//   required
//     static vdh::Result<std::unique_ptr<T>> create(vdh::CreateContext& ctx);
//     int|vdh::Status start(uint64_t features, const vdh_queue_info* queues, uint16_t n);
//     void stop();
//     int64_t handle_request(const vdh_request* req);          // hot path
//   optional (the op stays NULL in the table when T has no such member)
//     static vdh::Status check_config(vdh::ConfigContext& ctx);
//     static vdh::Status host_paths(vdh::HostPathsContext& ctx); // ctx.add(path, flags)
//     uint64_t get_features();
//     uint32_t poll(uint16_t queue);                           // hot path
//     uint32_t flush(uint16_t queue);                          // hot path
//     int wake_fd(uint16_t queue);
//     int stats_json(char* buf, size_t len);
//     void disconnect();
//     int metrics(vdh_metric_emit_fn emit, void* ctx);
//     void revoke();
//     int get_config(uint32_t offset, uint8_t* buf, uint32_t len);
//     int|vdh::Status set_config(uint32_t offset, const uint8_t* buf, uint32_t len);
//   destroy is `delete` of the T that create() returned.
//
// Members may be const and should be noexcept where they cannot throw. The threads, return
// values and rules of each op are those of vdh_device_ops. A member with an op's name but
// the wrong signature is a compile error, not a silently missing op. "int|vdh::Status" means
// either: an int is returned as is (0 or -errno), a Status as 0 or -error().
//
// Exceptions stop at the boundary; every trampoline is noexcept. An op that returns -errno
// returns -ENOMEM for std::bad_alloc and -EIO for any other exception; poll and flush return
// 0, wake_fd -1, get_features 0, and stop, disconnect and revoke swallow the exception.
// create, check_config and host_paths return -ENOMEM ("out of memory") for std::bad_alloc and
// -EINVAL for any other exception, with its what() as the error text.
//
// Hot path: handle_request, poll and flush are a static_cast and a direct call of T's member
// (no std::function, no virtual call); when the member is noexcept there is no handler at
// all, and otherwise the handler costs nothing until something throws.
//
// Use:
//   constexpr vdh_plugin_info kInfo = vdh::make_plugin_info<MyDevice>(
//       {.name = "mydev", .version = "1.0", .virtio_device_id = 2, .min_queues = 1});
//   extern "C" VDH_EXPORT const vdh_plugin_info* vdh_plugin_entry(void) { return &kInfo; }
#pragma once

#include <cerrno>
#include <concepts>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string_view>

#include "vdh/plugin_abi.h"
#include "vdh/result.h"

namespace vdh {

/// The error side of a static plugin call (create, check_config, host_paths): the caller's
/// error buffer, which the message of a failed call goes into (NUL-terminated, cut to fit).
/// The adapter makes one per call and empties the buffer first.
class PluginCallContext {
public:
    PluginCallContext(char* err, size_t err_len) noexcept : err_(err), err_len_(err_len) {
        if (err_ != nullptr && err_len_ > 0) {
            err_[0] = '\0';
        }
    }

    /// Writes \p msg as the call's error text and returns Err{\p code} (a positive errno;
    /// EINVAL when it is not), for `return ctx.fail(EINVAL, msg);`. Bad config input names
    /// file:line:column and the key in \p msg.
    Err fail(int code, std::string_view msg) const noexcept {
        if (err_ != nullptr && err_len_ > 0) {
            const size_t n = msg.size() < err_len_ - 1 ? msg.size() : err_len_ - 1;
            std::memcpy(err_, msg.data(), n);
            err_[n] = '\0';
        }
        return Err{code > 0 ? code : EINVAL};
    }
    /// fail() with a printf-style message.
    __attribute__((format(printf, 3, 4))) Err failf(int code, const char* fmt, ...) const noexcept {
        if (err_ != nullptr && err_len_ > 0) {
            va_list ap;
            va_start(ap, fmt);
            std::vsnprintf(err_, err_len_, fmt, ap);
            va_end(ap);
        }
        return Err{code > 0 ? code : EINVAL};
    }
    /// True when the error buffer holds a message.
    bool has_error_text() const noexcept {
        return err_ != nullptr && err_len_ > 0 && err_[0] != '\0';
    }
    /// The raw error buffer, for C calls that write a message themselves.
    char* err_buf() const noexcept { return err_; }
    size_t err_len() const noexcept { return err_len_; }

private:
    char* err_;
    size_t err_len_;
};

/// What check_config() gets: the device's `config:` block.
class ConfigContext : public PluginCallContext {
public:
    ConfigContext(std::string_view config_text, const char* config_origin, char* err,
                  size_t err_len) noexcept
        : PluginCallContext(err, err_len), config(config_text),
          origin(config_origin != nullptr ? config_origin : "") {}

    /// The device's `config:` block as YAML text, with the line and column layout of the
    /// file \p origin (the rest blanked); may be all blank. Valid during the call.
    std::string_view config;
    /// The config file's name, for file:line:column in messages. NUL-terminated.
    const char* origin;
};

/// What host_paths() gets: the config block and the sink for the directories it needs.
class HostPathsContext : public ConfigContext {
public:
    HostPathsContext(std::string_view config_text, const char* config_origin,
                     void (*add)(void* ctx, const char* path, uint32_t flags), void* add_ctx,
                     char* err, size_t err_len) noexcept
        : ConfigContext(config_text, config_origin, err, err_len), add_(add), add_ctx_(add_ctx) {}

    /// Names one host directory the device needs inside the sandbox; \p flags is
    /// VDH_HOST_PATH_* bits. The host copies \p path during the call.
    void add(const char* path, uint32_t flags = 0) const { add_(add_ctx_, path, flags); }

private:
    void (*add_)(void* ctx, const char* path, uint32_t flags);
    void* add_ctx_;
};

/// What create() gets: the host, the device's name and its config block.
class CreateContext : public ConfigContext {
public:
    CreateContext(const vdh_host_api* host_api, void* host_device, const char* name,
                  std::string_view config_text, const char* config_origin, char* err,
                  size_t err_len) noexcept
        : ConfigContext(config_text, config_origin, err, err_len), host(host_api),
          host_dev(host_device), device_name(name != nullptr ? name : "") {}

    /// Host services; valid for the device's whole life (keep the pointer).
    const vdh_host_api* host;
    /// The host's handle of this device (for wake(), reserve_fds()); valid as long as host.
    void* host_dev;
    /// The device's name from the config. NUL-terminated (data() is a C string); valid during
    /// the call only.
    std::string_view device_name;

    /// True for a `vdhost --check-config` trial (VDH_HOST_CHECK_ONLY): check what the device
    /// would create on the host, create nothing; still reserve the fds.
    bool check_only() const noexcept { return (host->flags & VDH_HOST_CHECK_ONLY) != 0; }
    /// vdh_host_api::reserve_fds for this device. On failure the host's message is already
    /// the call's error text: `VDH_TRY(ctx.reserve_fds(n));`. Success on a host older than
    /// ABI 1.1, which has no reservations.
    Status reserve_fds(uint64_t n) const noexcept {
        if (!VDH_HOST_HAS(host, reserve_fds)) {
            return ok();
        }
        const int rc = host->reserve_fds(host_dev, n, err_buf(), err_len());
        if (rc == 0) {
            return ok();
        }
        return Err{rc < 0 ? -rc : EMFILE};
    }
    /// Writes one log line under the device's name (vdh_host_api::log). Control thread.
    void log(int level, const char* msg) const noexcept {
        if (host->log != nullptr) {
            host->log(host->host, level, device_name.data(), msg);
        }
    }
};

/// The static facts of a plugin that make_plugin_info() puts into vdh_plugin_info.
struct PluginDescription {
    const char* name = nullptr;    ///< matches devices[].type in the YAML config
    const char* version = nullptr; ///< free-form
    uint32_t virtio_device_id = 0; ///< e.g. 26 for virtio-fs, 2 for virtio-blk
    uint64_t device_features = 0;  ///< device-specific virtio feature bits offered
    uint32_t request_ctx_size = 0; ///< per-request context bytes the host pre-allocates
    uint32_t min_queues = 1;       ///< fewest virtqueues a session must have
};

namespace adapter_detail {

template <typename R>
concept ErrnoOrStatus = std::same_as<R, Status> || std::convertible_to<R, int>;

inline int to_errno(Status s) noexcept { return s ? 0 : -s.error(); }
template <std::convertible_to<int> R>
inline int to_errno(R r) noexcept {
    return static_cast<int>(r);
}

// One concept per op: T has the member with a usable signature. Has*Name: T has a member of
// that name at all (a non-overloaded one), so a wrong signature can be reported.
template <typename T>
concept HasCreate = requires(CreateContext& c) {
    { T::create(c) } -> std::same_as<Result<std::unique_ptr<T>>>;
};
template <typename T>
concept HasStart = requires(T& t, uint64_t f, const vdh_queue_info* q, uint16_t n) {
    { t.start(f, q, n) } -> ErrnoOrStatus;
};
template <typename T>
concept HasStop = requires(T& t) { t.stop(); };
template <typename T>
concept HasHandleRequest = requires(T& t, const vdh_request* r) {
    { t.handle_request(r) } -> std::convertible_to<int64_t>;
};
template <typename T>
concept HasCheckConfig = requires(ConfigContext& c) {
    { T::check_config(c) } -> std::same_as<Status>;
};
template <typename T>
concept HasCheckConfigName = requires { &T::check_config; };
template <typename T>
concept HasHostPaths = requires(HostPathsContext& c) {
    { T::host_paths(c) } -> std::same_as<Status>;
};
template <typename T>
concept HasHostPathsName = requires { &T::host_paths; };
template <typename T>
concept HasGetFeatures = requires(T& t) {
    { t.get_features() } -> std::convertible_to<uint64_t>;
};
template <typename T>
concept HasGetFeaturesName = requires { &T::get_features; };
template <typename T>
concept HasPoll = requires(T& t, uint16_t q) {
    { t.poll(q) } -> std::convertible_to<uint32_t>;
};
template <typename T>
concept HasPollName = requires { &T::poll; };
template <typename T>
concept HasFlush = requires(T& t, uint16_t q) {
    { t.flush(q) } -> std::convertible_to<uint32_t>;
};
template <typename T>
concept HasFlushName = requires { &T::flush; };
template <typename T>
concept HasWakeFd = requires(T& t, uint16_t q) {
    { t.wake_fd(q) } -> std::convertible_to<int>;
};
template <typename T>
concept HasWakeFdName = requires { &T::wake_fd; };
template <typename T>
concept HasStatsJson = requires(T& t, char* b, size_t n) {
    { t.stats_json(b, n) } -> std::convertible_to<int>;
};
template <typename T>
concept HasStatsJsonName = requires { &T::stats_json; };
template <typename T>
concept HasDisconnect = requires(T& t) { t.disconnect(); };
template <typename T>
concept HasDisconnectName = requires { &T::disconnect; };
template <typename T>
concept HasMetrics = requires(T& t, vdh_metric_emit_fn emit, void* ctx) {
    { t.metrics(emit, ctx) } -> std::convertible_to<int>;
};
template <typename T>
concept HasMetricsName = requires { &T::metrics; };
template <typename T>
concept HasRevoke = requires(T& t) { t.revoke(); };
template <typename T>
concept HasRevokeName = requires { &T::revoke; };
template <typename T>
concept HasGetConfig = requires(T& t, uint32_t off, uint8_t* b, uint32_t n) {
    { t.get_config(off, b, n) } -> std::convertible_to<int>;
};
template <typename T>
concept HasGetConfigName = requires { &T::get_config; };
template <typename T>
concept HasSetConfig = requires(T& t, uint32_t off, const uint8_t* b, uint32_t n) {
    { t.set_config(off, b, n) } -> ErrnoOrStatus;
};
template <typename T>
concept HasSetConfigName = requires { &T::set_config; };

/// Runs \p f, turning an exception into -ENOMEM (std::bad_alloc) or -EIO.
template <typename F>
inline int errno_boundary(F&& f) noexcept {
    try {
        return f();
    } catch (const std::bad_alloc&) {
        return -ENOMEM;
    } catch (...) {
        return -EIO;
    }
}

/// Runs \p f, swallowing any exception (for ops without a result).
template <typename F>
inline void void_boundary(F&& f) noexcept {
    try {
        f();
    } catch (...) {
    }
}

/// Runs the body of a static call, turning an exception into -ENOMEM or -EINVAL with its
/// text; an error without text gets strerror's.
template <typename F>
inline int static_boundary(PluginCallContext& ctx, F&& f) noexcept {
    try {
        const int rc = f();
        if (rc < 0 && !ctx.has_error_text()) {
            (void)ctx.fail(-rc, std::strerror(-rc));
        }
        return rc;
    } catch (const std::bad_alloc&) {
        (void)ctx.fail(ENOMEM, "out of memory");
        return -ENOMEM;
    } catch (const std::exception& e) {
        (void)ctx.fail(EINVAL, e.what());
        return -EINVAL;
    } catch (...) {
        (void)ctx.fail(EINVAL, "unknown exception");
        return -EINVAL;
    }
}

template <typename T>
struct Trampolines {
    static T& self(void* dev) noexcept { return *static_cast<T*>(dev); }

    static int start(void* dev, uint64_t features, const vdh_queue_info* queues,
                     uint16_t n) noexcept {
        return errno_boundary([&] { return to_errno(self(dev).start(features, queues, n)); });
    }
    static void stop(void* dev) noexcept {
        void_boundary([&] { self(dev).stop(); });
    }
    static int64_t handle_request(void* dev, const vdh_request* req) noexcept {
        // Hot path: a direct call; a handler only when the member may throw.
        if constexpr (noexcept(self(dev).handle_request(req))) {
            return self(dev).handle_request(req);
        } else {
            try {
                return self(dev).handle_request(req);
            } catch (const std::bad_alloc&) {
                return -ENOMEM;
            } catch (...) {
                return -EIO;
            }
        }
    }
    static uint32_t poll(void* dev, uint16_t queue) noexcept {
        // Hot path, as handle_request.
        if constexpr (noexcept(self(dev).poll(queue))) {
            return self(dev).poll(queue);
        } else {
            try {
                return self(dev).poll(queue);
            } catch (...) {
                return 0;
            }
        }
    }
    static uint32_t flush(void* dev, uint16_t queue) noexcept {
        // Hot path, as handle_request.
        if constexpr (noexcept(self(dev).flush(queue))) {
            return self(dev).flush(queue);
        } else {
            try {
                return self(dev).flush(queue);
            } catch (...) {
                return 0;
            }
        }
    }
    static void destroy(void* dev) noexcept { delete static_cast<T*>(dev); }
    static uint64_t get_features(void* dev) noexcept {
        try {
            return self(dev).get_features();
        } catch (...) {
            return 0;
        }
    }
    static int wake_fd(void* dev, uint16_t queue) noexcept {
        try {
            return self(dev).wake_fd(queue);
        } catch (...) {
            return -1;
        }
    }
    static int stats_json(void* dev, char* buf, size_t len) noexcept {
        return errno_boundary([&] { return static_cast<int>(self(dev).stats_json(buf, len)); });
    }
    static void disconnect(void* dev) noexcept {
        void_boundary([&] { self(dev).disconnect(); });
    }
    static int metrics(void* dev, vdh_metric_emit_fn emit, void* ctx) noexcept {
        return errno_boundary([&] { return static_cast<int>(self(dev).metrics(emit, ctx)); });
    }
    static void revoke(void* dev) noexcept {
        void_boundary([&] { self(dev).revoke(); });
    }
    static int get_config(void* dev, uint32_t offset, uint8_t* buf, uint32_t len) noexcept {
        return errno_boundary(
            [&] { return static_cast<int>(self(dev).get_config(offset, buf, len)); });
    }
    static int set_config(void* dev, uint32_t offset, const uint8_t* buf, uint32_t len) noexcept {
        return errno_boundary([&] { return to_errno(self(dev).set_config(offset, buf, len)); });
    }

    static int create(const vdh_host_api* host, void* host_dev, const char* name,
                      const char* config, size_t config_len, const char* origin, void** dev_out,
                      const vdh_device_ops** ops_out, char* err, size_t err_len) noexcept;
    static int check_config(const char* config, size_t config_len, const char* origin,
                            char* err, size_t err_len) noexcept {
        ConfigContext ctx(std::string_view(config, config_len), origin, err, err_len);
        return static_boundary(ctx, [&] { return to_errno(T::check_config(ctx)); });
    }
    static int host_paths(const char* config, size_t config_len, const char* origin,
                          void (*add)(void* ctx, const char* path, uint32_t flags), void* add_ctx,
                          char* err, size_t err_len) noexcept {
        HostPathsContext ctx(std::string_view(config, config_len), origin, add, add_ctx, err,
                             err_len);
        return static_boundary(ctx, [&] { return to_errno(T::host_paths(ctx)); });
    }
};

/// Builds T's table; each optional op only when T has the member.
template <typename T>
constexpr vdh_device_ops make_device_ops() noexcept {
    static_assert(HasStart<T>, "a plugin class needs int|vdh::Status start(uint64_t features, "
                               "const vdh_queue_info* queues, uint16_t n)");
    static_assert(HasStop<T>, "a plugin class needs void stop()");
    static_assert(HasHandleRequest<T>,
                  "a plugin class needs int64_t handle_request(const vdh_request* req)");
    static_assert(!HasGetFeaturesName<T> || HasGetFeatures<T>,
                  "get_features must be uint64_t get_features()");
    static_assert(!HasPollName<T> || HasPoll<T>, "poll must be uint32_t poll(uint16_t queue)");
    static_assert(!HasFlushName<T> || HasFlush<T>,
                  "flush must be uint32_t flush(uint16_t queue)");
    static_assert(!HasWakeFdName<T> || HasWakeFd<T>, "wake_fd must be int wake_fd(uint16_t)");
    static_assert(!HasStatsJsonName<T> || HasStatsJson<T>,
                  "stats_json must be int stats_json(char* buf, size_t len)");
    static_assert(!HasDisconnectName<T> || HasDisconnect<T>, "disconnect must be void()");
    static_assert(!HasMetricsName<T> || HasMetrics<T>,
                  "metrics must be int metrics(vdh_metric_emit_fn emit, void* ctx)");
    static_assert(!HasRevokeName<T> || HasRevoke<T>, "revoke must be void()");
    static_assert(!HasGetConfigName<T> || HasGetConfig<T>,
                  "get_config must be int get_config(uint32_t offset, uint8_t* buf, uint32_t len)");
    static_assert(!HasSetConfigName<T> || HasSetConfig<T>,
                  "set_config must be int|vdh::Status set_config(uint32_t offset, "
                  "const uint8_t* buf, uint32_t len)");
    using Tr = Trampolines<T>;
    vdh_device_ops ops{};
    ops.struct_size = sizeof(vdh_device_ops);
    ops.start = &Tr::start;
    ops.stop = &Tr::stop;
    ops.handle_request = &Tr::handle_request;
    ops.destroy = &Tr::destroy;
    if constexpr (HasGetFeatures<T>) {
        ops.get_features = &Tr::get_features;
    }
    if constexpr (HasPoll<T>) {
        ops.poll = &Tr::poll;
    }
    if constexpr (HasWakeFd<T>) {
        ops.wake_fd = &Tr::wake_fd;
    }
    if constexpr (HasStatsJson<T>) {
        ops.stats_json = &Tr::stats_json;
    }
    if constexpr (HasDisconnect<T>) {
        ops.disconnect = &Tr::disconnect;
    }
    if constexpr (HasFlush<T>) {
        ops.flush = &Tr::flush;
    }
    if constexpr (HasMetrics<T>) {
        ops.metrics = &Tr::metrics;
    }
    if constexpr (HasRevoke<T>) {
        ops.revoke = &Tr::revoke;
    }
    if constexpr (HasGetConfig<T>) {
        ops.get_config = &Tr::get_config;
    }
    if constexpr (HasSetConfig<T>) {
        ops.set_config = &Tr::set_config;
    }
    return ops;
}

} // namespace adapter_detail

/// The vdh_device_ops table of plugin class T (static storage; what create() hands out).
template <typename T>
inline constexpr vdh_device_ops device_ops = adapter_detail::make_device_ops<T>();

namespace adapter_detail {

template <typename T>
int Trampolines<T>::create(const vdh_host_api* host, void* host_dev, const char* name,
                           const char* config, size_t config_len, const char* origin,
                           void** dev_out, const vdh_device_ops** ops_out, char* err,
                           size_t err_len) noexcept {
    CreateContext ctx(host, host_dev, name, std::string_view(config, config_len), origin, err,
                      err_len);
    return static_boundary(ctx, [&] {
        Result<std::unique_ptr<T>> r = T::create(ctx);
        if (!r) {
            return -r.error();
        }
        if (*r == nullptr) {
            (void)ctx.fail(EIO, "create() returned no device");
            return -EIO;
        }
        *dev_out = r->release();
        *ops_out = &device_ops<T>;
        return 0;
    });
}

} // namespace adapter_detail

/// Fills the vdh_plugin_info of plugin class T: \p d's facts, the ABI version this was built
/// against, and create (plus check_config and host_paths when T has them). Keep the result
/// in static storage: the entry point returns its address.
template <typename T>
constexpr vdh_plugin_info make_plugin_info(const PluginDescription& d) noexcept {
    using namespace adapter_detail;
    static_assert(HasCreate<T>, "a plugin class needs static vdh::Result<std::unique_ptr<T>> "
                                "create(vdh::CreateContext& ctx)");
    static_assert(!HasCheckConfigName<T> || HasCheckConfig<T>,
                  "check_config must be static vdh::Status check_config(vdh::ConfigContext&)");
    static_assert(!HasHostPathsName<T> || HasHostPaths<T>,
                  "host_paths must be static vdh::Status host_paths(vdh::HostPathsContext&)");
    vdh_plugin_info info{};
    info.struct_size = sizeof(vdh_plugin_info);
    info.abi_major = VDH_ABI_MAJOR;
    info.abi_minor = VDH_ABI_MINOR;
    info.virtio_device_id = d.virtio_device_id;
    info.name = d.name;
    info.version = d.version;
    info.device_features = d.device_features;
    info.request_ctx_size = d.request_ctx_size;
    info.min_queues = d.min_queues;
    info.create = &Trampolines<T>::create;
    if constexpr (HasCheckConfig<T>) {
        info.check_config = &Trampolines<T>::check_config;
    }
    if constexpr (HasHostPaths<T>) {
        info.host_paths = &Trampolines<T>::host_paths;
    }
    return info;
}

} // namespace vdh

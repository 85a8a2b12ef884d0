// SPDX-License-Identifier: MIT
// The vdhost plugin ABI: the C boundary between the host process and a device
// plugin (a shared object loaded with dlopen). Nothing C++ crosses it: no
// exceptions, no std:: types. The host owns vhost-user, guest memory, the
// virtqueues and notifications; a plugin sees each request as bounds-checked
// iovec lists and completes it synchronously or later via vdh_host_api.
#ifndef VDH_PLUGIN_ABI_H
#define VDH_PLUGIN_ABI_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Bumped on any incompatible change; the host refuses a plugin whose major differs.
#define VDH_ABI_MAJOR 1
/// Bumped when fields are appended; a host tolerates plugins built for an older minor.
/// 1: vdh_host_api::reserve_fds, vdh_plugin_info::host_paths.
/// 2: vdh_device_ops::flush.
/// 3: vdh_device_ops::metrics, vdh_host_api::tsc_hz.
/// 4: vdh_device_ops::revoke.
/// 5: vdh_device_ops::get_config.
/// 6: vdh_device_ops::set_config.
#define VDH_ABI_MINOR 6

/// Name of the one symbol every plugin exports.
#define VDH_PLUGIN_ENTRY_SYMBOL "vdh_plugin_entry"

/// Returned by handle_request when the plugin will call vdh_host_api::complete later.
/// It lies outside the errno range so it cannot be confused with -errno.
#define VDH_ASYNC (-100000)

/// Log levels, as in syslog.
enum vdh_log_level {
    VDH_LOG_ERR = 3,
    VDH_LOG_WARNING = 4,
    VDH_LOG_NOTICE = 5,
    VDH_LOG_INFO = 6,
    VDH_LOG_DEBUG = 7,
};

/// One descriptor chain, as the host parsed and validated it. Owned by the host; valid
/// until the request is completed (returned from handle_request with a value other than
/// VDH_ASYNC, or passed to complete()).
struct vdh_request {
    const struct iovec* in;  ///< device-readable buffers (guest → device), in chain order
    uint32_t n_in;
    const struct iovec* out; ///< device-writable buffers (device → guest), in chain order
    uint32_t n_out;
    uint64_t in_bytes;       ///< sum of in[].iov_len
    uint64_t out_bytes;      ///< sum of out[].iov_len
    uint16_t queue;          ///< virtqueue index
    uint16_t reserved0;
    uint32_t reserved1;
    void* ctx;               ///< request_ctx_size bytes owned by the plugin, pre-allocated
    void* token;             ///< opaque; pass to vdh_host_api::complete for async completion
};

/// What the host tells the plugin about one virtqueue when a device starts.
struct vdh_queue_info {
    uint16_t index;          ///< virtqueue index
    uint16_t size;           ///< ring size (number of descriptors)
    uint32_t cpu;            ///< CPU of the poll lcore that serves this queue
};

/// Host services handed to a plugin at create(). A field appended in a later minor exists
/// only when struct_size covers it: a plugin built for a newer minor checks struct_size
/// (e.g. with VDH_HOST_HAS(api, reserve_fds)) before calling it, since an older host's
/// table ends before it.
struct vdh_host_api {
    uint32_t struct_size;
    uint32_t abi_major;
    uint32_t abi_minor;
    /// VDH_HOST_* bits. It was `reserved` (always 0) before: a plugin may read it whatever
    /// the host's minor, and a host that knows no flag passes 0.
    uint32_t flags;
    void* host;              ///< first argument of log()
    /// Writes one log line (no trailing newline needed). Any thread. Not for per-request use.
    void (*log)(void* host, int level, const char* device, const char* msg);
    /// Completes a request that handle_request answered with VDH_ASYNC. \p written is the
    /// number of bytes written into the request's out buffers (>= 0), or -errno to return the
    /// chain with zero bytes written. Callable from any thread, exactly once per request.
    /// From the queue's own poll lcore it publishes directly; from other threads it goes
    /// through a lock-free ring drained by that lcore.
    void (*complete)(void* token, int64_t written);
    /// Wakes the poll lcore that serves \p queue of \p host_dev (e.g. after work finished on
    /// another thread outside complete()). Any thread.
    void (*wake)(void* host_dev, uint16_t queue);
    /// ABI 1.1. Reserves \p n file descriptors of the process for \p host_dev, for the
    /// device's lifetime: everything it may hold open at once (guest-driven files up to its
    /// budget, plus its own rings, eventfds and threads' fds). Call it from create(); the
    /// host adds every device's reservation to its own reserve and refuses to start when the
    /// total exceeds what RLIMIT_NOFILE allows, so one device's fds never take another's.
    /// Returns 0, or -EMFILE with a message naming the numbers written into \p err (at most
    /// \p err_len bytes, NUL-terminated) that create() should return as its own error.
    /// Control thread, during create() only (-EPERM otherwise).
    int (*reserve_fds)(void* host_dev, uint64_t n, char* err, size_t err_len);
    /// ABI 1.3. Ticks per second of the time-stamp counter (rdtsc) on this machine, for
    /// plugins that time requests in TSC cycles; 0 when unknown.
    uint64_t tsc_hz;
};

/// vdh_host_api::flags: this create() is a trial of `vdhost --check-config` (the device is
/// destroyed without serving; it still reserves its fds). The plugin should check what it
/// would create on the host without creating it.
#define VDH_HOST_CHECK_ONLY 1u

/// True when \p api (a const struct vdh_host_api*) has the field \p field (a later minor).
#define VDH_HOST_HAS(api, field)                                                                \
    ((api)->struct_size >= offsetof(struct vdh_host_api, field) + sizeof((api)->field) &&      \
     (api)->field != NULL)

/// Kinds of vdh_metric (ABI 1.3).
enum vdh_metric_kind {
    VDH_METRIC_COUNTER = 0,   ///< only grows (over the device's life)
    VDH_METRIC_GAUGE = 1,     ///< a current value
    VDH_METRIC_HISTOGRAM = 2, ///< observations in buckets (Prometheus histogram)
};

/// One metric sample a plugin reports through vdh_device_ops::metrics (ABI 1.3). The host
/// prefixes the name with "vdhost_" and adds the label device="<name>"; it exports the
/// sample through DPDK telemetry and the Prometheus endpoint. Strings are only read during
/// the emit call.
struct vdh_metric {
    const char* name;   ///< family name, [a-z_][a-z0-9_]* (counters end in "_total")
    const char* help;   ///< one line describing the family
    uint32_t kind;      ///< enum vdh_metric_kind
    uint32_t n_buckets; ///< histogram: entries of bucket_le and buckets (+Inf is implied)
    /// Further labels as Prometheus writes them, without braces: `opcode="READ",errno="2"`;
    /// "" for none. Label values must not contain '"', '\\' or a line break.
    const char* labels;
    uint64_t value;            ///< counter or gauge value; histogram: number of observations
    double sum;                ///< histogram: sum of the observations
    const double* bucket_le;   ///< histogram: upper bounds, increasing
    const uint64_t* buckets;   ///< histogram: cumulative count of observations <= bucket_le[i]
};

/// The host's sink for metric samples (see vdh_device_ops::metrics).
typedef void (*vdh_metric_emit_fn)(void* ctx, const struct vdh_metric* m);

/// Per-device function table. Threads: "control" is the host's control thread (vhost-user
/// message handling); "lcore" is the poll lcore serving the queue named in the call.
struct vdh_device_ops {
    uint32_t struct_size;
    uint32_t reserved;
    /// Optional. Virtio feature bits this device offers on top of the plugin's
    /// device_features (e.g. depending on its config). Control thread.
    uint64_t (*get_features)(void* dev);
    /// Required. The guest driver is ready: \p features were negotiated and the queues
    /// are set up. Called before any request of this session arrives. Control thread.
    /// Returns 0 or -errno (the device then stays stopped).
    int (*start)(void* dev, uint64_t features, const struct vdh_queue_info* queues,
                 uint16_t num_queues);
    /// Required. The session ends (disconnect, reset, memory-table change). The host has
    /// already stopped taking new requests. The plugin must make every outstanding async
    /// request complete soon (cancel blocking waits); the host keeps calling poll() and
    /// waits for all completions before it releases guest memory. Control thread.
    void (*stop)(void* dev);
    /// Required. One request. Returns the bytes written to req->out (>= 0) when done now,
    /// VDH_ASYNC when complete() will be called later, or -errno to return the chain with
    /// zero bytes written. Lcore. Must not block, allocate on the data path, or throw.
    int64_t (*handle_request)(void* dev, const struct vdh_request* req);
    /// Optional. Called on every loop iteration of the queue's lcore (e.g. to reap
    /// io_uring completions). Returns the amount of work done (0 = idle). Lcore.
    uint32_t (*poll)(void* dev, uint16_t queue);
    /// Optional. An fd the lcore should also wait on while it sleeps (e.g. an io_uring
    /// eventfd), or -1. Called after start() on the control thread.
    int (*wake_fd)(void* dev, uint16_t queue);
    /// Optional. Writes a NUL-terminated JSON object with plugin statistics into \p buf
    /// (at most \p len bytes). Returns the length written or -errno. Any thread.
    int (*stats_json)(void* dev, char* buf, size_t len);
    /// Required. Frees the device. Called once, after stop(). Control thread.
    void (*destroy)(void* dev);
    /// Optional. The frontend disconnected (after stop()): drop per-connection state, such
    /// as a protocol session and what the guest held through it. Control thread.
    void (*disconnect)(void* dev);
    /// Optional (ABI 1.2). The end of a batch: called on the queue's lcore after every poll
    /// pass that handed the plugin at least one request, before the host publishes the
    /// used entries and notifies the guest (once for the whole pass). A plugin that queued
    /// work in handle_request (io_uring SQEs, say) submits it here in one go, so a batch of
    /// requests costs one system call. Returns the amount of work done. A host older than
    /// 1.2 (vdh_host_api::abi_minor < 2) never calls it: the plugin must then submit from
    /// handle_request itself. Lcore. Must not block, allocate or throw.
    uint32_t (*flush)(void* dev, uint16_t queue);
    /// Optional (ABI 1.3). Reports the plugin's metrics: calls emit(ctx, m) once per sample,
    /// the samples of one family one after another. Returns 0 or -errno. Any thread (the
    /// host's telemetry and metrics threads): it must only read counters, never take a lock
    /// a poll lcore takes, and not block.
    int (*metrics)(void* dev, vdh_metric_emit_fn emit, void* ctx);
    /// Optional (ABI 1.4). The device is being removed while a frontend is still attached:
    /// from now on the plugin answers every request with its protocol's error (virtio-fs:
    /// EIO), starts no new session, and drops what it held for the guest (a protocol
    /// session, open files). It keeps answering until the frontend goes; then the host calls
    /// stop(), disconnect() and destroy() as usual. Called with no request in flight (the
    /// queues are drained around it). Control thread. A plugin without it is simply
    /// disconnected on removal.
    void (*revoke)(void* dev);
    /// Optional (ABI 1.5). The device's virtio configuration space (virtio-fs: struct
    /// virtio_fs_config, the tag and the number of request queues), for a frontend that
    /// reads it with vhost-user GET_CONFIG. Writes \p len bytes, from byte \p offset of the
    /// space, into \p buf (bytes past the end of the space are 0) and returns the size of
    /// the space; \p len 0 only asks for the size. Returns -errno on failure (the host then
    /// answers GET_CONFIG with an empty payload). The host asks for the size when it
    /// registers the device's socket (after create()) and before each GET_CONFIG: only a
    /// device that reports a space of 1 byte or more is offered the CONFIG protocol feature
    /// and has GET_CONFIG answered (a plugin may keep it off by default: QEMU 7.2 masks it
    /// with a warning for devices it serves itself, such as vhost-user-fs, and 7.1 to 8.0
    /// may crash).
    /// Control thread (vhost-user messages); must not block.
    int (*get_config)(void* dev, uint32_t offset, uint8_t* buf, uint32_t len);
    /// Optional (ABI 1.6). The frontend writes \p len bytes of \p buf at byte \p offset of
    /// the config space (vhost-user SET_CONFIG; virtio-blk: the writeback field). Only
    /// called for a device whose get_config() reports a space, with offset + len inside it.
    /// The plugin checks which bytes are writable and returns 0, or -errno to refuse the
    /// write (the space stays unchanged; the host answers the message with a failure when
    /// the frontend asked for a reply). Control thread (vhost-user messages); must not
    /// block.
    int (*set_config)(void* dev, uint32_t offset, const uint8_t* buf, uint32_t len);
};

/// True when \p ops (a const struct vdh_device_ops*) has the field \p field (a later minor).
#define VDH_OPS_HAS(ops, field)                                                                 \
    ((ops)->struct_size >= offsetof(struct vdh_device_ops, field) + sizeof((ops)->field) &&    \
     (ops)->field != NULL)

/// Describes one plugin. Returned by the entry point; static storage in the plugin.
struct vdh_plugin_info {
    uint32_t struct_size;    ///< sizeof(struct vdh_plugin_info) as the plugin was built
    uint32_t abi_major;      ///< VDH_ABI_MAJOR the plugin was built against
    uint32_t abi_minor;      ///< VDH_ABI_MINOR the plugin was built against
    uint32_t virtio_device_id; ///< e.g. 26 for virtio-fs
    const char* name;        ///< plugin name: matches devices[].type in the YAML config
    const char* version;     ///< free-form plugin version string
    uint64_t device_features; ///< device-specific virtio feature bits offered (0..23, 38+)
    uint32_t request_ctx_size; ///< bytes of per-request context the host pre-allocates
    uint32_t min_queues;     ///< fewest virtqueues a session must have
    /// Required. Creates a device. \p config_yaml is the device's `config:` block as YAML
    /// text, untouched: it has the same line and column layout as the file named by
    /// \p config_origin (the text outside the block is blanked), so a YAML parser's marks
    /// are positions in that file. It may be all blank (no `config:`). On failure returns
    /// -errno and writes a message naming file:line:column and the key (NUL-terminated, at
    /// most \p err_len bytes) into \p err. Control thread.
    int (*create)(const struct vdh_host_api* host, void* host_dev, const char* device_name,
                  const char* config_yaml, size_t config_len, const char* config_origin,
                  void** dev_out, const struct vdh_device_ops** ops_out, char* err,
                  size_t err_len);
    /// Optional. Validates a `config:` block without creating anything (--check-config).
    /// Same error convention as create().
    int (*check_config)(const char* config_yaml, size_t config_len, const char* config_origin,
                        char* err, size_t err_len);
    /// Optional (ABI 1.1). Names the host directories a device with this `config:` block
    /// needs to see once vdhost has entered its sandbox (the sandbox's root holds only
    /// these and the socket directories, at the same absolute paths). Calls
    /// add(ctx, path, flags) once per directory; \p flags is VDH_HOST_PATH_* bits. Called
    /// before create(), while the host still sees the whole file system. Same error
    /// convention as create(). A plugin without it gets no host directories.
    int (*host_paths)(const char* config_yaml, size_t config_len, const char* config_origin,
                      void (*add)(void* ctx, const char* path, uint32_t flags), void* ctx,
                      char* err, size_t err_len);
};

/// host_paths() flag: the device only reads this directory (bound read-only unless another
/// device needs the same directory writable).
#define VDH_HOST_PATH_READONLY 1u

typedef const struct vdh_plugin_info* (*vdh_plugin_entry_fn)(void);

#ifdef __cplusplus
}
#endif

#endif // VDH_PLUGIN_ABI_H

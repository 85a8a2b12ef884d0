// SPDX-License-Identifier: MIT
// The vhost-user transport on rte_vhost: socket registration, the device callbacks and
// message hooks, and the Transport a session reads its rings from. Callbacks run on
// rte_vhost's vhost-events thread; they find the transport by vid and call its device's
// lifecycle methods, which never block on a poll lcore that could be waiting for a vring
// lock (lcores only use the non-blocking notification call).
#include "vhost_user_transport.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "device.h"
#include "inherited_listen_fd.h"
#include "log.h"
#include "queue_runtime.h"
#include "rte_vhost_include.h"
#include "socket_dir.h"
#include "transport.h"
#include "vdh/unique_fd.h"

namespace vdh {
namespace {

// vhost-user request codes (not in a public DPDK header).
enum : uint32_t {
    kSetFeatures = 2,
    kSetMemTable = 5,
    kSetVringNum = 8,
    kSetVringAddr = 9,
    kSetVringBase = 10,
    kSetVringKick = 12,
    kGetConfig = 24,
    kSetConfig = 25,
};

constexpr uint32_t kFlagNeedReply = 1u << 3; ///< VHOST_USER_NEED_REPLY

/// rte_vhost's struct vhu_msg_context (lib/vhost/vhost_user.h, not public; DPDK 22.11 says
/// external message handlers rely on its layout): the packed VhostUserMsg (header, then a
/// payload union of 632 bytes, VhostUserCryptoSessionParam being its largest member), then
/// the fds that came with the message. Checked against 22.11.11's header: 680 bytes, fds at
/// 644. rte_vhost has checked that `size` payload bytes were read and fit the union.
struct __attribute__((packed)) MsgContext {
    uint32_t request;
    uint32_t flags;
    uint32_t size; ///< payload bytes
    union __attribute__((packed)) {
        struct __attribute__((packed)) {
            uint32_t offset;
            uint32_t size;
            uint32_t flags;
            uint8_t region[256]; ///< VHOST_USER_MAX_CONFIG_SIZE
        } config;
        uint8_t bytes[632];
    } payload;
    int fds[8]; ///< VHOST_MEMORY_MAX_NREGIONS
    int fd_num;
};
static_assert(sizeof(MsgContext) == 680 && offsetof(MsgContext, fds) == 644);
constexpr uint32_t kConfigHeaderSize = 12; ///< offset, size, flags

/// Checks the framing of a GET/SET_CONFIG message: no fds (any sent are closed, as
/// rte_vhost's own handlers do; unhandled, they would leak), a payload of the 12-byte
/// header plus exactly `size` bytes, and `size` at most 256. Logs and returns false if not.
bool config_msg_ok(Device* d, MsgContext* m, const char* what) {
    auto& c = m->payload.config;
    if (m->fd_num != 0) {
        const int n = m->fd_num > 0 && m->fd_num <= 8 ? m->fd_num : 0;
        for (int i = 0; i < n; ++i) {
            UniqueFd(m->fds[i]).reset();
            m->fds[i] = -1;
        }
        m->fd_num = 0;
        VDH_WARN(d->name().c_str(), "%s with %d fds refused", what, n);
        return false;
    }
    if (m->size < kConfigHeaderSize || c.size > sizeof(c.region) ||
        m->size != kConfigHeaderSize + c.size) {
        VDH_WARN(d->name().c_str(), "%s with a bad size (payload %u, config %u)", what, m->size,
                 m->size < kConfigHeaderSize ? 0 : c.size);
        return false;
    }
    return true;
}

/// GET_CONFIG for a device that serves its config space: the region is filled from the
/// plugin and the message goes back as the reply, same size (a failed read gets an empty
/// payload, as rte_vhost's vDPA path does). A malformed request is refused.
rte_vhost_msg_result get_config(Device* d, void* msg) {
    auto* m = static_cast<MsgContext*>(msg);
    auto& c = m->payload.config;
    if (!config_msg_ok(d, m, "GET_CONFIG")) {
        return RTE_VHOST_MSG_RESULT_ERR;
    }
    if (d->read_config(c.offset, c.region, c.size) != 0) {
        m->size = 0;
    }
    return RTE_VHOST_MSG_RESULT_REPLY;
}

/// SET_CONFIG for a device that serves its config space: the plugin's set_config applies
/// the write (Device::write_config checks that it lies inside the space). How rte_vhost
/// 22.11 answers for a message a pre-handler took (vhost_user_msg_handler): with
/// NEED_REPLY set it sends the REPLY_ACK itself, 0 for RESULT_OK and 1 for RESULT_ERR;
/// without it, RESULT_ERR closes the connection. So a refused write (malformed, outside
/// the space, or refused by the plugin) is ERR only when the frontend asked for an ack,
/// and otherwise dropped with a warning (OK), as rte_vhost's vDPA path treats a failed
/// set_config: a bad config write must not cost the guest its device.
rte_vhost_msg_result set_config(Device* d, void* msg) {
    auto* m = static_cast<MsgContext*>(msg);
    auto& c = m->payload.config;
    const rte_vhost_msg_result refused = (m->flags & kFlagNeedReply) != 0
                                             ? RTE_VHOST_MSG_RESULT_ERR
                                             : RTE_VHOST_MSG_RESULT_OK;
    if (!config_msg_ok(d, m, "SET_CONFIG")) {
        return refused;
    }
    const int rc = d->write_config(c.offset, c.region, c.size);
    if (rc != 0) {
        VDH_WARN(d->name().c_str(), "SET_CONFIG of %u bytes at offset %u refused: %s", c.size,
                 c.offset, strerror(-rc));
        return refused;
    }
    return RTE_VHOST_MSG_RESULT_OK;
}

// Protocol features (bit numbers from the vhost-user spec).
constexpr uint64_t kProtoMq = 1ULL << 0;
constexpr uint64_t kProtoReplyAck = 1ULL << 3;
constexpr uint64_t kProtoBackendReq = 1ULL << 5;
constexpr uint64_t kProtoConfig = 1ULL << 9;
constexpr uint64_t kProtoBackendSendFd = 1ULL << 10;
constexpr uint64_t kProtoWanted = kProtoMq | kProtoReplyAck | kProtoBackendReq | kProtoBackendSendFd;

/// Largest vring rte_vhost accepts (SET_VRING_NUM).
constexpr uint32_t kMaxVringSize = 32768;

/// One device's vhost-user connection as its session's Transport. Owned by the device; the
/// vid names the current connection (-1: none).
class VhostUserTransport final : public Transport {
public:
    explicit VhostUserTransport(Device* d) noexcept : dev_(d) {}

    Device* device() const noexcept { return dev_; }
    int vid() const noexcept { return vid_.load(std::memory_order_acquire); }
    void set_vid(int vid) noexcept { vid_.store(vid, std::memory_order_release); }

    const char* kind() const noexcept override { return "vhost-user"; }

    bool negotiated_features(uint64_t* features) noexcept override {
        return rte_vhost_get_negotiated_features(vid(), features) == 0;
    }

    uint16_t vring_count() noexcept override { return rte_vhost_get_vring_num(vid()); }

    bool memory_regions(std::vector<TransportRegion>* out) noexcept override {
        rte_vhost_memory* m = nullptr;
        if (rte_vhost_get_mem_table(vid(), &m) != 0 || m == nullptr) {
            return false;
        }
        // rte_vhost hands out a malloc'd copy of its region table; the mappings it points
        // into stay rte_vhost's (unmapped on SET_MEM_TABLE or disconnect, which the session
        // is paused or stopped for).
        out->clear();
        out->reserve(m->nregions);
        for (uint32_t i = 0; i < m->nregions; ++i) {
            const rte_vhost_mem_region& r = m->regions[i];
            out->push_back(TransportRegion{
                r.guest_phys_addr, r.size,
                reinterpret_cast<void*>(static_cast<uintptr_t>(r.host_user_addr)), r.mmap_addr,
                r.mmap_size});
        }
        free(m);
        return true;
    }

    bool vring(uint16_t q, bool packed, TransportVring* out, std::string* err) override {
        rte_vhost_vring vr;
        if (rte_vhost_get_vhost_vring(vid(), q, &vr) != 0) {
            *err = "cannot read vring " + std::to_string(q);
            return false;
        }
        if (vr.size > kMaxVringSize) {
            *err = "vring " + std::to_string(q) + " size " + std::to_string(vr.size) +
                   " outside 1.." + std::to_string(kMaxVringSize);
            return false;
        }
        if (rte_vhost_get_vring_base(vid(), q, &out->last_avail, &out->last_used) != 0) {
            *err = "cannot read vring base " + std::to_string(q);
            return false;
        }
        VringAddrs& a = out->addrs;
        a = VringAddrs{};
        a.size = static_cast<uint16_t>(vr.size);
        a.packed = packed;
        if (packed) {
            a.desc_packed = vr.desc_packed;
            a.driver_event = vr.driver_event;
            a.device_event = vr.device_event;
        } else {
            a.desc = vr.desc;
            a.avail = vr.avail;
            a.used = vr.used;
        }
        out->kick_fd = vr.kickfd;
        return true;
    }

    void set_vring_base(uint16_t q, uint16_t last_avail, uint16_t last_used) noexcept override {
        rte_vhost_set_vring_base(vid(), q, last_avail, last_used);
    }

    bool notify(QueueRuntime& q) noexcept override {
        const int vid = vid_.load(std::memory_order_relaxed);
        // Keep rte_vhost's view of the ring in step: its EVENT_IDX check reads these.
        rte_vhost_set_vring_base(vid, q.index(), q.vq().last_avail_base(),
                                 q.vq().last_used_base());
        // Never the blocking call: rte_vhost holds the vring locks while it runs our message
        // hooks, which may wait for this lcore.
        return rte_vhost_vring_call_nonblock(vid, q.index()) != -EAGAIN;
    }

private:
    Device* dev_;
    std::atomic<int> vid_{-1};
};

std::mutex g_mu; // guards the maps below. Lock order: leaf (never held across a callback)
std::unordered_map<std::string, VhostUserTransport*> g_by_path;
std::unordered_map<int, VhostUserTransport*> g_by_vid;

VhostUserTransport* by_vid(int vid) {
    std::lock_guard<std::mutex> g(g_mu);
    auto it = g_by_vid.find(vid);
    return it == g_by_vid.end() ? nullptr : it->second;
}

Device* device_by_vid(int vid) {
    VhostUserTransport* t = by_vid(vid);
    return t == nullptr ? nullptr : t->device();
}

rte_vhost_msg_result pre_msg(int vid, void* msg) {
    uint32_t req;
    std::memcpy(&req, msg, sizeof(req));
    Device* d = device_by_vid(vid);
    if (d == nullptr) {
        return RTE_VHOST_MSG_RESULT_NOT_HANDLED;
    }
    switch (req) {
    case kGetConfig:
        if (d->config_space_size() > 0) {
            return get_config(d, msg);
        }
        break; // rte_vhost refuses it (it serves only vDPA devices)
    case kSetConfig:
        if (d->config_space_size() > 0) {
            return set_config(d, msg);
        }
        break; // rte_vhost refuses it, as GET_CONFIG
    case kSetMemTable:
    case kSetVringNum:
    case kSetVringAddr:
    case kSetVringBase:
    case kSetVringKick:
    case kSetFeatures:
        // These change memory or rings under a running device: drain first.
        d->pause();
        break;
    default:
        break;
    }
    return RTE_VHOST_MSG_RESULT_NOT_HANDLED;
}

rte_vhost_msg_result post_msg(int vid, void* msg) {
    (void)msg;
    Device* d = device_by_vid(vid);
    if (d != nullptr && d->state() == DeviceState::Paused) {
        d->resume();
    }
    return RTE_VHOST_MSG_RESULT_NOT_HANDLED;
}

const rte_vhost_user_extern_ops g_ext_ops = {
    .pre_msg_handle = pre_msg,
    .post_msg_handle = post_msg,
};

int new_connection(int vid) {
    char path[PATH_MAX];
    if (rte_vhost_get_ifname(vid, path, sizeof(path)) != 0) {
        return -1;
    }
    VhostUserTransport* t = nullptr;
    Device* d = nullptr;
    {
        std::lock_guard<std::mutex> g(g_mu);
        auto it = g_by_path.find(path);
        if (it == g_by_path.end()) {
            return -1;
        }
        t = it->second;
        d = t->device();
        if (d->connection() >= 0) {
            VDH_WARN(d->name().c_str(), "refusing a second frontend (vid %d)", vid);
            return -1;
        }
    }
    // Lifecycle calls all run on this thread, so the state cannot change in between.
    if (!d->admit_frontend()) {
        VDH_WARN(d->name().c_str(),
                 "refusing a frontend (vid %d): the device is broken, requests of an earlier "
                 "session are still stuck",
                 vid);
        return -1;
    }
    {
        std::lock_guard<std::mutex> g(g_mu);
        g_by_vid[vid] = t;
    }
    if (rte_vhost_extern_callback_register(vid, &g_ext_ops, nullptr) != 0) {
        VDH_ERR(d->name().c_str(), "cannot install vhost-user message hooks");
    }
    t->set_vid(vid);
    d->on_connect(vid);
    return 0;
}

void destroy_connection(int vid) {
    VhostUserTransport* t = by_vid(vid);
    if (t == nullptr) {
        return;
    }
    t->device()->on_disconnect(vid);
    t->set_vid(-1);
    std::lock_guard<std::mutex> g(g_mu);
    g_by_vid.erase(vid);
}

int new_device(int vid) {
    Device* d = device_by_vid(vid);
    return d == nullptr ? -1 : d->start_session();
}

void destroy_device(int vid) {
    Device* d = device_by_vid(vid);
    if (d != nullptr) {
        d->stop_session();
    }
}

int vring_state_changed(int vid, uint16_t queue, int enable) {
    Device* d = device_by_vid(vid);
    if (d != nullptr) {
        d->set_vring_enabled(queue, enable != 0);
    }
    return 0;
}

const rte_vhost_device_ops g_ops = {
    .new_device = new_device,
    .destroy_device = destroy_device,
    .vring_state_changed = vring_state_changed,
    .features_changed = nullptr,
    .new_connection = new_connection,
    .destroy_connection = destroy_connection,
    .guest_notified = nullptr,
};

bool remove_stale_socket(const std::string& path, std::string* err) {
    struct stat st;
    if (lstat(path.c_str(), &st) != 0) {
        return true;
    }
    if (!S_ISSOCK(st.st_mode)) {
        *err = path + " exists and is not a socket";
        return false;
    }
    unlink(path.c_str());
    return true;
}

} // namespace

uint64_t vhost_transport_features() {
    return (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_INDIRECT_DESC) |
           (1ULL << VIRTIO_RING_F_EVENT_IDX) | (1ULL << VIRTIO_F_RING_PACKED) |
           (1ULL << VHOST_USER_F_PROTOCOL_FEATURES);
}

bool vhost_register_device(Device* d, std::string* err) {
    const std::string& path = d->socket();
    const DeviceConfig& c = d->config();
    if (c.socket_fd >= 0) {
        adopt_listen_fd(path, c.socket_fd); // rte_vhost's bind() takes it
    } else if (!remove_stale_socket(path, err)) {
        return false;
    }
    auto owned = std::make_unique<VhostUserTransport>(d);
    VhostUserTransport* t = owned.get();
    d->set_transport(std::move(owned));
    if (rte_vhost_driver_register(path.c_str(), 0) != 0) {
        *err = d->name() + ": cannot register vhost-user socket " + path;
        return false;
    }
    {
        std::lock_guard<std::mutex> g(g_mu);
        g_by_path[path] = t;
    }
    uint64_t proto = 0;
    // CONFIG is ours to offer (rte_vhost's default set lacks it): only for a device that
    // serves its config space (see vdh_device_ops::get_config).
    const uint64_t config = d->config_space_size() > 0 ? kProtoConfig : 0;
    bool ok = rte_vhost_driver_set_features(path.c_str(),
                                            vhost_transport_features() | d->offered_features()) ==
                  0 &&
              rte_vhost_driver_get_protocol_features(path.c_str(), &proto) == 0 &&
              rte_vhost_driver_set_protocol_features(path.c_str(),
                                                     (proto & kProtoWanted) | config) == 0 &&
              rte_vhost_driver_callback_register(path.c_str(), &g_ops) == 0;
    if (!ok) {
        *err = d->name() + ": cannot configure vhost-user socket " + path;
        vhost_unregister_device(d);
        return false;
    }
    if (rte_vhost_driver_start(path.c_str()) != 0) {
        *err = d->name() + ": cannot listen on " + path;
        vhost_unregister_device(d);
        return false;
    }
    // Born 0600 (the caller sets the umask), in a directory only we can write; now the
    // configured access. An inherited socket keeps what its creator gave it.
    if (c.socket_fd < 0 &&
        !apply_socket_access(path, c.socket_mode, c.has_socket_group, c.socket_gid, err)) {
        *err = d->name() + ": " + *err;
        vhost_unregister_device(d);
        return false;
    }
    VDH_INFO(d->name().c_str(), "listening on %s%s (%s plugin)", path.c_str(),
             c.socket_fd >= 0 ? " (inherited fd)" : "", c.type.c_str());
    return true;
}

void vhost_unregister_device(Device* d) {
    const std::string& path = d->socket();
    VhostUserTransport* t = nullptr;
    {
        std::lock_guard<std::mutex> g(g_mu);
        auto it = g_by_path.find(path);
        if (it != g_by_path.end() && it->second->device() == d) {
            t = it->second;
        }
    }
    const bool registered = t != nullptr;
    if (registered) {
        // Closes the listening socket and every connection; a running session is stopped
        // through destroy_device (drained). rte_vhost does not call destroy_connection
        // here, so the device's side of the connection is ended below.
        rte_vhost_driver_unregister(path.c_str());
        unlink(path.c_str());
    }
    const int conn = d->connection();
    if (conn >= 0) {
        d->on_disconnect(conn);
    }
    if (t != nullptr) {
        t->set_vid(-1);
    }
    std::lock_guard<std::mutex> g(g_mu);
    if (registered) {
        g_by_path.erase(path);
    }
    for (auto it = g_by_vid.begin(); it != g_by_vid.end();) {
        it = it->second->device() == d ? g_by_vid.erase(it) : std::next(it);
    }
}

} // namespace vdh

// SPDX-License-Identifier: MIT
// Device session lifecycle over a Transport: build the queue runtimes from the rings the
// transport describes when the driver is ready, hand them to their lcores, and drain them
// synchronously (in-flight requests included) before guest memory goes away.
#include "device.h"

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include <rte_cycles.h>

#include "fd_budget.h"
#include "log.h"
#include "memory_quarantine.h"
#include "poll_lcore.h"
#include "vring_defs.h"

namespace vdh {

const char* device_state_name(DeviceState s) noexcept {
    switch (s) {
    case DeviceState::Idle:
        return "idle";
    case DeviceState::Connected:
        return "connected";
    case DeviceState::Running:
        return "running";
    case DeviceState::Paused:
        return "paused";
    case DeviceState::Broken:
        return "broken";
    }
    return "?";
}

Device::Device(const DeviceConfig& cfg, const Plugin* plugin, std::vector<PollLcore*> lcores)
    : cfg_(cfg), plugin_(plugin), lcores_(std::move(lcores)), qos_(cfg.qos),
      buckets_(std::make_unique<TokenBucket[]>(lcores_.empty() ? 1 : lcores_.size())) {
    for (auto& e : enabled_) {
        e.store(true, std::memory_order_relaxed);
    }
    queue_stats_ = std::make_unique<QueueStats[]>(kMaxQueues);
}

Device::~Device() {
    if (fd_budget_ != nullptr) {
        fd_budget_->release(this);
    }
    uint32_t stuck = 0;
    {
        std::lock_guard<std::mutex> g(stats_mu_);
        stuck = stuck_requests_locked();
    }
    if (stuck != 0) {
        // Shutdown with requests still stuck in the plugin: destroying it could wait for
        // them forever, and their completions could still arrive. The process is exiting,
        // so the plugin instance and the zombie queues are left to the exit.
        VDH_WARN(cfg_.name.c_str(), "%u stuck requests at shutdown; not destroying the plugin",
                 stuck);
        for (Zombie& z : zombies_) {
            (void)z.q.release();
        }
        return;
    }
    if (pdev_ != nullptr && ops_ != nullptr && ops_->destroy != nullptr) {
        ops_->destroy(pdev_);
    }
    release_quarantine();
}

int Device::reserve_fds(uint64_t n, char* err, size_t err_len) {
    auto say = [&](const std::string& m) {
        if (err != nullptr && err_len > 0) {
            std::snprintf(err, err_len, "%s", m.c_str());
        }
    };
    if (!creating_) {
        say("device " + cfg_.name + ": reserve_fds() outside create()");
        return -EPERM;
    }
    if (fd_budget_ != nullptr) {
        std::string m;
        if (!fd_budget_->reserve(cfg_.name, n, &m, this)) {
            say(m);
            return -EMFILE;
        }
    }
    reserved_fds_ += n;
    return 0;
}

bool Device::create(const vdh_host_api* api, const std::string& origin, std::string* err) {
    // The host's own fds for this device come out of the budget first, then the plugin's.
    if (fd_budget_ != nullptr && !fd_budget_->reserve_host(this, cfg_.name, device_host_fds(), err)) {
        return false;
    }
    char msg[1024] = {0};
    creating_ = true;
    int rc = plugin_->info->create(api, this, cfg_.name.c_str(), cfg_.config_text.c_str(),
                                   cfg_.config_text.size(), origin.c_str(), &pdev_, &ops_, msg,
                                   sizeof(msg));
    creating_ = false;
    if (rc != 0) {
        *err = msg[0] != '\0' ? std::string(msg)
                              : "device " + cfg_.name + ": plugin create failed: " +
                                    std::string(strerror(-rc));
        pdev_ = nullptr;
        return false;
    }
    if (ops_ == nullptr || ops_->struct_size < offsetof(vdh_device_ops, destroy) + sizeof(void*) ||
        ops_->start == nullptr || ops_->stop == nullptr || ops_->handle_request == nullptr ||
        ops_->destroy == nullptr) {
        *err = "device " + cfg_.name + ": plugin returned an incomplete device ops table";
        if (ops_ != nullptr && ops_->destroy != nullptr && pdev_ != nullptr) {
            ops_->destroy(pdev_);
        }
        pdev_ = nullptr;
        return false;
    }
    return true;
}

uint64_t Device::offered_features() const noexcept {
    uint64_t f = plugin_->info->device_features;
    if (ops_ != nullptr && ops_->get_features != nullptr) {
        f |= ops_->get_features(pdev_);
    }
    return f;
}

uint32_t Device::config_space_size() const noexcept {
    if (ops_ == nullptr || !VDH_OPS_HAS(ops_, get_config)) {
        return 0;
    }
    const int n = ops_->get_config(pdev_, 0, nullptr, 0);
    return n > 0 ? static_cast<uint32_t>(n) : 0;
}

int Device::read_config(uint32_t offset, uint8_t* buf, uint32_t len) {
    if (ops_ == nullptr || !VDH_OPS_HAS(ops_, get_config)) {
        return -ENOTSUP;
    }
    std::lock_guard<std::recursive_mutex> life(life_mu_);
    const int n = ops_->get_config(pdev_, offset, buf, len);
    return n < 0 ? n : 0;
}

int Device::write_config(uint32_t offset, const uint8_t* buf, uint32_t len) {
    if (ops_ == nullptr || !VDH_OPS_HAS(ops_, set_config)) {
        return -ENOTSUP;
    }
    std::lock_guard<std::recursive_mutex> life(life_mu_);
    const uint32_t space = config_space_size();
    if (space == 0) {
        return -ENOTSUP;
    }
    if (offset > space || len > space - offset) {
        return -ERANGE;
    }
    const int rc = ops_->set_config(pdev_, offset, buf, len);
    return rc < 0 ? rc : 0;
}

bool Device::admit_frontend() {
    if (state_.load(std::memory_order_acquire) != DeviceState::Broken) {
        return true;
    }
    if (!reap_zombies()) {
        return false;
    }
    if (disconnect_pending_) {
        disconnect_pending_ = false;
        plugin_disconnect();
    }
    state_.store(DeviceState::Idle, std::memory_order_release);
    VDH_NOTICE(cfg_.name.c_str(), "stuck requests completed; device recovered");
    return true;
}

bool Device::reap_zombies() {
    std::vector<std::unique_ptr<QueueRuntime>> dead;
    bool empty = false;
    {
        std::lock_guard<std::mutex> g(stats_mu_);
        for (size_t i = 0; i < zombies_.size();) {
            if (zombies_[i].detached.wait_for(std::chrono::seconds(0)) ==
                std::future_status::ready) {
                dead.push_back(std::move(zombies_[i].q));
                zombies_.erase(zombies_.begin() + static_cast<std::ptrdiff_t>(i));
            } else {
                ++i;
            }
        }
        empty = zombies_.empty();
    }
    dead.clear();
    if (empty) {
        // No abandoned request is left to write into old guest memory.
        release_quarantine();
    }
    return empty;
}

void Device::release_quarantine() {
    for (auto& [addr, len] : quarantined_) {
        quarantine_release(addr, len);
    }
    quarantined_.clear();
}

void Device::plugin_disconnect() {
    if (ops_->struct_size >= offsetof(vdh_device_ops, disconnect) + sizeof(void*) &&
        ops_->disconnect != nullptr) {
        ops_->disconnect(pdev_);
    }
}

uint32_t Device::stuck_requests() const {
    std::lock_guard<std::mutex> g(stats_mu_);
    return stuck_requests_locked();
}

uint32_t Device::stuck_requests_locked() const {
    uint32_t n = 0;
    for (const Zombie& z : zombies_) {
        if (z.q) {
            n += z.q->inflight();
        }
    }
    return n;
}

void Device::on_connect(int conn) {
    conn_.store(conn, std::memory_order_release);
    state_.store(DeviceState::Connected, std::memory_order_release);
    VDH_INFO(cfg_.name.c_str(), "frontend connected (vid %d)", conn);
}

void Device::on_disconnect(int conn) {
    std::lock_guard<std::recursive_mutex> life(life_mu_);
    DeviceState s = state_.load(std::memory_order_acquire);
    if (s == DeviceState::Running || s == DeviceState::Paused) {
        stop_session();
    }
    conn_.store(-1, std::memory_order_release);
    if (state_.load(std::memory_order_acquire) == DeviceState::Broken) {
        // The plugin still runs abandoned requests: it drops the connection's state once
        // they are done (admit_frontend()).
        disconnect_pending_ = true;
        VDH_INFO(cfg_.name.c_str(), "frontend disconnected (vid %d); device broken", conn);
        return;
    }
    plugin_disconnect();
    state_.store(DeviceState::Idle, std::memory_order_release);
    VDH_INFO(cfg_.name.c_str(), "frontend disconnected (vid %d)", conn);
}

void Device::set_vring_enabled(uint16_t q, bool on) {
    if (q >= kMaxQueues) {
        return;
    }
    enabled_[q].store(on, std::memory_order_release);
    std::lock_guard<std::mutex> g(stats_mu_);
    if (q < queues_.size() && queues_[q]) {
        queues_[q]->set_enabled(on);
        if (on) {
            wake(q);
        }
    }
}

bool Device::setup_queues(std::string* err) {
    Transport* t = transport_.get();
    if (t == nullptr) {
        *err = "no transport";
        return false;
    }
    if (!t->negotiated_features(&features_)) {
        *err = "cannot read negotiated features";
        return false;
    }
    uint16_t nq = t->vring_count();
    if (nq == 0 || nq > kMaxQueues) {
        *err = "unsupported number of queues " + std::to_string(nq);
        return false;
    }
    if (nq < plugin_->info->min_queues) {
        *err = "frontend set up " + std::to_string(nq) + " queues, the device needs at least " +
               std::to_string(plugin_->info->min_queues);
        return false;
    }
    if (!t->memory_regions(&regions_)) {
        *err = "cannot read the memory table";
        return false;
    }
    mem_.clear();
    for (size_t i = 0; i < regions_.size(); ++i) {
        const TransportRegion& r = regions_[i];
        if (!mem_.add_region(r.guest_phys_addr, r.size, r.host_addr)) {
            *err = "bad memory region " + std::to_string(i);
            return false;
        }
    }
    bool event_idx = (features_ & (1ULL << VIRTIO_RING_F_EVENT_IDX)) != 0;
    bool packed = (features_ & (1ULL << VIRTIO_F_RING_PACKED)) != 0;
    // QoS: the device's rates are split evenly over the lcores that serve its queues
    // (queue q on lcores_[q % size]); queues on one lcore share its bucket.
    size_t qos_split = std::min<size_t>(nq, lcores_.size());
    for (size_t i = 0; i < qos_split; ++i) {
        buckets_[i].prepare(rte_get_tsc_hz(), static_cast<uint32_t>(qos_split));
    }
    std::vector<std::unique_ptr<QueueRuntime>> qs;
    std::vector<vdh_queue_info> infos;
    for (uint16_t i = 0; i < nq; ++i) {
        TransportVring vr;
        if (!t->vring(i, packed, &vr, err)) {
            return false;
        }
        const VringAddrs& a = vr.addrs;
        if (a.size == 0 || a.size > cfg_.queue_size_max) {
            *err = "vring " + std::to_string(i) + " size " + std::to_string(a.size) +
                   " outside 1.." + std::to_string(cfg_.queue_size_max) + " (queue_size_max)";
            return false;
        }
        auto q = std::make_unique<QueueRuntime>(ops_, pdev_, t, i, queue_stats_[i]);
        if (!q->vq().init(a, &mem_, vr.last_avail, vr.last_used, event_idx)) {
            *err = "vring " + std::to_string(i) + " is not usable";
            return false;
        }
        if (!q->allocate(a.size, plugin_->info->request_ctx_size)) {
            *err = "out of memory for vring " + std::to_string(i);
            return false;
        }
        q->set_kick_fd(vr.kick_fd);
        q->set_enabled(enabled_[i].load(std::memory_order_acquire));
        PollLcore* l = lcores_[i % lcores_.size()];
        q->set_lcore(l);
        q->set_qos(&qos_, &buckets_[i % lcores_.size()]);
        infos.push_back(vdh_queue_info{i, a.size, l->cpu()});
        qs.push_back(std::move(q));
    }
    int rc = ops_->start(pdev_, features_, infos.data(), nq);
    if (rc != 0) {
        *err = "plugin refused to start: " + std::string(strerror(-rc));
        return false;
    }
    if (ops_->wake_fd != nullptr) {
        for (auto& q : qs) {
            q->set_wake_fd(ops_->wake_fd(pdev_, q->index()));
        }
    }
    {
        std::lock_guard<std::mutex> g(stats_mu_);
        queues_ = std::move(qs);
        nqueues_ = nq;
        for (auto& q : queues_) {
            queue_cpu_[q->index()] = q->lcore()->cpu();
        }
        if (nq > max_queues_seen_) {
            max_queues_seen_ = nq;
        }
    }
    for (auto& q : queues_) {
        q->lcore()->attach(q.get());
    }
    return true;
}

bool Device::teardown_queues() {
    // 1. No new requests from here on.
    for (auto& q : queues_) {
        q->set_stopping();
    }
    // 2. The plugin cancels or finishes what it holds.
    ops_->stop(pdev_);
    // 3. Wait until every lcore drained and let go of its queues, up to the deadline: this
    //    runs on the vhost-user event thread, which every device's connects and memory
    //    changes wait for.
    std::vector<std::future<void>> waits;
    for (auto& q : queues_) {
        waits.push_back(q->lcore()->detach(q.get()));
    }
    auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(teardown_timeout_ms_);
    bool drained = true;
    for (auto& w : waits) {
        if (w.wait_until(deadline) != std::future_status::ready) {
            drained = false;
        }
    }
    // 4. Hand the ring positions back (vhost-user returns them in GET_VRING_BASE).
    for (auto& q : queues_) {
        if (connection() >= 0) {
            transport_->set_vring_base(q->index(), q->vq().last_avail_base(),
                                       q->vq().last_used_base());
        }
    }
    uint32_t stuck = 0;
    if (!drained) {
        // 5. Give up on the stuck queues: completions that arrive later only retire their
        //    slots. The runtimes stay alive (zombies) until their lcore lets go of them,
        //    and the guest mappings their buffers point into stay reserved until then.
        std::lock_guard<std::mutex> g(stats_mu_);
        for (size_t i = 0; i < queues_.size(); ++i) {
            if (waits[i].wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
                continue;
            }
            queues_[i]->abandon();
            queues_[i]->lcore()->wake();
            stuck += queues_[i]->inflight();
            zombies_.push_back(Zombie{std::move(queues_[i]), std::move(waits[i])});
        }
        for (const TransportRegion& r : regions_) {
            if (r.mmap_addr != nullptr && r.mmap_size != 0) {
                quarantine_add(r.mmap_addr, r.mmap_size);
                quarantined_.emplace_back(r.mmap_addr, r.mmap_size);
            }
        }
        abandoned_total_ += stuck;
    }
    {
        std::lock_guard<std::mutex> g(stats_mu_);
        queues_.clear();
    }
    mem_.clear();
    regions_.clear();
    if (!drained) {
        state_.store(DeviceState::Broken, std::memory_order_release);
        VDH_ERR(cfg_.name.c_str(),
                "%u requests still in flight %u ms after the session ended; abandoned them, "
                "device is broken until they complete (other devices are not affected)",
                stuck, teardown_timeout_ms_);
    }
    return drained;
}

int Device::start_session() {
    std::lock_guard<std::recursive_mutex> life(life_mu_);
    if (state_.load(std::memory_order_acquire) == DeviceState::Broken) {
        // Rings restarted on the same connection (a guest reset): go on only once the
        // abandoned requests are done. The transport asks again (vhost-user: after the next
        // message).
        if (!reap_zombies()) {
            VDH_WARN(cfg_.name.c_str(), "not starting: stuck requests of an earlier session");
            return -1;
        }
        state_.store(DeviceState::Connected, std::memory_order_release);
        VDH_NOTICE(cfg_.name.c_str(), "stuck requests completed; device recovered");
    }
    std::string err;
    if (!setup_queues(&err)) {
        VDH_ERR(cfg_.name.c_str(), "cannot start: %s", err.c_str());
        {
            std::lock_guard<std::mutex> g(stats_mu_);
            queues_.clear();
        }
        mem_.clear();
        regions_.clear();
        return -1;
    }
    ++sessions_;
    state_.store(DeviceState::Running, std::memory_order_release);
    VDH_NOTICE(cfg_.name.c_str(), "device running: %u queues, features 0x%llx%s", nqueues_,
               static_cast<unsigned long long>(features_),
               (features_ & (1ULL << VIRTIO_F_RING_PACKED)) ? ", packed ring" : "");
    return 0;
}

void Device::stop_session() {
    std::lock_guard<std::recursive_mutex> life(life_mu_);
    DeviceState s = state_.load(std::memory_order_acquire);
    if (s != DeviceState::Running && s != DeviceState::Paused) {
        return;
    }
    if (s == DeviceState::Running && !teardown_queues()) {
        return; // Broken
    }
    state_.store(DeviceState::Connected, std::memory_order_release);
    VDH_NOTICE(cfg_.name.c_str(), "device stopped");
}

void Device::pause() {
    std::lock_guard<std::recursive_mutex> life(life_mu_);
    if (state_.load(std::memory_order_acquire) != DeviceState::Running) {
        return;
    }
    ++pauses_;
    if (!teardown_queues()) {
        return; // Broken: no resume
    }
    state_.store(DeviceState::Paused, std::memory_order_release);
}

void Device::resume() {
    std::lock_guard<std::recursive_mutex> life(life_mu_);
    if (state_.load(std::memory_order_acquire) != DeviceState::Paused) {
        return;
    }
    std::string err;
    if (!setup_queues(&err)) {
        VDH_ERR(cfg_.name.c_str(), "cannot resume after a ring/memory change: %s", err.c_str());
        {
            std::lock_guard<std::mutex> g(stats_mu_);
            queues_.clear();
        }
        mem_.clear();
        regions_.clear();
        state_.store(DeviceState::Connected, std::memory_order_release);
        return;
    }
    state_.store(DeviceState::Running, std::memory_order_release);
    VDH_INFO(cfg_.name.c_str(), "device resumed");
}

bool Device::revoke() {
    std::lock_guard<std::recursive_mutex> life(life_mu_);
    if (revoked_) {
        return true;
    }
    if (ops_ == nullptr || !VDH_OPS_HAS(ops_, revoke) || connection() < 0 ||
        state() == DeviceState::Broken) {
        return false;
    }
    const bool running = state() == DeviceState::Running;
    if (running) {
        pause(); // drains: nothing in flight while the plugin changes its mind
        if (state() != DeviceState::Paused) {
            return false; // broken by a stuck request
        }
    }
    ops_->revoke(pdev_);
    revoked_ = true;
    if (running) {
        resume();
    }
    VDH_NOTICE(cfg_.name.c_str(), "revoked: the guest stays connected and its requests fail");
    return true;
}

void Device::set_qos(const QosConfig& c) {
    qos_.set(c);
    // A sleeping lcore may wait for an old deadline: let it look at the new setting now.
    for (PollLcore* l : lcores_) {
        l->wake();
    }
    VDH_NOTICE(cfg_.name.c_str(), "qos: iops %llu, bandwidth %llu bytes/s, burst %u ms",
               static_cast<unsigned long long>(c.iops),
               static_cast<unsigned long long>(c.bandwidth), c.burst_ms);
}

void Device::wake(uint16_t q) noexcept {
    if (lcores_.empty()) {
        return;
    }
    lcores_[q % lcores_.size()]->wake();
}

uint16_t Device::queues_seen() const {
    std::lock_guard<std::mutex> g(stats_mu_);
    return max_queues_seen_;
}

std::string Device::stats_json() const {
    std::ostringstream o;
    o << "{\"name\":\"" << cfg_.name << "\",\"type\":\"" << cfg_.type << "\",\"socket\":\""
      << cfg_.socket << "\",\"state\":\"" << device_state_name(state()) << "\",\"sessions\":"
      << sessions_ << ",\"pauses\":" << pauses_ << ",\"reserved_fds\":" << reserved_fds_
      << ",\"features\":" << features_ << ",\"qos\":" << qos_json(qos_.get())
      << ",\"queues\":[";
    std::lock_guard<std::mutex> g(stats_mu_);
    for (uint16_t i = 0; i < max_queues_seen_; ++i) {
        const QueueStats& s = queue_stats_[i];
        const QueueRuntime* q = i < queues_.size() ? queues_[i].get() : nullptr;
        auto v = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
        o << (i ? "," : "") << "{\"index\":" << i << ",\"size\":" << (q ? q->vq().size() : 0)
          << ",\"cpu\":" << queue_cpu_[i] << ",\"requests\":" << v(s.requests)
          << ",\"bytes_in\":" << v(s.bytes_in) << ",\"bytes_out\":" << v(s.bytes_out)
          << ",\"async\":" << v(s.async) << ",\"errors\":" << v(s.errors)
          << ",\"bad_chains\":" << v(s.bad_chains) << ",\"busy_polls\":" << v(s.busy_polls)
          << ",\"idle_polls\":" << v(s.idle_polls) << ",\"kicks\":" << v(s.kicks)
          << ",\"notifies\":" << v(s.notifies) << ",\"notify_retries\":" << v(s.notify_retries)
          << ",\"batches\":" << v(s.batches) << ",\"ring_full\":" << v(s.ring_full)
          << ",\"qos_throttled\":" << v(s.qos_throttled)
          << ",\"broken\":" << v(s.broken) << ",\"late_completions\":"
          << v(s.late_completions) << ",\"inflight\":" << (q ? q->inflight() : 0) << "}";
    }
    o << "],\"stuck_requests\":" << stuck_requests_locked()
      << ",\"zombie_queues\":" << zombies_.size() << ",\"abandoned_requests\":"
      << abandoned_total_;
    if (ops_ != nullptr && ops_->stats_json != nullptr && pdev_ != nullptr) {
        char buf[4096];
        int n = ops_->stats_json(pdev_, buf, sizeof(buf));
        if (n > 0) {
            o << ",\"plugin\":" << buf;
        }
    }
    o << "}";
    return o.str();
}

} // namespace vdh

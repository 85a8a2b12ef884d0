// SPDX-License-Identifier: MIT
// The virtio-fs device behind the plugin ABI.
#include "virtiofs_device.h"

#include <chrono>
#include <cstdio>

#include "filesystem_factory.h"
#include "fuse/fuse_metrics.h"

namespace vdh::virtiofs {

const vdh_host_api* VirtiofsDevice::g_host_ = nullptr;

namespace {
/// The device's quota of the process's blocking workers (blocking_pool.h): most of its
/// blocking calls running at once; more wait in its own queue.
constexpr unsigned kBlockingThreads = 4;
/// How long stop() keeps interrupting and waiting for blocking calls.
constexpr std::chrono::milliseconds kStopDrainLimit{1000};
constexpr uint16_t kMinDispatcherQueues = 16;
} // namespace

VirtiofsDevice::VirtiofsDevice(const vdh_host_api* host, void* host_dev, std::string name,
                               ShareProfile profile)
    : host_(host), host_dev_(host_dev), name_(std::move(name)), profile_(std::move(profile)) {}

VirtiofsDevice::~VirtiofsDevice() {
    // The pool's workers may still reference the dispatcher and filesystem.
    pool_.reset();
    engines_.clear();
    dispatcher_.reset();
    fs_.reset();
}

std::unique_ptr<VirtiofsDevice> VirtiofsDevice::create(const vdh_host_api* host, void* host_dev,
                                                       std::string name, ShareProfile profile,
                                                       std::string* err) {
    g_host_ = host;
    std::unique_ptr<VirtiofsDevice> d(
        new VirtiofsDevice(host, host_dev, std::move(name), std::move(profile)));
    d->fs_ = make_filesystem(d->profile_, err);
    if (!d->fs_) {
        return nullptr;
    }
    if (host != nullptr && host->log != nullptr && d->profile_.backend != BackendKind::Null) {
        const std::string line = std::string("write path: ") +
                                 write_path_name(d->profile_.write_path) + " (" +
                                 d->profile_.write_path_reason + ")";
        host->log(host->host, VDH_LOG_INFO, d->name_.c_str(), line.c_str());
    }
    d->pool_ = std::make_unique<BlockingPool>(kBlockingThreads, &VirtiofsDevice::cancel_blocking,
                                              d.get());
    return d;
}

void VirtiofsDevice::on_done(void* token, int64_t written) { g_host_->complete(token, written); }

void VirtiofsDevice::cancel_blocking(void* self, void* ctx) {
    auto* d = static_cast<VirtiofsDevice*>(self);
    auto* c = static_cast<FuseRequestCtx*>(ctx);
    d->fs_->interrupt_lock(c->unique);
}

int VirtiofsDevice::start(uint64_t /*features*/, const vdh_queue_info* queues, uint16_t nq) {
    // The pool holds every request this device can have in flight (one per ring entry), so
    // the device's own blocking calls never find it full: a guest can only queue behind
    // itself, and nothing ever falls back to running on the lcore.
    unsigned ring_entries = 0;
    for (uint16_t i = 0; i < nq; ++i) {
        ring_entries += queues[i].size;
    }
    cpu_set_t poll_cpus;
    CPU_ZERO(&poll_cpus);
    for (uint16_t i = 0; i < nq; ++i) {
        if (queues[i].cpu < CPU_SETSIZE) {
            CPU_SET(queues[i].cpu, &poll_cpus);
        }
    }
    if (pool_->threads() == 0 || pool_->capacity() < ring_entries) {
        pool_->shutdown();
        if (!pool_->start(ring_entries, &poll_cpus)) {
            return -ENOMEM;
        }
    }
    std::lock_guard<std::mutex> g(ctl_mu_);
    try {
        if (!dispatcher_ || dispatcher_->config().num_queues < nq) {
            FuseDispatcherConfig cfg;
            cfg.max_pages = profile_.max_pages;
            cfg.time_requests = profile_.request_timing;
            cfg.num_queues = nq > kMinDispatcherQueues ? nq : kMinDispatcherQueues;
            cfg.engine = nullptr;
            cfg.done = &VirtiofsDevice::on_done;
            dispatcher_ = std::make_unique<FuseDispatcher>(*fs_, cfg);
        }
        if (engines_.size() != nq) {
            engines_.clear();
            engines_.resize(nq);
            for (uint16_t i = 1; i < nq; ++i) {
                // A host that calls flush() after each batch gets one submission per batch.
                const bool batched = host_ != nullptr && host_->abi_minor >= 2;
                auto e = std::make_unique<UringEngine>(queues[i].size, queues[i].cpu, pool_.get(),
                                                       batched, profile_.write_path);
                if (!e->init()) {
                    return -ENOMEM;
                }
                engines_[i] = std::move(e);
            }
        }
        for (auto& e : engines_) {
            if (e) {
                e->resume();
            }
        }
    } catch (const std::bad_alloc&) {
        return -ENOMEM;
    }
    return 0;
}

void VirtiofsDevice::stop() {
    // io_uring requests get a short grace period, then the lcores (which the host keeps
    // polling until drained) cancel what is left. Blocking calls (lock waits) are
    // interrupted and finish. The FUSE session stays: a VM pause or migration also stops
    // the vrings, and the guest keeps its session; a guest reset shows as a new INIT.
    for (auto& e : engines_) {
        if (e) {
            e->request_cancel();
        }
    }
    // Bounded: the host waits for the completions itself (with its own deadline); a call
    // that outlasts this (a long SYNCFS) just finishes later. Lock waits that start within
    // the bound are interrupted too.
    if (pool_ && !pool_->drain_for(kStopDrainLimit) && host_ != nullptr &&
        host_->log != nullptr) {
        host_->log(host_->host, VDH_LOG_WARNING, name_.c_str(),
                   "blocking calls still running after device stop");
    }
}

void VirtiofsDevice::disconnect() {
    // After stop(): nothing is in flight. End the session (inodes, handles, locks, fds) and
    // let go of what only a connected frontend needs (pool threads, rings, eventfds), so an
    // idle share holds no thread and the fd count returns to where it was before.
    if (dispatcher_) {
        dispatcher_->end_session();
    }
    if (pool_) {
        pool_->shutdown();
    }
    std::lock_guard<std::mutex> g(ctl_mu_);
    for (auto& e : engines_) {
        if (e) {
            retired_.add(*e);
        }
    }
    engines_.clear();
}

void VirtiofsDevice::revoke() {
    if (dispatcher_) {
        dispatcher_->revoke();
    }
    if (host_ != nullptr && host_->log != nullptr) {
        host_->log(host_->host, VDH_LOG_NOTICE, name_.c_str(),
                   "share revoked: the guest's session is ended and its requests fail with EIO");
    }
}

int64_t VirtiofsDevice::handle_request(const vdh_request* req) noexcept {
    IoEngine* e = req->queue < engines_.size() ? engines_[req->queue].get() : nullptr;
    return dispatcher_->handle(*req, static_cast<FuseRequestCtx*>(req->ctx), e);
}

uint32_t VirtiofsDevice::poll(uint16_t q) noexcept {
    if (q >= engines_.size() || !engines_[q]) {
        return 0;
    }
    return engines_[q]->poll();
}

uint32_t VirtiofsDevice::flush(uint16_t q) noexcept {
    if (q >= engines_.size() || !engines_[q]) {
        return 0;
    }
    return engines_[q]->flush();
}

int VirtiofsDevice::wake_fd(uint16_t q) noexcept {
    if (q >= engines_.size() || !engines_[q]) {
        return -1;
    }
    return engines_[q]->wake_fd();
}

int VirtiofsDevice::stats_json(char* buf, size_t len) noexcept {
    std::lock_guard<std::mutex> g(ctl_mu_);
    UringEngineTotals io = retired_;
    for (const auto& e : engines_) {
        if (e) {
            io.add(*e);
        }
    }
    if (!dispatcher_) {
        return std::snprintf(buf, len, "{\"initialized\":false}");
    }
    // Summed over the dispatcher's per-queue counter blocks (each written by one lcore).
    const FuseStats s = dispatcher_->stats();
    const uint64_t total = s.total_requests();
    return std::snprintf(buf, len,
                         "{\"initialized\":%s,\"fuse_minor\":%u,\"requests\":%llu,"
                         "\"errors\":%llu,\"malformed\":%llu,\"unsupported\":%llu,"
                         "\"async\":%llu,\"async_fallbacks\":%llu,\"uring_submitted\":%llu,"
                         "\"uring_enters\":%llu,\"write_path\":\"%s\",\"inline_writes\":%llu,"
                         "\"slow_inline_writes\":%llu,\"preempted_inline_writes\":%llu,"
                         "\"inline_backoffs\":%llu,"
                         "\"hiprio_rejected\":%llu,\"oversize\":%llu,\"blocking_refused\":%llu,"
                         "\"session_resets\":%llu,\"session_busy\":%llu,\"pool_threads\":%u}",
                         dispatcher_->initialized() ? "true" : "false",
                         dispatcher_->negotiated_minor(), static_cast<unsigned long long>(total),
                         static_cast<unsigned long long>(s.errors),
                         static_cast<unsigned long long>(s.malformed),
                         static_cast<unsigned long long>(s.unsupported),
                         static_cast<unsigned long long>(s.async_submitted),
                         static_cast<unsigned long long>(s.async_fallbacks),
                         static_cast<unsigned long long>(io.submitted),
                         static_cast<unsigned long long>(io.enters),
                         write_path_name(profile_.write_path),
                         static_cast<unsigned long long>(s.inline_writes),
                         static_cast<unsigned long long>(io.slow_inline),
                         static_cast<unsigned long long>(io.preempted_inline),
                         static_cast<unsigned long long>(io.inline_backoffs),
                         static_cast<unsigned long long>(s.hiprio_rejected),
                         static_cast<unsigned long long>(s.oversize),
                         static_cast<unsigned long long>(s.blocking_refused),
                         static_cast<unsigned long long>(s.session_resets),
                         static_cast<unsigned long long>(s.session_busy),
                         pool_ ? pool_->threads() : 0u);
}

int VirtiofsDevice::metrics(vdh_metric_emit_fn emit, void* ctx) noexcept {
    std::lock_guard<std::mutex> g(ctl_mu_); // not an lcore's lock (see ctl_mu_)
    if (!dispatcher_) {
        return 0;
    }
    const uint64_t tsc_hz =
        host_ != nullptr && host_->struct_size >= offsetof(vdh_host_api, tsc_hz) + sizeof(uint64_t)
            ? host_->tsc_hz
            : 0;
    emit_fuse_metrics(dispatcher_->stats(), tsc_hz, emit, ctx);
    return 0;
}

} // namespace vdh::virtiofs

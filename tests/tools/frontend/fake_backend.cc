// SPDX-License-Identifier: MIT
// FakeBackend implementation: accept loop, message handling, memory mapping, ring
// translation via userspace_addr, and the inverting echo device. Test-only; see
// fake_backend.h.
#include "fake_backend.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>


namespace vdh::frontend::testing {

FakeBackend::FakeBackend(const std::string& path, const FakeBackendConfig& config)
    : config_(config) {
    listen_ = listen_unix(path);
    stop_fd_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!listen_ || !stop_fd_) {
        error_ = "cannot listen on " + path;
        return;
    }
    thread_ = std::thread([this] { run(); });
}

FakeBackend::~FakeBackend() {
    uint64_t one = 1;
    if (stop_fd_) {
        (void)!::write(stop_fd_.get(), &one, sizeof(one));
    }
    if (thread_.joinable()) {
        thread_.join();
    }
    unmap_all();
}

void FakeBackend::run() {
    for (;;) {
        pollfd p[2] = {{listen_.get(), POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}};
        if (::poll(p, 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            return;
        }
        if (p[1].revents != 0) {
            return;
        }
        UniqueFd conn(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!conn) {
            continue;
        }
        {
            std::lock_guard lock(mu_);
            connections_++;
            if (connections_ <= config_.drop_first_connections) {
                continue; // closes `conn`
            }
        }
        serve(conn.get());
        std::lock_guard lock(mu_);
        reset_connection(); // a stop request is seen by the next poll()
    }
}

void FakeBackend::serve(int conn) {
    for (;;) {
        std::vector<pollfd> fds = {{conn, POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}};
        {
            std::lock_guard lock(mu_);
            for (const Vring& v : vrings_) {
                if (v.kick) {
                    fds.push_back({v.kick.get(), POLLIN, 0});
                }
            }
        }
        int rc = ::poll(fds.data(), fds.size(), 100);
        if (rc < 0 && errno != EINTR) {
            return;
        }
        if (fds[1].revents != 0) {
            return;
        }
        std::lock_guard lock(mu_);
        if (fds[0].revents != 0) {
            RawMsg m;
            RecvStatus s = raw_recv(conn, m, 1000);
            if (s != RecvStatus::Ok) {
                return; // closed (or broken): back to accept()
            }
            log_.push_back({m.hdr.request, m.hdr.flags, m.hdr.size, m.fds.size()});
            if (config_.answer) {
                handle(conn, m);
            }
        }
        for (size_t i = 2; i < fds.size(); i++) {
            if (fds[i].revents != 0) {
                drain_eventfd(fds[i].fd);
            }
        }
        if (config_.answer) {
            for (Vring& v : vrings_) {
                if (ready(v)) {
                    process(v);
                }
            }
        }
    }
}

void FakeBackend::fail(const std::string& what) {
    if (error_.empty()) {
        error_ = what;
    }
}

FakeBackend::Vring& FakeBackend::vring(uint32_t index) {
    if (index >= vrings_.size()) {
        vrings_.resize(index + 1);
    }
    return vrings_[index];
}

bool FakeBackend::ready(const Vring& v) const {
    return v.desc != nullptr && v.avail != nullptr && v.used != nullptr && v.kick && v.call &&
           v.enabled && v.num != 0;
}

void FakeBackend::unmap_all() {
    for (Region& r : regions_) {
        ::munmap(r.map, r.map_len);
    }
    regions_.clear();
}

void FakeBackend::reset_connection() {
    unmap_all();
    vrings_.clear();
    features_ = 0;
    protocol_features_ = 0;
}

uint8_t* FakeBackend::gpa_to_ptr(uint64_t gpa, uint64_t len) const {
    for (const Region& r : regions_) {
        if (gpa >= r.gpa && gpa - r.gpa < r.size && len <= r.size - (gpa - r.gpa)) {
            return r.map + r.offset + (gpa - r.gpa);
        }
    }
    return nullptr;
}

uint8_t* FakeBackend::va_to_ptr(uint64_t va, uint64_t len) const {
    for (const Region& r : regions_) {
        if (va >= r.uaddr && va - r.uaddr < r.size && len <= r.size - (va - r.uaddr)) {
            return r.map + r.offset + (va - r.uaddr);
        }
    }
    return nullptr;
}

void FakeBackend::translate_rings() {
    for (Vring& v : vrings_) {
        if (!v.addr_set || v.num == 0) {
            continue;
        }
        auto n = static_cast<uint16_t>(v.num);
        v.desc =
            reinterpret_cast<VringDesc*>(va_to_ptr(v.addr.desc_user_addr, desc_table_bytes(n)));
        v.avail =
            reinterpret_cast<uint16_t*>(va_to_ptr(v.addr.avail_user_addr, avail_ring_bytes(n)));
        v.used = va_to_ptr(v.addr.used_user_addr, used_ring_bytes(n));
        if (!regions_.empty() && (v.desc == nullptr || v.avail == nullptr || v.used == nullptr)) {
            fail("ring address outside the memory table");
        }
    }
}

void FakeBackend::handle(int conn, RawMsg& m) {
    auto ack = [&] { raw_ack_if_needed(conn, m, 0); };
    if ((m.hdr.flags & kVersionMask) != kVersion || (m.hdr.flags & kFlagReply) != 0) {
        fail("bad header flags");
    }
    if ((m.hdr.flags & kFlagNeedReply) != 0 && (protocol_features_ & kPfReplyAck) == 0) {
        fail("NEED_REPLY without REPLY_ACK negotiated");
    }
    switch (static_cast<Request>(m.hdr.request)) {
    case Request::GetFeatures:
        raw_reply(conn, m, &config_.features, sizeof(uint64_t));
        break;
    case Request::SetFeatures:
        features_ = m.as<uint64_t>();
        if ((features_ & ~config_.features) != 0) {
            fail("SET_FEATURES with bits we did not offer");
        }
        ack();
        break;
    case Request::GetProtocolFeatures:
        raw_reply(conn, m, &config_.protocol_features, sizeof(uint64_t));
        break;
    case Request::SetProtocolFeatures:
        protocol_features_ = m.as<uint64_t>();
        if ((protocol_features_ & ~config_.protocol_features) != 0) {
            fail("SET_PROTOCOL_FEATURES with bits we did not offer");
        }
        break; // REPLY_ACK starts with the next message
    case Request::GetQueueNum:
        raw_reply(conn, m, &config_.queue_num, sizeof(uint64_t));
        break;
    case Request::SetOwner:
    case Request::ResetOwner:
        ack();
        break;
    case Request::SetMemTable: {
        MemoryTable t{};
        std::memcpy(&t, m.payload.data(), std::min(m.payload.size(), sizeof(t)));
        if (t.nregions > kMaxMemRegions || t.nregions != m.fds.size() ||
            m.hdr.size != 8 + 32 * t.nregions) {
            fail("malformed SET_MEM_TABLE");
            ack();
            break;
        }
        unmap_all();
        for (uint32_t i = 0; i < t.nregions; i++) {
            const MemoryRegionDesc& d = t.regions[i];
            size_t len = d.memory_size + d.mmap_offset;
            void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, m.fds[i].get(), 0);
            if (p == MAP_FAILED) {
                fail("mmap of a region failed");
                continue;
            }
            regions_.push_back(Region{d.guest_phys_addr, d.memory_size, d.userspace_addr,
                                      d.mmap_offset, static_cast<uint8_t*>(p), len});
        }
        translate_rings(); // like rte_vhost: new mappings, re-translate running rings
        ack();
        break;
    }
    case Request::SetVringNum: {
        auto s = m.as<VringState>();
        vring(s.index).num = s.num;
        ack();
        break;
    }
    case Request::SetVringBase: {
        auto s = m.as<VringState>();
        vring(s.index).last_avail = static_cast<uint16_t>(s.num);
        vring(s.index).last_used = static_cast<uint16_t>(s.num);
        ack();
        break;
    }
    case Request::SetVringAddr: {
        auto a = m.as<VringAddr>();
        Vring& v = vring(a.index);
        v.addr = a;
        v.addr_set = true;
        translate_rings();
        if (v.desc == nullptr) {
            fail("SET_VRING_ADDR before a usable memory table");
        }
        ack();
        break;
    }
    case Request::SetVringKick:
    case Request::SetVringCall:
    case Request::SetVringErr: {
        auto payload = m.as<uint64_t>();
        Vring& v = vring(static_cast<uint32_t>(payload & kVringIndexMask));
        bool nofd = (payload & kVringNoFd) != 0;
        if (nofd != m.fds.empty()) {
            fail("vring fd flag does not match the fds sent");
        }
        UniqueFd fd = m.fds.empty() ? UniqueFd() : std::move(m.fds[0]);
        if (m.hdr.request == static_cast<uint32_t>(Request::SetVringKick)) {
            v.kick = std::move(fd);
            // Without PROTOCOL_FEATURES a ring is enabled by its kick fd (as in rte_vhost).
            if ((features_ & kFProtocolFeatures) == 0) {
                v.enabled = true;
            }
        } else if (m.hdr.request == static_cast<uint32_t>(Request::SetVringCall)) {
            v.call = std::move(fd);
        }
        ack();
        break;
    }
    case Request::SetVringEnable: {
        auto s = m.as<VringState>();
        if ((features_ & kFProtocolFeatures) == 0) {
            fail("SET_VRING_ENABLE without PROTOCOL_FEATURES");
        }
        vring(s.index).enabled = s.num != 0;
        ack();
        break;
    }
    case Request::GetVringBase: {
        auto s = m.as<VringState>();
        Vring& v = vring(s.index);
        VringState reply{s.index, v.last_avail};
        v.kick.reset(); // the ring stops
        v.enabled = false;
        raw_reply(conn, m, &reply, sizeof(reply));
        break;
    }
    case Request::GetConfig: {
        auto h = m.as<ConfigHeader>();
        std::vector<uint8_t> reply(sizeof(ConfigHeader) + h.size, 0);
        static const char kConfig[] = "fake-backend-config";
        for (uint32_t i = 0; i < h.size; i++) {
            uint32_t at = h.offset + i;
            reply[sizeof(ConfigHeader) + i] = at < sizeof(kConfig) ? kConfig[at] : 0;
        }
        std::memcpy(reply.data(), &h, sizeof(h));
        raw_reply(conn, m, reply.data(), static_cast<uint32_t>(reply.size()));
        break;
    }
    default:
        fail(std::string("unexpected request ") + request_name(m.hdr.request));
        ack();
        break;
    }
}

void FakeBackend::process(Vring& v) {
    auto n = static_cast<uint16_t>(v.num);
    const bool event_idx = (features_ & kFEventIdx) != 0;
    auto* avail_idx = &v.avail[1];
    auto* used_idx = reinterpret_cast<uint16_t*>(v.used + 2);
    auto* ring = reinterpret_cast<VringUsedElem*>(v.used + 4);
    auto* avail_event = reinterpret_cast<uint16_t*>(v.used + 4 + 8 * n);
    uint16_t* used_event = &v.avail[2 + n];
    bool pushed = false;
    uint16_t old_used = v.last_used;

    while (std::atomic_ref<uint16_t>(*avail_idx).load(std::memory_order_acquire) != v.last_avail) {
        uint16_t head = v.avail[2 + (v.last_avail & (n - 1))];
        v.last_avail++;
        if (head >= n) {
            fail("head out of range");
            return;
        }
        const VringDesc* table = v.desc;
        uint32_t table_size = n;
        uint16_t i = head;
        if (v.desc[head].flags & kDescFIndirect) {
            const VringDesc& ind = v.desc[head];
            table = reinterpret_cast<const VringDesc*>(gpa_to_ptr(ind.addr, ind.len));
            table_size = v.desc[head].len / sizeof(VringDesc);
            i = 0;
            if (table == nullptr) {
                fail("bad indirect table");
                return;
            }
        }
        std::vector<uint8_t> in;
        std::vector<const VringDesc*> out;
        for (uint32_t hops = 0;; hops++) {
            if (hops >= table_size || i >= table_size) {
                fail("bad chain");
                return;
            }
            const VringDesc& d = table[i];
            uint8_t* p = gpa_to_ptr(d.addr, d.len);
            if (p == nullptr) {
                fail("descriptor outside guest memory");
                return;
            }
            if (d.flags & kDescFWrite) {
                out.push_back(&d);
            } else {
                in.insert(in.end(), p, p + d.len);
            }
            if (!(d.flags & kDescFNext)) {
                break;
            }
            i = d.next;
        }
        size_t off = 0;
        for (const VringDesc* d : out) {
            size_t k = std::min<size_t>(d->len, in.size() - off);
            uint8_t* p = gpa_to_ptr(d->addr, d->len);
            for (size_t j = 0; j < k; j++) {
                p[j] = static_cast<uint8_t>(~in[off + j]);
            }
            off += k;
        }
        ring[v.last_used & (n - 1)] = VringUsedElem{head, static_cast<uint32_t>(off)};
        v.last_used++;
        std::atomic_ref<uint16_t>(*used_idx).store(v.last_used, std::memory_order_release);
        v.served++;
        pushed = true;
    }
    if (event_idx) {
        std::atomic_ref<uint16_t>(*avail_event).store(v.last_avail, std::memory_order_release);
    }
    if (!pushed) {
        return;
    }
    std::atomic_thread_fence(std::memory_order_seq_cst);
    bool need = event_idx
                    ? vring_need_event(std::atomic_ref<uint16_t>(*used_event).load(), v.last_used,
                                       old_used)
                    : (std::atomic_ref<uint16_t>(v.avail[0]).load() & kAvailFNoInterrupt) == 0;
    if (need) {
        uint64_t one = 1;
        if (::write(v.call.get(), &one, sizeof(one)) == sizeof(one)) {
            v.signals++;
        }
    }
}

std::vector<LoggedRequest> FakeBackend::log() const {
    std::lock_guard lock(mu_);
    return log_;
}

std::vector<uint32_t> FakeBackend::requests() const {
    std::lock_guard lock(mu_);
    std::vector<uint32_t> out;
    for (const LoggedRequest& r : log_) {
        out.push_back(r.request);
    }
    return out;
}

uint64_t FakeBackend::acked_features() const {
    std::lock_guard lock(mu_);
    return features_;
}

uint64_t FakeBackend::acked_protocol_features() const {
    std::lock_guard lock(mu_);
    return protocol_features_;
}

int FakeBackend::connections() const {
    std::lock_guard lock(mu_);
    return connections_;
}

uint64_t FakeBackend::served(uint16_t q) const {
    std::lock_guard lock(mu_);
    return q < vrings_.size() ? vrings_[q].served : 0;
}

uint64_t FakeBackend::signals(uint16_t q) const {
    std::lock_guard lock(mu_);
    return q < vrings_.size() ? vrings_[q].signals : 0;
}

bool FakeBackend::all_rings_ready() const {
    std::lock_guard lock(mu_);
    if (vrings_.empty()) {
        return false;
    }
    return std::all_of(vrings_.begin(), vrings_.end(), [this](const Vring& v) { return ready(v); });
}

size_t FakeBackend::mapped_regions() const {
    std::lock_guard lock(mu_);
    return regions_.size();
}

std::string FakeBackend::error() const {
    std::lock_guard lock(mu_);
    return error_;
}

} // namespace vdh::frontend::testing

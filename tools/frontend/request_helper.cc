// SPDX-License-Identifier: MIT
// RequestHelper implementation: buffer placement in guest memory, segmenting, and the
// submit-kick-wait-copy cycle.
#include "frontend/request_helper.h"

#include <algorithm>
#include <cstring>
#include <optional>

#include "vdh/scope_exit.h"

namespace vdh::frontend {

namespace {

/// Appends descriptors covering [gpa, gpa+len) in pieces of at most `max` bytes (0: one).
void split(uint64_t gpa, uint32_t len, uint32_t max, std::vector<Segment>& out) {
    if (len == 0) {
        return;
    }
    uint32_t step = max == 0 ? len : max;
    for (uint32_t off = 0; off < len; off += step) {
        out.push_back(Segment::guest(gpa + off, std::min(step, len - off)));
    }
}

} // namespace

Result<RequestHelper::Reply> RequestHelper::submit(std::span<const uint8_t> readable,
                                                   uint32_t writable_size) {
    GuestMemory& mem = vq_.memory();
    if (readable.size() > UINT32_MAX) {
        return make_err(EINVAL);
    }
    auto in_len = static_cast<uint32_t>(readable.size());
    // gpa 0 is a valid address, hence optional rather than a 0 sentinel.
    std::optional<uint64_t> in_gpa;
    std::optional<uint64_t> out_gpa;
    // Give the buffers back on every exit, except while the device may still own them.
    bool device_owns = false;
    ScopeExit release([&] {
        if (device_owns) {
            return;
        }
        for (const auto& gpa : {in_gpa, out_gpa}) {
            if (gpa) {
                (void)mem.free(*gpa);
            }
        }
    });
    if (in_len > 0) {
        auto gpa = mem.allocate(in_len, 64);
        if (!gpa) {
            return Err{gpa.error()};
        }
        in_gpa = *gpa;
        VDH_TRY(mem.write(*in_gpa, readable.data(), in_len));
    }
    if (writable_size > 0) {
        auto gpa = mem.allocate(writable_size, 64);
        if (!gpa) {
            return Err{gpa.error()};
        }
        out_gpa = *gpa;
        // Poison, so a test can tell written bytes from stale ones.
        std::memset(mem.ptr<uint8_t>(*out_gpa, writable_size), 0xa5, writable_size);
    }

    std::vector<Segment> in_segs;
    std::vector<Segment> out_segs;
    split(in_gpa.value_or(0), in_len, options_.max_segment, in_segs);
    split(out_gpa.value_or(0), writable_size, options_.max_segment, out_segs);
    auto head = vq_.add_chain(in_segs, out_segs, options_.indirect);
    if (!head) {
        return Err{head.error()};
    }
    device_owns = true;
    auto kicked = vq_.kick();
    if (!kicked) {
        return Err{kicked.error()}; // published but maybe never seen: keep the buffers
    }
    UsedElem elem;
    auto n = vq_.wait_used(std::span<UsedElem>(&elem, 1), options_.timeout);
    if (!n) {
        return Err{n.error()};
    }
    if (elem.unexpected || elem.id != *head) {
        return make_err(EPROTO); // our chain is still out there
    }
    device_owns = false;
    if (elem.len > writable_size) {
        return make_err(EMSGSIZE);
    }
    Reply reply;
    reply.used_len = elem.len;
    reply.data.resize(elem.len);
    if (elem.len > 0) {
        VDH_TRY(mem.read(*out_gpa, reply.data.data(), elem.len));
    }
    return reply;
}

} // namespace vdh::frontend

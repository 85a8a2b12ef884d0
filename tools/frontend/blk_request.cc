// SPDX-License-Identifier: MIT
// BlkRequester implementation: buffer placement in guest memory, chain building, and the
// kick-wait-copy cycle.
#include "frontend/blk_request.h"

#include <endian.h>

#include <algorithm>
#include <cstring>

namespace vdh::frontend {

namespace {

void put_le(std::vector<uint8_t>& v, uint64_t x, int bytes) {
    for (int i = 0; i < bytes; ++i) {
        v.push_back(static_cast<uint8_t>(x >> (8 * i)));
    }
}

} // namespace

std::vector<uint8_t> blk_header(uint32_t type, uint64_t sector, uint32_t ioprio) {
    std::vector<uint8_t> v;
    put_le(v, type, 4);
    put_le(v, ioprio, 4);
    put_le(v, sector, 8);
    return v;
}

std::vector<uint8_t> blk_segment(uint64_t sector, uint32_t num_sectors, uint32_t flags) {
    std::vector<uint8_t> v;
    put_le(v, sector, 8);
    put_le(v, num_sectors, 4);
    put_le(v, flags, 4);
    return v;
}

Result<BlkReply> BlkRequester::read(uint64_t sector, uint32_t len) {
    return raw({blk_header(kBlkTIn, sector)}, {len, 1});
}

Result<BlkReply> BlkRequester::write(uint64_t sector, std::span<const uint8_t> data) {
    return raw({blk_header(kBlkTOut, sector), std::vector<uint8_t>(data.begin(), data.end())}, {1});
}

Result<BlkReply> BlkRequester::flush() {
    return raw({blk_header(kBlkTFlush, 0)}, {1});
}

Result<BlkReply> BlkRequester::get_id() {
    return raw({blk_header(kBlkTGetId, 0)}, {kBlkIdBytes, 1});
}

Result<BlkReply> BlkRequester::discard(uint64_t sector, uint32_t num_sectors, uint32_t flags) {
    return raw({blk_header(kBlkTDiscard, 0), blk_segment(sector, num_sectors, flags)}, {1});
}

Result<BlkReply> BlkRequester::write_zeroes(uint64_t sector, uint32_t num_sectors, uint32_t flags) {
    return raw({blk_header(kBlkTWriteZeroes, 0), blk_segment(sector, num_sectors, flags)}, {1});
}

Result<BlkReply> BlkRequester::raw(const std::vector<std::vector<uint8_t>>& readable,
                                   const std::vector<uint32_t>& writable) {
    auto head = submit(readable, writable);
    if (!head) {
        return Err{head.error()};
    }
    uint16_t id = 0;
    auto r = wait(&id);
    if (r && id != *head) {
        return make_err(EPROTO);
    }
    return r;
}

Result<uint16_t> BlkRequester::submit(const std::vector<std::vector<uint8_t>>& readable,
                                      const std::vector<uint32_t>& writable) {
    GuestMemory& mem = vq_.memory();
    Pending p;
    auto release = [&] {
        for (uint64_t g : p.bufs) {
            (void)mem.free(g);
        }
    };
    std::vector<Segment> in_segs;
    std::vector<Segment> out_segs;
    auto add = [&](uint32_t len, bool is_writable, const uint8_t* src) -> Status {
        if (len == 0) {
            return {};
        }
        auto gpa = mem.allocate(len, 64);
        if (!gpa) {
            return Err{gpa.error()};
        }
        p.bufs.push_back(*gpa);
        if (src != nullptr) {
            VDH_TRY(mem.write(*gpa, src, len));
        } else {
            std::memset(mem.ptr<uint8_t>(*gpa, len), 0xa5, len); // poison: written bytes show
            p.writable.emplace_back(*gpa, len);
        }
        const uint32_t step = options_.max_segment == 0 ? len : options_.max_segment;
        for (uint32_t off = 0; off < len; off += step) {
            (is_writable ? out_segs : in_segs)
                .push_back(Segment::guest(*gpa + off, std::min(step, len - off)));
        }
        return {};
    };
    for (const auto& r : readable) {
        auto s = add(static_cast<uint32_t>(r.size()), false, r.data());
        if (!s) {
            release();
            return Err{s.error()};
        }
    }
    for (uint32_t w : writable) {
        auto s = add(w, true, nullptr);
        if (!s) {
            release();
            return Err{s.error()};
        }
    }
    auto head = vq_.add_chain(in_segs, out_segs, options_.indirect);
    if (!head) {
        release();
        return Err{head.error()};
    }
    p.head = *head;
    pending_.push_back(std::move(p));
    auto kicked = vq_.kick();
    if (!kicked) {
        return Err{kicked.error()};
    }
    return *head;
}

Result<BlkReply> BlkRequester::wait(uint16_t* id) {
    UsedElem elem;
    auto n = vq_.wait_used(std::span<UsedElem>(&elem, 1), options_.timeout);
    if (!n) {
        return Err{n.error()};
    }
    auto it = std::find_if(pending_.begin(), pending_.end(),
                           [&](const Pending& p) { return p.head == elem.id; });
    if (elem.unexpected || it == pending_.end()) {
        return make_err(EPROTO);
    }
    Pending p = std::move(*it);
    pending_.erase(it);
    *id = elem.id;
    return finish(p, elem.len);
}

Result<BlkReply> BlkRequester::finish(Pending& p, uint32_t used_len) {
    GuestMemory& mem = vq_.memory();
    BlkReply reply;
    reply.used_len = used_len;
    uint64_t total = 0;
    for (const auto& [gpa, len] : p.writable) {
        total += len;
    }
    if (total > 0) {
        std::vector<uint8_t> all;
        all.reserve(total);
        for (const auto& [gpa, len] : p.writable) {
            const size_t at = all.size();
            all.resize(at + len);
            VDH_TRY(mem.read(gpa, all.data() + at, len));
        }
        reply.status = all.back();
        all.pop_back();
        reply.data = std::move(all);
    }
    for (uint64_t g : p.bufs) {
        (void)mem.free(g);
    }
    return reply;
}

} // namespace vdh::frontend

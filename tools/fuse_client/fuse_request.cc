// SPDX-License-Identifier: MIT
// FuseRequest: building requests in, and reading replies out of, pre-allocated guest
// buffers (see fuse_request.h). Nothing here allocates.
#include "fuse_client/fuse_request.h"

#include <cerrno>

namespace vdh::fuse_client {

void FuseRequest::begin(uint32_t opcode, uint64_t nodeid) noexcept {
    fuse_in_header h{};
    h.opcode = opcode;
    h.nodeid = nodeid;
    h.uid = uid_;
    h.gid = gid_;
    h.pid = pid_;
    std::memcpy(in_, &h, sizeof(h));
    in_len_ = kInHeaderSize;
    data_off_ = 0;
    out_len_ = out_cap_;
    raw_ = false;
}

fuse_in_header& FuseRequest::in_header() noexcept {
    // Safety: in_ is at least kInHeaderSize bytes, 64-byte aligned guest memory.
    return *reinterpret_cast<fuse_in_header*>(in_);
}

bool FuseRequest::append(const void* p, size_t n) noexcept {
    if (data_off_ != 0 || n > in_cap_ - in_len_) {
        return false;
    }
    if (n > 0) {
        std::memcpy(in_ + in_len_, p, n);
    }
    in_len_ += static_cast<uint32_t>(n);
    return true;
}

bool FuseRequest::append_name(std::string_view name) noexcept {
    if (data_off_ != 0 || name.size() + 1 > in_cap_ - in_len_) {
        return false;
    }
    std::memcpy(in_ + in_len_, name.data(), name.size());
    in_[in_len_ + name.size()] = '\0';
    in_len_ += static_cast<uint32_t>(name.size() + 1);
    return true;
}

uint8_t* FuseRequest::append_data(size_t n) noexcept {
    if (data_off_ != 0 || n > in_cap_ - in_len_) {
        return nullptr;
    }
    uint8_t* p = in_ + in_len_;
    if (n > 0) {
        data_off_ = in_len_;
        in_len_ += static_cast<uint32_t>(n);
    }
    return p;
}

bool FuseRequest::set_raw(std::span<const uint8_t> bytes) noexcept {
    if (bytes.size() > in_cap_) {
        return false;
    }
    if (!bytes.empty()) {
        std::memcpy(in_, bytes.data(), bytes.size());
    }
    in_len_ = static_cast<uint32_t>(bytes.size());
    data_off_ = 0;
    raw_ = true;
    return true;
}

const fuse_out_header& FuseRequest::out_header() const noexcept {
    // Safety: out_ is at least kOutHeaderSize bytes, 64-byte aligned guest memory.
    return *reinterpret_cast<const fuse_out_header*>(out_);
}

std::span<const uint8_t> FuseRequest::out_payload() const noexcept {
    if (!has_reply()) {
        return {};
    }
    uint32_t n = used_len_;
    if (out_header().len < n) {
        n = out_header().len;
    }
    if (out_len_ < n) {
        n = out_len_;
    }
    if (n < kOutHeaderSize) {
        return {};
    }
    return {out_ + kOutHeaderSize, n - kOutHeaderSize};
}

int FuseRequest::reply_errno() const noexcept {
    if (!has_reply() || out_header().unique != unique_ || out_header().len < kOutHeaderSize ||
        out_header().len > used_len_) {
        return EPROTO;
    }
    const int32_t e = out_header().error;
    return e > 0 ? EPROTO : -e; // a positive error is not FUSE
}

} // namespace vdh::fuse_client

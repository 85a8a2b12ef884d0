// SPDX-License-Identifier: MIT
// Bounds-checked sequential readers and writers over iovec lists (a request's readable
// and writable guest buffers). No allocation; every copy is checked against the lists.
// Hot path: no alloc, no block, no throw.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace vdh {

/// Walks an iovec list from the front. Copies never read or write past the list.
class IovecCursor {
public:
    IovecCursor() noexcept = default;
    IovecCursor(const struct iovec* iov, uint32_t n) noexcept : iov_(iov), n_(n) {
        for (uint32_t i = 0; i < n; ++i) {
            remaining_ += iov[i].iov_len;
        }
        skip_empty();
    }

    /// Bytes left from the current position to the end of the list.
    std::size_t remaining() const noexcept { return remaining_; }
    /// Bytes consumed so far.
    std::size_t consumed() const noexcept { return consumed_; }

    /// Copies \p len bytes out of the list. Returns false (and copies nothing) if fewer
    /// than \p len bytes remain.
    bool read(void* dst, std::size_t len) noexcept {
        if (len > remaining_) {
            return false;
        }
        auto* d = static_cast<uint8_t*>(dst);
        while (len > 0) {
            std::size_t n = chunk(len);
            std::memcpy(d, cur(), n);
            d += n;
            len -= n;
            advance(n);
        }
        return true;
    }

    /// Copies \p len bytes into the list. Returns false (and copies nothing) if fewer than
    /// \p len bytes remain.
    bool write(const void* src, std::size_t len) noexcept {
        if (len > remaining_) {
            return false;
        }
        auto* s = static_cast<const uint8_t*>(src);
        while (len > 0) {
            std::size_t n = chunk(len);
            std::memcpy(cur(), s, n);
            s += n;
            len -= n;
            advance(n);
        }
        return true;
    }

    /// Fills \p len bytes with zero. Same rules as write().
    bool zero(std::size_t len) noexcept {
        if (len > remaining_) {
            return false;
        }
        while (len > 0) {
            std::size_t n = chunk(len);
            std::memset(cur(), 0, n);
            len -= n;
            advance(n);
        }
        return true;
    }

    /// Skips \p len bytes. Returns false (and moves nothing) if fewer remain.
    bool skip(std::size_t len) noexcept {
        if (len > remaining_) {
            return false;
        }
        while (len > 0) {
            std::size_t n = chunk(len);
            len -= n;
            advance(n);
        }
        return true;
    }

    /// If the next \p len bytes are contiguous in one iovec, returns a pointer to them
    /// (and does not advance); otherwise nullptr. Lets parsers avoid a copy.
    void* peek_contiguous(std::size_t len) const noexcept {
        if (len > remaining_ || idx_ >= n_) {
            return nullptr;
        }
        if (iov_[idx_].iov_len - off_ < len) {
            return nullptr;
        }
        return cur();
    }

    /// Fills \p out with at most \p max iovecs describing the next \p len bytes, and
    /// advances past them. Returns the number of iovecs used, or -1 if fewer than \p len
    /// bytes remain or \p max is too small (the cursor does not move then).
    int take_iovecs(std::size_t len, struct iovec* out, int max) noexcept {
        if (len > remaining_) {
            return -1;
        }
        IovecCursor probe = *this;
        int count = 0;
        while (len > 0) {
            if (count == max) {
                return -1;
            }
            std::size_t n = probe.chunk(len);
            out[count].iov_base = probe.cur();
            out[count].iov_len = n;
            ++count;
            len -= n;
            probe.advance(n);
        }
        *this = probe;
        return count;
    }

private:
    void* cur() const noexcept { return static_cast<uint8_t*>(iov_[idx_].iov_base) + off_; }
    std::size_t chunk(std::size_t want) const noexcept {
        std::size_t avail = iov_[idx_].iov_len - off_;
        return want < avail ? want : avail;
    }
    void advance(std::size_t n) noexcept {
        off_ += n;
        remaining_ -= n;
        consumed_ += n;
        if (off_ == iov_[idx_].iov_len) {
            ++idx_;
            off_ = 0;
            skip_empty();
        }
    }
    void skip_empty() noexcept {
        while (idx_ < n_ && iov_[idx_].iov_len == 0) {
            ++idx_;
        }
    }

    const struct iovec* iov_ = nullptr;
    uint32_t n_ = 0;
    uint32_t idx_ = 0;
    std::size_t off_ = 0;
    std::size_t remaining_ = 0;
    std::size_t consumed_ = 0;
};

} // namespace vdh

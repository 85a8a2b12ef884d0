// SPDX-License-Identifier: MIT
// io_uring submission and reaping for one virtio-blk request queue (see blk_uring.h).
#include "blk_uring.h"

#include <unistd.h>

#include "vdh/poll_ring.h"

namespace vdh::virtioblk {

namespace {
/// user_data of our own ASYNC_CANCEL SQEs (never a request's).
constexpr uint64_t kCancelTag = ~0ULL;
} // namespace

BlkUring::BlkUring(uint32_t entries, uint32_t poll_cpu, bool batched) noexcept
    : entries_(clamp_ring_entries(entries)), poll_cpu_(poll_cpu), batched_(batched) {}

BlkUring::~BlkUring() {
    if (ring_ok_) {
        io_uring_queue_exit(&ring_);
    }
}

bool BlkUring::init() noexcept {
    auto e = make_ring_eventfd();
    if (!e) {
        return false;
    }
    efd_ = std::move(*e);
    return true;
}

bool BlkUring::ensure_ring() noexcept {
    if (ring_ok_) {
        return true;
    }
    if (ring_failed_) {
        return false;
    }
    // Created here, on the lcore (vdh/poll_ring.h): only this thread submits.
    if (!init_poll_ring(&ring_, entries_, efd_.get(), poll_cpu_)) {
        ring_failed_ = true;
        return false;
    }
    ring_ok_ = true;
    return true;
}

struct io_uring_sqe* BlkUring::get_sqe() noexcept {
    if (!ensure_ring()) {
        return nullptr;
    }
    struct io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {
        // SQ full (a batch larger than the ring): hand the queued ones to the kernel, which
        // frees their slots at once.
        enter();
        sqe = io_uring_get_sqe(&ring_);
    }
    return sqe;
}

bool BlkUring::queued(struct io_uring_sqe* sqe, uint64_t user_data) noexcept {
    io_uring_sqe_set_data64(sqe, user_data);
    ++inflight_;
    submitted_.store(submitted_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    if (!batched_) {
        enter(); // on failure the SQE stays queued and goes with the next submit or poll()
    }
    return true;
}

int BlkUring::enter() noexcept {
    enters_.store(enters_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return io_uring_submit(&ring_);
}

bool BlkUring::readv(int fd, const struct iovec* iov, uint32_t n, uint64_t off,
                     uint64_t user_data) noexcept {
    struct io_uring_sqe* sqe = get_sqe();
    if (sqe == nullptr) {
        return false;
    }
    io_uring_prep_readv(sqe, fd, iov, n, off);
    return queued(sqe, user_data);
}

bool BlkUring::writev(int fd, const struct iovec* iov, uint32_t n, uint64_t off,
                      uint64_t user_data) noexcept {
    struct io_uring_sqe* sqe = get_sqe();
    if (sqe == nullptr) {
        return false;
    }
    io_uring_prep_writev(sqe, fd, iov, n, off);
    return queued(sqe, user_data);
}

bool BlkUring::fdatasync(int fd, uint64_t user_data) noexcept {
    struct io_uring_sqe* sqe = get_sqe();
    if (sqe == nullptr) {
        return false;
    }
    io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
    return queued(sqe, user_data);
}

bool BlkUring::fallocate(int fd, int mode, uint64_t off, uint64_t len,
                         uint64_t user_data) noexcept {
    struct io_uring_sqe* sqe = get_sqe();
    if (sqe == nullptr) {
        return false;
    }
    io_uring_prep_fallocate(sqe, fd, mode, off, len);
    return queued(sqe, user_data);
}

uint32_t BlkUring::flush() noexcept {
    if (!ring_ok_ || io_uring_sq_ready(&ring_) == 0) {
        return 0;
    }
    // On failure (EAGAIN, EBUSY) the SQEs stay queued; poll() submits them again.
    const int rc = enter();
    return rc > 0 ? static_cast<uint32_t>(rc) : 0;
}

void BlkUring::request_cancel() noexcept {
    cancel_.store(true, std::memory_order_release);
    if (efd_) {
        const uint64_t one = 1;
        [[maybe_unused]] ssize_t r = ::write(efd_.get(), &one, sizeof(one));
    }
}

void BlkUring::resume() noexcept {
    cancel_seen_ = false; // no lcore serves the queue now
    cancel_.store(false, std::memory_order_release);
}

void BlkUring::maybe_cancel() noexcept {
    if (!cancel_.load(std::memory_order_acquire)) {
        cancel_seen_ = false;
        return;
    }
    const auto now = std::chrono::steady_clock::now();
    if (!cancel_seen_) {
        cancel_seen_ = true;
        next_cancel_ = now + kGraceForCancel;
        return;
    }
    if (now < next_cancel_ || inflight_ == 0) {
        return;
    }
    next_cancel_ = now + kCancelRepeat;
    struct io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {
        return; // SQ full: the pending submissions go first; try again later
    }
    io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(sqe, kCancelTag);
    ++cancels_inflight_;
    enter();
}

uint32_t BlkUring::poll(CompleteFn fn, void* owner) noexcept {
    if (!ring_ok_ || (inflight_ == 0 && cancels_inflight_ == 0)) {
        return 0;
    }
    if (io_uring_sq_ready(&ring_) > 0) {
        enter();
    }
    maybe_cancel();
    struct io_uring_cqe* cqes[64];
    uint32_t total = 0;
    for (;;) {
        const unsigned n = io_uring_peek_batch_cqe(&ring_, cqes, 64);
        if (n == 0) {
            break;
        }
        for (unsigned i = 0; i < n; ++i) {
            const uint64_t ud = io_uring_cqe_get_data64(cqes[i]);
            const int32_t res = cqes[i]->res;
            if (ud == kCancelTag) {
                --cancels_inflight_; // the cancelled requests report on their own
                continue;
            }
            --inflight_;
            fn(owner, ud, res); // may queue a retry (a short read or write)
        }
        io_uring_cq_advance(&ring_, n);
        total += n;
    }
    if (io_uring_sq_ready(&ring_) > 0) {
        enter(); // retries queued by fn
    }
    return total;
}

} // namespace vdh::virtioblk

// SPDX-License-Identifier: MIT
// io_uring submission and reaping for one request queue.
#include "uring_engine.h"

#include <unistd.h>

#include "fuse/fuse_dispatcher.h"
#include "vdh/poll_ring.h"

namespace vdh::virtiofs {

UringEngine::UringEngine(uint32_t entries, uint32_t poll_cpu, BlockingPool* pool, bool batched,
                         WritePath write_path) noexcept
    : entries_(clamp_ring_entries(entries)), poll_cpu_(poll_cpu), batched_(batched), pool_(pool),
      gate_(write_path == WritePath::Inline) {}

UringEngine::~UringEngine() {
    if (ring_ok_) {
        io_uring_queue_exit(&ring_);
    }
}

bool UringEngine::init() noexcept {
    auto e = make_ring_eventfd();
    if (!e) {
        return false;
    }
    efd_ = std::move(*e);
    return true;
}

bool UringEngine::ensure_ring() noexcept {
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

namespace {
/// user_data of our own ASYNC_CANCEL SQEs (never a request ctx).
constexpr uint64_t kCancelTag = ~0ULL;
/// Low bit of a request's user_data: a write-class request (ctx pointers are aligned).
constexpr uint64_t kWriteClassBit = 1;
} // namespace

void UringEngine::request_cancel() noexcept {
    cancel_.store(true, std::memory_order_release);
    if (efd_) {
        const uint64_t one = 1;
        [[maybe_unused]] ssize_t r = ::write(efd_.get(), &one, sizeof(one));
    }
}

void UringEngine::resume() noexcept {
    cancel_seen_ = false; // no lcore serves the queue now (the host attaches it after start)
    cancel_.store(false, std::memory_order_release);
}

void UringEngine::maybe_cancel() noexcept {
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
    cancels_sent_.store(cancels_sent_.load(std::memory_order_relaxed) + 1,
                        std::memory_order_relaxed);
    io_uring_submit(&ring_);
}

struct io_uring_sqe* UringEngine::next_sqe() noexcept {
    if (!ensure_ring()) {
        return nullptr;
    }
    return io_uring_get_sqe(&ring_);
}

bool UringEngine::submit(struct io_uring_sqe* sqe, void* ctx, bool write_class) noexcept {
    io_uring_sqe_set_data64(sqe,
                            reinterpret_cast<uint64_t>(ctx) | (write_class ? kWriteClassBit : 0));
    ++inflight_;
    writes_inflight_ += write_class ? 1 : 0;
    submitted_.store(submitted_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    if (!batched_) {
        // Submit at once: the loop may sleep right after this request. On failure the SQE
        // stays queued and goes out with the next successful submit or poll().
        enter();
    }
    return true;
}

int UringEngine::enter() noexcept {
    enters_.store(enters_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return io_uring_submit(&ring_);
}

uint32_t UringEngine::flush() noexcept {
    if (!ring_ok_ || io_uring_sq_ready(&ring_) == 0) {
        return 0;
    }
    // On failure (EAGAIN, EBUSY) the SQEs stay queued; poll() submits them again.
    int rc = enter();
    return rc > 0 ? static_cast<uint32_t>(rc) : 0;
}

bool UringEngine::readv(int fd, const struct iovec* iov, int n, uint64_t off, void* ctx) {
    struct io_uring_sqe* sqe = next_sqe();
    if (sqe == nullptr) {
        return false;
    }
    io_uring_prep_readv(sqe, fd, iov, static_cast<unsigned>(n), off);
    return submit(sqe, ctx);
}

bool UringEngine::writev(int fd, const struct iovec* iov, int n, uint64_t off, void* ctx) {
    struct io_uring_sqe* sqe = next_sqe();
    if (sqe == nullptr) {
        return false;
    }
    io_uring_prep_writev(sqe, fd, iov, static_cast<unsigned>(n), off);
    return submit(sqe, ctx, true);
}

bool UringEngine::fsync(int fd, bool datasync, void* ctx) {
    struct io_uring_sqe* sqe = next_sqe();
    if (sqe == nullptr) {
        return false;
    }
    io_uring_prep_fsync(sqe, fd, datasync ? IORING_FSYNC_DATASYNC : 0);
    return submit(sqe, ctx, true);
}

bool UringEngine::fallocate(int fd, int mode, uint64_t off, uint64_t len, void* ctx) {
    struct io_uring_sqe* sqe = next_sqe();
    if (sqe == nullptr) {
        return false;
    }
    io_uring_prep_fallocate(sqe, fd, mode, off, len);
    return submit(sqe, ctx, true);
}

int64_t UringEngine::write_now(int fd, int open_flags, const struct iovec* iov, int n, uint64_t off,
                               uint64_t len) {
    if (!gate_.allow(fd, open_flags, off, len, writes_inflight_)) {
        return kNotNow;
    }
    return gate_.write(fd, iov, n, off);
}

bool UringEngine::run_blocking(void (*fn)(void* ctx), void* ctx) {
    return pool_ != nullptr && pool_->submit(fn, ctx);
}

uint32_t UringEngine::poll() noexcept {
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
        unsigned n = io_uring_peek_batch_cqe(&ring_, cqes, 64);
        if (n == 0) {
            break;
        }
        for (unsigned i = 0; i < n; ++i) {
            if (io_uring_cqe_get_data64(cqes[i]) == kCancelTag) {
                --cancels_inflight_; // the cancelled requests report on their own
                continue;
            }
            const uint64_t ud = io_uring_cqe_get_data64(cqes[i]);
            void* ctx = reinterpret_cast<void*>(ud & ~kWriteClassBit);
            int res = cqes[i]->res;
            --inflight_;
            writes_inflight_ -= (ud & kWriteClassBit) != 0 ? 1 : 0;
            FuseDispatcher::complete_on_lcore(ctx, res); // this lcore serves the queue
        }
        io_uring_cq_advance(&ring_, n);
        total += n;
    }
    return total;
}

} // namespace vdh::virtiofs

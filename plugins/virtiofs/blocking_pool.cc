// SPDX-License-Identifier: MIT
// Worker threads for blocking FUSE calls.
#include "blocking_pool.h"

namespace vdh::virtiofs {

BlockingPool::BlockingPool(unsigned threads, unsigned capacity, CancelFn cancel, void* cancel_arg)
    : cancel_(cancel), cancel_arg_(cancel_arg), ring_(capacity), running_(threads, nullptr) {
    for (unsigned i = 0; i < threads; ++i) {
        threads_.emplace_back([this, i] { worker(i); });
    }
}

BlockingPool::~BlockingPool() {
    drain();
    {
        std::lock_guard<std::mutex> g(mu_);
        quit_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) {
        t.join();
    }
}

bool BlockingPool::submit(Fn fn, void* ctx) noexcept {
    {
        std::lock_guard<std::mutex> g(mu_);
        if (quit_ || count_ == ring_.size()) {
            return false;
        }
        ring_[(head_ + count_) % ring_.size()] = Job{fn, ctx};
        ++count_;
    }
    cv_.notify_one();
    return true;
}

void BlockingPool::worker(unsigned index) {
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
        cv_.wait(lk, [this] { return quit_ || count_ > 0; });
        if (count_ == 0 && quit_) {
            return;
        }
        Job j = ring_[head_];
        head_ = (head_ + 1) % ring_.size();
        --count_;
        running_[index] = j.ctx;
        ++busy_;
        lk.unlock();
        j.fn(j.ctx);
        lk.lock();
        running_[index] = nullptr;
        --busy_;
        idle_cv_.notify_all();
    }
}

void BlockingPool::drain() noexcept {
    std::unique_lock<std::mutex> lk(mu_);
    while (count_ > 0 || busy_ > 0) {
        if (cancel_ != nullptr) {
            for (void* ctx : running_) {
                if (ctx != nullptr) {
                    cancel_(cancel_arg_, ctx);
                }
            }
        }
        idle_cv_.wait_for(lk, std::chrono::milliseconds(20));
    }
}

} // namespace vdh::virtiofs

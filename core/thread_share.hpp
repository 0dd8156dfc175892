// A profiled thread's share of other threads' memory: what the threads working for it (threads
// it started, pool workers running work it submitted, native threads while it runs) allocated
// minus what they freed, not yet taken into its ThreadLedger.
//
// Written by any thread, with or without the GIL, under the share's own lock; taken by the
// ledger's own thread at its line events (pending() first: one relaxed load while nobody
// writes). Pure C++. Its lifetime (references, open, recycling) is core/other_threads's job.
#pragma once

#include <atomic>
#include <cstdint>

#include "core/spin_lock.hpp"

namespace memxx::core {

class ThreadShare {
  public:
    // `bytes` allocated (> 0) or freed (< 0) by another thread for the ledger.
    void add(std::int64_t bytes, bool native) noexcept {
        SpinLockGuard guard(lock_);
        net_ += bytes;
        native_ += native ? bytes : 0;
        high_ = net_ > high_ ? net_ : high_;
        pending_.store(true, std::memory_order_relaxed);
    }

    bool pending() const noexcept { return pending_.load(std::memory_order_relaxed); }

    // What was added since the last take: the sum, its native part, and the highest the sum
    // reached on the way (>= 0: the sum starts at 0 after each take).
    struct Taken {
        std::int64_t net = 0;
        std::int64_t native = 0;
        std::int64_t high = 0;
    };
    Taken take() noexcept {
        SpinLockGuard guard(lock_);
        const Taken taken{net_, native_, high_};
        net_ = native_ = high_ = 0;
        pending_.store(false, std::memory_order_relaxed);
        return taken;
    }

    // Lifetime fields, for core/other_threads only.
    std::atomic<int> references{0};
    std::atomic<bool> open{false};
    ThreadShare *older = nullptr; // the open shares, newest last; or the free list (older only)
    ThreadShare *newer = nullptr;

  private:
    SpinLock lock_;
    std::atomic<bool> pending_{false};
    std::int64_t net_ = 0;
    std::int64_t native_ = 0;
    std::int64_t high_ = 0;
};

} // namespace memxx::core

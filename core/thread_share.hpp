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

// The line a charge is for: the line `lineno` of the profiled frame `frame`, found at `depth`
// on the ledger when the work was handed over. No frame: the line running when it is taken.
struct ShareTarget {
    const void *frame = nullptr;
    std::uint32_t depth = 0;
    int lineno = 0;
    bool operator==(const ShareTarget &other) const noexcept {
        return frame == other.frame && depth == other.depth && lineno == other.lineno;
    }
};

class ThreadShare {
  public:
    static constexpr int kTargets = 8; // lines waiting at once; more go to the running line

    // `bytes` allocated (> 0) or freed (< 0) by another thread for the ledger's line `target`.
    void add(std::int64_t bytes, bool native, const ShareTarget &target = {}) noexcept {
        SpinLockGuard guard(lock_);
        Charge *charge = &running_;
        if (target.frame != nullptr) {
            for (int i = 0; i < used_ && charge == &running_; ++i) {
                charge = targeted_[i].target == target ? &targeted_[i] : charge;
            }
            if (charge == &running_ && used_ < kTargets) {
                charge = &targeted_[used_++];
                *charge = Charge{target, 0, 0};
            }
        }
        charge->net += bytes;
        charge->native += native ? bytes : 0;
        sum_ += bytes;
        high_ = sum_ > high_ ? sum_ : high_;
        pending_.store(true, std::memory_order_relaxed);
    }

    bool pending() const noexcept { return pending_.load(std::memory_order_relaxed); }

    struct Charge {
        ShareTarget target;
        std::int64_t net = 0;
        std::int64_t native = 0;
    };
    // What was added since the last take: per target line, the rest for the running line, and
    // the highest the sum of all reached on the way (>= 0: it starts at 0 after each take).
    struct Taken {
        Charge running;
        Charge targeted[kTargets];
        int used = 0;
        std::int64_t high = 0;
    };
    void take(Taken *taken) noexcept {
        SpinLockGuard guard(lock_);
        taken->running = running_;
        taken->used = used_;
        for (int i = 0; i < used_; ++i) {
            taken->targeted[i] = targeted_[i];
        }
        taken->high = high_;
        running_ = Charge{};
        used_ = 0;
        sum_ = high_ = 0;
        pending_.store(false, std::memory_order_relaxed);
    }

    // Lifetime fields, for core/other_threads only.
    std::atomic<int> references{0};
    std::atomic<bool> open{false};
    ThreadShare *older = nullptr; // the open shares, newest last; or the free list (older only)
    ThreadShare *newer = nullptr;

  private:
    SpinLock lock_;
    std::atomic<bool> pending_{false};
    Charge running_;
    Charge targeted_[kTargets];
    int used_ = 0;
    std::int64_t sum_ = 0;
    std::int64_t high_ = 0;
};

} // namespace memxx::core

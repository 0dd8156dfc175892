// A test-and-test-and-set spin lock for the allocator hook's table: held for a few
// nanoseconds per allocation, and usable from threads that do not hold the GIL.
#pragma once

#include <atomic>

namespace memxx::core {

class SpinLock {
  public:
    void lock() noexcept {
        while (true) {
            if (!locked_.exchange(true, std::memory_order_acquire)) {
                return;
            }
            while (locked_.load(std::memory_order_relaxed)) {
#if defined(__x86_64__) || defined(__i386__)
                __builtin_ia32_pause();
#endif
            }
        }
    }
    void unlock() noexcept { locked_.store(false, std::memory_order_release); }

  private:
    std::atomic<bool> locked_{false};
};

class SpinLockGuard {
  public:
    explicit SpinLockGuard(SpinLock &lock) noexcept : lock_(lock) { lock_.lock(); }
    ~SpinLockGuard() { lock_.unlock(); }
    SpinLockGuard(const SpinLockGuard &) = delete;
    SpinLockGuard &operator=(const SpinLockGuard &) = delete;

  private:
    SpinLock &lock_;
};

} // namespace memxx::core

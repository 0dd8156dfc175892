// Sampling at absolute deadlines start + k * interval, so the period does not drift by the time
// each sample takes (sleeping `interval` after each sample drifts by that much every period).
#pragma once

#include <cstdint>

namespace memxx::mprof {

// Nanoseconds on CLOCK_MONOTONIC.
std::int64_t monotonic_ns() noexcept;

// Nanoseconds since the Unix epoch (CLOCK_REALTIME), the clock of the .dat timestamps.
std::int64_t wall_clock_ns() noexcept;

// Sleeps until the monotonic clock reaches `deadline_ns` (at once if it has passed).
void sleep_until_ns(std::int64_t deadline_ns) noexcept;

class DeadlineSchedule {
  public:
    DeadlineSchedule(std::int64_t start_ns, std::int64_t interval_ns) noexcept;

    // The first deadline after the last one handed out that is not already in the past at
    // `now_ns`: ticks missed while the sampler was descheduled are skipped, not bunched up.
    std::int64_t next_deadline(std::int64_t now_ns) noexcept;

    // Deadlines skipped so far because the sampler woke too late for them.
    std::int64_t missed_ticks() const noexcept { return missed_; }

    std::int64_t interval_ns() const noexcept { return interval_ns_; }

  private:
    std::int64_t start_ns_;
    std::int64_t interval_ns_;
    std::int64_t tick_ = 0;
    std::int64_t missed_ = 0;
};

} // namespace memxx::mprof

#include "mprof/deadline_schedule.hpp"

#include <cerrno>
#include <ctime>

namespace memxx::mprof {

namespace {

std::int64_t clock_ns(clockid_t clock) noexcept {
    timespec ts{};
    clock_gettime(clock, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

} // namespace

std::int64_t monotonic_ns() noexcept { return clock_ns(CLOCK_MONOTONIC); }

std::int64_t wall_clock_ns() noexcept { return clock_ns(CLOCK_REALTIME); }

void sleep_until_ns(std::int64_t deadline_ns) noexcept {
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(deadline_ns / 1000000000LL);
    ts.tv_nsec = static_cast<long>(deadline_ns % 1000000000LL);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
    }
}

DeadlineSchedule::DeadlineSchedule(std::int64_t start_ns, std::int64_t interval_ns) noexcept
    : start_ns_(start_ns), interval_ns_(interval_ns > 0 ? interval_ns : 1) {}

std::int64_t DeadlineSchedule::next_deadline(std::int64_t now_ns) noexcept {
    ++tick_;
    std::int64_t deadline = start_ns_ + tick_ * interval_ns_;
    if (deadline < now_ns) {
        // Late by more than a period: jump to the first tick still ahead of now.
        const std::int64_t behind = (now_ns - deadline) / interval_ns_ + 1;
        missed_ += behind;
        tick_ += behind;
        deadline = start_ns_ + tick_ * interval_ns_;
    }
    return deadline;
}

} // namespace memxx::mprof

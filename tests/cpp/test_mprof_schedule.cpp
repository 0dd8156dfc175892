// The deadline schedule: samples at start + k * interval, no drift, missed ticks skipped.
#include <catch2/catch.hpp>

#include <algorithm>
#include <vector>

#include "mprof/deadline_schedule.hpp"

using namespace memxx::mprof;

TEST_CASE("deadlines are absolute: the time a sample takes does not shift the next") {
    DeadlineSchedule schedule(1000, 100);
    // Given samples that take 30 ns each, the deadlines stay on the grid.
    CHECK(schedule.next_deadline(1030) == 1100);
    CHECK(schedule.next_deadline(1130) == 1200);
    CHECK(schedule.next_deadline(1299) == 1300);
    CHECK(schedule.missed_ticks() == 0);
}

TEST_CASE("a sampler woken late skips the ticks it missed instead of bunching samples") {
    DeadlineSchedule schedule(0, 100);
    CHECK(schedule.next_deadline(10) == 100);
    // When it wakes at 350 for the deadline of 100, 200 and 300 are gone.
    CHECK(schedule.next_deadline(350) == 400);
    CHECK(schedule.missed_ticks() == 2);
    CHECK(schedule.next_deadline(410) == 500);
}

TEST_CASE("sleeping to deadlines keeps the period within a millisecond at 10 ms") {
    const std::int64_t interval = 10'000'000;
    const std::int64_t start = monotonic_ns();
    DeadlineSchedule schedule(start, interval);
    std::vector<std::int64_t> lateness;
    for (int i = 0; i < 30; ++i) {
        const std::int64_t deadline = schedule.next_deadline(monotonic_ns());
        sleep_until_ns(deadline);
        lateness.push_back(monotonic_ns() - deadline);
    }
    std::sort(lateness.begin(), lateness.end());
    CHECK(lateness.front() >= 0);                     // never early
    CHECK(lateness[lateness.size() / 2] < 1'000'000); // median under 1 ms
}

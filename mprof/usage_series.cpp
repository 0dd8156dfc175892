#include "mprof/usage_series.hpp"

#include <chrono>

#include "mprof/deadline_schedule.hpp"

namespace memxx::mprof {

UsageSeries::UsageSeries(UsageOptions options) : options_(options) {}

UsageSeries::~UsageSeries() { stop(); }

void UsageSeries::start() {
    if (thread_.joinable() || !take_sample() || options_.max_samples == 1) {
        return;
    }
    running_.store(true, std::memory_order_release);
    thread_ = std::thread(&UsageSeries::run, this);
}

void UsageSeries::stop() {
    {
        std::lock_guard<std::mutex> guard(mutex_);
        stop_requested_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) {
        thread_.join();
        // The last figure is the one at the end of the run, however short the interval was.
        take_sample();
    }
    running_.store(false, std::memory_order_release);
}

void UsageSeries::wait() {
    if (thread_.joinable()) {
        thread_.join();
    }
}

std::vector<UsageSample> UsageSeries::samples() const {
    std::lock_guard<std::mutex> guard(mutex_);
    return samples_;
}

bool UsageSeries::take_sample() {
    {
        std::lock_guard<std::mutex> guard(mutex_);
        if (options_.max_samples > 0 &&
            static_cast<std::int64_t>(samples_.size()) >= options_.max_samples) {
            return false;
        }
    }
    TreeMemory tree;
    if (!read_tree_memory(options_.pid, options_.metric,
                          options_.include_children || options_.children_detail, tree)) {
        return false;
    }
    UsageSample sample{static_cast<double>(wall_clock_ns()) * 1e-9,
                       tree.own,
                       tree.own + (options_.include_children ? tree.descendants_total : 0),
                       {}};
    if (options_.children_detail) {
        sample.children = std::move(tree.descendants);
    }
    std::lock_guard<std::mutex> guard(mutex_);
    samples_.push_back(std::move(sample));
    return true;
}

void UsageSeries::run() noexcept {
    const auto interval_ns = static_cast<std::int64_t>(options_.interval_seconds * 1e9 + 0.5);
    DeadlineSchedule schedule(monotonic_ns(), interval_ns);
    try {
        while (true) {
            const std::int64_t deadline = schedule.next_deadline(monotonic_ns());
            std::unique_lock<std::mutex> lock(mutex_);
            const auto until =
                std::chrono::steady_clock::time_point(std::chrono::nanoseconds(deadline));
            if (wake_.wait_until(lock, until, [this] { return stop_requested_; })) {
                break;
            }
            lock.unlock();
            if (!take_sample()) {
                break;
            }
        }
    } catch (const std::exception &) {
        // Out of memory for the series: keep what was taken.
    }
    running_.store(false, std::memory_order_release);
}

} // namespace memxx::mprof

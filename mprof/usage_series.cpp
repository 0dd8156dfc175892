#include "mprof/usage_series.hpp"

#include "mprof/deadline_schedule.hpp"

namespace memxx::mprof {

UsageSeries::UsageSeries(UsageOptions options) : options_(options) {}

UsageSeries::~UsageSeries() { stop(); }

void UsageSeries::start() {
    if (thread_.started() || !take_sample() || options_.max_samples == 1) {
        return;
    }
    thread_.start(options_.interval_seconds, false, [this] { return take_sample(); });
}

void UsageSeries::stop() {
    if (thread_.stop()) {
        // The last figure is the one at the end of the run, however short the interval was.
        take_sample();
    }
}

void UsageSeries::wait() { thread_.join(); }

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
    std::int64_t total = 0;
    if (!read_sample(options_, tree, total)) {
        return false;
    }
    UsageSample sample{static_cast<double>(wall_clock_ns()) * 1e-9, tree.own, total, {}};
    if (options_.children_detail) {
        sample.children = std::move(tree.descendants);
    }
    std::lock_guard<std::mutex> guard(mutex_);
    samples_.push_back(std::move(sample));
    return true;
}

} // namespace memxx::mprof

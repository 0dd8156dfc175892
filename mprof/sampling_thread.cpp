#include "mprof/sampling_thread.hpp"

#include <chrono>
#include <ctime>

#include "mprof/deadline_schedule.hpp"

namespace memxx::mprof {

namespace {

double thread_cpu_seconds() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

} // namespace

bool read_sample(const SamplingOptions &options, TreeMemory &tree, std::int64_t &total) {
    if (!read_tree_memory(options.pid, options.metric,
                          options.include_children || options.children_detail, tree)) {
        return false;
    }
    total = tree.own + (options.include_children ? tree.descendants_total : 0);
    return true;
}

void SamplingThread::start(double interval_seconds, bool tick_at_start, Tick tick) {
    if (thread_.joinable()) {
        return;
    }
    tick_ = std::move(tick);
    running_.store(true, std::memory_order_release);
    const auto interval_ns = static_cast<std::int64_t>(interval_seconds * 1e9 + 0.5);
    thread_ = std::thread(&SamplingThread::run, this, interval_ns, tick_at_start);
}

bool SamplingThread::stop() {
    {
        std::lock_guard<std::mutex> guard(mutex_);
        stop_requested_ = true;
    }
    wake_.notify_all();
    const bool joined = join();
    running_.store(false, std::memory_order_release);
    return joined;
}

bool SamplingThread::join() {
    if (!thread_.joinable()) {
        return false;
    }
    thread_.join();
    return true;
}

SamplingStats SamplingThread::stats() const {
    std::lock_guard<std::mutex> guard(mutex_);
    return stats_;
}

std::string SamplingThread::error() const {
    std::lock_guard<std::mutex> guard(mutex_);
    return stats_.error;
}

void SamplingThread::run(std::int64_t interval_ns, bool tick_at_start) noexcept {
    const std::int64_t start_ns = monotonic_ns();
    DeadlineSchedule schedule(start_ns, interval_ns);
    std::int64_t deadline = start_ns;
    std::vector<double> lateness;
    std::string failure;
    try {
        for (bool due = tick_at_start;; due = true) {
            if (due) {
                const std::int64_t woke = monotonic_ns();
                if (!tick_()) {
                    break;
                }
                lateness.push_back(static_cast<double>(woke - deadline) * 1e-6);
            }
            deadline = schedule.next_deadline(monotonic_ns());
            std::unique_lock<std::mutex> lock(mutex_);
            const auto until =
                std::chrono::steady_clock::time_point(std::chrono::nanoseconds(deadline));
            if (wake_.wait_until(lock, until, [this] { return stop_requested_; })) {
                break;
            }
        }
    } catch (const std::exception &e) {
        failure = e.what();
    }
    std::lock_guard<std::mutex> guard(mutex_);
    stats_.samples = static_cast<std::int64_t>(lateness.size());
    stats_.missed_ticks = schedule.missed_ticks();
    stats_.lateness_ms = std::move(lateness);
    stats_.thread_cpu_seconds = thread_cpu_seconds();
    stats_.error = std::move(failure);
    running_.store(false, std::memory_order_release);
}

} // namespace memxx::mprof

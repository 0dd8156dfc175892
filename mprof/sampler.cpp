#include "mprof/sampler.hpp"

#include <chrono>
#include <ctime>

#include "mprof/deadline_schedule.hpp"
#include "mprof/process_tree.hpp"

namespace memxx::mprof {

namespace {

constexpr double kMiB = 1024.0 * 1024.0;

double thread_cpu_seconds() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

} // namespace

Sampler::Sampler(SamplerOptions options, std::unique_ptr<DatWriter> writer)
    : options_(options), writer_(std::move(writer)) {}

Sampler::~Sampler() { stop(); }

void Sampler::start() {
    if (thread_.joinable()) {
        return;
    }
    running_.store(true, std::memory_order_release);
    thread_ = std::thread(&Sampler::run, this);
}

void Sampler::stop() {
    {
        std::lock_guard<std::mutex> guard(mutex_);
        stop_requested_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) {
        thread_.join();
    }
    running_.store(false, std::memory_order_release);
    if (writer_) {
        writer_->close();
    }
}

std::string Sampler::error() const {
    std::lock_guard<std::mutex> guard(mutex_);
    return error_;
}

SamplerStats Sampler::stats() const {
    std::lock_guard<std::mutex> guard(mutex_);
    return stats_;
}

bool Sampler::take_sample() {
    TreeMemory tree;
    if (!read_tree_memory(options_.pid, options_.metric,
                          options_.include_children || options_.multiprocess, tree)) {
        return false;
    }
    const double now = static_cast<double>(wall_clock_ns()) * 1e-9;
    const std::int64_t total = tree.own + (options_.include_children ? tree.descendants_total : 0);
    std::vector<std::pair<int, MemorySample>> children;
    if (options_.multiprocess) {
        for (const auto& [child, bytes] : tree.descendants) {
            children.emplace_back(child, MemorySample{static_cast<double>(bytes) / kMiB, now});
        }
    }
    writer_->write_sample(MemorySample{static_cast<double>(total) / kMiB, now}, children);
    current_.store(total);
    if (total > peak_.load()) {
        peak_.store(total);
    }
    return true;
}

void Sampler::run() noexcept {
    const std::int64_t interval_ns =
        static_cast<std::int64_t>(options_.interval_seconds * 1e9 + 0.5);
    const std::int64_t start_ns = monotonic_ns();
    DeadlineSchedule schedule(start_ns, interval_ns);
    std::int64_t deadline = start_ns;
    std::vector<double> lateness;
    std::string failure;
    try {
        while (true) {
            const std::int64_t woke = monotonic_ns();
            if (!take_sample()) {
                break;
            }
            lateness.push_back(static_cast<double>(woke - deadline) * 1e-6);
            deadline = schedule.next_deadline(monotonic_ns());
            std::unique_lock<std::mutex> lock(mutex_);
            const auto until =
                std::chrono::steady_clock::time_point(std::chrono::nanoseconds(deadline));
            if (wake_.wait_until(lock, until, [this] { return stop_requested_; })) {
                break;
            }
        }
    } catch (const std::exception& e) {
        failure = e.what();
    }
    std::lock_guard<std::mutex> guard(mutex_);
    stats_.samples = static_cast<std::int64_t>(lateness.size());
    stats_.missed_ticks = schedule.missed_ticks();
    stats_.lateness_ms = std::move(lateness);
    stats_.thread_cpu_seconds = thread_cpu_seconds();
    error_ = failure;
    running_.store(false, std::memory_order_release);
}

} // namespace memxx::mprof

// The one sampling thread behind mprofxx's Sampler (.dat file) and memory_usage()'s UsageSeries,
// with the options and the reading they share. The thread calls a tick function at absolute
// deadlines start + k * interval (DeadlineSchedule) until the tick says it is done, throws, or
// stop() is called, and keeps how punctual it was.
//
// start, stop and join are called by the owner's thread; the tick runs on the sampling thread
// only, with no lock held (it guards what it shares itself). No Python here.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "mprof/process_tree.hpp"

namespace memxx::mprof {

// What both samplers read, and how often.
struct SamplingOptions {
    int pid = 0;
    double interval_seconds = 0.1;
    bool include_children = false; // the total = the process plus every descendant
    bool children_detail = false;  // each descendant's own figure too (mprofxx's CHLD records)
    MemoryMetric metric = MemoryMetric::rss;
    std::int64_t max_samples = 0; // memory_usage's limit; 0: none
    // mprofxx run --peak: the page where the process publishes its recorder's own memory
    // (core/own_memory.hpp), subtracted from its samples; -1: none.
    int own_memory_fd = -1;
};

// One reading for a sample: false when the process has gone. `total` is the process's figure,
// with its descendants' when include_children; tree.descendants is filled when children_detail.
bool read_sample(const SamplingOptions &options, TreeMemory &tree, std::int64_t &total);

struct SamplingStats {
    std::int64_t samples = 0;        // ticks that sampled
    std::int64_t missed_ticks = 0;   // deadlines skipped because the thread woke too late
    double thread_cpu_seconds = 0;   // CPU time the sampling thread used
    std::vector<double> lateness_ms; // per tick: wake-up time minus its deadline
    std::string error;               // what the tick threw, if it did
};

class SamplingThread {
  public:
    // Returns false when sampling is over (the process has gone, a limit is reached).
    using Tick = std::function<bool()>;

    SamplingThread() = default;
    ~SamplingThread() { stop(); }
    SamplingThread(const SamplingThread &) = delete;
    SamplingThread &operator=(const SamplingThread &) = delete;

    // Starts the thread; its first tick comes at once (tick_at_start) or one interval later.
    // Does nothing if it has been started already.
    void start(double interval_seconds, bool tick_at_start, Tick tick);
    // Asks the thread to finish and joins it; true if this call joined it. Safe to call twice,
    // and before start.
    bool stop();
    // Blocks until the thread has finished by itself; true if this call joined it.
    bool join();
    // Started and not joined yet.
    bool started() const noexcept { return thread_.joinable(); }
    // True from start until the thread has finished.
    bool running() const noexcept { return running_.load(std::memory_order_acquire); }
    // Complete once stop() or join() has returned.
    SamplingStats stats() const;
    std::string error() const;

  private:
    void run(std::int64_t interval_ns, bool tick_at_start) noexcept;

    Tick tick_;
    std::thread thread_;
    std::atomic<bool> running_{false};
    mutable std::mutex mutex_; // guards stop_requested_ and stats_
    std::condition_variable wake_;
    bool stop_requested_ = false;
    SamplingStats stats_;
};

} // namespace memxx::mprof

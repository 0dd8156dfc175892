// An in-memory memory series for memory_usage(): a thread samples a process (and its
// descendants) at absolute deadlines, with no GIL and no file, until stopped, until the process
// exits or until it has taken a given number of samples.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "mprof/process_tree.hpp"

namespace memxx::mprof {

struct UsageOptions {
    int pid = 0;
    double interval_seconds = 0.1;
    bool include_children = false; // total = the process plus every descendant
    bool children_detail = false;  // keep each descendant's own figure per sample
    MemoryMetric metric = MemoryMetric::rss;
    std::int64_t max_samples = 0; // 0: no limit
};

struct UsageSample {
    double time;                                        // seconds since the Unix epoch
    std::int64_t own_bytes;                             // the process itself
    std::int64_t total_bytes;                           // with descendants if asked
    std::vector<std::pair<int, std::int64_t>> children; // (pid, bytes) if children_detail
};

class UsageSeries {
  public:
    explicit UsageSeries(UsageOptions options);
    ~UsageSeries();
    UsageSeries(const UsageSeries &) = delete;
    UsageSeries &operator=(const UsageSeries &) = delete;

    // Takes the first sample on the calling thread (so a short run still has one), then one
    // per interval on the sampling thread.
    void start();
    // Joins the thread after one last sample; safe to call twice.
    void stop();
    // Blocks until the thread has finished by itself (process gone or max_samples reached).
    void wait();
    bool running() const noexcept { return running_.load(std::memory_order_acquire); }
    // The samples taken; complete once stop() or wait() has returned.
    std::vector<UsageSample> samples() const;

  private:
    void run() noexcept;
    bool take_sample(); // false when the process has gone or the limit is reached

    UsageOptions options_;
    std::thread thread_;
    std::atomic<bool> running_{false};
    mutable std::mutex mutex_; // guards samples_ and stop_requested_
    std::condition_variable wake_;
    bool stop_requested_ = false;
    std::vector<UsageSample> samples_;
};

} // namespace memxx::mprof

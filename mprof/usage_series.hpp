// An in-memory memory series for memory_usage(): the sampling thread (mprof/sampling_thread.hpp)
// samples a process (and its descendants), with no GIL and no file, until stopped, until the
// process exits or until it has taken a given number of samples. Its methods are called from one
// owner thread; samples() from any.
#pragma once

#include <cstdint>
#include <mutex>
#include <utility>
#include <vector>

#include "mprof/process_tree.hpp"
#include "mprof/sampling_thread.hpp"

namespace memxx::mprof {

using UsageOptions = SamplingOptions;

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
    bool running() const noexcept { return thread_.running(); }
    // The samples taken; complete once stop() or wait() has returned.
    std::vector<UsageSample> samples() const;

  private:
    bool take_sample(); // false when the process has gone or the limit is reached

    UsageOptions options_;
    mutable std::mutex mutex_; // guards samples_
    std::vector<UsageSample> samples_;
    SamplingThread thread_; // last: it stops (and joins) before the members it uses go
};

} // namespace memxx::mprof

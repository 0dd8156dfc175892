// The sampler: a thread that reads a process's memory (and its descendants') from /proc at
// absolute deadlines and appends MEM/CHLD records to a .dat file as it goes.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "mprof/dat_file.hpp"
#include "mprof/process_tree.hpp"

namespace memxx::mprof {

struct SamplerOptions {
    int pid = 0;
    double interval_seconds = 0.1;
    bool include_children = false; // MEM = the target plus every descendant
    bool multiprocess = false;     // a CHLD record per live descendant per sample
    MemoryMetric metric = MemoryMetric::rss;
};

struct SamplerStats {
    std::int64_t samples = 0;
    std::int64_t missed_ticks = 0;
    double thread_cpu_seconds = 0;   // CPU time the sampler thread used
    std::vector<double> lateness_ms; // per sample: wake-up time minus its deadline
};

class Sampler {
  public:
    // Takes ownership of `writer`; the caller has written the CMDLINE record already.
    Sampler(SamplerOptions options, std::unique_ptr<DatWriter> writer);
    ~Sampler();
    Sampler(const Sampler&) = delete;
    Sampler& operator=(const Sampler&) = delete;

    // Takes the first sample at once, then one per interval on the thread.
    void start();
    // Asks the thread to finish, joins it and closes the file. Safe to call twice.
    void stop();
    // False once the target has exited (or stop() was called).
    bool running() const noexcept { return running_.load(std::memory_order_acquire); }

    // Latest and highest total (MEM value) in bytes, for a status line; -1 before a sample.
    std::int64_t current_bytes() const noexcept { return current_.load(); }
    std::int64_t peak_bytes() const noexcept { return peak_.load(); }
    // The write error that stopped sampling, if any.
    std::string error() const;
    // Complete once stop() has returned.
    SamplerStats stats() const;

  private:
    void run() noexcept;
    bool take_sample(); // false when the target has gone

    SamplerOptions options_;
    std::unique_ptr<DatWriter> writer_;
    std::thread thread_;
    std::atomic<bool> running_{false};
    std::atomic<std::int64_t> current_{-1};
    std::atomic<std::int64_t> peak_{-1};
    mutable std::mutex mutex_; // guards stop_requested_, error_, stats_
    std::condition_variable wake_;
    bool stop_requested_ = false;
    std::string error_;
    SamplerStats stats_;
};

} // namespace memxx::mprof

// The sampler of mprofxx run: reads a process's memory (and its descendants') from /proc on the
// sampling thread (mprof/sampling_thread.hpp) and appends MEM/CHLD records to a .dat file as it
// goes. Its methods are called from one owner thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/own_memory.hpp"
#include "mprof/dat_file.hpp"
#include "mprof/process_tree.hpp"
#include "mprof/sampling_thread.hpp"

namespace memxx::mprof {

using SamplerOptions = SamplingOptions; // max_samples unused
using SamplerStats = SamplingStats;

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
    bool running() const noexcept { return thread_.running(); }

    // Latest and highest total (MEM value) in bytes, for a status line; -1 before a sample.
    std::int64_t current_bytes() const noexcept { return current_.load(); }
    std::int64_t peak_bytes() const noexcept { return peak_.load(); }
    // The write error that stopped sampling, if any.
    std::string error() const;
    // Complete once stop() has returned.
    SamplerStats stats() const;

  private:
    bool take_sample(); // on the sampling thread; false when the target has gone

    SamplerOptions options_;
    std::unique_ptr<DatWriter> writer_; // written by the sampling thread until it has finished
    core::OwnMemoryView own_memory_;    // the recorder's memory, left out of every sample
    std::atomic<std::int64_t> current_{-1};
    std::atomic<std::int64_t> peak_{-1};
    SamplingThread thread_; // last: it stops (and joins) before the members it uses go
};

} // namespace memxx::mprof

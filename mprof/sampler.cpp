#include "mprof/sampler.hpp"

#include <algorithm>

#include "mprof/deadline_schedule.hpp"
#include "mprof/profile_data.hpp"

namespace memxx::mprof {

namespace {
double mib(std::int64_t bytes) {
    return static_cast<double>(bytes) / static_cast<double>(bytes_per_mib);
}
} // namespace

Sampler::Sampler(SamplerOptions options, std::unique_ptr<DatWriter> writer)
    : options_(options), writer_(std::move(writer)), own_memory_(options.own_memory_fd) {}

Sampler::~Sampler() { stop(); }

void Sampler::start() {
    thread_.start(options_.interval_seconds, true, [this] { return take_sample(); });
}

void Sampler::stop() {
    thread_.stop();
    if (writer_) {
        writer_->close();
    }
}

std::string Sampler::error() const { return thread_.error(); }

SamplerStats Sampler::stats() const { return thread_.stats(); }

bool Sampler::take_sample() {
    TreeMemory tree;
    std::int64_t total = 0;
    if (!read_sample(options_, tree, total)) {
        return false;
    }
    // The process's own recorder (mprofxx run --peak) is not the program: its tables are left
    // out. The two figures are read a moment apart, so a table resized in between is off by
    // its growth for this one sample.
    total = std::max<std::int64_t>(0, total - own_memory_.bytes());
    const double now = static_cast<double>(wall_clock_ns()) * 1e-9;
    std::vector<std::pair<int, MemorySample>> children;
    if (options_.children_detail) {
        for (const auto& [child, bytes] : tree.descendants) {
            children.emplace_back(child, MemorySample{mib(bytes), now});
        }
    }
    writer_->write_sample(MemorySample{mib(total), now}, children);
    current_.store(total);
    if (total > peak_.load()) {
        peak_.store(total);
    }
    return true;
}

} // namespace memxx::mprof

#include "mprof/drawn_profile.hpp"

#include <algorithm>
#include <cmath>
#include <unordered_map>

namespace memxx::mprof {

namespace {

std::string with_thousands(size_t n) {
    std::string digits = std::to_string(n);
    for (int at = static_cast<int>(digits.size()) - 3; at > 0; at -= 3) {
        digits.insert(static_cast<size_t>(at), ",");
    }
    return digits;
}

void add_to(SeriesSummary &series, const MemorySample &s) {
    if (series.samples == 0) {
        series.first = s;
        series.peak = s;
    } else if (s.mib > series.peak.mib) {
        series.peak = s;
    }
    series.earliest = std::min(series.earliest, s.time);
    series.latest = std::max(series.latest, s.time);
    ++series.samples;
}

class Summarizer : public RecordSink {
  public:
    Summarizer(std::string path, size_t max_children)
        : path_(std::move(path)), max_children_(max_children) {}
    ProfileSummary summary;

    void on_cmdline(const std::string &cmdline) override { summary.cmdline = cmdline; }
    void on_memory(const MemorySample &s) override {
        add_to(summary.memory, s);
        const double t = s.time - summary.memory.first.time;
        summary.trend.t += t;
        summary.trend.m += s.mib;
        summary.trend.tt += t * t;
        summary.trend.tm += t * s.mib;
        summary.start = std::min(summary.start, s.time);
        summary.end = std::max(summary.end, s.time);
    }
    void on_child(const std::string &child, const MemorySample &s) override {
        auto found = summary.children.find(child);
        if (found == summary.children.end()) {
            if (summary.children.size() >= max_children_) {
                throw ProfileFileError(path_ + ": more than " + with_thousands(max_children_) +
                                       " child processes, beyond what a plot can draw");
            }
            found = summary.children.emplace(child, SeriesSummary{}).first;
        }
        add_to(found->second, s);
    }
    void on_function(const FunctionSpan &span) override {
        ++summary.functions;
        summary.start = std::min(summary.start, span.time_start);
        summary.end = std::max(summary.end, span.time_end);
    }

  private:
    std::string path_;
    size_t max_children_;
};

// The first, lowest, highest and last sample of each column of [low, high], plus one column
// for the samples before it and one for those after.
class Thinner {
  public:
    Thinner(double low, double high, int columns)
        : low_(low), columns_(columns), slots_(static_cast<size_t>(columns) + 2) {
        width_ = (high - low) / columns;
        if (!(width_ > 0) || !std::isfinite(width_)) {
            width_ = 1.0;
        }
    }

    void add(const MemorySample &s) {
        const double at = std::floor((s.time - low_) / width_);
        size_t slot = 0;
        if (at >= columns_) {
            slot = static_cast<size_t>(columns_) + 1;
        } else if (at >= 0) {
            slot = static_cast<size_t>(at) + 1;
        }
        Column &c = slots_[slot];
        const Kept k{count_++, s};
        if (!c.used) {
            c = Column{k, k, k, k, true};
            return;
        }
        c.last = k;
        if (s.mib < c.low.sample.mib) {
            c.low = k;
        }
        if (s.mib > c.high.sample.mib) {
            c.high = k;
        }
    }

    std::vector<MemorySample> kept() const {
        std::vector<Kept> all;
        for (const Column &c : slots_) {
            if (c.used) {
                all.insert(all.end(), {c.first, c.low, c.high, c.last});
            }
        }
        std::sort(all.begin(), all.end(),
                  [](const Kept &a, const Kept &b) { return a.index < b.index; });
        std::vector<MemorySample> out;
        long previous = -1;
        for (const Kept &k : all) {
            if (k.index != previous) {
                out.push_back(k.sample);
                previous = k.index;
            }
        }
        return out;
    }

  private:
    struct Kept {
        long index;
        MemorySample sample;
    };
    struct Column {
        Kept first, low, high, last;
        bool used = false;
    };
    double low_;
    double width_;
    int columns_;
    long count_ = 0;
    std::vector<Column> slots_;
};

class Drawer : public RecordSink {
  public:
    Drawer(std::string path, const DrawLimits &limits, double low, double high, bool windowed,
           double pixel)
        : path_(std::move(path)), limits_(limits), low_(low), high_(high), windowed_(windowed),
          pixel_(pixel), memory_(low, high, limits.columns) {}

    void on_cmdline(const std::string &) override {}
    void on_memory(const MemorySample &s) override { memory_.add(s); }
    void on_child(const std::string &child, const MemorySample &s) override {
        auto found = children_.find(child);
        if (found == children_.end()) {
            found = children_.emplace(child, Thinner(low_, high_, limits_.columns)).first;
        }
        found->second.add(s);
    }
    void on_function(const FunctionSpan &span) override {
        auto total = totals_.find(span.name);
        if (total == totals_.end()) {
            if (totals_.size() >= limits_.max_functions) {
                throw ProfileFileError(path_ + ": more than " +
                                       with_thousands(limits_.max_functions) +
                                       " functions, beyond what a plot can draw");
            }
            total = totals_.emplace(span.name, FunctionTotal{}).first;
        }
        ++total->second.calls;
        total->second.seconds += span.time_end - span.time_start;
        if (windowed_ && (span.time_end < low_ || span.time_start > high_)) {
            return;
        }
        std::string key = span.name;
        key.push_back('\0');
        key += std::to_string(span.level);
        const auto last = last_of_.find(key);
        if (last != last_of_.end()) {
            FunctionSpan &prior = spans_[last->second];
            if (span.time_start - prior.time_end < pixel_) {
                prior.mem_end = span.mem_end;
                prior.time_end = std::max(prior.time_end, span.time_end);
                return;
            }
        }
        if (spans_.size() >= limits_.max_spans) {
            throw ProfileFileError(path_ + ": more than " + with_thousands(limits_.max_spans) +
                                   " function spans even with calls closer than a pixel merged,"
                                   " beyond what a plot can draw");
        }
        last_of_[key] = spans_.size();
        spans_.push_back(span);
    }

    void finish(DrawnProfile &drawn) {
        drawn.memory = memory_.kept();
        for (const auto &[child, thinner] : children_) {
            drawn.children[child] = thinner.kept();
        }
        drawn.functions = std::move(spans_);
        drawn.totals = std::move(totals_);
    }

  private:
    std::string path_;
    DrawLimits limits_;
    double low_, high_;
    bool windowed_;
    double pixel_;
    Thinner memory_;
    std::map<std::string, Thinner> children_;
    std::map<std::string, FunctionTotal> totals_;
    std::unordered_map<std::string, size_t> last_of_; // (name, level) -> its last span
    std::vector<FunctionSpan> spans_;
};

} // namespace

ProfileSummary summarize_profile(const std::string &path, size_t max_children) {
    Summarizer summarizer(path, max_children);
    read_records(path, summarizer);
    return std::move(summarizer.summary);
}

DrawnProfile read_drawn_profile(const std::string &path, const DrawLimits &limits,
                                std::optional<std::pair<double, double>> window) {
    DrawnProfile drawn;
    drawn.summary = summarize_profile(path, limits.max_children);
    const ProfileSummary &s = drawn.summary;
    const double start = std::isfinite(s.start) ? s.start : 0.0;
    const double end = std::isfinite(s.end) ? s.end : start;
    double low = start;
    double high = end;
    if (window) {
        low = start + window->first;
        high = start + window->second;
    }
    drawn.pixel = (high - low) / limits.columns;
    Drawer drawer(path, limits, low, high, window.has_value(), drawn.pixel);
    read_records(path, drawer);
    drawer.finish(drawn);
    return drawn;
}

} // namespace memxx::mprof

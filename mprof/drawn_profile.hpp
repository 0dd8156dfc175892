// What `mprofxx peak` and `mprofxx plot` keep of a recording, read as a stream: its figures in
// one pass (first and highest samples, time range, the least-squares sums of a trend line) and,
// for a plot, a second pass keeping no more samples and function spans than a picture of
// `columns` columns shows. Memory is in proportion to what is kept, never to the file's size.
// A file holding more than a plot can draw (child processes, functions) is refused with one
// line naming the file and the limit. Plain C++, called by the bindings with the GIL released
// or held (no Python).
#pragma once

#include "mprof/dat_file.hpp"

#include <cstddef>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace memxx::mprof {

struct SeriesSummary {
    long samples = 0;
    MemorySample first; // the first sample in the file
    MemorySample peak;  // the first highest
    double earliest = std::numeric_limits<double>::infinity();
    double latest = -std::numeric_limits<double>::infinity();
};

// Sums of a least-squares line of MiB over seconds since the first MEM sample.
struct TrendSums {
    double t = 0, m = 0, tt = 0, tm = 0;
};

struct ProfileSummary {
    std::string cmdline;
    SeriesSummary memory;                           // MEM lines
    std::map<std::string, SeriesSummary> children;  // CHLD lines, by child id
    long functions = 0;                             // FUNC lines
    double start = std::numeric_limits<double>::infinity();  // earliest MEM time or FUNC start
    double end = -std::numeric_limits<double>::infinity();   // latest MEM time or FUNC end
    TrendSums trend;
};

// One pass: the summary of `path` (.dat or .json). More than `max_children` child ids throws
// ProfileFileError.
ProfileSummary summarize_profile(const std::string &path,
                                 size_t max_children = std::numeric_limits<size_t>::max());

struct DrawLimits {
    int columns = 2000;
    size_t max_children = 256;  // a line each
    size_t max_functions = 1000;  // distinct names, each a colour, brackets and a label
    size_t max_spans = 200000;  // function spans left once calls closer than a column merge
};

struct FunctionTotal {
    long calls = 0;
    double seconds = 0;
};

struct DrawnProfile {
    ProfileSummary summary;
    // Per column of the picture (and one before, one after a window), the first, lowest,
    // highest and last samples, in file order: the line's envelope stays exact.
    std::vector<MemorySample> memory;
    std::map<std::string, std::vector<MemorySample>> children;
    // Calls of a function at one level less than a column apart merge (first start and memory
    // to last end and memory); with a window, spans wholly outside it are left out.
    std::vector<FunctionSpan> functions;
    std::map<std::string, FunctionTotal> totals; // every call, by function name
    double pixel = 0;                            // seconds one column covers
};

// Two passes over `path`. `window`: (from, to) in seconds since the recording's start.
DrawnProfile read_drawn_profile(const std::string &path, const DrawLimits &limits,
                                std::optional<std::pair<double, double>> window);

} // namespace memxx::mprof

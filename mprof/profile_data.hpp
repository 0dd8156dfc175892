// One recording as memory_profiler's .dat format describes it, in MiB and Unix seconds.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace memxx::mprof {

// The unit of every memory figure in the .dat format and in the reports: memory_profiler's
// MiB, 2^20 bytes. The one definition (Python reads it as _memxx.MIB).
constexpr long bytes_per_mib = 1L << 20;

struct MemorySample {
    double mib = 0;
    double time = 0; // seconds since the Unix epoch
};

// One call of a profiled function (a FUNC line); `level` is the nesting depth, 0 = outermost.
struct FunctionSpan {
    std::string name;
    double mem_start = 0;
    double time_start = 0;
    double mem_end = 0;
    double time_end = 0;
    int level = 0;
};

struct Profile {
    std::string cmdline;
    std::vector<MemorySample> memory;                          // MEM lines
    std::map<std::string, std::vector<MemorySample>> children; // CHLD lines, by child id (pid)
    std::vector<FunctionSpan> functions;                       // FUNC lines
};

} // namespace memxx::mprof

// The per-line records of a line profile, written as JSON (nlohmann_json).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace memxx::core {

struct LineRecord {
    std::string filename;
    std::string function;
    int lineno;
    std::string source;
    std::uint64_t occurrences;
    std::int64_t increment; // bytes
    std::int64_t peak;      // bytes, highest memory while the line ran
    std::int64_t memory;    // bytes, memory after the line's last run
    std::int64_t native_increment; // bytes of the increment that native code allocated
    std::int64_t native_peak;      // bytes of native memory held at the line's peak
};

// {"format": "memory_profilerxx-lines", "version": 2, "unit": "bytes", "lines": [...]}
std::string line_records_to_json(const std::vector<LineRecord> &records, int indent);

} // namespace memxx::core

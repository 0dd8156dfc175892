#include "core/line_records_json.hpp"

#include <nlohmann/json.hpp>

namespace memxx::core {

std::string line_records_to_json(const std::vector<LineRecord> &records, int indent) {
    nlohmann::json lines = nlohmann::json::array();
    for (const LineRecord &r : records) {
        lines.push_back({{"filename", r.filename},
                         {"function", r.function},
                         {"lineno", r.lineno},
                         {"source", r.source},
                         {"occurrences", r.occurrences},
                         {"increment", r.increment},
                         {"peak", r.peak},
                         {"memory", r.memory},
                         {"native_increment", r.native_increment},
                         {"native_peak", r.native_peak}});
    }
    nlohmann::json document = {{"format", "memory_profilerxx-lines"},
                               {"version", 2},
                               {"unit", "bytes"},
                               {"lines", std::move(lines)}};
    // Source lines may hold any bytes: replace invalid UTF-8 rather than throw.
    return document.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

} // namespace memxx::core

#include <pybind11/stl.h>

#include "core/alloc_hook.hpp"
#include "core/line_records_json.hpp"
#include "core/line_tracer.hpp"
#include "core/process_memory.hpp"
#include "python/bindings/bindings.hpp"

namespace py = pybind11;

namespace memxx::bindings {

using core::ProfiledCodes;

namespace {

// [(code, [(lineno, occurrences, increment, peak, memory), ...]), ...] for lines that ran.
py::list profiled_results(const ProfiledCodes &codes) {
    py::list out;
    for (const auto &[code, lines] : codes.codes()) {
        py::list rows;
        const int first = lines->first_line();
        int lineno = first;
        for (const core::LineStats &s : lines->lines()) {
            if (s.occurrences > 0) {
                rows.append(py::make_tuple(lineno, s.occurrences, s.increment, s.peak, s.memory));
            }
            ++lineno;
        }
        out.append(py::make_tuple(py::reinterpret_borrow<py::object>(code), rows));
    }
    return out;
}

} // namespace

void bind_core(py::module_ &m) {
    py::class_<ProfiledCodes>(m, "ProfiledCodes",
                              "The code objects one line profiler measures, with per-line stats.")
        .def(py::init<>())
        .def(
            "add",
            [](ProfiledCodes &self, py::handle code, int last_line) {
                if (!PyCode_Check(code.ptr())) {
                    throw py::type_error("expected a code object, got " +
                                         std::string(Py_TYPE(code.ptr())->tp_name));
                }
                return self.add(code.ptr(), last_line);
            },
            py::arg("code"), py::arg("last_line"))
        .def("__contains__",
             [](const ProfiledCodes &self, py::handle code) { return self.contains(code.ptr()); })
        .def("enable", &ProfiledCodes::enable)
        .def("disable", &ProfiledCodes::disable)
        .def_property_readonly("enabled", &ProfiledCodes::enabled)
        .def("results", &profiled_results);

    m.def("rss_bytes", &core::current_rss_bytes, "Resident set size of this process, in bytes.");
    m.def("profiled_depth", &core::thread_profiled_depth,
          "Profiled frames running on the calling thread.");
    m.def("set_floor_trace", &core::set_floor_trace, py::arg("on"),
          "Benchmarks only: a C trace function that does nothing (3.11); False on 3.12+.");
    m.def("hook_stats", []() {
        const core::HookStats s = core::hook_stats();
        py::dict d;
        d["live_blocks"] = s.live_blocks;
        d["table_bytes"] = s.table_bytes;
        d["installed"] = s.installed;
        d["active"] = s.active;
        return d;
    });
    m.def(
        "line_records_to_json",
        [](const py::iterable &records, int indent) {
            std::vector<core::LineRecord> rows;
            for (py::handle r : records) {
                rows.push_back(core::LineRecord{
                    r.attr("filename").cast<std::string>(), r.attr("function").cast<std::string>(),
                    r.attr("lineno").cast<int>(), r.attr("source").cast<std::string>(),
                    r.attr("occurrences").cast<std::uint64_t>(),
                    r.attr("increment").cast<std::int64_t>(), r.attr("peak").cast<std::int64_t>(),
                    r.attr("memory").cast<std::int64_t>()});
            }
            return core::line_records_to_json(rows, indent);
        },
        py::arg("records"), py::arg("indent") = 2);
}

} // namespace memxx::bindings

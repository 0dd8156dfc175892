#include <pybind11/stl.h>

#include <cstring>
#include <optional>

#include "mprof/dat_file.hpp"
#include "mprof/drawn_profile.hpp"
#include "mprof/output_file.hpp"
#include "mprof/process_tree.hpp"
#include "mprof/sampler.hpp"
#include "python/bindings/bindings.hpp"

namespace py = pybind11;

namespace memxx::bindings {

namespace {

using mprof::FunctionSpan;
using mprof::MemorySample;
using mprof::Profile;

void set_error_naming_a_file(PyObject* type, const char* what) {
    PyObject* message = PyUnicode_DecodeUTF8(what, static_cast<Py_ssize_t>(std::strlen(what)),
                                             "backslashreplace");
    if (message == nullptr) {
        return;  // MemoryError is set
    }
    PyErr_SetObject(type, message);
    Py_DECREF(message);
}

py::list samples_to_list(const std::vector<MemorySample>& samples) {
    py::list out;
    for (const MemorySample& s : samples) {
        out.append(py::make_tuple(s.mib, s.time));
    }
    return out;
}

std::vector<MemorySample> samples_from_list(const py::iterable& pairs) {
    std::vector<MemorySample> out;
    for (py::handle pair : pairs) {
        const auto t = pair.cast<std::pair<double, double>>();
        out.push_back({t.first, t.second});
    }
    return out;
}

// A .dat file is text from anywhere (a Latin-1 script name, a damaged file): bytes that are not
// UTF-8 become U+FFFD rather than a UnicodeDecodeError in every command that reads the file.
py::str text(const std::string& bytes) {
    PyObject* decoded =
        PyUnicode_DecodeUTF8(bytes.data(), static_cast<Py_ssize_t>(bytes.size()), "replace");
    if (decoded == nullptr) {
        throw py::error_already_set();
    }
    return py::reinterpret_steal<py::str>(decoded);
}

// Samples as bytes of doubles, MiB and time interleaved: 16 bytes a sample where a list of
// tuples takes ~110 (a 10 M-line .dat: 160 MB, not 1.5 GB).
py::bytes samples_to_bytes(const std::vector<MemorySample>& samples) {
    static_assert(sizeof(MemorySample) == 2 * sizeof(double), "MiB and time, nothing else");
    return py::bytes(reinterpret_cast<const char*>(samples.data()),
                     samples.size() * sizeof(MemorySample));
}

// {"cmdline": str, "memory": [(MiB, t)], "children": {pid: [(MiB, t)]},
//  "functions": [(name, mem_start, t_start, mem_end, t_end, level)]}; packed: the samples as
//  samples_to_bytes gives them.
py::dict profile_to_dict(const Profile& p, bool packed = false) {
    py::dict d;
    d["cmdline"] = text(p.cmdline);
    d["memory"] = packed ? py::object(samples_to_bytes(p.memory))
                         : py::object(samples_to_list(p.memory));
    py::dict children;
    for (const auto& [child, samples] : p.children) {
        children[text(child)] = packed ? py::object(samples_to_bytes(samples))
                                       : py::object(samples_to_list(samples));
    }
    d["children"] = children;
    py::list functions;
    for (const FunctionSpan& f : p.functions) {
        functions.append(py::make_tuple(text(f.name), f.mem_start, f.time_start, f.mem_end,
                                        f.time_end, f.level));
    }
    d["functions"] = functions;
    return d;
}

py::tuple sample_tuple(const MemorySample& s) { return py::make_tuple(s.mib, s.time); }

// {"cmdline", "samples", "first": (MiB, t), "peak": (MiB, t), "start", "end",
//  "children": {id: (samples, (peak MiB, t))}, "functions": count, "trend": (Σt, Σm, Σtt, Σtm)}
py::dict summary_to_dict(const mprof::ProfileSummary& s) {
    py::dict d;
    d["cmdline"] = text(s.cmdline);
    d["samples"] = s.memory.samples;
    d["first"] = sample_tuple(s.memory.first);
    d["peak"] = sample_tuple(s.memory.peak);
    d["start"] = s.start;
    d["end"] = s.end;
    py::dict children;
    for (const auto& [child, series] : s.children) {
        children[text(child)] = py::make_tuple(series.samples, sample_tuple(series.peak));
    }
    d["children"] = children;
    d["functions"] = s.functions;
    d["trend"] = py::make_tuple(s.trend.t, s.trend.m, s.trend.tt, s.trend.tm);
    return d;
}

Profile profile_from_dict(const py::dict& d) {
    Profile p;
    p.cmdline = d.contains("cmdline") ? d["cmdline"].cast<std::string>() : "";
    p.memory = samples_from_list(d["memory"]);
    if (d.contains("children")) {
        for (const auto& [child, samples] : d["children"].cast<py::dict>()) {
            p.children[py::str(child).cast<std::string>()] =
                samples_from_list(samples.cast<py::iterable>());
        }
    }
    if (d.contains("functions")) {
        for (py::handle f : d["functions"].cast<py::iterable>()) {
            const auto t = f.cast<std::tuple<std::string, double, double, double, double, int>>();
            p.functions.push_back({std::get<0>(t), std::get<1>(t), std::get<2>(t), std::get<3>(t),
                                   std::get<4>(t), std::get<5>(t)});
        }
    }
    return p;
}

} // namespace

mprof::MemoryMetric metric_from_name(const std::string& name) {
    if (name == "rss") {
        return mprof::MemoryMetric::rss;
    }
    if (name == "pss") {
        return mprof::MemoryMetric::pss;
    }
    if (name == "uss") {
        return mprof::MemoryMetric::uss;
    }
    throw py::value_error("metric must be rss, pss or uss, not " + name);
}

void bind_mprof(py::module_& m) {
    // The messages name files, whose names are bytes: those that are not UTF-8 are shown as
    // \xNN rather than failing to become the exception's text.
    // Kept for the life of the process (released, never decref'd at exit after finalization).
    static PyObject* const profile_error =
        py::exception<mprof::ProfileFileError>(m, "ProfileFileError", PyExc_ValueError)
            .release()
            .ptr();
    static PyObject* const output_error =
        py::exception<mprof::OutputFileError>(m, "OutputFileError", PyExc_ValueError)
            .release()
            .ptr();
    py::register_exception_translator([](std::exception_ptr thrown) {
        try {
            if (thrown) {
                std::rethrow_exception(thrown);
            }
        } catch (const mprof::ProfileFileError& e) {
            set_error_naming_a_file(profile_error, e.what());
        } catch (const mprof::OutputFileError& e) {
            set_error_naming_a_file(output_error, e.what());
        }
    });

    m.def(
        "open_output",
        [](const FsPath& path, bool append) {
            return mprof::open_output(path, append ? mprof::OutputMode::append
                                                   : mprof::OutputMode::truncate);
        },
        py::arg("path"), py::arg("append") = false,
        "A descriptor open for writing `path` (O_APPEND; emptied unless `append`), refusing a "
        "symbolic link, FIFO, device or another user's file (OutputFileError).");
    m.def("check_output", [](const FsPath& path) { mprof::check_output(path); }, py::arg("path"),
          "Raises OutputFileError if `path` exists and is a link, not a regular file, or another "
          "user's; creates nothing.");
    m.def(
        "write_output",
        [](const FsPath& path, const std::string& data) {
            py::gil_scoped_release unlocked;
            mprof::write_output(path, data);
        },
        py::arg("path"), py::arg("data"),
        "Writes `data` (bytes, or str as UTF-8) as the whole content of `path`: a new file in "
        "the same directory renamed over it; refuses as open_output (OutputFileError).");

    py::class_<mprof::Sampler>(m, "Sampler",
                               "Samples a process's memory at absolute deadlines into a .dat file.")
        .def(py::init([](int pid, const FsPath& path, double interval, bool include_children,
                         bool multiprocess, const std::string& metric, int own_memory_fd) {
                 const mprof::MemoryMetric chosen = metric_from_name(metric);
                 auto writer =
                     std::make_unique<mprof::DatWriter>(path, mprof::DatWriter::Mode::append);
                 return std::make_unique<mprof::Sampler>(
                     mprof::SamplerOptions{pid, interval, include_children, multiprocess, chosen,
                                           0, own_memory_fd},
                     std::move(writer));
             }),
             py::arg("pid"), py::arg("path"), py::arg("interval") = 0.1,
             py::arg("include_children") = false, py::arg("multiprocess") = false,
             py::arg("metric") = "rss", py::arg("own_memory_fd") = -1)
        .def("start", &mprof::Sampler::start)
        .def("stop", &mprof::Sampler::stop, py::call_guard<py::gil_scoped_release>())
        .def_property_readonly("running", &mprof::Sampler::running)
        .def_property_readonly("current_bytes", &mprof::Sampler::current_bytes)
        .def_property_readonly("peak_bytes", &mprof::Sampler::peak_bytes)
        .def_property_readonly("error", &mprof::Sampler::error)
        .def("stats", [](const mprof::Sampler& self) {
            const mprof::SamplerStats s = self.stats();
            py::dict d;
            d["samples"] = s.samples;
            d["missed_ticks"] = s.missed_ticks;
            d["thread_cpu_seconds"] = s.thread_cpu_seconds;
            d["lateness_ms"] = s.lateness_ms;
            return d;
        });

    m.attr("MIB") = mprof::bytes_per_mib;
    m.def(
        "format_mem_line",
        [](double mib, double time) { return mprof::format_mem_line({mib, time}); },
        py::arg("mib"), py::arg("time"), "A .dat MEM line: 'MEM <MiB> <unix time>\\n'.");
    m.def(
        "format_child_line",
        [](const std::string& child, double mib, double time) {
            return mprof::format_child_line(child, {mib, time});
        },
        py::arg("child"), py::arg("mib"), py::arg("time"),
        "A .dat CHLD line: 'CHLD <child> <MiB> <unix time>\\n'.");
    m.def(
        "format_function_line",
        [](const std::string& name, double mem_start, double time_start, double mem_end,
           double time_end, int level) {
            return mprof::format_function_line(
                {name, mem_start, time_start, mem_end, time_end, level});
        },
        py::arg("name"), py::arg("mem_start"), py::arg("time_start"), py::arg("mem_end"),
        py::arg("time_end"), py::arg("level"),
        "A .dat FUNC line: 'FUNC <name> <MiB> <t> <MiB> <t> <level>\\n'.");
    m.def(
        "create_dat",
        [](const FsPath& path, const std::string& cmdline) {
            mprof::DatWriter(path, mprof::DatWriter::Mode::truncate).write_cmdline(cmdline);
        },
        py::arg("path"), py::arg("cmdline"),
        "Creates (or empties) a .dat file holding only its CMDLINE record; a Sampler appends.");
    m.def(
        "read_profile",
        [](const FsPath& path, bool packed) {
            return profile_to_dict(mprof::read_profile(path), packed);
        },
        py::arg("path"), py::arg("packed") = false,
        "Reads a .dat (memory_profiler format) or mprofxx .json profile; packed: samples as "
        "bytes of doubles (MiB, time, MiB, time, ...).");
    m.def(
        "read_profile_summary",
        [](const FsPath& path) {
            return summary_to_dict(mprof::summarize_profile(path));
        },
        py::arg("path"),
        "The figures of a .dat or .json profile read as a stream, in memory independent of its "
        "size: cmdline, samples, first and peak (MiB, t), start, end, children {id: (samples, "
        "peak)}, functions (count), trend (least-squares sums over seconds since the first "
        "sample).");
    m.def(
        "read_profile_drawn",
        [](const FsPath& path, int columns, std::optional<std::pair<double, double>> window) {
            if (columns < 1) {
                throw py::value_error("columns must be at least 1");
            }
            mprof::DrawLimits limits;
            limits.columns = columns;
            const mprof::DrawnProfile drawn = mprof::read_drawn_profile(path, limits, window);
            py::dict d = summary_to_dict(drawn.summary);
            d["memory"] = samples_to_bytes(drawn.memory);
            py::dict children;
            for (const auto& [child, samples] : drawn.children) {
                children[text(child)] = samples_to_bytes(samples);
            }
            d["children"] = children;
            py::list functions;
            for (const FunctionSpan& f : drawn.functions) {
                functions.append(py::make_tuple(text(f.name), f.mem_start, f.time_start,
                                                f.mem_end, f.time_end, f.level));
            }
            d["functions"] = functions;
            py::dict totals;
            for (const auto& [name, total] : drawn.totals) {
                totals[text(name)] = py::make_tuple(total.calls, total.seconds);
            }
            d["totals"] = totals;
            py::dict child_peaks;
            for (const auto& [child, series] : drawn.summary.children) {
                child_peaks[text(child)] = sample_tuple(series.peak);
            }
            d["child_peaks"] = child_peaks;
            d["pixel"] = drawn.pixel;
            return d;
        },
        py::arg("path"), py::arg("columns"), py::arg("window") = py::none(),
        "What a plot of `columns` columns draws of a profile, read in two streaming passes: "
        "the summary's keys, then memory and children as packed samples (first, lowest, "
        "highest, last of each column), functions merged below a column, totals {name: "
        "(calls, seconds)}, child_peaks, pixel. ProfileFileError beyond what a plot can draw.");
    m.def(
        "profile_to_json",
        [](const py::dict& profile, int indent) {
            return mprof::profile_to_json(profile_from_dict(profile), indent);
        },
        py::arg("profile"), py::arg("indent") = 1,
        "The JSON text of a profile dict as read_profile returns it.");
    m.def("process_running", &mprof::process_running, py::arg("pid"),
          "True while the process exists and has not exited.");
    m.def(
        "process_command_line",
        [](int pid) {
            // Arguments are bytes: those that are not UTF-8 come back as os.fsdecode gives them.
            const std::string bytes = mprof::command_line(pid);
            PyObject* decoded = PyUnicode_DecodeFSDefaultAndSize(
                bytes.data(), static_cast<Py_ssize_t>(bytes.size()));
            if (decoded == nullptr) {
                throw py::error_already_set();
            }
            return py::reinterpret_steal<py::str>(decoded);
        },
        py::arg("pid"),
        "The command line of a process, arguments joined by spaces (undecodable bytes as lone "
        "surrogates, as os.fsdecode).");
}

} // namespace memxx::bindings

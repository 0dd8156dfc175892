#include <algorithm>
#include <pybind11/stl.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/alloc_hook.hpp"
#include "core/line_tracer.hpp"
#include "core/other_threads.hpp"
#include "core/own_memory.hpp"
#include "core/peak_recorder.hpp"
#include "core/signal_relay.hpp"
#include "core/process_memory.hpp"
#include "core/py_compat.h"
#include "mprof/usage_series.hpp"
#include "python/bindings/bindings.hpp"

namespace py = pybind11;

namespace memxx::bindings {

using core::ProfiledCodes;

namespace {

// Benchmarks' floor of an event callback (sys.monitoring, 3.12+): takes any arguments and
// returns None at once, without the argument tuple a pybind11 function would build.
PyObject *floor_event(PyObject *, PyObject *const *, Py_ssize_t) { Py_RETURN_NONE; }
PyMethodDef g_floor_event{"floor_event",
                          reinterpret_cast<PyCFunction>(reinterpret_cast<void *>(floor_event)),
                          METH_FASTCALL, "Benchmarks only: an event callback that does nothing."};

// [(code, [(lineno, occurrences, increment, peak, memory, native_increment, native_peak,
//            threads_increment), ...]), ...] for lines that ran.
py::list profiled_results(const ProfiledCodes &codes) {
    py::list out;
    for (const auto &[code, lines] : codes.codes()) {
        py::list rows;
        const int first = lines->first_line();
        int lineno = first;
        for (const core::LineStats &s : lines->lines()) {
            if (s.occurrences > 0) {
                rows.append(py::make_tuple(lineno, s.occurrences, s.increment, s.peak, s.memory,
                                           s.native_increment, s.native_peak,
                                           s.threads_increment));
            }
            ++lineno;
        }
        out.append(py::make_tuple(py::reinterpret_borrow<py::object>(code), rows));
    }
    return out;
}

// The rows below the floor, grouped by the line they are charged to (what PeakTable.lines shows:
// a stack's innermost frame outside library code, else its innermost frame), as capture() writes
// them: a group that reaches the floor, or whose line a kept stack shows too, is one row at the
// stack its members share; the others are cut. Done here because the rows are many (83 k for
// `import sklearn, pandas, scipy`) and each is a walk up its stack.
class SmallRows {
  public:
    struct Group {
        std::int64_t bytes;
        std::uint32_t line_node; // names the line: a member's own (or innermost) node, or a root
        std::uint32_t shared;    // the deepest node every member goes through; 1 when none
    };

    SmallRows(const std::vector<core::PeakNode> &nodes, py::handle is_library)
        : nodes_(nodes), is_library_(is_library), own_(nodes.size(), kNone),
          depth_(nodes.size(), 0) {
        // Parents are interned before their children: one pass in id order.
        for (std::uint32_t id = 2; id < nodes.size(); ++id) {
            const std::uint32_t parent = nodes[id].parent;
            depth_[id] = parent > 1 ? depth_[parent] + 1 : 1;
            own_[id] = library(nodes[id].frame.code) ? own_[parent] : id;
        }
    }

    // Groups `small` (largest first); the rows of groups cut are counted in cut_rows/cut_bytes.
    std::vector<Group> group(const std::vector<core::PeakRow> &kept,
                             const std::vector<core::PeakRow> &small, double floor) {
        std::unordered_map<LineKey, std::size_t, LineKeyHash> index;
        std::vector<Group> groups;
        std::vector<std::vector<std::uint32_t>> group_members;
        for (const core::PeakRow &row : small) {
            const std::uint32_t line = line_node(row.stack);
            const auto [at, added] = index.try_emplace(key_of(line), groups.size());
            if (added) {
                groups.push_back(Group{0, line, row.stack});
                group_members.emplace_back();
            }
            groups[at->second].bytes += row.bytes;
            group_members[at->second].push_back(row.stack);
        }
        std::unordered_map<LineKey, bool, LineKeyHash> shown;
        for (const core::PeakRow &row : kept) {
            shown.emplace(key_of(line_node(row.stack)), true);
        }
        std::vector<Group> out;
        for (std::size_t at = 0; at < groups.size(); ++at) {
            Group &g = groups[at];
            if (static_cast<double>(g.bytes) < floor && shown.count(key_of(g.line_node)) == 0) {
                cut_rows += group_members[at].size(); // a line shown keeps every byte of its own
                cut_bytes += g.bytes;
                continue;
            }
            g.shared = shared(group_members[at]);
            out.push_back(g);
        }
        return out;
    }

    std::size_t cut_rows = 0;
    std::int64_t cut_bytes = 0;

  private:
    static constexpr std::uint32_t kNone = ~std::uint32_t{0};
    // A line: the interned (file, function) of its code and its number; roots: (-1, node).
    using LineKey = std::pair<std::int64_t, std::int64_t>;
    struct LineKeyHash {
        std::size_t operator()(const LineKey &key) const noexcept {
            return std::hash<std::int64_t>()(key.first * 1000003 + key.second);
        }
    };

    std::uint32_t line_node(std::uint32_t node) const noexcept {
        return node > 1 && own_[node] != kNone ? own_[node] : node;
    }

    LineKey key_of(std::uint32_t node) {
        if (node <= 1) {
            return {-1, node};
        }
        return {name_of(nodes_[node].frame.code), nodes_[node].frame.line};
    }

    // The deepest node all of `members` go through; 1 (no frames, cut) when their roots differ.
    std::uint32_t shared(const std::vector<std::uint32_t> &members) const noexcept {
        std::uint32_t common = members[0];
        for (std::size_t i = 1; i < members.size() && common > 1; ++i) {
            std::uint32_t other = members[i];
            while (depth_[other] > depth_[common]) {
                other = nodes_[other].parent;
            }
            while (depth_[common] > depth_[other]) {
                common = nodes_[common].parent;
            }
            while (common != other && common > 1) {
                common = nodes_[common].parent;
                other = nodes_[other].parent;
            }
            if (common != other) {
                return 1; // different roots
            }
        }
        if (common <= 1) {
            // Both members reached a root: the same one, else they would have differed above.
            for (std::uint32_t member : members) {
                while (member > 1) {
                    member = nodes_[member].parent;
                }
                if (member != common) {
                    return 1;
                }
            }
        }
        return common;
    }

    bool library(PyObject *code) {
        const auto [at, added] = library_.try_emplace(code, false);
        if (added) {
            at->second = is_library_(py::handle(code).attr("co_filename")).cast<bool>();
        }
        return at->second;
    }

    // One number per (file, function) pair, as capture() names a frame.
    std::int64_t name_of(PyObject *code) {
        const auto [at, added] = name_.try_emplace(code, 0);
        if (added) {
            const py::handle object(code);
            py::object qualname = py::hasattr(object, "co_qualname") ? object.attr("co_qualname")
                                                                     : object.attr("co_name");
            const py::tuple name =
                py::make_tuple(object.attr("co_filename"), py::str(qualname));
            const auto [known, fresh] = names_.try_emplace(
                std::make_pair(name[0].cast<std::string>(), name[1].cast<std::string>()),
                static_cast<std::int64_t>(names_.size()));
            (void)fresh;
            at->second = known->second;
        }
        return at->second;
    }

    struct PairHash {
        std::size_t operator()(const std::pair<std::string, std::string> &key) const noexcept {
            return std::hash<std::string>()(key.first) * 31 + std::hash<std::string>()(key.second);
        }
    };

    const std::vector<core::PeakNode> &nodes_;
    py::handle is_library_;
    std::vector<std::uint32_t> own_;  // node -> its innermost node outside library code, or kNone
    std::vector<std::uint32_t> depth_; // node -> frames from its root
    std::unordered_map<PyObject *, bool> library_;
    std::unordered_map<PyObject *, std::int64_t> name_;
    std::unordered_map<std::pair<std::string, std::string>, std::int64_t, PairHash> names_;
};

// {"peak_bytes", "peak_time", "current_bytes", "live_blocks", "block_table_bytes",
//  "stack_table_bytes", "stack_nodes", "stacks", "stack_tags",
//  "nodes": [(parent, code, line), ...],
//  "at_peak": [(bytes, node), ...], "live_now": [(bytes, node), ...] (asked for, else empty),
//  "left_rows", "left_bytes", "groups": [(bytes, line_node, shared_node), ...], "cut_rows",
//  "cut_bytes"}:
// the nodes the stacks live at the peak (and those live now) go through, each after its parent;
// a parent of -1 is the root, -2 the root of stacks cut at the recorded depth. With `largest`
// >= 0 only that many stacks, the largest, are listed; the others are counted in left_rows and
// left_bytes (when memory is short: the nodes of all stacks are not made into Python objects).
// With `merge_below` > 0 (and `largest` < 0), at_peak lists the stacks holding at least that
// share of the peak, largest first, and the others are grouped by line (SmallRows,
// `is_library(filename)` telling library frames): the groups kept, whose row is their line over
// the stack they share, and the count and bytes of the rows cut.
py::dict peak_report_dict(std::int64_t largest, bool live_now, double merge_below,
                          py::handle is_library) {
    core::PeakReport report;
    try {
        report = core::peak_report(live_now && largest < 0, largest);
    } catch (const std::logic_error &e) {
        throw py::value_error(e.what());
    }
    std::vector<SmallRows::Group> groups;
    std::size_t cut_rows = 0;
    std::int64_t cut_bytes = 0;
    if (largest < 0 && merge_below > 0) {
        if (is_library.is_none()) {
            throw py::value_error("merge_below needs is_library");
        }
        std::stable_sort(report.at_peak.begin(), report.at_peak.end(),
                         [](const core::PeakRow &a, const core::PeakRow &b) {
                             return a.bytes > b.bytes;
                         });
        const double floor = merge_below * static_cast<double>(report.peak_bytes);
        std::size_t kept = report.at_peak.size();
        while (kept > 0 && static_cast<double>(report.at_peak[kept - 1].bytes) < floor) {
            --kept;
        }
        if (kept < report.at_peak.size()) {
            const std::vector<core::PeakRow> small(report.at_peak.begin() + kept,
                                                   report.at_peak.end());
            report.at_peak.resize(kept);
            SmallRows rows(report.nodes, is_library);
            groups = rows.group(report.at_peak, small, floor);
            cut_rows = rows.cut_rows;
            cut_bytes = rows.cut_bytes;
        }
    }
    // Parents are interned before their children, so ascending ids put each parent first.
    std::vector<std::int64_t> index(report.nodes.size(), -1);
    if (index.size() > 1) {
        index[0] = -1;
        index[1] = -2;
    }
    std::vector<bool> used(report.nodes.size(), false);
    auto use = [&](std::uint32_t node) {
        for (; node > 1 && !used[node]; node = report.nodes[node].parent) {
            used[node] = true;
        }
    };
    for (const auto *rows : {&report.at_peak, &report.live_now}) {
        for (const core::PeakRow &row : *rows) {
            use(row.stack);
        }
    }
    for (const SmallRows::Group &group : groups) {
        use(group.line_node);
        use(group.shared);
    }
    py::list nodes;
    std::int64_t next = 0;
    for (std::size_t id = 2; id < report.nodes.size(); ++id) {
        if (!used[id]) {
            continue;
        }
        const core::PeakNode &node = report.nodes[id];
        index[id] = next++;
        nodes.append(py::make_tuple(index[node.parent],
                                    py::reinterpret_borrow<py::object>(node.frame.code),
                                    node.frame.line));
    }
    auto index_of = [&index](std::uint32_t node) {
        return node < index.size() ? index[node] : std::int64_t{-1};
    };
    auto row_list = [&index_of](const std::vector<core::PeakRow> &from) {
        py::list rows;
        for (const core::PeakRow &row : from) {
            rows.append(py::make_tuple(row.bytes, index_of(row.stack)));
        }
        return rows;
    };
    py::list group_list;
    for (const SmallRows::Group &group : groups) {
        group_list.append(
            py::make_tuple(group.bytes, index_of(group.line_node), index_of(group.shared)));
    }
    py::dict out;
    out["peak_bytes"] = report.peak_bytes;
    out["peak_time"] = report.peak_time;
    out["current_bytes"] = report.current_bytes;
    out["live_blocks"] = report.live_blocks;
    out["block_table_bytes"] = report.block_table_bytes;
    out["peak_live_blocks"] = report.peak_live_blocks;
    out["peak_block_table_bytes"] = report.peak_block_table_bytes;
    out["stack_table_bytes"] = report.stack_table_bytes;
    out["stack_nodes"] = report.stack_nodes;
    out["stacks"] = report.stacks;
    out["stack_tags"] = report.tags;
    out["nodes"] = nodes;
    out["at_peak"] = row_list(report.at_peak);
    out["live_now"] = row_list(report.live_now);
    out["left_rows"] = report.left_rows;
    out["left_bytes"] = report.left_bytes;
    out["groups"] = group_list;
    out["cut_rows"] = cut_rows;
    out["cut_bytes"] = cut_bytes;
    return out;
}

// A profiled thread's share and line, as the Python layer hands it from a thread that starts or
// submits work to the thread that does it (memory_profilerxx/_thread_causes.py).
class ThreadCause {
  public:
    explicit ThreadCause(const core::ThreadCause &cause) noexcept : cause_(cause) {}
    ~ThreadCause() { core::share_release(cause_.share); }
    ThreadCause(const ThreadCause &) = delete;
    ThreadCause &operator=(const ThreadCause &) = delete;
    const core::ThreadCause &cause() const noexcept { return cause_; }

  private:
    core::ThreadCause cause_; // its share referenced
};

py::object cause_object(const core::ThreadCause &cause) {
    if (cause.share == nullptr) {
        return py::none();
    }
    return py::cast(std::make_unique<ThreadCause>(cause));
}

void bind_thread_cause(py::module_ &m) {
    py::class_<ThreadCause>(m, "ThreadCause",
                            "Whose line another thread's memory is charged to (opaque).");
    m.def(
        "thread_cause", []() { return cause_object(core::thread_cause()); },
        "The cause the calling thread's memory goes to now (its own profiled line, or the cause "
        "it adopted), or None when it pays nobody or no profiler counts other threads.");
    m.def(
        "adopt_thread_cause",
        [](const ThreadCause *cause) {
            core::settle_thread_ledger(); // the work before this hand-over is over
            return cause_object(
                core::adopt_thread_cause(cause != nullptr ? cause->cause() : core::ThreadCause{}));
        },
        py::arg("cause").none(true),
        "The calling thread charges `cause` (None: nobody) from now on; returns the previous "
        "cause, to adopt again afterwards.");
}

void bind_usage_series(py::module_ &m) {
    using mprof::UsageSeries;
    py::class_<UsageSeries>(m, "UsageSeries",
                            "Samples a process's memory into memory at absolute deadlines.")
        .def(py::init([](int pid, double interval, bool include_children, bool children_detail,
                         const std::string &metric, std::int64_t max_samples) {
                 const mprof::MemoryMetric chosen = metric_from_name(metric);
                 if (!(interval > 0)) {
                     throw py::value_error("interval must be > 0");
                 }
                 return std::make_unique<UsageSeries>(mprof::UsageOptions{
                     pid, interval, include_children, children_detail, chosen, max_samples});
             }),
             py::arg("pid"), py::arg("interval") = 0.1, py::arg("include_children") = false,
             py::arg("children_detail") = false, py::arg("metric") = "rss",
             py::arg("max_samples") = 0)
        .def("start", &UsageSeries::start)
        .def("stop", &UsageSeries::stop, py::call_guard<py::gil_scoped_release>())
        .def("wait", &UsageSeries::wait, py::call_guard<py::gil_scoped_release>())
        .def_property_readonly("running", &UsageSeries::running)
        .def("samples", [](const UsageSeries &self) {
            // [(time, own_bytes, total_bytes, [(pid, bytes), ...]), ...]
            py::list out;
            for (const mprof::UsageSample &s : self.samples()) {
                py::list children;
                for (const auto &[pid, bytes] : s.children) {
                    children.append(py::make_tuple(pid, bytes));
                }
                out.append(py::make_tuple(s.time, s.own_bytes, s.total_bytes, children));
            }
            return out;
        });
}

// [(field, compiled, published, public path)] of the private offsets checked at import; empty
// where the interpreter publishes none (3.11, 3.12).
py::list private_offsets() {
    py::list out;
    memxx_private_offset offsets[MEMXX_PRIVATE_OFFSETS_MAX];
    const int count = memxx_private_offsets(memxx_published_debug_offsets(), offsets);
    for (int i = 0; i < count; ++i) {
        out.append(py::make_tuple(offsets[i].field, offsets[i].compiled, offsets[i].published,
                                  offsets[i].public_path));
    }
    return out;
}

// The import's check run over a copy of the interpreter's table in which `field` publishes
// `value`: the public paths it turns on, or the ImportError the import would raise.
unsigned check_offsets_altered(const std::string &field, std::uint64_t value) {
    const void *table = memxx_published_debug_offsets();
    if (table == nullptr) {
        throw py::value_error("this interpreter publishes no _Py_DebugOffsets");
    }
    std::vector<unsigned char> copy(static_cast<const unsigned char *>(table),
                                    static_cast<const unsigned char *>(table) +
                                        memxx_debug_offsets_size());
    memxx_private_offset offsets[MEMXX_PRIVATE_OFFSETS_MAX];
    const int count = memxx_private_offsets(copy.data(), offsets);
    int i = 0;
    while (i < count && field != offsets[i].field) {
        ++i;
    }
    if (i == count) {
        throw py::value_error("not a checked field: " + field);
    }
    std::memcpy(copy.data() + offsets[i].table_position, &value, sizeof(value));
    unsigned public_paths = 0;
    if (!memxx_check_private_offsets(copy.data(), &public_paths)) {
        throw py::error_already_set();
    }
    return public_paths;
}

} // namespace

void bind_core(py::module_ &m) {
    // The core reports a Python error it left set (a taken sys.monitoring tool id) this way.
    py::register_local_exception_translator([](std::exception_ptr error) {
        try {
            if (error) {
                std::rethrow_exception(error);
            }
        } catch (const core::PythonErrorSet &) {
        }
    });
    py::class_<ProfiledCodes>(m, "ProfiledCodes",
                              "The code objects one line profiler measures, with per-line stats.")
        .def(py::init<>())
        .def(
            "add",
            [](ProfiledCodes &self, py::handle code, int last_line, std::vector<int> falls_off) {
                if (!PyCode_Check(code.ptr())) {
                    throw py::type_error("expected a code object, got " +
                                         std::string(Py_TYPE(code.ptr())->tp_name));
                }
                return self.add(code.ptr(), last_line, std::move(falls_off));
            },
            py::arg("code"), py::arg("last_line"), py::arg("falls_off") = std::vector<int>{})
        .def(
            "add_nested",
            [](ProfiledCodes &self, py::handle code, py::handle parent,
               std::vector<int> falls_off) {
                if (!PyCode_Check(code.ptr()) || !PyCode_Check(parent.ptr())) {
                    throw py::type_error("expected two code objects");
                }
                return self.add_nested(code.ptr(), parent.ptr(), std::move(falls_off));
            },
            py::arg("code"), py::arg("parent"), py::arg("falls_off") = std::vector<int>{})
        .def("__contains__",
             [](const ProfiledCodes &self, py::handle code) { return self.contains(code.ptr()); })
        .def("enable", &ProfiledCodes::enable, py::arg("arm") = true,
             "Counted enable; arm=False holds the claim between a generator's steps.")
        .def("disable", &ProfiledCodes::disable, py::arg("armed") = true)
        .def(
            "close_generator",
            [](ProfiledCodes &self, py::handle generator) {
                PyObject *result = self.close_generator(generator.ptr());
                if (result == nullptr) {
                    throw py::error_already_set();
                }
                return py::reinterpret_steal<py::object>(result);
            },
            py::arg("generator"),
            "generator.close(), what it frees charged to the line the generator waits at.")
        .def_property_readonly("enabled", &ProfiledCodes::enabled)
        .def_property("native", &ProfiledCodes::native, &ProfiledCodes::set_native,
                      "Count native memory (malloc/mmap of shared objects) while enabled.")
        .def_property("threads", &ProfiledCodes::other_threads, &ProfiledCodes::set_other_threads,
                      "Charge other threads' memory to the profiled line that caused it while "
                      "enabled (False: the profiled threads' own only).")
        .def("results", &profiled_results);
    bind_thread_cause(m);

    m.def("rss_bytes", &core::current_rss_bytes, "Resident set size of this process, in bytes.");
    m.def("peak_rss_bytes", &core::peak_rss_bytes,
          "The kernel's high-water mark of this process's resident set (VmHWM), in bytes.");
    m.def("restart_peak_rss", &core::restart_peak_rss,
          "Restarts VmHWM from the current resident set; False if the kernel refuses.");
    using Mark = std::tuple<std::int64_t, std::int64_t, bool>;
    const auto to_mark = [](const Mark &mark) {
        return core::WatchMark{std::get<0>(mark), std::get<1>(mark), std::get<2>(mark)};
    };
    m.def(
        "watch_thread_begin",
        [](bool threads) {
            const core::WatchMark mark = core::watch_thread_begin(threads);
            return py::make_tuple(mark.saved_peak, mark.start_net, mark.other_threads);
        },
        py::arg("threads") = true,
        "Starts counting the calling thread's allocations (threads=True: and what other threads "
        "allocate for it); hand the result to watch_thread_end.");
    m.def(
        "watch_thread_end",
        [to_mark](const Mark &mark) { return core::watch_thread_end(to_mark(mark)); },
        py::arg("mark"), "The highest net bytes the thread allocated since watch_thread_begin.");
    m.def(
        "watch_thread_net",
        [to_mark](const Mark &mark) { return core::watch_thread_net(to_mark(mark)); },
        py::arg("mark"), "The net bytes the thread allocated since watch_thread_begin (still on).");
    bind_usage_series(m);
    m.def(
        "peak_start",
        [](bool native) {
            try {
                core::peak_start(native);
            } catch (const std::logic_error &e) {
                throw py::value_error(e.what());
            }
        },
        py::arg("native") = true,
        "Starts recording every allocation with the Python stack that made it.");
    m.def(
        "peak_share_own_memory",
        [](int fd) {
            if (!core::own_memory_share(fd)) {
                PyErr_SetFromErrno(PyExc_OSError);
                throw py::error_already_set();
            }
        },
        py::arg("fd"),
        "Publishes the recorder's own memory in the page of the memory file `fd` (from mprofxx "
        "run --peak, which leaves it out of its samples).");
    m.def("peak_stop", &core::peak_stop, "Stops the peak recorder and drops its tables.");
    m.def("peak_relay_signal", &core::signal_relay_install, py::arg("signum"),
          "While recording, sends `signum` again to this (the main) thread every 100 ms until "
          "peak_signal_taken(): its Python handler (installed just before) runs even when the "
          "signal came to another thread or just before the main thread blocked. False when "
          "the signal has no Python handler.");
    m.def("peak_signal_taken", &core::signal_relay_taken,
          "The Python handler of a relayed signal runs: it is not sent again.");
    m.def("peak_runner_frame", &core::peak_runner_frame, py::arg("on"),
          "The calling frame runs the program (True) until it returns (False first).");
    m.def("_peak_shadow_keys", &core::peak_shadow_keys,
          "3.12, 3.13: the stack keys the frames' shadow gave this thread while run --peak "
          "records (0 on the other versions); for tests.");
    m.def("_peak_shadow_stacks", &core::peak_shadow_stacks,
          "3.12, 3.13: the stacks run --peak interned by the frames' shadow's memos instead of a "
          "walk since it started (0 on the other versions); for tests.");
    m.def(
        "peak_report",
        [](std::int64_t largest, bool live_now, double merge_below, py::object is_library) {
            try {
                return peak_report_dict(largest, live_now, merge_below, is_library);
            } catch (const std::runtime_error &) {
                // pybind11 reports a Python object it could not make as a RuntimeError; the
                // caller must know it is out of memory (it writes a shorter table then).
                if (PyErr_Occurred() != nullptr && PyErr_ExceptionMatches(PyExc_MemoryError)) {
                    PyErr_Clear();
                    throw std::bad_alloc();
                }
                throw;
            }
        },
        py::arg("largest") = -1, py::arg("live_now") = false, py::arg("merge_below") = 0.0,
        py::arg("is_library") = py::none(),
          "The peak recorder's figures: the peak, and the bytes per stack live at that moment "
          "(the `largest` stacks only when it is 0 or more); with `live_now`, also the bytes "
          "per stack live now; with `merge_below`, the stacks below that share of the peak "
          "grouped by line (`is_library(filename)` tells library frames).");
    m.def("profiled_depth", &core::thread_profiled_depth,
          "Profiled frames running on the calling thread.");
    m.def("set_floor_trace", &core::set_floor_trace, py::arg("on"),
          "Benchmarks only: a C trace function that does nothing (3.11); False on 3.12+.");
    m.def("set_floor_allocator", &core::set_floor_allocator, py::arg("on"),
          "Benchmarks only: PyMem functions that only call the previous allocator; False when "
          "nothing changed.");
    m.def("_private_offsets", &private_offsets,
          "Tests only: [(field, compiled, published, public path)] checked at import.");
    m.def("_check_offsets_altered", &check_offsets_altered, py::arg("field"), py::arg("value"),
          "Tests only: the import's offsets check over a copy of the interpreter's table in which "
          "`field` is `value`: the public paths turned on, or the ImportError.");
    m.attr("PUBLIC_GC_WALK") = static_cast<unsigned>(MEMXX_PUBLIC_GC_WALK);
    m.attr("floor_event") = py::reinterpret_steal<py::object>(
        PyCFunction_NewEx(&g_floor_event, nullptr, m.attr("__name__").ptr()));
    m.def("hook_stats", []() {
        const core::HookStats s = core::hook_stats();
        py::dict d;
        d["live_blocks"] = s.live_blocks;
        d["table_bytes"] = s.table_bytes;
        d["installed"] = s.installed;
        d["active"] = s.active;
        d["native"] = s.native;
        d["native_objects"] = s.native_objects;
        d["native_slots"] = s.native_slots;
        d["native_slots_now"] = s.native_slots_now;
        d["native_mappings"] = s.native_mappings;
        d["native_patch_seconds"] = s.native_patch_seconds;
        return d;
    });
}

} // namespace memxx::bindings

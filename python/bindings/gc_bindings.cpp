// Bindings of gc_walker for objgraphxx: converts Python arguments and results, nothing more.
#include "python/bindings/bindings.hpp"

#include "core/alloc_sites.hpp"
#include "gc_walker/alive_chain.hpp"
#include "gc_walker/edge_names.hpp"
#include "gc_walker/graph_render.hpp"
#include "gc_walker/heap_graph.hpp"
#include "gc_walker/heap_walk.hpp"
#include "gc_walker/new_ids.hpp"
#include "gc_walker/object_sites.hpp"
#include "gc_walker/referrer_search.hpp"
#include "gc_walker/type_stats.hpp"
#include "mprof/output_file.hpp"

#include <pybind11/stl.h>

#include <unordered_map>

namespace py = pybind11;

namespace memxx::bindings {

namespace {

using gc::PyRef;

template <class F> auto python_errors(F &&f) {
    try {
        return f();
    } catch (const core::PythonErrorSet &) {
        throw py::error_already_set();
    }
}

PyObject *or_null(const py::object &o) { return o.is_none() ? nullptr : o.ptr(); }

py::list to_list(std::vector<PyRef> objects) {
    py::list out(objects.size());
    for (size_t i = 0; i < objects.size(); ++i) {
        PyList_SET_ITEM(out.ptr(), static_cast<Py_ssize_t>(i), objects[i].release());
    }
    return out;
}

gc::Excluded excluded_from(const py::iterable &ids, const py::tuple &observer_types) {
    gc::Excluded excluded;
    for (py::handle id : ids) {
        excluded.addresses.push_back(id.cast<uintptr_t>());
    }
    for (py::handle t : observer_types) {
        if (!PyType_Check(t.ptr())) {
            throw py::type_error("observer_types must hold types");
        }
        excluded.observer_types.push_back(reinterpret_cast<PyTypeObject *>(t.ptr()));
    }
    return excluded;
}

// (filename, line) of an allocation site.
py::tuple site_location(uint32_t site) {
    PyObject *code = core::site_code(site);
    if (code == nullptr) {
        return py::make_tuple(py::none(), 0);
    }
    return py::make_tuple(
        py::reinterpret_borrow<py::object>(reinterpret_cast<PyCodeObject *>(code)->co_filename),
        core::site_line(site));
}

// Type names for a set of types, each resolved once; the types are held while Python runs.
class TypeNames {
  public:
    explicit TypeNames(bool shortnames) : shortnames_(shortnames) {}
    const std::string &operator()(PyTypeObject *type) {
        auto it = names_.find(type);
        if (it == names_.end()) {
            held_.push_back(PyRef::borrow(reinterpret_cast<PyObject *>(type)));
            it = names_.emplace(type, gc::type_name(type, shortnames_)).first;
        }
        return it->second;
    }

  private:
    bool shortnames_;
    std::vector<PyRef> held_;
    std::unordered_map<PyTypeObject *, std::string> names_;
};

py::list site_rows(const std::vector<gc::SiteCount> &counts, bool shortnames) {
    std::vector<PyRef> held;
    for (const gc::SiteCount &c : counts) {
        held.push_back(PyRef::borrow(reinterpret_cast<PyObject *>(c.type)));
    }
    TypeNames names(shortnames);
    py::list out;
    for (const gc::SiteCount &c : counts) {
        py::tuple where = site_location(c.site);
        out.append(py::make_tuple(names(c.type), where[0], where[1], c.count, c.bytes));
    }
    return out;
}

const char *root_kind_name(gc::AliveChain::Root kind) {
    switch (kind) {
    case gc::AliveChain::Root::module:
        return "module";
    case gc::AliveChain::Root::type:
        return "class";
    case gc::AliveChain::Root::frame:
        return "frame";
    case gc::AliveChain::Root::none:
        break;
    }
    return "none";
}

} // namespace

void bind_gc(py::module_ &m) {
    m.def(
        "sites_start", [] { core::sites_start(); },
        "Start recording the allocation site of every object allocated from now on.");
    m.def(
        "sites_stop", [](bool forget) { core::sites_stop(forget); }, py::arg("forget"),
        "Stop recording; forget=True also drops the recorded sites and the hook.");
    m.def(
        "sites_state",
        [] {
            switch (core::site_tracking()) {
            case core::SiteTracking::recording:
                return "recording";
            case core::SiteTracking::forgetting:
                return "forgetting";
            case core::SiteTracking::off:
                break;
            }
            return "off";
        },
        "'off', 'recording' or 'forgetting' (stopped, sites of live objects kept).");
    m.def("sites_new_epoch", &core::sites_new_epoch,
          "Start a new allocation epoch; returns its number.");
    m.def(
        "sites_stats",
        [] {
            const core::SiteTableStats s = core::sites_stats();
            py::dict d;
            d["live_blocks"] = s.live_blocks;
            d["table_bytes"] = s.table_bytes;
            d["sites"] = core::site_count() - 1;
            return d;
        },
        "Blocks carrying a site, the tables' bytes, and the number of distinct sites.");
    m.def(
        "gc_object_site",
        [](const py::object &obj) -> py::object {
            const uint32_t site = gc::object_site(obj.ptr());
            if (site == 0) {
                return py::none();
            }
            return site_location(site);
        },
        "(filename, line) where `obj` was allocated, or None if not recorded.");
    m.def(
        "gc_new_object_sites",
        [](uint32_t since, bool shortnames) {
            return python_errors(
                [&] { return site_rows(gc::new_object_sites(since), shortnames); });
        },
        py::arg("since"), py::arg("shortnames") = true,
        "[(type name, filename, line, count, 0)] of tracked objects allocated in epoch >= since.");
    m.def(
        "gc_heap_summary",
        [](bool shortnames, bool with_sites) {
            return python_errors([&] {
                gc::HeapGraph graph = gc::HeapGraph::build();
                std::vector<gc::HeapGraph::TypeRow> rows = graph.by_type();
                std::vector<gc::SiteCount> sites;
                if (with_sites) {
                    sites = gc::heap_sites(graph);
                }
                const size_t nodes = graph.node_count() - 1;
                const size_t memory = graph.memory_bytes();
                std::vector<PyRef> held;
                for (const auto &r : rows) {
                    held.push_back(PyRef::borrow(reinterpret_cast<PyObject *>(r.type)));
                }
                graph = gc::HeapGraph::build_empty();
                TypeNames names(shortnames);
                py::list types;
                for (const auto &r : rows) {
                    types.append(py::make_tuple(names(r.type), r.count, r.shallow, r.retained));
                }
                py::dict d;
                d["types"] = types;
                d["sites"] = site_rows(sites, shortnames);
                d["nodes"] = nodes;
                d["analysis_bytes"] = memory;
                return d;
            });
        },
        py::arg("shortnames") = true, py::arg("with_sites") = true,
        "Heap summary: types [(name, count, shallow, retained)], sites [(type, file, line, "
        "count, bytes)], nodes, analysis_bytes.");
    m.def(
        "gc_retained_size",
        [](const py::object &obj) -> py::tuple {
            // pybind11 3 types make_tuple's result by its arguments: the two returns differ.
            return python_errors([&]() -> py::tuple {
                gc::HeapGraph graph = gc::HeapGraph::build(obj.ptr());
                const uint32_t node = graph.focus_node();
                if (node == gc::PointerIndex::npos) {
                    gc::ShallowSizer sizer;
                    const uint64_t own = sizer(obj.ptr());
                    return py::make_tuple(own, own, graph.memory_bytes());
                }
                return py::make_tuple(graph.retained(node), graph.shallow(node),
                                      graph.memory_bytes());
            });
        },
        py::arg("obj"),
        "(retained bytes, shallow bytes, bytes the analysis used) of `obj`, from the dominator "
        "tree of the whole heap.");
    m.def(
        "gc_shallow_size",
        [](const py::object &obj) {
            gc::ShallowSizer sizer;
            return sizer(obj.ptr());
        },
        "sys.getsizeof(obj) as the heap analysis computes it (no Python code run).");
    m.def(
        "gc_why_alive",
        [](const py::object &obj, const py::list &root_modules, const py::list &observer_prefixes,
           const py::list &debugger_prefixes, const py::iterable &excluded_ids,
           const py::tuple &observer_types, long max_depth, const py::list &history_namespaces) {
            gc::AliveQuery query;
            for (py::handle mod : root_modules) {
                query.root_modules.push_back(mod.ptr());
            }
            for (py::handle p : observer_prefixes) {
                query.observer_prefixes.push_back(p.cast<std::string>());
            }
            for (py::handle p : debugger_prefixes) {
                query.debugger_prefixes.push_back(p.cast<std::string>());
            }
            query.excluded = excluded_from(excluded_ids, observer_types);
            query.excluded.addresses.push_back(reinterpret_cast<uintptr_t>(root_modules.ptr()));
            query.max_depth = max_depth;
            for (py::handle ns : history_namespaces) {
                query.history_namespaces.push_back(ns.ptr());
            }
            query.excluded.addresses.push_back(
                reinterpret_cast<uintptr_t>(history_namespaces.ptr()));
            gc::AliveChain found = python_errors([&] { return gc::why_alive(obj.ptr(), query); });
            py::object code = found.code ? py::reinterpret_borrow<py::object>(found.code.get())
                                         : py::object(py::none());
            py::object name = found.slot_name
                                  ? py::reinterpret_borrow<py::object>(found.slot_name.get())
                                  : py::object(py::none());
            return py::make_tuple(root_kind_name(found.root), to_list(std::move(found.chain)),
                                  found.thread_id, found.frame_depth, code, name);
        },
        py::arg("obj"), py::arg("root_modules"), py::arg("observer_prefixes"),
        py::arg("debugger_prefixes"), py::arg("excluded_ids"), py::arg("observer_types"),
        py::arg("max_depth"), py::arg("history_namespaces") = py::list(),
        "(root kind, [root .. obj], thread id, frame depth, code, slot name): the shortest chain "
        "from a module, class or live frame slot to `obj`.");

    m.def(
        "_gc_public_walk",
        [](bool on) {
            const bool was = memxx_gc_public_walk() != 0;
            if (!memxx_gc_set_public_walk(on)) {
                throw py::value_error("this interpreter has no PyUnstable_GC_VisitObjects");
            }
            return was;
        },
        py::arg("on"),
        "Tests and benchmarks only: the heap walk through the collector's public visitor (True) "
        "or its lists; returns the previous choice.");
    m.def("gc_tracked_count", &gc::tracked_count,
          "Number of gc-tracked objects, frozen ones included.");

    m.def(
        "gc_type_counts",
        [](const py::object &objects, bool shortnames, const py::object &filter) {
            return python_errors([&] {
                return gc::name_counts(gc::tally(or_null(objects), or_null(filter)), shortnames);
            });
        },
        py::arg("objects") = py::none(), py::arg("shortnames") = true,
        py::arg("filter") = py::none(),
        "[(type name, count)] in first-seen order, for all tracked objects or `objects`.");

    m.def(
        "gc_objects_named",
        [](const std::string &name, const py::object &objects) {
            return to_list(
                python_errors([&] { return gc::objects_named(name, or_null(objects)); }));
        },
        py::arg("name"), py::arg("objects") = py::none(),
        "Objects whose type name (module-qualified if it has a dot) is `name`.");

    m.def(
        "gc_object_at",
        [](uintptr_t addr) -> py::object {
            PyObject *o = gc::tracked_object_at(addr);
            return o ? py::reinterpret_borrow<py::object>(o) : py::none();
        },
        "The tracked object whose id() is `addr`, or None.");

    m.def(
        "gc_objects_at",
        [](const py::iterable &addrs) {
            std::vector<uintptr_t> wanted;
            for (py::handle a : addrs) {
                wanted.push_back(a.cast<uintptr_t>());
            }
            return to_list(gc::tracked_objects_at(wanted));
        },
        "The tracked objects whose id() is in `addrs`, in walk order.");

    m.def(
        "gc_referrers_of",
        [](const py::list &targets, const py::iterable &excluded_ids,
           const py::tuple &observer_types) {
            gc::Excluded excluded = excluded_from(excluded_ids, observer_types);
            excluded.addresses.push_back(reinterpret_cast<uintptr_t>(targets.ptr()));
            std::vector<PyObject *> objs;
            for (py::handle t : targets) {
                objs.push_back(t.ptr());
            }
            py::list out;
            for (auto &refs : gc::referrers_of(objs, excluded)) {
                out.append(to_list(std::move(refs)));
            }
            return out;
        },
        py::arg("targets"), py::arg("excluded_ids") = py::tuple(),
        py::arg("observer_types") = py::tuple(),
        "For each target, the list of tracked objects referring to it (one heap pass).");

    m.def(
        "gc_referents_of",
        [](const py::object &obj) { return to_list(gc::referents_of(obj.ptr())); },
        "The objects `obj` refers to, as gc.get_referents(obj).");

    m.def(
        "gc_find_chain",
        [](const py::object &obj, const py::object &predicate, const py::object &steps,
           long max_depth, const py::iterable &excluded_ids, const py::tuple &observer_types) {
            gc::Excluded excluded = excluded_from(excluded_ids, observer_types);
            gc::Steps how;
            if (py::isinstance<py::str>(steps)) {
                const std::string kind = steps.cast<std::string>();
                if (kind != "referrers" && kind != "referents") {
                    throw py::value_error("steps must be 'referrers', 'referents' or a callable");
                }
                how.kind = kind == "referrers" ? gc::Steps::Kind::referrers
                                               : gc::Steps::Kind::referents;
            } else {
                how.kind = gc::Steps::Kind::callable;
                how.callable = steps.ptr();
            }
            return to_list(python_errors([&] {
                return gc::find_chain(obj.ptr(), predicate.ptr(), how, max_depth, excluded);
            }));
        },
        py::arg("obj"), py::arg("predicate"), py::arg("steps"), py::arg("max_depth"),
        py::arg("excluded_ids") = py::tuple(), py::arg("observer_types") = py::tuple(),
        "[match, ..., obj]: the shortest chain found breadth-first along `steps` ('referrers', "
        "'referents' or a callable giving a node's next nodes), or [obj].");

    m.def(
        "gc_unreferenced",
        [](const py::object &objects) {
            return to_list(
                python_errors([&] { return gc::unreferenced_objects(or_null(objects)); }));
        },
        py::arg("objects") = py::none(),
        "Objects (of `objects` or all tracked) that no tracked object refers to.");

    m.def(
        "gc_edge",
        [](const py::object &src, const py::object &dst) -> py::object {
            gc::Edge e = python_errors([&] { return gc::edge_between(src.ptr(), dst.ptr()); });
            static const char *const kind_names[] = {"",       "namespace", "dict_value",
                                                     "dict_key", "index",   "member",
                                                     "attribute", "local"};
            if (e.kind == gc::Edge::Kind::none) {
                return py::none();
            }
            py::object key = e.kind == gc::Edge::Kind::index ? py::cast(e.index)
                             : e.key ? py::reinterpret_borrow<py::object>(e.key.get())
                                     : py::object(py::none());
            return py::make_tuple(kind_names[static_cast<int>(e.kind)], key);
        },
        py::arg("src"), py::arg("dst"),
        "(kind, key) naming how `src` refers to `dst`, or None: kind is 'namespace', "
        "'dict_value', 'dict_key', 'index', 'member', 'attribute' or 'local' (no __dict__ is "
        "created).");

    m.def(
        "gc_existing_dict",
        [](const py::object &obj) -> py::object {
            PyObject *d = memxx_existing_instance_dict(obj.ptr());
            return d ? py::reinterpret_borrow<py::object>(d) : py::none();
        },
        "The instance __dict__ of `obj` if it exists (never creates it), else None.");

    py::class_<gc::NewIdsTracker>(m, "GcNewIds", "State of get_new_ids() between scans.")
        .def(py::init<>())
        .def(
            "update",
            [](gc::NewIdsTracker &self, bool shortnames) {
                auto rows = python_errors([&] { return self.update(shortnames); });
                py::list out;
                for (auto &r : rows) {
                    out.append(
                        py::make_tuple(r.name, r.old_count, r.current_count, py::cast(r.new_ids)));
                }
                return out;
            },
            "Rescan: [(name, old count, current count, [new ids])].")
        .def_property_readonly("retained_bytes", &gc::NewIdsTracker::retained_bytes);

    m.def("gc_render_formats", &gc::render_formats,
          "Image formats the linked Graphviz renders in-process.");
    m.def(
        "gc_render_dot",
        [](const std::string &text, const std::string &format, const FsPath &path) {
            std::string image;
            try {
                image = gc::render_dot_data(text, format);
            } catch (const gc::RenderError &e) {
                throw py::value_error(e.what());
            }
            mprof::write_output(path, image);
        },
        py::arg("dot_text"), py::arg("format"), py::arg("path"),
        "Lay out DOT text with Graphviz dot and write it to `path` as `format` (through "
        "write_output: rendered in memory, then written; never through a link).");
    m.def(
        "gc_render_dot_data",
        [](const std::string &text, const std::string &format) {
            std::string image;
            try {
                image = gc::render_dot_data(text, format);
            } catch (const gc::RenderError &e) {
                throw py::value_error(e.what());
            }
            return py::bytes(image);
        },
        py::arg("dot_text"), py::arg("format"),
        "Lay out DOT text with Graphviz dot and return the image's bytes in `format`.");
}

} // namespace memxx::bindings

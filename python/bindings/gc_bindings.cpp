// Bindings of gc_walker for objgraphxx: converts Python arguments and results, nothing more.
#include "python/bindings/bindings.hpp"

#include "gc_walker/edge_names.hpp"
#include "gc_walker/graph_render.hpp"
#include "gc_walker/heap_walk.hpp"
#include "gc_walker/new_ids.hpp"
#include "gc_walker/referrer_search.hpp"
#include "gc_walker/type_stats.hpp"

#include <pybind11/stl.h>

namespace py = pybind11;

namespace memxx::bindings {

namespace {

using gc::PyRef;

template <class F> auto python_errors(F&& f) {
    try {
        return f();
    } catch (const gc::PythonError&) {
        throw py::error_already_set();
    }
}

PyObject* or_null(const py::object& o) { return o.is_none() ? nullptr : o.ptr(); }

py::list to_list(std::vector<PyRef> objects) {
    py::list out(objects.size());
    for (size_t i = 0; i < objects.size(); ++i) {
        PyList_SET_ITEM(out.ptr(), static_cast<Py_ssize_t>(i), objects[i].release());
    }
    return out;
}

gc::Excluded excluded_from(const py::iterable& ids, const py::tuple& observer_types) {
    gc::Excluded excluded;
    for (py::handle id : ids) {
        excluded.addresses.push_back(id.cast<uintptr_t>());
    }
    for (py::handle t : observer_types) {
        if (!PyType_Check(t.ptr())) {
            throw py::type_error("observer_types must hold types");
        }
        excluded.observer_types.push_back(reinterpret_cast<PyTypeObject*>(t.ptr()));
    }
    return excluded;
}

} // namespace

void bind_gc(py::module_& m) {
    m.def("gc_tracked_count", &gc::tracked_count,
          "Number of gc-tracked objects, frozen ones included.");

    m.def(
        "gc_type_counts",
        [](const py::object& objects, bool shortnames, const py::object& filter) {
            return python_errors([&] {
                return gc::name_counts(gc::tally(or_null(objects), or_null(filter)), shortnames);
            });
        },
        py::arg("objects") = py::none(), py::arg("shortnames") = true,
        py::arg("filter") = py::none(),
        "[(type name, count)] in first-seen order, for all tracked objects or `objects`.");

    m.def(
        "gc_objects_named",
        [](const std::string& name, const py::object& objects) {
            return to_list(python_errors([&] { return gc::objects_named(name, or_null(objects)); }));
        },
        py::arg("name"), py::arg("objects") = py::none(),
        "Objects whose type name (module-qualified if it has a dot) is `name`.");

    m.def(
        "gc_object_at",
        [](uintptr_t addr) -> py::object {
            PyObject* o = gc::tracked_object_at(addr);
            return o ? py::reinterpret_borrow<py::object>(o) : py::none();
        },
        "The tracked object whose id() is `addr`, or None.");

    m.def(
        "gc_objects_at",
        [](const py::iterable& addrs) {
            std::vector<uintptr_t> wanted;
            for (py::handle a : addrs) {
                wanted.push_back(a.cast<uintptr_t>());
            }
            return to_list(gc::tracked_objects_at(wanted));
        },
        "The tracked objects whose id() is in `addrs`, in walk order.");

    m.def(
        "gc_referrers_of",
        [](const py::list& targets, const py::iterable& excluded_ids,
           const py::tuple& observer_types) {
            gc::Excluded excluded = excluded_from(excluded_ids, observer_types);
            excluded.addresses.push_back(reinterpret_cast<uintptr_t>(targets.ptr()));
            std::vector<PyObject*> objs;
            for (py::handle t : targets) {
                objs.push_back(t.ptr());
            }
            py::list out;
            for (auto& refs : gc::referrers_of(objs, excluded)) {
                out.append(to_list(std::move(refs)));
            }
            return out;
        },
        py::arg("targets"), py::arg("excluded_ids") = py::tuple(),
        py::arg("observer_types") = py::tuple(),
        "For each target, the list of tracked objects referring to it (one heap pass).");

    m.def(
        "gc_referents_of", [](const py::object& obj) { return to_list(gc::referents_of(obj.ptr())); },
        "The objects `obj` refers to, as gc.get_referents(obj).");

    m.def(
        "gc_find_chain",
        [](const py::object& obj, const py::object& predicate, bool backwards, long max_depth,
           const py::iterable& excluded_ids, const py::tuple& observer_types) {
            gc::Excluded excluded = excluded_from(excluded_ids, observer_types);
            return to_list(python_errors([&] {
                return gc::find_chain(obj.ptr(), predicate.ptr(), backwards, max_depth, excluded);
            }));
        },
        py::arg("obj"), py::arg("predicate"), py::arg("backwards"), py::arg("max_depth"),
        py::arg("excluded_ids") = py::tuple(), py::arg("observer_types") = py::tuple(),
        "[match, ..., obj]: the shortest reference chain found breadth-first, or [obj].");

    m.def(
        "gc_unreferenced",
        [](const py::object& objects) {
            return to_list(python_errors([&] { return gc::unreferenced_objects(or_null(objects)); }));
        },
        py::arg("objects") = py::none(),
        "Objects (of `objects` or all tracked) that no tracked object refers to.");

    m.def(
        "gc_attribute_name",
        [](const py::object& obj, const py::object& target) -> py::object {
            PyRef name = gc::attribute_name_of(obj.ptr(), target.ptr());
            return name ? py::reinterpret_steal<py::object>(name.release()) : py::none();
        },
        "Name of the instance attribute of `obj` holding `target` (no __dict__ is created).");

    m.def(
        "gc_existing_dict",
        [](const py::object& obj) -> py::object {
            PyObject* d = memxx_existing_instance_dict(obj.ptr());
            return d ? py::reinterpret_borrow<py::object>(d) : py::none();
        },
        "The instance __dict__ of `obj` if it exists (never creates it), else None.");

    py::class_<gc::NewIdsTracker>(m, "GcNewIds", "State of get_new_ids() between scans.")
        .def(py::init<>())
        .def(
            "update",
            [](gc::NewIdsTracker& self, bool shortnames) {
                auto rows = python_errors([&] { return self.update(shortnames); });
                py::list out;
                for (auto& r : rows) {
                    out.append(py::make_tuple(r.name, r.old_count, r.current_count,
                                              py::cast(r.new_ids)));
                }
                return out;
            },
            "Rescan: [(name, old count, current count, [new ids])].")
        .def_property_readonly("retained_bytes", &gc::NewIdsTracker::retained_bytes);

    m.def("gc_render_formats", &gc::render_formats,
          "Image formats the linked Graphviz renders in-process.");
    m.def(
        "gc_render_dot",
        [](const std::string& text, const std::string& format, const std::string& path) {
            try {
                gc::render_dot(text, format, path);
            } catch (const gc::RenderError& e) {
                throw py::value_error(e.what());
            }
        },
        py::arg("dot_text"), py::arg("format"), py::arg("path"),
        "Lay out DOT text with Graphviz dot and write it to `path` as `format`.");
}

} // namespace memxx::bindings

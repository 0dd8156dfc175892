#include "gc_walker/edge_names.hpp"

#include "gc_walker/heap_walk.hpp"

namespace memxx::gc {

namespace {

Edge named(Edge::Kind kind, PyObject *key) {
    Edge e;
    e.kind = kind;
    e.key = PyRef::borrow(key);
    return e;
}

Edge attribute(const char *name) {
    Edge e;
    e.kind = Edge::Kind::attribute;
    e.key = PyRef::steal(checked(PyUnicode_FromString(name)));
    return e;
}

// The attribute, or null when the object has none (__type_params__ before 3.12, a finished
// generator's frame); any other failure propagates.
PyRef lookup(PyObject *obj, const char *name) {
    PyObject *value = PyObject_GetAttrString(obj, name);
    if (value == nullptr) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
            throw core::PythonErrorSet{};
        }
        PyErr_Clear();
    }
    return PyRef::steal(value);
}

// The dict that holds `src`'s attributes, if it already exists (borrowed through `holder`).
PyObject *namespace_of(PyObject *src, PyRef &holder) {
    if (PyModule_Check(src)) {
        return PyModule_GetDict(src);
    }
    if (PyType_Check(src)) {
        // type.__dict__ is a mappingproxy; its one referent is the class's own dict.
        holder = lookup(src, "__dict__");
        PyObject *dict = nullptr;
        if (holder) {
            for_each_referent(holder.get(), [&](PyObject *r) {
                if (dict == nullptr && PyDict_Check(r)) {
                    dict = r;
                }
            });
        }
        return dict;
    }
    return memxx_existing_instance_dict(src);
}

Edge in_dict(PyObject *dict, PyObject *dst) {
    PyObject *key = nullptr;
    PyObject *value = nullptr;
    Py_ssize_t pos = 0;
    while (PyDict_Next(dict, &pos, &key, &value)) {
        if (value == dst) {
            return named(Edge::Kind::dict_value, key);
        }
        if (key == dst) {
            return named(Edge::Kind::dict_key, key);
        }
    }
    return {};
}

Edge in_sequence(PyObject *seq, PyObject *dst) {
    const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t i = 0; i < n; ++i) {
        if (items[i] == dst) {
            Edge e;
            e.kind = Edge::Kind::index;
            e.index = i;
            return e;
        }
    }
    return {};
}

// A function's attributes that hold objects, in dir() order (the first match names the edge).
constexpr const char *function_attributes[] = {
    "__builtins__", "__closure__",    "__code__", "__defaults__", "__doc__",      "__globals__",
    "__kwdefaults__", "__module__", "__name__", "__qualname__", "__type_params__",
};

Edge in_function(PyObject *func, PyObject *dst) {
    auto *f = reinterpret_cast<PyFunctionObject *>(func);
    // Read directly: getattr would create the annotations and __dict__ dicts.
    if (f->func_annotations == dst) {
        return attribute("__annotations__");
    }
    for (const char *name : function_attributes) {
        if (lookup(func, name).get() == dst) {
            return attribute(name);
        }
    }
    return {};
}

Edge in_frame_locals(PyObject *gen, PyObject *dst) {
    const char *frame_attr = PyCoro_CheckExact(gen) ? "cr_frame"
                             : PyGen_Check(gen)     ? "gi_frame"
                                                    : "ag_frame";
    PyRef frame = lookup(gen, frame_attr);
    if (!frame || frame.get() == Py_None) {
        return {};
    }
    PyRef locals = lookup(frame.get(), "f_locals");
    if (!locals || !PyDict_Check(locals.get())) {
        return {};
    }
    Edge e = in_dict(locals.get(), dst);
    if (e.kind == Edge::Kind::dict_value) {
        e.kind = Edge::Kind::local;
        return e;
    }
    return {};
}

bool in_tuple(PyObject *tuple, PyObject *dst) {
    if (tuple == nullptr || !PyTuple_Check(tuple)) {
        return false;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(tuple); ++i) {
        if (PyTuple_GET_ITEM(tuple, i) == dst) {
            return true;
        }
    }
    return false;
}

// The name of the attribute of `obj` whose value is `target`, looking at the instance's
// inline values (3.11+) or its existing __dict__, never creating the __dict__; empty if none.
PyRef attribute_name_of(PyObject *obj, PyObject *target) {
    struct Search {
        PyObject *target;
        PyObject *name;
    } search{target, nullptr};
    auto visit = [](PyObject *name, PyObject *value, void *arg) -> int {
        auto *s = static_cast<Search *>(arg);
        if (value == s->target) {
            s->name = name;
            return 1;
        }
        return 0;
    };
    if (memxx_visit_inline_attributes(obj, visit, &search)) {
        return PyRef::borrow(search.name);
    }
    PyObject *dict = memxx_existing_instance_dict(obj);
    if (dict == nullptr || !PyDict_Check(dict)) {
        return PyRef();
    }
    PyObject *key = nullptr;
    PyObject *value = nullptr;
    Py_ssize_t pos = 0;
    while (PyDict_Next(dict, &pos, &key, &value)) {
        if (value == target) {
            return PyRef::borrow(key);
        }
    }
    return PyRef();
}

} // namespace

Edge edge_between(PyObject *src, PyObject *dst) {
    if (PyDict_Check(src)) {
        return in_dict(src, dst);
    }
    if (PyList_Check(src) || PyTuple_Check(src)) {
        return in_sequence(src, dst);
    }
    if (PyAnySet_Check(src)) {
        Edge e;
        e.kind = Edge::Kind::member;
        return e;
    }
    PyRef holder;
    if (PyObject *ns = namespace_of(src, holder); ns != nullptr && ns == dst) {
        Edge e;
        e.kind = Edge::Kind::namespace_;
        return e;
    }
    if (PyMethod_Check(src)) {
        if (PyMethod_GET_SELF(src) == dst) {
            return attribute("__self__");
        }
        if (PyMethod_GET_FUNCTION(src) == dst) {
            return attribute("__func__");
        }
    }
    if (PyCell_Check(src) && PyCell_GET(src) == dst) {
        return attribute("cell_contents");
    }
    if (PyFrame_Check(src)) {
        PyRef globals = PyRef::steal(PyFrame_GetGlobals(reinterpret_cast<PyFrameObject *>(src)));
        if (globals.get() == dst) {
            return attribute("f_globals");
        }
    }
    if (PyFunction_Check(src)) {
        if (Edge e = in_function(src, dst); e.kind != Edge::Kind::none) {
            return e;
        }
    }
    if (PyGen_Check(src) || PyCoro_CheckExact(src) || PyAsyncGen_CheckExact(src)) {
        if (Edge e = in_frame_locals(src, dst); e.kind != Edge::Kind::none) {
            return e;
        }
    }
    if (PyType_Check(src)) {
        auto *type = reinterpret_cast<PyTypeObject *>(src);
        if (in_tuple(type->tp_bases, dst) || in_tuple(type->tp_mro, dst)) {
            return attribute("__mro__");
        }
    }
    if (PyRef name = attribute_name_of(src, dst)) {
        return named(Edge::Kind::attribute, name.get());
    }
    return {};
}

} // namespace memxx::gc

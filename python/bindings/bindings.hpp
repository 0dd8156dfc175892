// One binder per C++ library; module.cpp calls them all. Bindings only convert types.
#pragma once

#include <pybind11/pybind11.h>

#include <string>

#include "mprof/process_tree.hpp"

namespace memxx::bindings {

// A file name as the kernel takes it: bytes. Python gives a str (os.fsencode'd: a name that is
// not UTF-8 arrives as lone surrogates and leaves as its own bytes), bytes or an os.PathLike.
struct FsPath {
    std::string bytes;
    operator const std::string &() const { return bytes; }
};

// "rss", "pss" or "uss" as a MemoryMetric; ValueError for anything else.
mprof::MemoryMetric metric_from_name(const std::string &name);

void bind_core(pybind11::module_ &m);  // core/: hook, line tracer, process memory
void bind_gc(pybind11::module_ &m);    // gc_walker/: heap walk, graphs (objgraphxx)
void bind_mprof(pybind11::module_ &m); // mprof/: sampler, .dat files (mprofxx)

} // namespace memxx::bindings

namespace pybind11::detail {

template <> struct type_caster<memxx::bindings::FsPath> {
    PYBIND11_TYPE_CASTER(memxx::bindings::FsPath, const_name("str"));

    bool load(handle source, bool) {
        PyObject *path = PyOS_FSPath(source.ptr());
        if (path == nullptr) {
            PyErr_Clear();
            return false;
        }
        PyObject *bytes = path;
        if (PyUnicode_Check(path)) {
            bytes = PyUnicode_EncodeFSDefault(path);
            Py_DECREF(path);
        }
        if (bytes == nullptr || !PyBytes_Check(bytes)) {
            Py_XDECREF(bytes);
            PyErr_Clear();
            return false;
        }
        value.bytes.assign(PyBytes_AS_STRING(bytes), static_cast<size_t>(PyBytes_GET_SIZE(bytes)));
        Py_DECREF(bytes);
        return true;
    }

    static handle cast(const memxx::bindings::FsPath &path, return_value_policy, handle) {
        return PyUnicode_DecodeFSDefaultAndSize(path.bytes.data(),
                                                static_cast<Py_ssize_t>(path.bytes.size()));
    }
};

} // namespace pybind11::detail

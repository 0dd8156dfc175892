// Enumerating the live gc-tracked objects in place, without building a list of them.
#pragma once

#include "core/py_compat.h"

#include <cstddef>

namespace memxx::gc {

// Calls f(PyObject*) for every tracked object, youngest generation first, then the objects
// frozen by gc.freeze(). f must not run Python code or allocate Python objects: the walk
// follows the collector's linked lists, which any allocation may reorder.
template <class F> void for_each_tracked(F &&f) {
    auto trampoline = [](PyObject *op, void *arg) -> int {
        (*static_cast<F *>(arg))(op);
        return 0;
    };
    memxx_gc_visit_tracked(trampoline, &f);
}

// Calls f(PyObject* referent) for every reference held by `obj` (its tp_traverse), as
// gc.get_referents does: only for objects of gc-aware types.
template <class F> void for_each_referent(PyObject *obj, F &&f) {
    if (!PyObject_IS_GC(obj)) {
        return;
    }
    traverseproc traverse = Py_TYPE(obj)->tp_traverse;
    if (traverse == nullptr) {
        return;
    }
    auto visit = [](PyObject *referent, void *arg) -> int {
        // A referent with no reference is free-list memory that a tp_traverse visits anyway
        // (_asyncio's module on CPython 3.12.0-3.12.4, gh-122695): taking a reference to it and
        // dropping it would free it twice and loop the free list.
        if (referent != nullptr && Py_REFCNT(referent) > 0) {
            (*static_cast<F *>(arg))(referent);
        }
        return 0;
    };
    traverse(obj, visit, &f);
}

inline size_t tracked_count() { return static_cast<size_t>(memxx_gc_tracked_count()); }

} // namespace memxx::gc

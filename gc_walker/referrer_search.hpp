// Who refers to what: batched referrer scans, shortest reference chains, unreferenced objects.
// Nothing here creates a Python container while it walks, so the analysis adds no referrers
// to the objects it looks at.
#pragma once

#include "gc_walker/pointer_index.hpp"
#include "gc_walker/py_ref.hpp"

#include <cstdint>
#include <vector>

namespace memxx::gc {

// Objects a search must never step through: the caller's own containers and frames (by
// address), and every instance of the debugger / interactive-shell types.
struct Excluded {
    std::vector<uintptr_t> addresses;
    std::vector<PyTypeObject *> observer_types;

    bool contains(PyObject *o, const PointerIndex &addrs) const;
};

// For each target, the tracked objects that refer to it, in walk order; one heap pass for all.
std::vector<std::vector<PyRef>> referrers_of(const std::vector<PyObject *> &targets,
                                             const Excluded &excluded);

// The objects `obj` refers to (tp_traverse order), as gc.get_referents.
std::vector<PyRef> referents_of(PyObject *obj);

// Breadth-first search from `start` along referrers (backwards) or referents; `predicate` is
// called on each node as it is reached in BFS order. Returns [match, ..., start] for the first
// match within `max_depth` steps, or [start]. One heap pass per level, not per node.
std::vector<PyRef> find_chain(PyObject *start, PyObject *predicate, bool backwards, long max_depth,
                              const Excluded &excluded);

// The objects (items of `objects`, or all tracked objects if nullptr) that no tracked object
// other than `objects` itself refers to, in their original order.
std::vector<PyRef> unreferenced_objects(PyObject *objects);

} // namespace memxx::gc

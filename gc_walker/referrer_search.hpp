// Who refers to what: batched referrer scans, shortest reference chains, unreferenced objects.
// Nothing here creates a Python container while it walks, so the analysis adds no referrers
// to the objects it looks at.
#pragma once

#include "gc_walker/pointer_index.hpp"
#include "gc_walker/py_ref.hpp"

#include <cstdint>
#include <functional>
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

// Where a breadth-first search steps from a node: to its referrers (one heap pass for a whole
// level), its referents, or the objects a Python callable returns for it.
struct Steps {
    enum class Kind { referrers, referents, callable };
    Kind kind = Kind::referrers;
    PyObject *callable = nullptr; // Kind::callable: node -> iterable of next nodes
};

// The one referrer search: breadth-first from `start`, a level at a time. `is_goal` is asked
// of each node as it is reached (start first, then BFS order); `keep(next, node)`, if given,
// may refuse a step. Returns [goal, ..., start], or nothing when no goal lies within
// `max_depth` steps. Excluded objects are never stepped on.
std::vector<PyRef> search_levels(PyObject *start, const Steps &steps, long max_depth,
                                 const Excluded &excluded,
                                 const std::function<bool(PyObject *)> &is_goal,
                                 const std::function<bool(PyObject *, PyObject *)> &keep = {});

// search_levels with a Python predicate as the goal: [match, ..., start], or [start].
std::vector<PyRef> find_chain(PyObject *start, PyObject *predicate, const Steps &steps,
                              long max_depth, const Excluded &excluded);

// The objects (items of `objects`, or all tracked objects if nullptr) that no tracked object
// other than `objects` itself refers to, in their original order.
std::vector<PyRef> unreferenced_objects(PyObject *objects);

} // namespace memxx::gc

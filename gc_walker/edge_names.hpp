// Naming a reference: how `src` holds `dst` (dict key, index, attribute, local), for the edge
// labels of graphs and the hops of why_alive chains. The one edge namer of the project; the
// Python side only formats what it returns. Call with the GIL held.
#pragma once

#include "gc_walker/py_ref.hpp"

namespace memxx::gc {

struct Edge {
    enum class Kind {
        none,       // not found
        namespace_, // dst is the dict holding src's attributes (module, class or instance)
        dict_value, // src[key] is dst
        dict_key,   // key is dst
        index,      // src[index] is dst (list, tuple)
        member,     // src is a set or frozenset
        attribute,  // src.key is dst
        local,      // the generator/coroutine src's frame has dst in its local `key`
    };
    Kind kind = Kind::none;
    PyRef key;
    Py_ssize_t index = 0;
};

// How `src` refers to `dst`; never creates an instance __dict__ to look.
Edge edge_between(PyObject *src, PyObject *dst);

} // namespace memxx::gc

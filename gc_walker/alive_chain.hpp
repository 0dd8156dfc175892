// Why is an object alive: the shortest chain of references from a root to it. Roots are
// modules (those in sys.modules), classes (their attributes), and the named slots (locals,
// cells) of live frames of every thread. Frames of observers (debugger, shell, profiler: any
// frame whose file starts with one of the given prefixes) are never roots, nor is anything
// inside them on the calling thread; the first frame below them (the caller) is a root except
// for its own references to the object asked about.
#pragma once

#include "gc_walker/referrer_search.hpp"

#include <string>
#include <vector>

namespace memxx::gc {

struct AliveQuery {
    std::vector<PyObject *> root_modules;       // proper modules (sys.modules values)
    std::vector<std::string> observer_prefixes; // frames of files starting with these
    Excluded excluded;                          // never steps of the chain
    long max_depth = 100;
};

struct AliveChain {
    enum class Root { none, module, type, frame };
    Root root = Root::none;
    std::vector<PyRef> chain; // [root object or the frame slot's value, ..., obj]
    // For a frame root: the thread, the frame's depth among complete frames (0 = top), its code
    // object and the slot's name.
    unsigned long thread_id = 0;
    int frame_depth = 0;
    PyRef code;
    PyRef slot_name;
};

AliveChain why_alive(PyObject *obj, const AliveQuery &query);

} // namespace memxx::gc

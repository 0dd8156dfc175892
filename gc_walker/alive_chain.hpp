// Why is an object alive: the shortest chain of references from a root to it. Roots are
// modules (those in sys.modules), classes (their attributes), and the named slots (locals,
// cells) of live frames of every thread, except:
// - frames of observers (the profiler itself, the IPython shell: files starting with one of
//   `observer_prefixes`), on any thread;
// - on the calling thread, with a debugger prompt on the stack (cmd's onecmd in one of the
//   `debugger_prefixes` files), the prompt, what it runs, and the debugger's frames below it;
// - frames of debuggers and consoles (files starting with one of `debugger_prefixes`);
// - the caller's own references to the object asked about (the caller: the first frame below
//   all that, e.g. the function calling why_alive, or the frame pdb is stopped in), unless no
//   other root reaches it: then the caller's variable is the answer, not "garbage".
// A frame running in a namespace dict (module level, class body) has its names as roots: a
// script run by runpy, pdb or a profiler has globals in no module of sys.modules.
#pragma once

#include "gc_walker/referrer_search.hpp"

#include <string>
#include <vector>

namespace memxx::gc {

struct AliveQuery {
    std::vector<PyObject *> root_modules;       // proper modules (sys.modules values)
    std::vector<std::string> observer_prefixes; // frames of files starting with these
    std::vector<std::string> debugger_prefixes; // files of the debugger (bdb, pdb, cmd, ...)
    Excluded excluded;                          // never steps of the chain
    // Shell namespaces (IPython's user_ns): their output history (_, __, ___, _<n>) is not a
    // reason for being alive; their other variables are.
    std::vector<PyObject *> history_namespaces;
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

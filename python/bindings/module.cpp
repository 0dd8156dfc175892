#include "python/bindings/bindings.hpp"

#include "core/py_compat.h"

PYBIND11_MODULE(_memxx, m) {
    m.doc() = "memory-profilerxx native core (allocation hook, line tracer, heap walker, sampler)";
    // Before anything reads the interpreter: the private offsets the compat layer compiled in,
    // against the ones the running interpreter publishes (3.13+). A mismatch with a public path
    // turns that path on; any other refuses the import in one line.
    unsigned public_paths = 0;
    if (!memxx_check_private_offsets(memxx_published_debug_offsets(), &public_paths)) {
        throw pybind11::error_already_set();
    }
    memxx_gc_set_public_walk((public_paths & MEMXX_PUBLIC_GC_WALK) != 0);
    memxx::bindings::bind_core(m);
    memxx::bindings::bind_gc(m);
    memxx::bindings::bind_mprof(m);
}

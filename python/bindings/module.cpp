#include "python/bindings/bindings.hpp"

#include <mimalloc.h>

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
#if MI_MALLOC_VERSION >= 210
    // Our tables live in mimalloc (only our code uses it). From 2.1 it gives freed memory back
    // after a delay, but only when it next allocates: a table freed as it doubled then stayed
    // resident (+40-60 MiB in the samples of a 400 k-stack `run --peak` on mimalloc 3.6). Given
    // back at once, the process's RSS holds only the tables we still use (2.0 frees huge blocks
    // at once already).
    mi_option_set(mi_option_purge_delay, 0);
#endif
    memxx::bindings::bind_core(m);
    memxx::bindings::bind_gc(m);
    memxx::bindings::bind_mprof(m);
}

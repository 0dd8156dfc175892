#include "python/bindings/bindings.hpp"

PYBIND11_MODULE(_memxx, m) {
    m.doc() = "memory-profilerxx native core (allocation hook, line tracer, heap walker, sampler)";
    memxx::bindings::bind_core(m);
    memxx::bindings::bind_gc(m);
    memxx::bindings::bind_mprof(m);
}

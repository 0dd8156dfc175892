// Joining the heap walk with the allocation sites the hook recorded (core/alloc_sites).
#pragma once

#include "gc_walker/heap_graph.hpp"

#include <cstdint>
#include <vector>

namespace memxx::gc {

// The allocation site of `obj` (0: not recorded), and the epoch it was allocated in.
uint32_t object_site(PyObject *obj, uint32_t *epoch = nullptr);

struct SiteCount {
    PyTypeObject *type;
    uint32_t site;
    uint64_t count = 0;
    uint64_t bytes = 0; // shallow bytes (heap_sites only)
};

// Per (type, site): tracked objects allocated in epoch `since` or later with a known site.
std::vector<SiteCount> new_object_sites(uint32_t since);

// Per (type, site): every node of the graph with a known site, with its shallow bytes.
std::vector<SiteCount> heap_sites(const HeapGraph &graph);

} // namespace memxx::gc

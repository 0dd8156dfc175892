// One binder per C++ library; module.cpp calls them all. Bindings only convert types.
#pragma once

#include <pybind11/pybind11.h>

#include <string>

#include "mprof/process_tree.hpp"

namespace memxx::bindings {

// "rss", "pss" or "uss" as a MemoryMetric; ValueError for anything else.
mprof::MemoryMetric metric_from_name(const std::string &name);

void bind_core(pybind11::module_ &m);  // core/: hook, line tracer, process memory
void bind_gc(pybind11::module_ &m);    // gc_walker/: heap walk, graphs (objgraphxx)
void bind_mprof(pybind11::module_ &m); // mprof/: sampler, .dat files (mprofxx)

} // namespace memxx::bindings

// One binder per C++ library; module.cpp calls them all. Bindings only convert types.
#pragma once

#include <pybind11/pybind11.h>

namespace memxx::bindings {

void bind_core(pybind11::module_& m);

} // namespace memxx::bindings

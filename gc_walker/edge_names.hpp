// Naming a reference for an edge label: which instance attribute holds the target.
#pragma once

#include "gc_walker/py_ref.hpp"

namespace memxx::gc {

// The name of the attribute of `obj` whose value is `target`, looking at the instance's
// inline values (3.11+) or its existing __dict__, never creating the __dict__; empty if none.
PyRef attribute_name_of(PyObject *obj, PyObject *target);

} // namespace memxx::gc

// The one C++ type for "a Python call failed and the Python error indicator is set": thrown by
// the core and the GC walker, caught in the bindings, which then raise that Python error (not
// this one). Header only; no Python API.
#pragma once

#include <exception>

namespace memxx::core {

struct PythonErrorSet : std::exception {
    const char *what() const noexcept override { return "Python error set"; }
};

} // namespace memxx::core

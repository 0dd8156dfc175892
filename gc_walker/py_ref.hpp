// An owned reference to a Python object: the walker's only way to hold objects across calls
// into Python code (a C++ container is invisible to gc.get_referrers, a list is not).
#pragma once

#include "core/py_compat.h"
#include "core/python_error.hpp"

#include <utility>

namespace memxx::gc {

class PyRef {
  public:
    PyRef() = default;
    static PyRef steal(PyObject *o) { return PyRef(o); }
    static PyRef borrow(PyObject *o) {
        Py_XINCREF(o);
        return PyRef(o);
    }
    PyRef(const PyRef &other) : obj_(other.obj_) { Py_XINCREF(obj_); }
    PyRef(PyRef &&other) noexcept : obj_(std::exchange(other.obj_, nullptr)) {}
    PyRef &operator=(PyRef other) noexcept {
        std::swap(obj_, other.obj_);
        return *this;
    }
    ~PyRef() { Py_XDECREF(obj_); }
    PyObject *get() const { return obj_; }
    PyObject *release() { return std::exchange(obj_, nullptr); }
    explicit operator bool() const { return obj_ != nullptr; }

  private:
    explicit PyRef(PyObject *o) : obj_(o) {}
    PyObject *obj_ = nullptr;
};

inline PyObject *checked(PyObject *o) {
    if (o == nullptr) {
        throw core::PythonErrorSet{};
    }
    return o;
}

} // namespace memxx::gc

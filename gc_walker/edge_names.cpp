#include "gc_walker/edge_names.hpp"

namespace memxx::gc {

PyRef attribute_name_of(PyObject *obj, PyObject *target) {
    struct Search {
        PyObject *target;
        PyObject *name;
    } search{target, nullptr};
    auto visit = [](PyObject *name, PyObject *value, void *arg) -> int {
        auto *s = static_cast<Search *>(arg);
        if (value == s->target) {
            s->name = name;
            return 1;
        }
        return 0;
    };
    if (memxx_visit_inline_attributes(obj, visit, &search)) {
        return PyRef::borrow(search.name);
    }
    PyObject *dict = memxx_existing_instance_dict(obj);
    if (dict == nullptr || !PyDict_Check(dict)) {
        return PyRef();
    }
    PyObject *key = nullptr;
    PyObject *value = nullptr;
    Py_ssize_t pos = 0;
    while (PyDict_Next(dict, &pos, &key, &value)) {
        if (value == target) {
            return PyRef::borrow(key);
        }
    }
    return PyRef();
}

} // namespace memxx::gc

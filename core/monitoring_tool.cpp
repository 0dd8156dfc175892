// One sys.monitoring tool id held under one of our names (core/monitoring_tool.hpp).
#include "core/monitoring_tool.hpp"

namespace memxx::core {

PyObject *monitoring_module() {
    PyObject *sys = PyImport_ImportModule("sys");
    if (sys == nullptr) {
        return nullptr;
    }
    PyObject *mon = PyObject_GetAttrString(sys, "monitoring");
    Py_DECREF(sys);
    return mon;
}

long monitoring_event_bit(PyObject *mon, const char *name) {
    PyObject *events = PyObject_GetAttrString(mon, "events");
    PyObject *value = events != nullptr ? PyObject_GetAttrString(events, name) : nullptr;
    Py_XDECREF(events);
    const long bit = value != nullptr ? PyLong_AsLong(value) : -1;
    Py_XDECREF(value);
    return bit;
}

int MonitoringTool::take(PyObject *mon, std::string *holders) {
    for (std::size_t i = 0; i < count_; ++i) {
        const int id = ids_[i];
        PyObject *holder = PyObject_CallMethod(mon, "get_tool", "i", id);
        if (holder == nullptr) {
            return -1;
        }
        if (holder == Py_None) {
            Py_DECREF(holder);
            PyObject *ok = PyObject_CallMethod(mon, "use_tool_id", "is", id, name_);
            if (ok == nullptr) {
                return -1;
            }
            Py_DECREF(ok);
            id_ = id;
            return 1;
        }
        if (holders != nullptr) {
            PyObject *text = PyObject_Repr(holder);
            const char *held_by = text != nullptr ? PyUnicode_AsUTF8(text) : nullptr;
            if (held_by != nullptr) {
                *holders += (holders->empty() ? "" : ", ") + std::to_string(id) + ": " + held_by;
            }
            Py_XDECREF(text);
            if (held_by == nullptr) {
                Py_DECREF(holder);
                return -1;
            }
        }
        Py_DECREF(holder);
    }
    return 0;
}

int MonitoringTool::still_ours(PyObject *mon) {
    if (id_ < 0) {
        return 0;
    }
    PyObject *holder = PyObject_CallMethod(mon, "get_tool", "i", id_);
    if (holder == nullptr) {
        return -1;
    }
    const int ours =
        PyUnicode_Check(holder) && PyUnicode_CompareWithASCIIString(holder, name_) == 0;
    Py_DECREF(holder);
    if (!ours) {
        id_ = -1;
    }
    return ours;
}

bool MonitoringTool::register_callback(PyObject *mon, long event, PyMethodDef *def) {
    PyObject *func = def != nullptr ? PyCFunction_New(def, nullptr) : Py_NewRef(Py_None);
    if (func == nullptr) {
        return false;
    }
    PyObject *old = PyObject_CallMethod(mon, "register_callback", "ilO", id_, event, func);
    Py_DECREF(func);
    Py_XDECREF(old);
    return old != nullptr;
}

bool MonitoringTool::set_events(PyObject *mon, long mask, PyObject *code) {
    PyObject *done = code != nullptr
                         ? PyObject_CallMethod(mon, "set_local_events", "iOl", id_, code, mask)
                         : PyObject_CallMethod(mon, "set_events", "il", id_, mask);
    Py_XDECREF(done);
    return done != nullptr;
}

bool MonitoringTool::free_id(PyObject *mon) {
    PyObject *freed = PyObject_CallMethod(mon, "free_tool_id", "i", id_);
    Py_XDECREF(freed);
    id_ = -1;
    return freed != nullptr;
}

} // namespace memxx::core

// The line tracer's event source on 3.12+: sys.monitoring (PEP 669) LINE / PY_START / PY_RESUME /
// PY_RETURN / PY_YIELD events set on the profiled code objects only, so everything else runs at
// full speed; PY_UNWIND and PY_THROW (which cannot be chosen per code object) stay on while
// anything is profiled.
//
// A frame is identified by its code object: events of a code object come from its innermost
// frame on the thread, so the ledger's innermost frame with that code is the one meant.
//
// The tool id is shared with other tools (coverage.py takes COVERAGE_ID, cProfile PROFILER_ID):
// we take PROFILER_ID or the next free one, check before each change of our events that it is
// still ours (another tool may have freed and taken it: then we take a free one again), and when
// none is free raise one error that says which tools hold them.
// GIL held for everything.
#include "core/line_events.hpp"

#include <string>

namespace memxx::core::line_events {

namespace {

constexpr const char *kToolName = "memory_profilerxx";
constexpr int kToolIds[] = {2, 3, 4, 5}; // PROFILER_ID first; 0, 1 are the debugger's, coverage's

int g_tool_id = -1;
int g_users = 0; // enabled profilers, which want PY_UNWIND and PY_THROW
long g_event_line = 0, g_event_start = 0, g_event_resume = 0, g_event_return = 0, g_event_yield = 0,
     g_event_unwind = 0, g_event_throw = 0;

// A line number or offset argument: a compact int, read inline (PyLong_AsLong otherwise).
int arg_int(PyObject *value) {
    auto *number = reinterpret_cast<PyLongObject *>(value);
    if (PyLong_CheckExact(value) && PyUnstable_Long_IsCompact(number)) {
        return static_cast<int>(PyUnstable_Long_CompactValue(number));
    }
    return static_cast<int>(PyLong_AsLong(value));
}

// Every event passes its offset or line number as an int, which the interpreter may allocate
// for the call (memxx_event_int_block): the program did not make it.
void forget_event_int(PyObject *number) { retract_event_temporary(memxx_event_int_block(number)); }

PyObject *on_py_start(PyObject *, PyObject *const *args, Py_ssize_t) {
    forget_event_int(args[1]);
    if (CodeLines *lines = claimed_lines(args[0])) {
        frame_started(args[0], lines, memxx_code_first_line(args[0]), true);
    }
    Py_RETURN_NONE;
}

PyObject *on_py_resume(PyObject *, PyObject *const *args, Py_ssize_t) {
    forget_event_int(args[1]);
    if (CodeLines *lines = claimed_lines(args[0])) {
        frame_started(args[0], lines, memxx_code_line(args[0], arg_int(args[1])), false);
    }
    Py_RETURN_NONE;
}

PyObject *on_py_return(PyObject *, PyObject *const *args, Py_ssize_t) {
    forget_event_int(args[1]);
    frame_returned(args[0], args[0], arg_int(args[1]));
    Py_RETURN_NONE;
}

PyObject *on_py_yield(PyObject *, PyObject *const *args, Py_ssize_t) {
    forget_event_int(args[1]);
    frame_left(args[0]);
    Py_RETURN_NONE;
}

PyObject *on_line(PyObject *, PyObject *const *args, Py_ssize_t) {
    forget_event_int(args[1]);
    frame_line(args[0], arg_int(args[1]));
    Py_RETURN_NONE;
}

template <PyObject *(*F)(PyObject *, PyObject *const *, Py_ssize_t)>
PyMethodDef callback(const char *name) {
    return {name, reinterpret_cast<PyCFunction>(reinterpret_cast<void *>(F)), METH_FASTCALL,
            nullptr};
}

PyMethodDef g_callbacks[] = {
    callback<on_py_start>("_memxx_py_start"), callback<on_py_resume>("_memxx_py_resume"),
    callback<on_py_return>("_memxx_py_return"), callback<on_line>("_memxx_line"),
    callback<on_py_yield>("_memxx_py_yield"),
};

// sys.monitoring (new reference), or nullptr with the error set.
PyObject *monitoring() {
    PyObject *sys = PyImport_ImportModule("sys");
    if (sys == nullptr) {
        return nullptr;
    }
    PyObject *mon = PyObject_GetAttrString(sys, "monitoring");
    Py_DECREF(sys);
    return mon;
}

bool event_bit(PyObject *events, const char *name, long *bit) {
    PyObject *value = PyObject_GetAttrString(events, name);
    if (value == nullptr) {
        return false;
    }
    *bit = PyLong_AsLong(value);
    Py_DECREF(value);
    return !PyErr_Occurred();
}

bool read_event_bits(PyObject *mon) {
    PyObject *events = PyObject_GetAttrString(mon, "events");
    if (events == nullptr) {
        return false;
    }
    const bool ok = event_bit(events, "LINE", &g_event_line) &&
                    event_bit(events, "PY_START", &g_event_start) &&
                    event_bit(events, "PY_RESUME", &g_event_resume) &&
                    event_bit(events, "PY_RETURN", &g_event_return) &&
                    event_bit(events, "PY_YIELD", &g_event_yield) &&
                    event_bit(events, "PY_UNWIND", &g_event_unwind) &&
                    event_bit(events, "PY_THROW", &g_event_throw);
    Py_DECREF(events);
    return ok;
}

// The name of the tool holding `id` (new reference; None when free); nullptr with the error set.
PyObject *tool_holder(PyObject *mon, int id) {
    return PyObject_CallMethod(mon, "get_tool", "i", id);
}

bool register_callback(PyObject *mon, long event, PyMethodDef *def) {
    PyObject *func = PyCFunction_New(def, nullptr);
    if (func == nullptr) {
        return false;
    }
    PyObject *old = PyObject_CallMethod(mon, "register_callback", "ilO", g_tool_id, event, func);
    Py_DECREF(func);
    Py_XDECREF(old);
    return old != nullptr;
}

// Takes the first free id of kToolIds. False with the error set: a RuntimeError naming the tools
// that hold them all, or the error of the call that failed.
bool take_free_id(PyObject *mon) {
    std::string holders;
    for (int id : kToolIds) {
        PyObject *holder = tool_holder(mon, id);
        if (holder == nullptr) {
            return false;
        }
        if (holder == Py_None) {
            Py_DECREF(holder);
            PyObject *ok = PyObject_CallMethod(mon, "use_tool_id", "is", id, kToolName);
            if (ok == nullptr) {
                return false;
            }
            Py_DECREF(ok);
            g_tool_id = id;
            return true;
        }
        PyObject *text = PyObject_Repr(holder);
        Py_DECREF(holder);
        const char *name = text != nullptr ? PyUnicode_AsUTF8(text) : nullptr;
        if (name == nullptr) {
            Py_XDECREF(text);
            return false;
        }
        holders += (holders.empty() ? "" : ", ") + std::to_string(id) + ": " + name;
        Py_DECREF(text);
    }
    PyErr_Format(PyExc_RuntimeError,
                 "%s: no sys.monitoring tool id is free for line profiling (held: %s); stop one "
                 "of those tools, or free its id with sys.monitoring.free_tool_id()",
                 kToolName, holders.c_str());
    return false;
}

// 1 if our id is still held by us, 0 if another tool freed or took it, -1 with the error set.
int still_ours(PyObject *mon) {
    PyObject *holder = tool_holder(mon, g_tool_id);
    if (holder == nullptr) {
        return -1;
    }
    const int ours =
        PyUnicode_Check(holder) && PyUnicode_CompareWithASCIIString(holder, kToolName) == 0;
    Py_DECREF(holder);
    return ours;
}

// Takes a tool id and registers our callbacks. False with the error set.
bool take_tool(PyObject *mon) {
    if (!read_event_bits(mon) || !take_free_id(mon)) {
        return false;
    }
    return register_callback(mon, g_event_start, &g_callbacks[0]) &&
           register_callback(mon, g_event_resume, &g_callbacks[1]) &&
           register_callback(mon, g_event_throw, &g_callbacks[1]) &&
           register_callback(mon, g_event_return, &g_callbacks[2]) &&
           register_callback(mon, g_event_yield, &g_callbacks[4]) &&
           register_callback(mon, g_event_unwind, &g_callbacks[2]) &&
           register_callback(mon, g_event_line, &g_callbacks[3]);
}

long code_events() {
    return g_event_line | g_event_start | g_event_resume | g_event_return | g_event_yield;
}

// sys.monitoring.set_local_events (code given) or set_events for our tool; switching on takes a
// tool id first if we hold none. False with the error set.
bool set_events(PyObject *code, bool on) {
    PyObject *mon = monitoring();
    if (mon == nullptr) {
        return false;
    }
    // Another tool may have freed our id and taken it: its events are not ours to change.
    const int ours = g_tool_id >= 0 ? still_ours(mon) : 0;
    if (ours == 0) {
        g_tool_id = -1;
    }
    if (ours < 0 || (ours == 0 && !on)) {
        Py_DECREF(mon);
        return ours == 0; // nothing of ours to switch off
    }
    PyObject *done = nullptr;
    if (ours > 0 || take_tool(mon)) {
        done = code != nullptr ? PyObject_CallMethod(mon, "set_local_events", "iOl", g_tool_id,
                                                     code, on ? code_events() : 0L)
                               : PyObject_CallMethod(mon, "set_events", "il", g_tool_id,
                                                     on ? g_event_unwind | g_event_throw : 0L);
    }
    Py_DECREF(mon);
    Py_XDECREF(done);
    return done != nullptr;
}

// Switching events off happens on the way out of a profiled call (a finally block): a failure
// there is reported without replacing the exception that may be passing through.
void switch_off(PyObject *code) {
    PyObject *passing = PyErr_GetRaisedException();
    if (!set_events(code, false)) {
        PyErr_WriteUnraisable(code);
    }
    PyErr_SetRaisedException(passing);
}

} // namespace

bool start() {
    if (g_users++ > 0) {
        return true;
    }
    if (!set_events(nullptr, true)) {
        g_users = 0;
        return false;
    }
    return true;
}

void stop() {
    if (g_users > 0 && --g_users == 0) {
        switch_off(nullptr);
    }
    // With nothing profiled any more no event will close a frame still open on this thread.
    if (!any_code_claimed()) {
        leave_thread_frames();
    }
}

bool follow_code(PyObject *code, bool on) {
    if (!on) {
        switch_off(code);
        return true;
    }
    return set_events(code, true);
}

void arm_thread() {}
void disarm_thread() {}

bool floor_trace(bool) { return false; }

} // namespace memxx::core::line_events

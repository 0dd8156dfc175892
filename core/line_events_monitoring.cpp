// The line tracer's event source on 3.12+: sys.monitoring (PEP 669) LINE / PY_START / PY_RESUME /
// PY_RETURN / PY_YIELD events set on the profiled code objects only, so everything else runs at
// full speed; PY_UNWIND and PY_THROW (which cannot be chosen per code object) stay on while
// anything is profiled.
//
// A frame is identified by its code object: events of a code object come from its innermost
// frame on the thread, so the ledger's innermost frame with that code is the one meant.
//
// The tool id (core/monitoring_tool.hpp): PROFILER_ID or the next free one, checked before each
// change of our events to be still ours (if another tool freed and took it, we take a free one
// again); when none is free, one error says which tools hold them.
// GIL held for everything.
#include "core/line_events.hpp"

#include <string>

#include "core/monitoring_tool.hpp"

namespace memxx::core::line_events {

namespace {

constexpr int kToolIds[] = {2, 3, 4, 5}; // PROFILER_ID first; 0, 1 are the debugger's, coverage's
MonitoringTool g_tool("memory_profilerxx", kToolIds);
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

struct Event {
    const char *name;
    long *bit;
    PyMethodDef *callback;
};
const Event kEvents[] = {
    {"PY_START", &g_event_start, &g_callbacks[0]}, {"PY_RESUME", &g_event_resume, &g_callbacks[1]},
    {"PY_THROW", &g_event_throw, &g_callbacks[1]}, {"PY_RETURN", &g_event_return, &g_callbacks[2]},
    {"PY_YIELD", &g_event_yield, &g_callbacks[4]}, {"PY_UNWIND", &g_event_unwind, &g_callbacks[2]},
    {"LINE", &g_event_line, &g_callbacks[3]},
};

// Takes a tool id and registers our callbacks. False with the error set: when every id is held,
// a RuntimeError naming the tools that hold them.
bool take_tool(PyObject *mon) {
    std::string holders;
    const int taken = g_tool.take(mon, &holders);
    if (taken == 0) {
        PyErr_Format(PyExc_RuntimeError,
                     "%s: no sys.monitoring tool id is free for line profiling (held: %s); stop "
                     "one of those tools, or free its id with sys.monitoring.free_tool_id()",
                     g_tool.name(), holders.c_str());
    }
    if (taken <= 0) {
        return false;
    }
    for (const Event &event : kEvents) {
        *event.bit = monitoring_event_bit(mon, event.name);
        if (*event.bit < 0 || !g_tool.register_callback(mon, *event.bit, event.callback)) {
            return false;
        }
    }
    return true;
}

long code_events() {
    return g_event_line | g_event_start | g_event_resume | g_event_return | g_event_yield;
}

// sys.monitoring.set_local_events (code given) or set_events for our tool; switching on takes a
// tool id first if we hold none. False with the error set.
bool set_events(PyObject *code, bool on) {
    PyObject *mon = monitoring_module();
    if (mon == nullptr) {
        return false;
    }
    // Another tool may have freed our id and taken it: its events are not ours to change.
    const int ours = g_tool.still_ours(mon);
    bool done = ours == 0 && !on; // nothing of ours to switch off
    if (ours > 0 || (ours == 0 && on && take_tool(mon))) {
        done = code != nullptr
                   ? g_tool.set_events(mon, on ? code_events() : 0L, code)
                   : g_tool.set_events(mon, on ? g_event_unwind | g_event_throw : 0L);
    }
    Py_DECREF(mon);
    return done;
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

// The peak recorder's frame source on 3.12: sys.monitoring's PY_START, PY_RESUME and PY_THROW
// events push the frame that starts onto its thread's shadow (core/py_compat_frames.h), and
// PY_RETURN, PY_YIELD and PY_UNWIND pop it, so that each allocation finds its stack's key in a
// few loads instead of a walk through every frame (a walk stays the answer wherever the shadow
// has no entry: see py_compat_frames.c). On for the run of the recorded program (between
// peak_runner_frame(true) and (false)); 3.11 has no such events and always walks.
//
// 3.13 and later walk too: there the program allocates differently while sys.monitoring's
// events are on (tests/python/test_peak_shadow.py's program: 32 bytes more at its peak on 3.13;
// on 3.14, whose event ints come from the ints' free list, blocks of 56 bytes made at other
// lines), so the figures would no longer be those of the program run without the recorder.
//
// Exactness: the key only names a stack (core/peak_recorder.cpp interns it by a walk the first
// time), so the figures are the walks' whichever way a key was found; tests/python/
// test_peak_shadow.py compares the two tables. Each event passes an int the interpreter may
// allocate for the call: that block is retracted from the tables, as the line profiler does, so
// the recorder's events are never charged to the program. MEMXX_PEAK_FRAME_WALKS=1 in the
// environment keeps the shadow off (the tests' baseline).
//
// The tool id: 5, 4 or 3, the first free one, leaving PROFILER_ID (2) to the line profiler and
// profilers; none free means no shadow. GIL held for everything here. Built for 3.12 only
// (core/CMakeLists.txt); the other versions build core/peak_shadow_off.cpp.
#include "core/peak_recorder.hpp"

#include <Python.h>

#include <cstdlib>

#include "core/py_compat.h"

namespace memxx::core {

namespace {

constexpr const char *kToolName = "mprofxx --peak";
constexpr int kToolIds[] = {5, 4, 3};

int g_tool = -1; // the id we hold, or -1

PyObject *on_enter(PyObject *, PyObject *const *args, Py_ssize_t) {
    peak_retract_event_block(memxx_event_int_block(args[1]));
    memxx_shadow_enter(args[0]);
    Py_RETURN_NONE;
}

PyObject *on_leave(PyObject *, PyObject *const *args, Py_ssize_t) {
    peak_retract_event_block(memxx_event_int_block(args[1]));
    memxx_shadow_leave(args[0]);
    Py_RETURN_NONE;
}

PyMethodDef g_enter{"_mprofxx_peak_enter", reinterpret_cast<PyCFunction>(
                                               reinterpret_cast<void *>(on_enter)),
                    METH_FASTCALL, nullptr};
PyMethodDef g_leave{"_mprofxx_peak_leave", reinterpret_cast<PyCFunction>(
                                               reinterpret_cast<void *>(on_leave)),
                    METH_FASTCALL, nullptr};

struct Event {
    const char *name;
    PyMethodDef *callback;
};
constexpr Event kEvents[] = {{"PY_START", &g_enter},  {"PY_RESUME", &g_enter},
                             {"PY_THROW", &g_enter},  {"PY_RETURN", &g_leave},
                             {"PY_YIELD", &g_leave},  {"PY_UNWIND", &g_leave}};

// The bit of sys.monitoring.events.<name>; -1 with the error set.
long event_bit(PyObject *mon, const char *name) {
    PyObject *events = PyObject_GetAttrString(mon, "events");
    PyObject *value = events != nullptr ? PyObject_GetAttrString(events, name) : nullptr;
    Py_XDECREF(events);
    const long bit = value != nullptr ? PyLong_AsLong(value) : -1;
    Py_XDECREF(value);
    return bit;
}

// Registers `callback` (nullptr: none) for every event; the events' mask, or -1 with the error
// set.
long register_all(PyObject *mon, bool on) {
    long mask = 0;
    for (const Event &event : kEvents) {
        const long bit = event_bit(mon, event.name);
        if (bit < 0) {
            return -1;
        }
        PyObject *func = on ? PyCFunction_New(event.callback, nullptr) : Py_NewRef(Py_None);
        PyObject *old = func != nullptr ? PyObject_CallMethod(mon, "register_callback", "ilO",
                                                              g_tool, bit, func)
                                        : nullptr;
        Py_XDECREF(func);
        if (old == nullptr) {
            return -1;
        }
        Py_DECREF(old);
        mask |= bit;
    }
    return mask;
}

// True when `id` is held by no tool; false if held or with the error set.
bool tool_free(PyObject *mon, int id) {
    PyObject *holder = PyObject_CallMethod(mon, "get_tool", "i", id);
    const bool free = holder == Py_None;
    Py_XDECREF(holder);
    return free;
}

bool still_ours(PyObject *mon) {
    PyObject *holder = PyObject_CallMethod(mon, "get_tool", "i", g_tool);
    const bool ours = holder != nullptr && PyUnicode_Check(holder) &&
                      PyUnicode_CompareWithASCIIString(holder, kToolName) == 0;
    Py_XDECREF(holder);
    return ours;
}

bool start(PyObject *mon) {
    for (int id : kToolIds) {
        if (tool_free(mon, id)) {
            PyObject *ok = PyObject_CallMethod(mon, "use_tool_id", "is", id, kToolName);
            if (ok == nullptr) {
                return false;
            }
            Py_DECREF(ok);
            g_tool = id;
            break;
        }
        if (PyErr_Occurred()) {
            return false;
        }
    }
    if (g_tool < 0) {
        return true; // every id is held: the stacks are walked
    }
    memxx_shadow_switch(1); // before the first event
    const long mask = register_all(mon, true);
    PyObject *ok = mask >= 0 ? PyObject_CallMethod(mon, "set_events", "il", g_tool, mask) : nullptr;
    Py_XDECREF(ok);
    return ok != nullptr;
}

void stop(PyObject *mon) {
    memxx_shadow_switch(0);
    if (g_tool < 0 || !still_ours(mon)) { // another tool freed our id and may hold it now
        g_tool = -1;
        return;
    }
    PyObject *off = PyObject_CallMethod(mon, "set_events", "il", g_tool, 0L);
    Py_XDECREF(off);
    if (off != nullptr && register_all(mon, false) >= 0) {
        PyObject *freed = PyObject_CallMethod(mon, "free_tool_id", "i", g_tool);
        Py_XDECREF(freed);
    }
    g_tool = -1;
}

} // namespace

void peak_shadow(bool on) {
    if (on && std::getenv("MEMXX_PEAK_FRAME_WALKS") != nullptr) {
        return;
    }
    PyObject *passing = PyErr_GetRaisedException();
    peak_own_calls(true);
    PyObject *mon = PySys_GetObject("monitoring"); // borrowed
    if (mon != nullptr) {
        if (on) {
            if (!start(mon)) {
                stop(mon);
            }
        } else {
            stop(mon);
        }
    }
    peak_own_calls(false);
    // A failure here only leaves the stacks to be walked: the figures are the same.
    PyErr_Clear();
    PyErr_SetRaisedException(passing);
}

} // namespace memxx::core

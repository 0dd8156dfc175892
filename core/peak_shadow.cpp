// The peak recorder's frame source on 3.12 and 3.13: sys.monitoring's PY_START, PY_RESUME and
// PY_THROW events push the frame that starts onto its thread's shadow (core/py_compat_frames.h),
// and PY_RETURN, PY_YIELD and PY_UNWIND pop it, so that each allocation finds its stack's key in a
// few loads instead of a walk through every frame (a walk stays the answer wherever the shadow
// has no entry: see py_compat_frames.c). On for the run of the recorded program (between
// peak_runner_frame(true) and (false)); 3.11 has no such events and always walks.
//
// 3.14 and later walk too: there, with our events on, the program allocates differently from
// when it runs without them (tests/python/test_peak_shadow.py's program: blocks of 56 bytes made
// at 3 function starts, and 4 of its lists not made where they are without events), and the
// figures would no longer be the program's. Measured with the keys still found by walks, so it
// is the events being on, not the shadow's keys; the same with any one pair of our events
// (PY_THROW and PY_UNWIND alone, which fire only where an exception passes), so it is not the
// ints the events are passed either.
//
// Exactness: the key only names a stack (core/peak_recorder.cpp interns it by a walk the first
// time), so the figures are the walks' whichever way a key was found; tests/python/
// test_peak_shadow.py compares the two tables. Each event passes an int the interpreter may
// allocate for the call: that block is retracted from the tables as if it had never come (the high
// it made included: PeakTables::on_retract), so the recorder's events are never charged to the
// program. MEMXX_PEAK_FRAME_WALKS=1 in the
// environment keeps the shadow off (the tests' baseline).
//
// The tool id (core/monitoring_tool.hpp): 5, 4 or 3, the first free one, leaving PROFILER_ID (2)
// to the line profiler and profilers; none free means no shadow. GIL held for everything here.
// Built for 3.12 and 3.13 only (core/CMakeLists.txt); the others build core/peak_shadow_off.cpp.
#include "core/peak_recorder.hpp"

#include <Python.h>

#include <cstdlib>

#include "core/monitoring_tool.hpp"
#include "core/py_compat.h"

namespace memxx::core {

namespace {

constexpr int kToolIds[] = {5, 4, 3};
MonitoringTool g_tool("mprofxx --peak", kToolIds);

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

// Registers our callbacks for every event (or none, when off). The events' mask, or -1 with the
// error set.
long register_all(PyObject *mon, bool on) {
    long mask = 0;
    for (const Event &event : kEvents) {
        const long bit = monitoring_event_bit(mon, event.name);
        if (bit < 0 || !g_tool.register_callback(mon, bit, on ? event.callback : nullptr)) {
            return -1;
        }
        mask |= bit;
    }
    return mask;
}

bool start(PyObject *mon) {
    const int taken = g_tool.take(mon);
    if (taken <= 0) {
        return taken == 0; // every id is held: the stacks are walked
    }
    memxx_shadow_switch(1); // before the first event
    const long mask = register_all(mon, true);
    return mask >= 0 && g_tool.set_events(mon, mask);
}

void stop(PyObject *mon) {
    memxx_shadow_switch(0);
    // Another tool may have freed our id and taken it since: then there is nothing of ours left.
    if (g_tool.still_ours(mon) > 0 && g_tool.set_events(mon, 0) && register_all(mon, false) >= 0) {
        g_tool.free_id(mon);
    }
}

} // namespace

bool peak_shadow_possible() { return std::getenv("MEMXX_PEAK_FRAME_WALKS") == nullptr; }

void peak_shadow(bool on) {
    if (on && !peak_shadow_possible()) {
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

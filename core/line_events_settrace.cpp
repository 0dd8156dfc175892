// The line tracer's event source on 3.11: a C trace function (PyEval_SetTrace) armed on a thread
// only while a profiled call runs there, chaining the trace function that was installed before
// (a debugger's, coverage.py's). Frames of code that is not profiled get their line events
// switched off at their first event, so they run on the interpreter's cheaper call-only path.
// While a thread is armed, sys.settrace chains the program's trace function under ours the same
// way, rather than replacing ours (which would leave the rest of the profiled lines unseen).
// GIL held for everything.
#include "core/line_events.hpp"

#include "core/alloc_hook.hpp"
#include "core/thread_local.hpp"

namespace memxx::core::line_events {

namespace {

MEMXX_TLS int t_armed = 0;
MEMXX_TLS Py_tracefunc t_previous_func = nullptr;
MEMXX_TLS PyObject *t_previous_obj = nullptr;

void on_call(PyFrameObject *frame) {
    PyCodeObject *code = PyFrame_GetCode(frame);
    auto *code_object = reinterpret_cast<PyObject *>(code);
    // The interpreter made the code's line array just before this event, the first time tracing
    // met the code: tracing's memory, not the program's.
    const void *line_array = memxx_code_line_array(code_object);
    if (line_array != nullptr && line_array == accounting::t_last_block) {
        retract_event_temporary(line_array);
    }
    CodeLines *lines = claimed_lines(code_object);
    if (lines == nullptr) {
        // Another tracer still wants this frame's lines; a generator frame can outlive us.
        if (t_previous_func == nullptr && !memxx_code_is_resumable(code_object)) {
            memxx_frame_skip_lines(frame);
        }
        Py_DECREF(code);
        return;
    }
    const int lineno = PyFrame_GetLineNumber(frame);
    const bool first_entry =
        !memxx_code_is_resumable(code_object) || lineno == memxx_code_first_line(code_object);
    Py_DECREF(code);
    // A call that starts while this thread is profiled had its frame object counted on the
    // calling line; its teardown frees it on the call's last line, so it belongs to the call.
    const std::int64_t frame_object =
        first_entry && thread_ledger() != nullptr ? memxx_frame_object_bytes(frame) : 0;
    frame_started(frame, lines, lineno, first_entry, frame_object);
}

int trace_function(PyObject *, PyFrameObject *frame, int what, PyObject *arg) {
    switch (what) {
    case PyTrace_LINE:
        frame_line(frame, PyFrame_GetLineNumber(frame));
        break;
    case PyTrace_CALL:
        on_call(frame);
        break;
    case PyTrace_RETURN:
        if (ThreadLedger *ledger = thread_ledger(); ledger != nullptr && ledger->contains(frame)) {
            // Borrowed: the frame holds its code (and a 3.11 generator's teardown is told by the
            // code's reference count, which must not include ours).
            PyCodeObject *code = PyFrame_GetCode(frame);
            Py_DECREF(code);
            frame_returned(frame, reinterpret_cast<PyObject *>(code), PyFrame_GetLasti(frame));
        }
        break;
    default:
        break;
    }
    if (t_previous_func != nullptr) {
        return t_previous_func(t_previous_obj, frame, what, arg);
    }
    return 0;
}

// Our trace function on the calling thread, the one that was there chained under it. GIL held.
void put_ours_on_top() {
    Py_tracefunc func;
    PyObject *obj;
    memxx_thread_tracer(PyThreadState_Get(), &func, &obj);
    PyObject *replaced = t_previous_obj;
    t_previous_func = func == trace_function ? nullptr : func;
    t_previous_obj = t_previous_func != nullptr ? obj : nullptr;
    Py_XINCREF(t_previous_obj); // PyEval_SetTrace drops the thread's reference
    PyEval_SetTrace(trace_function, nullptr);
    Py_XDECREF(replaced);
}

// --- sys.settrace / sys.gettrace while some thread is armed ------------------------------------

int g_armed_threads = 0;
PyObject *g_sys_settrace = nullptr; // the interpreter's functions, while ours stand in for them
PyObject *g_sys_gettrace = nullptr;

PyObject *chained_settrace(PyObject *, PyObject *function) {
    PyObject *done = PyObject_CallOneArg(g_sys_settrace, function);
    if (done != nullptr && t_armed > 0) {
        put_ours_on_top(); // what sys.settrace just installed becomes the chained one
    }
    return done;
}

PyObject *chained_gettrace(PyObject *, PyObject *) {
    if (t_armed == 0) {
        return PyObject_CallNoArgs(g_sys_gettrace);
    }
    return Py_NewRef(t_previous_obj != nullptr ? t_previous_obj : Py_None);
}

PyMethodDef g_settrace_def = {"settrace", chained_settrace, METH_O,
                              "sys.settrace, chaining the function under memory_profilerxx's"};
PyMethodDef g_gettrace_def = {"gettrace", chained_gettrace, METH_NOARGS,
                              "sys.gettrace: the function chained under memory_profilerxx's"};

// Swaps sys.settrace and sys.gettrace with ours (on) or back (off), where nothing else replaced
// them in between. An error leaves the interpreter's functions in place.
void stand_in_for_sys_functions(bool on) {
    static PyObject *ours_set = PyCFunction_New(&g_settrace_def, nullptr);
    static PyObject *ours_get = PyCFunction_New(&g_gettrace_def, nullptr);
    if (ours_set == nullptr || ours_get == nullptr) {
        PyErr_WriteUnraisable(nullptr);
        return;
    }
    if (on) {
        PyObject *set = PySys_GetObject("settrace"); // borrowed
        PyObject *get = PySys_GetObject("gettrace");
        if (set == nullptr || get == nullptr || set == ours_set) {
            return;
        }
        g_sys_settrace = Py_NewRef(set);
        g_sys_gettrace = Py_NewRef(get);
        if (PySys_SetObject("settrace", ours_set) < 0 ||
            PySys_SetObject("gettrace", ours_get) < 0) {
            PyErr_WriteUnraisable(nullptr);
        }
        return;
    }
    if (g_sys_settrace == nullptr) {
        return;
    }
    if (PySys_GetObject("settrace") == ours_set) {
        PySys_SetObject("settrace", g_sys_settrace);
    }
    if (PySys_GetObject("gettrace") == ours_get) {
        PySys_SetObject("gettrace", g_sys_gettrace);
    }
    Py_CLEAR(g_sys_settrace);
    Py_CLEAR(g_sys_gettrace);
}

} // namespace

// The trace function sees every frame of an armed thread: nothing to take or to follow.
bool start() { return true; }
void stop() {}
bool follow_code(PyObject *, bool) { return true; }

void arm_thread() {
    if (t_armed++ > 0) {
        return;
    }
    if (g_armed_threads++ == 0) {
        stand_in_for_sys_functions(true);
    }
    put_ours_on_top();
}

void disarm_thread() {
    if (t_armed == 0 || --t_armed > 0) {
        return;
    }
    leave_thread_frames();
    PyEval_SetTrace(t_previous_func, t_previous_obj);
    Py_XDECREF(t_previous_obj);
    t_previous_func = nullptr;
    t_previous_obj = nullptr;
    if (--g_armed_threads == 0) {
        stand_in_for_sys_functions(false);
    }
}

bool floor_trace(bool on) {
    static Py_tracefunc floor = [](PyObject *, PyFrameObject *, int, PyObject *) { return 0; };
    PyEval_SetTrace(on ? floor : nullptr, nullptr);
    return true;
}

} // namespace memxx::core::line_events

// The line tracer's event source on 3.11: a C trace function (PyEval_SetTrace) armed on a thread
// only while a profiled call runs there, chaining the trace function that was installed before
// (a debugger's, coverage.py's). Frames of code that is not profiled get their line events
// switched off at their first event, so they run on the interpreter's cheaper call-only path.
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
            frame_returned(frame, reinterpret_cast<PyObject *>(code));
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

} // namespace

// The trace function sees every frame of an armed thread: nothing to take or to follow.
bool start() { return true; }
void stop() {}
bool follow_code(PyObject *, bool) { return true; }

void arm_thread() {
    if (t_armed++ > 0) {
        return;
    }
    Py_tracefunc func;
    PyObject *obj;
    memxx_thread_tracer(PyThreadState_Get(), &func, &obj);
    t_previous_func = func == trace_function ? nullptr : func;
    t_previous_obj = t_previous_func != nullptr ? obj : nullptr;
    Py_XINCREF(t_previous_obj); // PyEval_SetTrace drops the thread's reference
    PyEval_SetTrace(trace_function, nullptr);
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
}

bool floor_trace(bool on) {
    static Py_tracefunc floor = [](PyObject *, PyFrameObject *, int, PyObject *) { return 0; };
    PyEval_SetTrace(on ? floor : nullptr, nullptr);
    return true;
}

} // namespace memxx::core::line_events

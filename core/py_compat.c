/* CPython-version differences. The only file that reads interpreter internals. */
#include "core/py_compat.h"

/* PyFrameObject's fields (3.11) and the interpreter frames (all versions) are internal. */
#define Py_BUILD_CORE 1
#include <internal/pycore_frame.h>
#undef Py_BUILD_CORE

void memxx_frame_skip_lines(PyFrameObject *frame) {
#if MEMXX_USE_MONITORING
    (void)frame;
#else
    frame->f_trace_lines = 0;
#endif
}

void memxx_thread_tracer(PyThreadState *tstate, Py_tracefunc *func, PyObject **obj) {
    *func = tstate->c_tracefunc;
    *obj = tstate->c_traceobj;
}

int memxx_code_line(PyObject *code, int offset) {
    return PyCode_Addr2Line((PyCodeObject *)code, offset);
}

int memxx_code_is_resumable(PyObject *code) {
    return (((PyCodeObject *)code)->co_flags &
            (CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR | CO_ITERABLE_COROUTINE)) != 0;
}

int memxx_code_first_line(PyObject *code) { return ((PyCodeObject *)code)->co_firstlineno; }

PyObject *memxx_current_code_location(int *offset) {
    PyThreadState *tstate = _PyThreadState_UncheckedGet();
    if (tstate == NULL) {
        return NULL;
    }
#if PY_VERSION_HEX >= 0x030D0000
    _PyInterpreterFrame *frame = tstate->current_frame;
#else
    _PyInterpreterFrame *frame = tstate->cframe->current_frame;
#endif
    for (; frame != NULL; frame = frame->previous) {
#if PY_VERSION_HEX >= 0x030C0000
        if (frame->owner == FRAME_OWNED_BY_CSTACK) {
            continue;
        }
#endif
#if PY_VERSION_HEX >= 0x030D0000
        if (!PyCode_Check(frame->f_executable)) {
            continue;
        }
#endif
        if (_PyFrame_IsIncomplete(frame)) {
            continue;
        }
        *offset = _PyInterpreterFrame_LASTI(frame) * (int)sizeof(_Py_CODEUNIT);
#if PY_VERSION_HEX >= 0x030D0000
        return frame->f_executable;
#else
        return (PyObject *)frame->f_code;
#endif
    }
    return NULL;
}

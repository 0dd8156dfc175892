/* CPython-version differences. The only file that reads interpreter internals. */
#include "core/py_compat.h"

#if !MEMXX_USE_MONITORING
/* 3.11 keeps PyFrameObject's fields in the internal headers. */
#define Py_BUILD_CORE 1
#include <internal/pycore_frame.h>
#undef Py_BUILD_CORE
#endif

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

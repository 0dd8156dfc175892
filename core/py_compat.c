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

const void *memxx_object_block_start(PyObject *obj) {
    /* _PyType_PreHeaderSize, whose header cannot be included here: the collector's header
     * (two pointers) and the managed dict (and, 3.12+, weakref) pointers. */
    PyTypeObject *type = Py_TYPE(obj);
#if PY_VERSION_HEX >= 0x030C0000
    const unsigned long managed = Py_TPFLAGS_MANAGED_DICT | Py_TPFLAGS_MANAGED_WEAKREF;
#else
    const unsigned long managed = Py_TPFLAGS_MANAGED_DICT;
#endif
    size_t pre = PyType_IS_GC(type) ? 2 * sizeof(void *) : 0;
    if (type->tp_flags & managed) {
        pre += 2 * sizeof(PyObject *);
    }
    return (const char *)obj - pre;
}

#if PY_VERSION_HEX >= 0x030D0000
static memxx_object_event_fn g_created = NULL;
static memxx_object_event_fn g_destroyed = NULL;

static int object_event(PyObject *obj, PyRefTracerEvent event, void *data) {
    (void)data;
    if (event == PyRefTracer_CREATE) {
        g_created(obj);
    } else {
        g_destroyed(obj);
    }
    return 0;
}
#endif

int memxx_object_events_install(memxx_object_event_fn created, memxx_object_event_fn destroyed) {
#if PY_VERSION_HEX >= 0x030D0000
    void *data = NULL;
    PyRefTracer current = PyRefTracer_GetTracer(&data);
    if (current != NULL && current != object_event) {
        return 0;
    }
    g_created = created;
    g_destroyed = destroyed;
    return PyRefTracer_SetTracer(object_event, NULL) == 0;
#else
    (void)created;
    (void)destroyed;
    return 0;
#endif
}

void memxx_object_events_remove(void) {
#if PY_VERSION_HEX >= 0x030D0000
    void *data = NULL;
    if (PyRefTracer_GetTracer(&data) == object_event) {
        PyRefTracer_SetTracer(NULL, NULL);
    }
#endif
}

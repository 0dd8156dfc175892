/* CPython-version differences. The only file that reads interpreter internals. */
#include "core/py_compat.h"

#include <string.h>

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

Py_ssize_t memxx_frame_object_bytes(PyFrameObject *frame) {
    /* _PyFrame_New_NoTrack: PyObject_GC_NewVar(PyFrameObject, &PyFrame_Type, slots). */
    PyCodeObject *code = PyFrame_GetCode(frame);
    const Py_ssize_t slots = code->co_nlocalsplus + code->co_stacksize;
    Py_DECREF(code);
    const size_t header =
        (size_t)((const char *)frame - (const char *)memxx_object_block_start((PyObject *)frame));
    return (Py_ssize_t)(_PyObject_VAR_SIZE(Py_TYPE(frame), slots) + header);
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

/* --- frames being torn down --------------------------------------------------------------- */

static _PyInterpreterFrame *thread_current_frame(PyThreadState *tstate) {
#if PY_VERSION_HEX >= 0x030D0000
    return tstate->current_frame;
#else
    return tstate->cframe->current_frame;
#endif
}

/* Where the frame is in its code: 3.11 and 3.12 keep the previous instruction, 3.13 the current
 * one. Either way a frame pushed anew starts at its code's beginning. */
static const void *frame_instr(const _PyInterpreterFrame *frame) {
#if PY_VERSION_HEX >= 0x030D0000
    return frame->instr_ptr;
#else
    return frame->prev_instr;
#endif
}

static PyObject *frame_code(const _PyInterpreterFrame *frame) {
#if PY_VERSION_HEX >= 0x030D0000
    return frame->f_executable;
#else
    return (PyObject *)frame->f_code;
#endif
}

/* Words a frame of `code` takes on the data stack. */
static Py_ssize_t code_frame_size(PyCodeObject *code) {
#if PY_VERSION_HEX >= 0x030C0000
    return code->co_framesize;
#else
    return code->co_nlocalsplus + code->co_stacksize + (Py_ssize_t)FRAME_SPECIALS_SIZE;
#endif
}

int memxx_teardown_begin(PyObject *code, memxx_teardown *teardown) {
    PyThreadState *tstate = _PyThreadState_UncheckedGet();
    if (tstate == NULL) {
        return 0;
    }
    _PyInterpreterFrame *frame = thread_current_frame(tstate);
    if (frame == NULL || frame_code(frame) != code) {
        return 0;
    }
    memset(teardown, 0, sizeof(*teardown));
    teardown->tstate = tstate;
    teardown->frame = frame;
    teardown->frame_instr = frame_instr(frame);
    if (frame->owner == FRAME_OWNED_BY_THREAD) {
        /* Nothing runs above a frame at its own return event: its slot ends at the top. */
        PyObject **slot_end = (PyObject **)frame + code_frame_size((PyCodeObject *)code);
        if (tstate->datastack_top != slot_end) {
            return 0;
        }
        teardown->slot_end = slot_end;
        teardown->chunk = tstate->datastack_chunk;
        /* No finaliser running Python code: the same chunk, the top at the slot's end (so the
         * slot is mapped), the frame there still at its return. */
        teardown->watched[0] = (const void *const *)&tstate->datastack_chunk;
        teardown->expected[0] = teardown->chunk;
        teardown->watched[1] = (const void *const *)&tstate->datastack_top;
        teardown->expected[1] = slot_end;
#if PY_VERSION_HEX >= 0x030D0000
        teardown->watched[2] = (const void *const *)&frame->instr_ptr;
#else
        teardown->watched[2] = (const void *const *)&frame->prev_instr;
#endif
        teardown->expected[2] = teardown->frame_instr;
        return 1;
    }
    if (frame->owner != FRAME_OWNED_BY_GENERATOR || frame->previous == NULL) {
        return 0;
    }
    if (_PyFrame_GetGenerator(frame)->gi_frame_state < FRAME_EXECUTING) {
        return 0; /* suspended at a yield or await */
    }
    teardown->caller = frame->previous;
    teardown->caller_instr = frame_instr(frame->previous);
    teardown->below_caller = frame->previous->previous;
#if PY_VERSION_HEX < 0x030C0000
    /* 3.11 clears a finished generator's frame in C after the caller got control back
     * (gen_send_ex2), so the caller has not moved yet when the frame's clear ends with
     * Py_DECREF(f_code); the generator object (which holds the code too) is freed after. */
    teardown->code = code;
    teardown->code_refs = Py_REFCNT(code);
#endif
    return 1;
}

int memxx_teardown_running(const memxx_teardown *teardown) {
    PyThreadState *tstate = teardown->tstate;
    if (teardown->slot_end != NULL) {
        /* The slot is still reserved while its chunk is live with its top at or above the slot's
         * end (frames a finaliser calls go above it), and it holds the dying frame while the
         * instruction pointer there is the one recorded (a frame pushed there after the pop
         * starts at its code's beginning, never at a return). */
        const _PyStackChunk *chunk = tstate->datastack_chunk;
        PyObject *const *top = tstate->datastack_top;
        while (chunk != NULL && chunk != teardown->chunk) {
            chunk = chunk->previous;
            top = chunk != NULL ? &chunk->data[chunk->top] : NULL;
        }
        if (chunk == NULL || top < (PyObject *const *)teardown->slot_end) {
            return 0;
        }
        return frame_instr((const _PyInterpreterFrame *)teardown->frame) == teardown->frame_instr;
    }
    /* A generator's frame: its teardown runs while the frame it returns to is still on the
     * thread's stack and has not executed anything since. */
    const _PyInterpreterFrame *frame = thread_current_frame(tstate);
    while (frame != NULL && frame != teardown->caller) {
        if (frame == teardown->below_caller) {
            return 0;
        }
        frame = frame->previous;
    }
    if (frame == NULL || frame_instr(frame) != teardown->caller_instr) {
        return 0;
    }
#if PY_VERSION_HEX < 0x030C0000
    return Py_REFCNT(teardown->code) == teardown->code_refs;
#else
    return 1;
#endif
}

int memxx_suspended_line(PyObject *generator, PyObject **code) {
    if (!PyGen_Check(generator) && !PyCoro_CheckExact(generator) &&
        !PyAsyncGen_CheckExact(generator)) {
        return 0;
    }
    PyGenObject *gen = (PyGenObject *)generator;
    if (gen->gi_frame_state >= FRAME_EXECUTING || gen->gi_frame_state == FRAME_CREATED) {
        return 0;
    }
    _PyInterpreterFrame *frame = (_PyInterpreterFrame *)gen->gi_iframe;
    *code = frame_code(frame);
    return PyCode_Addr2Line((PyCodeObject *)*code,
                            _PyInterpreterFrame_LASTI(frame) * (int)sizeof(_Py_CODEUNIT));
}

int memxx_thread_stack(PyObject **codes, int *offsets, int max, int *deeper) {
    /* Not _PyThreadState_UncheckedGet: on 3.11 that is whichever thread holds the GIL. */
    PyThreadState *tstate = PyGILState_GetThisThreadState();
    *deeper = 0;
    if (tstate == NULL) {
        return 0;
    }
    int count = 0;
    for (_PyInterpreterFrame *frame = thread_current_frame(tstate); frame != NULL;
         frame = frame->previous) {
#if PY_VERSION_HEX >= 0x030C0000
        if (frame->owner == FRAME_OWNED_BY_CSTACK) {
            continue;
        }
#endif
        PyObject *code = frame_code(frame);
#if PY_VERSION_HEX >= 0x030D0000
        if (!PyCode_Check(code)) {
            continue;
        }
#endif
        if (_PyFrame_IsIncomplete(frame)) {
            continue;
        }
        if (count == max) {
            *deeper = 1;
            break;
        }
        codes[count] = code;
        offsets[count] = _PyInterpreterFrame_LASTI(frame) * (int)sizeof(_Py_CODEUNIT);
        ++count;
    }
    return count;
}

unsigned long long memxx_thread_stack_key(void) {
    PyThreadState *tstate = PyGILState_GetThisThreadState();
    if (tstate == NULL) {
        return 1;
    }
    /* A frame's instruction pointer names its code and its offset in it at once. Unlike
     * memxx_thread_stack this does not skip a frame still being set up (only the innermost can
     * be), whose pointer is its code's start: a second key for the same listed stack. */
    unsigned long long key = 0x243F6A8885A308D3ull;
    int depth = 0;
    for (_PyInterpreterFrame *frame = thread_current_frame(tstate); frame != NULL;
         frame = frame->previous) {
#if PY_VERSION_HEX >= 0x030C0000
        if (frame->owner == FRAME_OWNED_BY_CSTACK) {
            continue;
        }
#endif
        if (++depth > 128) {
            key ^= 0x5bd1e995ull; /* deeper than recorded */
            break;
        }
        key = (key ^ (unsigned long long)(uintptr_t)frame_instr(frame)) * 0x9E3779B97F4A7C15ull;
    }
    key ^= key >> 29;
    return key == 0 ? 1 : key;
}

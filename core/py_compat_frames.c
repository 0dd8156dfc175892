/* The compat layer's frames area (core/py_compat_frames.h): threads, interpreter frames, code
 * objects, teardowns. The only file that reads a thread state or an interpreter frame. */
#include "core/py_compat_internal.h"

#include <pthread.h>
#include <string.h>

#include <mimalloc.h>

/* --- frames ----------------------------------------------------------------------------------- */

/* The calling thread's state, or NULL; no check, no error (3.13 made this public). */
static PyThreadState *current_thread_state(void) {
#if PY_VERSION_HEX >= 0x030D0000
    return PyThreadState_GetUnchecked();
#else
    return _PyThreadState_UncheckedGet();
#endif
}

/* The innermost interpreter frame of a thread, of any kind. */
static _PyInterpreterFrame *thread_frame(PyThreadState *tstate) {
#if PY_VERSION_HEX >= 0x030D0000
    return tstate->current_frame;
#else
    return tstate->cframe->current_frame;
#endif
}

#if PY_VERSION_HEX >= 0x030E0000
/* The object a stack reference (3.14+: frames hold tagged references, not pointers) points to;
 * NULL for an empty slot or a tagged int. */
static PyObject *stack_ref_object(_PyStackRef ref) {
    return PyStackRef_IsNullOrInt(ref) ? NULL : PyStackRef_AsPyObjectBorrow(ref);
}
#endif

/* The code (or, 3.13+, whatever executes) of a frame, unchecked. */
static PyObject *frame_executable(const _PyInterpreterFrame *frame) {
#if PY_VERSION_HEX >= 0x030E0000
    return PyStackRef_AsPyObjectBorrow(frame->f_executable);
#elif PY_VERSION_HEX >= 0x030D0000
    return frame->f_executable;
#else
    return (PyObject *)frame->f_code;
#endif
}

/* The value in a frame's local, cell or free slot `i` (borrowed), or NULL. */
static PyObject *frame_local(const _PyInterpreterFrame *frame, int i) {
#if PY_VERSION_HEX >= 0x030E0000
    return stack_ref_object(frame->localsplus[i]);
#else
    return frame->localsplus[i];
#endif
}

/* True for the frames the interpreter pushes where C code enters it (3.12, 3.13: owned by the C
 * stack; 3.14: that or the interpreter's own base frame; 3.15: owned by the interpreter): they
 * run no Python code. */
static int frame_is_entry(const _PyInterpreterFrame *frame) {
#if PY_VERSION_HEX >= 0x030E0000
    return frame->owner >= FRAME_OWNED_BY_INTERPRETER;
#elif PY_VERSION_HEX >= 0x030C0000
    return frame->owner == FRAME_OWNED_BY_CSTACK;
#else
    (void)frame;
    return 0;
#endif
}

/* The code of a complete Python frame; NULL for the interpreter's entry frames (3.12+), frames
 * that run something other than a code object (3.13+) and frames still being set up. */
static PyCodeObject *complete_frame_code(_PyInterpreterFrame *frame) {
    if (frame_is_entry(frame)) {
        return NULL;
    }
    if (!PyCode_Check(frame_executable(frame)) || _PyFrame_IsIncomplete(frame)) {
        return NULL;
    }
    return (PyCodeObject *)frame_executable(frame);
}

/* The frame walker: the first complete frame at or below `frame` (toward the thread's oldest). */
static _PyInterpreterFrame *complete_frame(_PyInterpreterFrame *frame) {
    while (frame != NULL && complete_frame_code(frame) == NULL) {
        frame = frame->previous;
    }
    return frame;
}

/* Where the frame's instruction pointer is kept: 3.11 and 3.12 keep the previous instruction,
 * 3.13 the current one. Either way a frame pushed anew starts at its code's beginning. */
static const void *const *frame_instr_slot(const _PyInterpreterFrame *frame) {
#if PY_VERSION_HEX >= 0x030D0000
    return (const void *const *)&frame->instr_ptr;
#else
    return (const void *const *)&frame->prev_instr;
#endif
}

static const void *frame_instr(const _PyInterpreterFrame *frame) {
    return *frame_instr_slot(frame);
}

/* The byte offset of a frame's current instruction in its code. */
static int frame_offset(_PyInterpreterFrame *frame) {
    return _PyInterpreterFrame_LASTI(frame) * (int)sizeof(_Py_CODEUNIT);
}

void memxx_frame_skip_lines(PyFrameObject *frame) { frame->f_trace_lines = 0; }

Py_ssize_t memxx_frame_object_bytes(PyFrameObject *frame) {
    /* _PyFrame_New_NoTrack: PyObject_GC_NewVar(PyFrameObject, &PyFrame_Type, slots). */
    PyCodeObject *code = PyFrame_GetCode(frame);
    const Py_ssize_t slots = code->co_nlocalsplus + code->co_stacksize;
    Py_DECREF(code);
    return (Py_ssize_t)(_PyObject_VAR_SIZE(Py_TYPE(frame), slots) +
                        memxx_object_preheader_bytes(Py_TYPE(frame)));
}

void memxx_thread_tracer(PyThreadState *tstate, Py_tracefunc *func, PyObject **obj) {
    *func = tstate->c_tracefunc;
    *obj = tstate->c_traceobj;
}

int memxx_code_line(PyObject *code, int offset) {
    return PyCode_Addr2Line((PyCodeObject *)code, offset);
}

int memxx_code_line_at(PyObject *code, int offset, memxx_line_cursor *cursor) {
    PyCodeObject *co = (PyCodeObject *)code;
    if (offset < 0) {
        return co->co_firstlineno;
    }
    if (cursor->code != code) {
        /* What _PyCode_InitAddressRange does (not exported): before the first range. */
        cursor->code = code;
        cursor->bounds.opaque.lo_next = (const uint8_t *)PyBytes_AS_STRING(co->co_linetable);
        cursor->bounds.opaque.limit =
            cursor->bounds.opaque.lo_next + PyBytes_GET_SIZE(co->co_linetable);
        cursor->bounds.ar_start = -1;
        cursor->bounds.ar_end = 0;
        cursor->bounds.opaque.computed_line = co->co_firstlineno;
        cursor->bounds.ar_line = -1;
    }
    return _PyCode_CheckLineNumber(offset, &cursor->bounds);
}

int memxx_code_is_resumable(PyObject *code) {
    return (((PyCodeObject *)code)->co_flags &
            (CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR | CO_ITERABLE_COROUTINE)) != 0;
}

void *const *memxx_newest_interpreter_slot(void) {
    return (void *const *)&_PyRuntime.interpreters.head;
}

const void *memxx_main_interpreter(void) { return PyInterpreterState_Main(); }

int memxx_code_first_line(PyObject *code) { return ((PyCodeObject *)code)->co_firstlineno; }

PyObject *memxx_current_code_location(int *offset) {
    PyThreadState *tstate = current_thread_state();
    if (tstate == NULL) {
        return NULL;
    }
    _PyInterpreterFrame *frame = complete_frame(thread_frame(tstate));
    if (frame == NULL) {
        return NULL;
    }
    *offset = frame_offset(frame);
    return frame_executable(frame);
}

/* --- sys.monitoring's instrumentation of code objects ------------------------------------- */

#if PY_VERSION_HEX >= 0x030C0000
int memxx_instrumenting_code_now(void) {
    PyThreadState *tstate = current_thread_state();
    if (tstate == NULL) {
        return 0;
    }
    _PyInterpreterFrame *frame = thread_frame(tstate);
    PyObject *executable = frame != NULL ? frame_executable(frame) : NULL;
    if (executable == NULL || !PyCode_Check(executable)) {
        return 0;
    }
    /* The comparison RESUME makes before it calls _Py_Instrument. */
#if PY_VERSION_HEX >= 0x030D0000
    const uintptr_t global_version =
        _Py_atomic_load_uintptr_relaxed(&tstate->eval_breaker) & ~(uintptr_t)_PY_EVAL_EVENTS_MASK;
#else
    const uint64_t global_version = tstate->interp->monitoring_version;
#endif
    return ((PyCodeObject *)executable)->_co_instrumentation_version != global_version;
}
#endif

/* --- frames being torn down --------------------------------------------------------------- */

/* The generator, coroutine or async generator a frame owned by one belongs to. */
static PyGenObject *frame_generator(_PyInterpreterFrame *frame) {
#if PY_VERSION_HEX >= 0x030E0000
    return _PyGen_GetGeneratorFromFrame(frame);
#else
    return _PyFrame_GetGenerator(frame);
#endif
}

/* The frame inside a generator, coroutine or async generator. */
static _PyInterpreterFrame *generator_frame(PyGenObject *gen) {
#if PY_VERSION_HEX >= 0x030E0000
    return &gen->gi_iframe;
#else
    return (_PyInterpreterFrame *)gen->gi_iframe;
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
    PyThreadState *tstate = current_thread_state();
    if (tstate == NULL) {
        return 0;
    }
    _PyInterpreterFrame *frame = thread_frame(tstate);
    if (frame == NULL || frame_executable(frame) != code) {
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
        teardown->watched[2] = frame_instr_slot(frame);
        teardown->expected[2] = teardown->frame_instr;
        return 1;
    }
    if (frame->owner != FRAME_OWNED_BY_GENERATOR || frame->previous == NULL) {
        return 0;
    }
    if (frame_generator(frame)->gi_frame_state < FRAME_EXECUTING) {
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
    PyThreadState *tstate = (PyThreadState *)teardown->tstate;
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
    const _PyInterpreterFrame *frame = thread_frame(tstate);
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
    return Py_REFCNT((PyObject *)teardown->code) == teardown->code_refs;
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
    _PyInterpreterFrame *frame = generator_frame(gen);
    *code = frame_executable(frame);
    return PyCode_Addr2Line((PyCodeObject *)*code, frame_offset(frame));
}

/* --- every thread's frames and the calling thread's stack -------------------------------- */

/* The namespace dict a frame looks its variables up in, when it has one of its own: module
 * level, class bodies and exec'd code (not CO_OPTIMIZED). For an optimized frame f_locals is at
 * most a snapshot of its fast slots (3.11/3.12), never a root of its own. */
static PyObject *frame_namespace(const _PyInterpreterFrame *frame, const PyCodeObject *code) {
    if ((code->co_flags & CO_OPTIMIZED) || frame->f_locals == NULL ||
        !PyDict_Check(frame->f_locals)) {
        return NULL;
    }
    return frame->f_locals;
}

int memxx_visit_frame_slots(memxx_frame_slot_fn visit, void *arg, int namespaces) {
    PyInterpreterState *interp = PyInterpreterState_Get();
    for (PyThreadState *t = PyInterpreterState_ThreadHead(interp); t != NULL;
         t = PyThreadState_Next(t)) {
        int depth = 0;
        for (_PyInterpreterFrame *f = complete_frame(thread_frame(t)); f != NULL;
             f = complete_frame(f->previous)) {
            PyCodeObject *code = complete_frame_code(f);
            if (visit(t->thread_id, depth, (PyObject *)code, NULL, NULL, 0, arg)) {
                return 1;
            }
            /* Only the named slots: the value stack's extent is not saved while a frame runs. */
            for (int i = 0; i < code->co_nlocalsplus; i++) {
                PyObject *value = frame_local(f, i);
                if (value != NULL &&
                    visit(t->thread_id, depth, (PyObject *)code,
                          PyTuple_GET_ITEM(code->co_localsplusnames, i), value, 0, arg)) {
                    return 1;
                }
            }
            PyObject *namespace_dict = namespaces ? frame_namespace(f, code) : NULL;
            PyObject *key = NULL;
            PyObject *value = NULL;
            Py_ssize_t pos = 0;
            while (namespace_dict != NULL && PyDict_Next(namespace_dict, &pos, &key, &value)) {
                if (PyUnicode_Check(key) &&
                    visit(t->thread_id, depth, (PyObject *)code, key, value, 1, arg)) {
                    return 1;
                }
            }
            depth++;
        }
    }
    return 0;
}

static const void *_Atomic g_stack_base = NULL;

void memxx_set_stack_base(int on) {
    PyThreadState *tstate = PyGILState_GetThisThreadState();
    g_stack_base = on && tstate != NULL ? (const void *)thread_frame(tstate) : NULL;
}

/* --- the frames' shadow (3.12, 3.13) -----------------------------------------------------------
 * Each thread's frames as sys.monitoring announced them, with the key of each one's callers: the
 * key of a stack is then its innermost frame's callers' key and instruction, found in a few
 * loads however deep the stack. An entry is trusted only when its frame is the thread's
 * innermost complete frame; it is pushed when that frame starts or resumes and dropped (with
 * every entry above it) when it returns, yields or unwinds, so an entry never outlives the run of
 * its frame it was pushed for. Anything else (a frame started before the shadow, a greenlet's
 * switch, a full shadow) leaves the innermost frame without its entry: its stacks are walked.
 * 3.12 and 3.13 only: core/peak_shadow.cpp says why not 3.14 and later. */
#if PY_VERSION_HEX >= 0x030C0000 && PY_VERSION_HEX < 0x030E0000

#define SHADOW_FRAMES 1024
#define SHADOW_WALK_CAP 256 /* frames folded into a key by a walk: more than any stack records */

typedef struct {
    const _PyInterpreterFrame *frame;
    unsigned long long callers; /* the key of the frames below it, down to the stack base */
    int depth;                  /* its frames from the base, itself included (capped) */
    memxx_shadow_memo memo;
} shadow_frame;

typedef struct {
    unsigned generation; /* the shadow's start this stack belongs to */
    int depth;
    unsigned long long keys; /* stack keys it gave (tests read it) */
    shadow_frame frames[SHADOW_FRAMES];
} shadow_stack;

static unsigned _Atomic g_shadow_generation = 0; /* 0: no shadow */
static __thread shadow_stack *t_shadow __attribute__((tls_model("initial-exec")));
static pthread_key_t g_shadow_owner;                 /* frees a thread's stack as it ends */
static pthread_once_t g_shadow_owner_once = PTHREAD_ONCE_INIT;

static size_t _Atomic g_shadows = 0; /* the threads' shadows allocated and not freed */

static void free_shadow(void *shadow) { /* on the ending thread */
    t_shadow = NULL; /* its last allocations walk */
    g_shadows--;
    mi_free(shadow);
}

static void make_shadow_owner(void) { (void)pthread_key_create(&g_shadow_owner, free_shadow); }

static const unsigned long long kShadowRoot = 0x452821E638D01377ull;

static unsigned long long shadow_key(unsigned long long callers, const void *instr) {
    unsigned long long h = (callers ^ (unsigned long long)(uintptr_t)instr) * 0xC2B2AE3D27D4EB4Full;
    return h ^ (h >> 31);
}

/* The key of the chain from the stack base up to `frame` (complete, or NULL), outermost first,
 * and its count of frames in *depth (SHADOW_WALK_CAP when more): from the shadow when `frame` is
 * its top entry, else by a walk. */
static unsigned long long callers_key(const shadow_stack *shadow, _PyInterpreterFrame *frame,
                                      int *depth) {
    const void *base = g_stack_base;
    *depth = 0;
    if (frame == NULL || (const void *)frame == base) {
        return kShadowRoot;
    }
    if (shadow->depth > 0 && shadow->frames[shadow->depth - 1].frame == frame) {
        const shadow_frame *below = &shadow->frames[shadow->depth - 1];
        *depth = below->depth;
        return shadow_key(below->callers, frame_instr(frame));
    }
    const void *instrs[SHADOW_WALK_CAP];
    int count = 0;
    for (; frame != NULL && (const void *)frame != base && count < SHADOW_WALK_CAP;
         frame = complete_frame(frame->previous)) {
        instrs[count++] = frame_instr(frame);
    }
    *depth = count;
    /* Deeper than the cap: the outer frames left out are beyond any stack recorded. */
    unsigned long long key = count == SHADOW_WALK_CAP ? ~kShadowRoot : kShadowRoot;
    for (int i = count - 1; i >= 0; --i) {
        key = shadow_key(key, instrs[i]);
    }
    return key;
}

/* The calling thread's shadow of the current generation (emptied if older); NULL when memory
 * for it is short. */
static shadow_stack *thread_shadow(unsigned generation) {
    shadow_stack *shadow = t_shadow;
    if (shadow == NULL) {
        (void)pthread_once(&g_shadow_owner_once, make_shadow_owner);
        shadow = (shadow_stack *)mi_malloc(sizeof(shadow_stack));
        if (shadow == NULL) {
            return NULL;
        }
        g_shadows++;
        shadow->generation = 0;
        shadow->keys = 0;
        (void)pthread_setspecific(g_shadow_owner, shadow);
        t_shadow = shadow;
    }
    if (shadow->generation != generation) {
        shadow->generation = generation;
        shadow->depth = 0;
    }
    return shadow;
}

/* The thread's innermost complete frame if it runs `code`, else NULL. */
static _PyInterpreterFrame *frame_running(PyObject *code) {
    PyThreadState *tstate = current_thread_state();
    _PyInterpreterFrame *frame = tstate != NULL ? complete_frame(thread_frame(tstate)) : NULL;
    return frame != NULL && frame_executable(frame) == code ? frame : NULL;
}

void memxx_shadow_enter(PyObject *code) {
    const unsigned generation = g_shadow_generation;
    _PyInterpreterFrame *frame = generation != 0 ? frame_running(code) : NULL;
    shadow_stack *shadow = frame != NULL ? thread_shadow(generation) : NULL;
    if (shadow == NULL) {
        return;
    }
    if (shadow->depth == SHADOW_FRAMES) {
        shadow->depth = 0; /* full: the frames it held are walked from now on */
    }
    int below = 0;
    const unsigned long long callers =
        callers_key(shadow, complete_frame(frame->previous), &below);
    shadow_frame *entry = &shadow->frames[shadow->depth];
    entry->frame = frame;
    entry->callers = callers;
    entry->depth = below < SHADOW_WALK_CAP ? below + 1 : SHADOW_WALK_CAP;
    entry->memo.epoch = 0;
    shadow->depth++;
}

void memxx_shadow_leave(PyObject *code) {
    const unsigned generation = g_shadow_generation;
    shadow_stack *shadow = t_shadow;
    _PyInterpreterFrame *frame = generation != 0 ? frame_running(code) : NULL;
    if (frame == NULL || shadow == NULL || shadow->generation != generation) {
        return;
    }
    for (int i = shadow->depth - 1; i >= 0; --i) {
        if (shadow->frames[i].frame == frame) {
            shadow->depth = i;
            return;
        }
    }
}

void memxx_shadow_switch(int on) {
    static unsigned last = 0;
    if (on) {
        last = last + 1 == 0 ? 1 : last + 1;
        g_shadow_generation = last;
    } else {
        g_shadow_generation = 0;
    }
}

unsigned long long memxx_shadow_keys(void) { return t_shadow != NULL ? t_shadow->keys : 0; }

size_t memxx_shadow_bytes(void) { return g_shadows * sizeof(shadow_stack); }

/* The key of the calling thread's stack by its shadow, or 0 when its innermost frame has no
 * entry. */
static unsigned long long shadow_stack_key(PyThreadState *tstate) {
    const unsigned generation = g_shadow_generation;
    shadow_stack *shadow = t_shadow;
    if (generation == 0 || shadow == NULL || shadow->generation != generation ||
        shadow->depth == 0) {
        return 0;
    }
    _PyInterpreterFrame *frame = complete_frame(thread_frame(tstate));
    const shadow_frame *top = &shadow->frames[shadow->depth - 1];
    if (frame == NULL || frame != top->frame) {
        return 0;
    }
    shadow->keys++;
    const unsigned long long key = shadow_key(top->callers, frame_instr(frame));
    return key == 0 ? 1 : key;
}

int memxx_shadow_frames(PyObject **codes, int *offsets, memxx_shadow_memo **memos, int max,
                        int *depth) {
    const unsigned generation = g_shadow_generation;
    shadow_stack *shadow = t_shadow;
    PyThreadState *tstate = PyGILState_GetThisThreadState();
    if (generation == 0 || shadow == NULL || shadow->generation != generation ||
        shadow->depth == 0 || tstate == NULL) {
        return 0;
    }
    _PyInterpreterFrame *frame = complete_frame(thread_frame(tstate));
    const void *base = g_stack_base;
    int count = 0;
    for (int i = shadow->depth - 1; i >= 0 && count < max; --i) {
        shadow_frame *entry = &shadow->frames[i];
        if (frame == NULL || (const void *)frame == base || entry->frame != frame) {
            break;
        }
        if (count == 0) {
            *depth = entry->depth;
        }
        codes[count] = frame_executable(frame);
        offsets[count] = frame_offset(frame);
        memos[count] = &entry->memo;
        ++count;
        frame = complete_frame(frame->previous);
    }
    return count;
}

#else

int memxx_shadow_frames(PyObject **codes, int *offsets, memxx_shadow_memo **memos, int max,
                        int *depth) {
    (void)codes, (void)offsets, (void)memos, (void)max, (void)depth;
    return 0;
}
void memxx_shadow_enter(PyObject *code) { (void)code; }
void memxx_shadow_leave(PyObject *code) { (void)code; }
void memxx_shadow_switch(int on) { (void)on; }
unsigned long long memxx_shadow_keys(void) { return 0; }
size_t memxx_shadow_bytes(void) { return 0; }

#endif

int memxx_thread_stack(PyObject **codes, int *offsets, int max, int *deeper) {
    /* Not _PyThreadState_UncheckedGet: on 3.11 that is whichever thread holds the GIL. */
    PyThreadState *tstate = PyGILState_GetThisThreadState();
    *deeper = 0;
    if (tstate == NULL) {
        return 0;
    }
    const void *base = g_stack_base;
    int count = 0;
    for (_PyInterpreterFrame *frame = complete_frame(thread_frame(tstate));
         frame != NULL && (const void *)frame != base; frame = complete_frame(frame->previous)) {
        if (count == max) {
            *deeper = 1;
            break;
        }
        codes[count] = frame_executable(frame);
        offsets[count] = frame_offset(frame);
        ++count;
    }
    return count;
}

unsigned long long memxx_thread_stack_key(void) {
    PyThreadState *tstate = PyGILState_GetThisThreadState();
    if (tstate == NULL) {
        return 1;
    }
    /* A frame's instruction pointer names its code and its offset in it at once. Only the C
     * stack's entry frames are skipped here (a load of the frame's owner): a frame still being
     * set up can only be the innermost (its pointer is its code's start: at worst a second key
     * for the same listed stack), so 130 frames cover the 128 complete ones listed. */
#if PY_VERSION_HEX >= 0x030C0000 && PY_VERSION_HEX < 0x030E0000
    const unsigned long long shadowed = shadow_stack_key(tstate);
    if (shadowed != 0) {
        return shadowed;
    }
#endif
    unsigned long long key = 0x243F6A8885A308D3ull;
    int depth = 0;
    const void *base = g_stack_base;
    for (_PyInterpreterFrame *frame = thread_frame(tstate); frame != NULL;
         frame = frame->previous) {
        if ((const void *)frame == base) {
            break; /* the program's runner below: the same for every key */
        }
        if (frame_is_entry(frame)) {
            continue;
        }
        if (++depth > 130) {
            key ^= 0x5bd1e995ull; /* deeper than recorded */
            break;
        }
        key = (key ^ (unsigned long long)(uintptr_t)frame_instr(frame)) * 0x9E3779B97F4A7C15ull;
    }
    key ^= key >> 29;
    return key == 0 ? 1 : key;
}

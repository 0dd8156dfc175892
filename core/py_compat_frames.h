/* The compat layer's frames area: threads, their interpreter frames, code objects, the frames
 * being torn down, and the ints sys.monitoring makes for its events. The only file, with
 * core/py_compat_frames.c, that reads a thread state, an interpreter frame or a generator's
 * frame. */
#ifndef MEMXX_PY_COMPAT_FRAMES_H
#define MEMXX_PY_COMPAT_FRAMES_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>

#include "core/py_compat_teardown.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 3.11 (the C trace function): stop LINE events for a frame not profiled (its f_trace_lines). */
void memxx_frame_skip_lines(PyFrameObject *frame);

/* 3.11: the bytes the allocator was asked for to hold a frame object. A C trace function makes
 * the interpreter create one as each traced call starts, before the call's first event; the
 * call's teardown frees it first. */
Py_ssize_t memxx_frame_object_bytes(PyFrameObject *frame);

/* 3.11: the C trace function and its object installed on a thread (borrowed). */
void memxx_thread_tracer(PyThreadState *tstate, Py_tracefunc *func, PyObject **obj);

/* 3.11: the line array the interpreter allocates for a code object the first time tracing meets
 * it (_PyCode_InitLineArray), or NULL (none yet; none on 3.12+). Inline: read at every call
 * event of a traced thread. */
static inline const void *memxx_code_line_array(PyObject *code) {
#if PY_VERSION_HEX < 0x030C0000
    return ((PyCodeObject *)code)->_co_linearray;
#else
    (void)code;
    return NULL;
#endif
}

/* 3.12+ (sys.monitoring): where the block of the int passed to an event (an offset or a line
 * number) starts if the interpreter allocated it for the call (past 256; from 3.14 it may come
 * from the ints' free list instead). An int is neither gc-tracked nor given a managed dict: it
 * has no pre-header on 3.11-3.15, its block starts at the object. Inline: read at every event. */
static inline const void *memxx_event_int_block(PyObject *number) { return number; }

/* Line number of a bytecode offset in a code object. */
int memxx_code_line(PyObject *code, int offset);

/* The same, from where the cursor's last lookup in the same code object left its walk of the
 * line table (PyCode_Addr2Line walks it from the start: a module body of thousands of lines,
 * looked up offset after offset as it runs, costs its length each time). The cursor holds no
 * reference: its code object must stay alive while the cursor names it. */
typedef struct memxx_line_cursor {
    PyObject *code; /* NULL: none yet */
    PyCodeAddressRange bounds;
} memxx_line_cursor;
int memxx_code_line_at(PyObject *code, int offset, memxx_line_cursor *cursor);

/* The first line of a code object (the first decorator's line for a decorated function). */
int memxx_code_first_line(PyObject *code);

/* True for generator, coroutine and async-generator code: their frames outlive a call. */
int memxx_code_is_resumable(PyObject *code);

/* The code object (borrowed) of the innermost complete Python frame of the calling thread, and
 * the byte offset of its current instruction in *offset; NULL when no Python code is running.
 * Reads the thread state only: creates no object and takes no lock, so the allocator hook may
 * call it. GIL held. */
PyObject *memxx_current_code_location(int *offset);

/* 3.12+: 1 while the calling thread's newest frame is one whose code the interpreter is
 * instrumenting for sys.monitoring (RESUME found its code's instrumentation version behind the
 * interpreter's and called _Py_Instrument, which allocates the code's monitoring data with
 * PyMem_Malloc): such blocks are the profiler's cost, not the program's. What a frame runs
 * before its RESUME brings the version up to date (MAKE_CELL, COPY_FREE_VARS,
 * RETURN_GENERATOR) makes objects, never a PyMem_Malloc block. 0 on 3.11. Reads the thread
 * state only; GIL held. Inline: asked at every MEM-domain allocation while counting (3.11 pays
 * nothing). */
int memxx_instrumenting_code_now(void);
static inline int memxx_instrumenting_code(void) {
#if PY_VERSION_HEX >= 0x030C0000
    return memxx_instrumenting_code_now();
#else
    return 0;
#endif
}

/* Where the runtime keeps its newest interpreter (interpreters are added at the head of that
 * list), and the main interpreter: the allocator hook reads the first without a call to tell
 * that the main interpreter is the only one, and so that one GIL serialises every call of the
 * MEM and OBJ domains. */
void *const *memxx_newest_interpreter_slot(void);
const void *memxx_main_interpreter(void);

/* At a profiled frame's return or unwind event, when that frame is the thread's current one:
 * fills *teardown (core/py_compat_teardown.h) and returns 1 if the frame is torn down next; 0 if
 * it only suspends (a generator's yield, which 3.11 also reports as a return) or cannot be
 * described. GIL held. */
int memxx_teardown_begin(PyObject *code, memxx_teardown *teardown);

/* 1 while the teardown described by *teardown still runs. Reads the calling thread's own frames
 * and data stack only (creates nothing, takes no lock): the allocator hook may call it, with or
 * without the GIL, on the thread of that teardown. */
int memxx_teardown_running(const memxx_teardown *teardown);

/* The line at which a generator, coroutine or async generator is suspended, and its code
 * (borrowed) in *code; 0 if it is not suspended (not started, running or finished). GIL held. */
int memxx_suspended_line(PyObject *generator, PyObject **code);

/* The calling thread's Python frames, innermost first, down to the stack base (see below): up
 * to `max` code objects (borrowed) in codes[] and the byte offsets of their current instructions
 * in offsets[]. Returns how many were filled and sets *deeper when more frames lie beyond them.
 * Reads the thread's own frames only (creates nothing, takes no lock): the allocator hook may
 * call it with or without the GIL. A thread that released the GIL is found through its GIL-state
 * key; its frames cannot change while it runs the C code that called the allocator. */
int memxx_thread_stack(PyObject **codes, int *offsets, int max, int *deeper);

/* The identity of the calling thread's Python stack as memxx_thread_stack would list it (up to
 * 128 frames): equal for equal stacks, different otherwise but for a chance of about 2^-64 per
 * pair. A few loads per frame, under the same rules as memxx_thread_stack. */
unsigned long long memxx_thread_stack_key(void);

/* With `on`, the calling thread's current frame becomes the stacks' base: memxx_thread_stack
 * stops there (what lies beyond it cannot change while it runs, and is the same for every stack
 * listed). The caller clears it (`on` 0) before that frame returns. GIL held. */
void memxx_set_stack_base(int on);

/* 3.12, 3.13: the frames' shadow, which finds memxx_thread_stack_key in a few loads where a
 * walk goes through every frame. With `on`, a new shadow starts (every thread's is empty) and is
 * kept by memxx_shadow_enter, called (GIL held) by sys.monitoring's PY_START, PY_RESUME and
 * PY_THROW events of `code`, and memxx_shadow_leave, by its PY_RETURN, PY_YIELD and PY_UNWIND
 * events; the caller registers those callbacks for as long as the shadow is on, and switches it
 * off before their registration ends. No-ops on the other versions. memxx_shadow_keys: the stack
 * keys the calling thread's shadow gave, for tests. */
void memxx_shadow_switch(int on);
void memxx_shadow_enter(PyObject *code);
void memxx_shadow_leave(PyObject *code);
unsigned long long memxx_shadow_keys(void);
/* The memory the threads' shadows take (the recorder's own: core/own_memory.hpp). */
size_t memxx_shadow_bytes(void);

/* A shadow entry's memo for its user (core/peak_recorder.cpp: the tree node of the entry's
 * frame's callers), trusted by that user while `epoch` is its own; an entry starts with epoch 0. */
typedef struct {
    unsigned epoch;
    unsigned node;
} memxx_shadow_memo;

/* The calling thread's innermost frames that have shadow entries, innermost first, up to `max`:
 * each one's code (borrowed), current instruction's offset and entry's memo. The run stops at
 * the first frame whose caller has no entry, or at the stack base. *depth: the innermost frame's
 * depth from the base (its count of frames as memxx_thread_stack would list them, when that is
 * below 256; 256 when more). 0 when the innermost frame has no entry (and always, but on 3.12
 * and 3.13). Under the rules of memxx_thread_stack; the memos are the calling thread's own. */
int memxx_shadow_frames(PyObject **codes, int *offsets, memxx_shadow_memo **memos, int max,
                        int *depth);

/* Called once per complete Python frame of every thread of the interpreter (innermost frame
 * first) with name and value NULL, then for each of its named slots (local, cell or free
 * variable) that holds a value: `depth` counts complete frames from the top of that thread's
 * stack, `code` is the frame's code object. With `namespaces`, also for each entry of the
 * namespace dict of a frame whose variables live in one (module level, class bodies, exec with
 * a dict): `in_namespace` is then 1. Return non-zero to stop. No object is created, no Python
 * code runs (f_locals is never asked for: on 3.13+ that builds a proxy, on 3.11/3.12 it writes
 * the frame's locals dict). */
typedef int (*memxx_frame_slot_fn)(unsigned long thread_id, int depth, PyObject *code,
                                   PyObject *name, PyObject *value, int in_namespace, void *arg);
int memxx_visit_frame_slots(memxx_frame_slot_fn visit, void *arg, int namespaces);

#ifdef __cplusplus
}
#endif

#endif /* MEMXX_PY_COMPAT_FRAMES_H */

/* The one compat layer: every CPython-version difference and every read of interpreter internals
 * that core and gc_walker depend on, behind named helpers (frames, object pre-headers, the
 * collector's lists, inline attribute values, teardowns). The rest of the code has no
 * PY_VERSION_HEX and includes no internal header. Each helper says whether it needs the GIL;
 * the ones the allocator hook calls create no object and take no lock. */
#ifndef MEMXX_PY_COMPAT_H
#define MEMXX_PY_COMPAT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>

/* The internals read here are those of the GIL builds of CPython 3.11-3.13, each tested; the
 * top-level CMakeLists.txt refuses any other interpreter at configure. */

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

/* The bytes from `at` (page-aligned, `length` bytes mapped) that are one of pymalloc's arenas,
 * told by the header of its first pool; 0 when `at` does not start one. Reads memory only. */
size_t memxx_pymalloc_arena_at(const void *at, size_t length);

/* Line number of a bytecode offset in a code object. */
int memxx_code_line(PyObject *code, int offset);

/* True for generator, coroutine and async-generator code: their frames outlive a call. */
int memxx_code_is_resumable(PyObject *code);

/* The code object (borrowed) of the innermost complete Python frame of the calling thread, and
 * the byte offset of its current instruction in *offset; NULL when no Python code is running.
 * Reads the thread state only: creates no object and takes no lock, so the allocator hook may
 * call it. GIL held. */
PyObject *memxx_current_code_location(int *offset);

/* Bytes the interpreter puts before an object of `type` in its allocator block: the collector's
 * header and the managed-dict (3.12+: and weakref) pointers. */
size_t memxx_object_preheader_bytes(PyTypeObject *type);

/* Where the allocator block of `obj` starts (obj minus its pre-header). */
const void *memxx_object_block_start(PyObject *obj);

/* 3.13+ (PyRefTracer): calls `created` whenever an object is created, free-list reuse
 * included, and `destroyed` before one is deallocated; a tracer set before (tracemalloc's) is
 * called after them. Returns 1 when installed; 0 when the interpreter has no such events
 * (3.11, 3.12). GIL held. */
typedef void (*memxx_object_event_fn)(PyObject *obj);
int memxx_object_events_install(memxx_object_event_fn created, memxx_object_event_fn destroyed);
/* Removes them if they are still the interpreter's tracer, putting back the one before. GIL
 * held. */
void memxx_object_events_remove(void);

/* Where the runtime keeps its newest interpreter (interpreters are added at the head of that
 * list), and the main interpreter: the allocator hook reads the first without a call to tell
 * that the main interpreter is the only one, and so that one GIL serialises every call of the
 * MEM and OBJ domains. */
void *const *memxx_newest_interpreter_slot(void);
const void *memxx_main_interpreter(void);

/* The first line of a code object (the first decorator's line for a decorated function). */
int memxx_code_first_line(PyObject *code);

/* A profiled frame that returned or raised, while the interpreter tears it down (drops its
 * locals, whose finalisers may run code). The interpreter unlinks the frame before clearing it
 * (gh-99729), so "the current frame" cannot tell the teardown from what its caller does next;
 * this records what can: the frame's slot on the thread's data stack and its instruction
 * pointer (a frame pushed into the slot afterwards starts elsewhere), or, for a generator's
 * frame (which lives in the generator, not on the data stack), its caller's instruction pointer
 * (the caller moves on right after the teardown). */
typedef struct {
    /* Up to three words of the thread's state that keep these values while the teardown runs,
     * to be read in order, each only if the ones before matched (then it is mapped memory):
     * a check of a few loads before memxx_teardown_running. watched[0] NULL: none. */
    const void *const *watched[3];
    const void *expected[3];
    PyThreadState *tstate;
    const void *frame;       /* the dying interpreter frame */
    const void *frame_instr; /* its instruction pointer at the event */
    const void *slot_end;    /* end of its data-stack slot; NULL for a generator's frame */
    const void *chunk;       /* the data-stack chunk holding the slot */
    const void *caller;      /* a generator's frame: the frame it returns to */
    const void *caller_instr;
    const void *below_caller; /* reaching it while looking for the caller: the caller is gone */
    PyObject *code;           /* 3.11 generators: the code, whose last reference the */
    Py_ssize_t code_refs;     /* teardown drops at its very end */
} memxx_teardown;

/* At a profiled frame's return or unwind event, when that frame is the thread's current one:
 * fills *teardown and returns 1 if the frame is torn down next; 0 if it only suspends (a
 * generator's yield, which 3.11 also reports as a return) or cannot be described. GIL held. */
int memxx_teardown_begin(PyObject *code, memxx_teardown *teardown);

/* 1 while the teardown described by *teardown still runs. Reads the calling thread's own frames
 * and data stack only (creates nothing, takes no lock): the allocator hook may call it, with or
 * without the GIL, on the thread of that teardown. */
int memxx_teardown_running(const memxx_teardown *teardown);

/* The line at which a generator, coroutine or async generator is suspended, and its code
 * (borrowed) in *code; 0 if it is not suspended (not started, running or finished). GIL held. */
int memxx_suspended_line(PyObject *generator, PyObject **code);

/* The calling thread's Python frames, innermost first: up to `max` code objects (borrowed) in
 * codes[] and the byte offsets of their current instructions in offsets[]. Returns how many were
 * filled and sets *deeper when more frames lie beyond them. Reads the thread's own frames only
 * (creates nothing, takes no lock): the allocator hook may call it with or without the GIL. A
 * thread that released the GIL is found through its GIL-state key; its frames cannot change
 * while it runs the C code that called the allocator. */
int memxx_thread_stack(PyObject **codes, int *offsets, int max, int *deeper);

/* The identity of the calling thread's Python stack as memxx_thread_stack would list it (up to
 * 128 frames): equal for equal stacks, different otherwise but for a chance of about 2^-64 per
 * pair. A few loads per frame, under the same rules as memxx_thread_stack. */
unsigned long long memxx_thread_stack_key(void);

/* With `on`, the calling thread's current frame becomes the stack keys' base: a walk that
 * reaches it stops there (what lies beyond it cannot change while it runs). The caller clears
 * it (`on` 0) before that frame returns. GIL held. */
void memxx_set_stack_key_base(int on);

/* --- the heap walker's reads (gc_walker) --------------------------------------------------- */

/* Called for each tracked object; return non-zero to stop the walk. Must not allocate
 * Python objects or run Python code: the walk follows the collector's own linked lists. */
typedef int (*memxx_gc_visit_fn)(PyObject *op, void *arg);

/* Visits every object tracked by the collector of the current interpreter: the generations
 * youngest first (the order of gc.get_objects()), then the permanent generation filled by
 * gc.freeze(), which gc.get_objects() does not show. Returns non-zero if the visitor stopped. */
int memxx_gc_visit_tracked(memxx_gc_visit_fn visit, void *arg);

/* Number of tracked objects (all generations, permanent included). */
Py_ssize_t memxx_gc_tracked_count(void);

/* Calls `visit` for each value of an instance's attributes stored outside a dict object
 * (3.11+ inline values), with the attribute name; does not create the instance __dict__.
 * Returns 0 if the object keeps no inline values (its attributes, if any, are in a dict). */
typedef int (*memxx_attr_visit_fn)(PyObject *name, PyObject *value, void *arg);
int memxx_visit_inline_attributes(PyObject *obj, memxx_attr_visit_fn visit, void *arg);

/* The instance __dict__ if it already exists, else NULL (borrowed; never creates it). */
PyObject *memxx_existing_instance_dict(PyObject *obj);

/* True for objects that are never freed on this version (3.12+ immortal objects). */
int memxx_is_immortal(PyObject *obj);

/* What sys.getsizeof() adds to __sizeof__(): the object's pre-header (none for a static type
 * object on 3.13, which is not allocated). */
size_t memxx_getsizeof_overhead(PyObject *obj);

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

#ifdef __cplusplus
}
#endif

#endif /* MEMXX_PY_COMPAT_H */

/* The compat layer's check of its private reads (core/py_compat_offsets.h): the offsets the
 * other compat files compile in, beside the running interpreter's _Py_DebugOffsets. */
#include "core/py_compat_internal.h"

#include <stdio.h>
#include <string.h>

#if PY_VERSION_HEX >= 0x030D0000
/* CPython keeps _Py_DebugOffsets' own layout stable between the patch releases of a minor
 * version (pycore_runtime.h): read through the type compiled in, the running interpreter's
 * table gives its values. It is the first member of _PyRuntime, where out-of-process debuggers
 * find it by its cookie. */
typedef _Py_DebugOffsets debug_table;
#define MEMXX_CHECKED(path, value, public)                                                     \
    {#path, (uint64_t)(value), t->path, offsetof(debug_table, path), public}
#endif

size_t memxx_debug_offsets_size(void) {
#if PY_VERSION_HEX >= 0x030D0000
    return sizeof(debug_table);
#else
    return 0;
#endif
}

const void *memxx_published_debug_offsets(void) {
#if PY_VERSION_HEX >= 0x030D0000
    return &_PyRuntime.debug_offsets;
#else
    return NULL;
#endif
}

int memxx_private_offsets(const void *table, memxx_private_offset *offsets) {
#if PY_VERSION_HEX >= 0x030D0000
    const debug_table *t = (const debug_table *)table;
    /* What core/py_compat_frames.c and py_compat_gc.c read of the interpreter's private
     * structs, as far as the table publishes it; the sizes stand for the fields it does not
     * (the data stack's top, a code object's frame size, the collector's generation lists). */
    const memxx_private_offset checked[] = {
        MEMXX_CHECKED(free_threaded, 0, 0),
        MEMXX_CHECKED(runtime_state.interpreters_head,
                      offsetof(_PyRuntimeState, interpreters.head), 0),
        MEMXX_CHECKED(interpreter_state.gc, offsetof(PyInterpreterState, gc), MEMXX_PUBLIC_GC_WALK),
        MEMXX_CHECKED(gc.size, sizeof(struct _gc_runtime_state), MEMXX_PUBLIC_GC_WALK),
        MEMXX_CHECKED(thread_state.size, sizeof(PyThreadState), 0),
        MEMXX_CHECKED(thread_state.current_frame, offsetof(PyThreadState, current_frame), 0),
        MEMXX_CHECKED(thread_state.thread_id, offsetof(PyThreadState, thread_id), 0),
        MEMXX_CHECKED(thread_state.datastack_chunk, offsetof(PyThreadState, datastack_chunk), 0),
        MEMXX_CHECKED(interpreter_frame.size, sizeof(_PyInterpreterFrame), 0),
        MEMXX_CHECKED(interpreter_frame.previous, offsetof(_PyInterpreterFrame, previous), 0),
        MEMXX_CHECKED(interpreter_frame.executable, offsetof(_PyInterpreterFrame, f_executable), 0),
        MEMXX_CHECKED(interpreter_frame.instr_ptr, offsetof(_PyInterpreterFrame, instr_ptr), 0),
        MEMXX_CHECKED(interpreter_frame.localsplus, offsetof(_PyInterpreterFrame, localsplus), 0),
        MEMXX_CHECKED(interpreter_frame.owner, offsetof(_PyInterpreterFrame, owner), 0),
        MEMXX_CHECKED(code_object.size, sizeof(PyCodeObject), 0),
        MEMXX_CHECKED(code_object.firstlineno, offsetof(PyCodeObject, co_firstlineno), 0),
        MEMXX_CHECKED(code_object.localsplusnames, offsetof(PyCodeObject, co_localsplusnames), 0),
        MEMXX_CHECKED(code_object.co_code_adaptive, offsetof(PyCodeObject, co_code_adaptive), 0),
#if PY_VERSION_HEX >= 0x030E0000
        /* 3.13's table has no generator: its gi_frame_state and gi_iframe go unchecked there. */
        MEMXX_CHECKED(gen_object.size, sizeof(PyGenObject), 0),
        MEMXX_CHECKED(gen_object.gi_iframe, offsetof(PyGenObject, gi_iframe), 0),
        MEMXX_CHECKED(gen_object.gi_frame_state, offsetof(PyGenObject, gi_frame_state), 0),
#endif
    };
    const int count = (int)(sizeof(checked) / sizeof(checked[0]));
    _Static_assert(sizeof(checked) / sizeof(checked[0]) <= MEMXX_PRIVATE_OFFSETS_MAX,
                   "MEMXX_PRIVATE_OFFSETS_MAX too small");
    memcpy(offsets, checked, sizeof(checked));
    return count;
#else
    (void)table;
    (void)offsets;
    return 0;
#endif
}

int memxx_offsets_verdict(const memxx_private_offset *offsets, int count, unsigned *public_paths,
                          char *message, size_t size) {
    *public_paths = 0;
    for (int i = 0; i < count; i++) {
        const memxx_private_offset *o = &offsets[i];
        if (o->compiled == o->published) {
            continue;
        }
        if (o->public_path != 0) {
            *public_paths |= o->public_path;
            continue;
        }
        snprintf(message, size,
                 "memory-profilerxx was built against another layout of this CPython's private "
                 "structures: %s is %llu in the running interpreter's _Py_DebugOffsets but %llu "
                 "in the headers it was built with; reinstall it from source with this interpreter",
                 o->field, (unsigned long long)o->published, (unsigned long long)o->compiled);
        return 0;
    }
    return 1;
}

int memxx_check_private_offsets(const void *table, unsigned *public_paths) {
    *public_paths = 0;
    if (table == NULL) {
        return 1;
    }
#if PY_VERSION_HEX >= 0x030D0000
    if (memcmp(((const debug_table *)table)->cookie, _Py_Debug_Cookie,
               sizeof(((const debug_table *)table)->cookie)) != 0) {
        PyErr_SetString(PyExc_ImportError,
                        "memory-profilerxx cannot check this CPython's private structures: its "
                        "_Py_DebugOffsets table is not at the start of _PyRuntime");
        return 0;
    }
#endif
    memxx_private_offset offsets[MEMXX_PRIVATE_OFFSETS_MAX];
    const int count = memxx_private_offsets(table, offsets);
    char message[512];
    if (!memxx_offsets_verdict(offsets, count, public_paths, message, sizeof(message))) {
        PyErr_SetString(PyExc_ImportError, message);
        return 0;
    }
    return 1;
}

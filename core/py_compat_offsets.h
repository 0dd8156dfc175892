/* The compat layer's check of its private reads: each offset into the interpreter's private
 * structures that the other compat files rely on (thread state, interpreter frame, code object,
 * generator, the runtime's interpreter list, the collector's state), as compiled in from the
 * headers of the interpreter built against, beside the value the running interpreter publishes
 * for out-of-process debuggers in its _Py_DebugOffsets (3.13+, _PyRuntime.debug_offsets). An
 * extension built against one patch release can run on another: a private struct that changed
 * between them must be caught at import, not read wrong.
 *
 * A mismatch of a field with a public path switches that area to it (the collector's state: the
 * heap walk through PyUnstable_GC_VisitObjects); any other mismatch refuses the import in one
 * line naming the field and both offsets. The frames have no public path the allocator hook
 * could take: PyFrame_* create frame objects (an allocation inside the hook), and
 * PyUnstable_InterpreterFrame_* give a frame's code and instruction but no way to its caller.
 * 3.11 and 3.12 publish no table: there is nothing to compare, and the configure-time version
 * gate (the top-level CMakeLists.txt) is the only check.
 * Called at import, GIL held. */
#ifndef MEMXX_PY_COMPAT_OFFSETS_H
#define MEMXX_PY_COMPAT_OFFSETS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One private offset (or struct size): its name as _Py_DebugOffsets spells it, e.g.
 * "interpreter_frame.instr_ptr", and its value compiled in and published. */
typedef struct {
    const char *field;
    uint64_t compiled;
    uint64_t published;
    size_t table_position; /* where in the table the published value sits */
    unsigned public_path; /* 0: none (a mismatch refuses); else the path a mismatch turns on */
} memxx_private_offset;

/* The public paths a mismatch can turn on, as bits. */
enum { MEMXX_PUBLIC_GC_WALK = 1 }; /* the heap walk through PyUnstable_GC_VisitObjects */

enum { MEMXX_PRIVATE_OFFSETS_MAX = 32 };

/* The size of the interpreter's debug-offsets table, and where the running interpreter keeps
 * it; NULL (and 0) on 3.11 and 3.12, which have none. */
size_t memxx_debug_offsets_size(void);
const void *memxx_published_debug_offsets(void);

/* Fills offsets[] (room for MEMXX_PRIVATE_OFFSETS_MAX) with every offset the compat layer
 * relies on, compiled in and as `table` (a _Py_DebugOffsets of memxx_debug_offsets_size()
 * bytes: the running interpreter's, or a copy) gives it; returns how many. 0 when the
 * interpreter has no table. */
int memxx_private_offsets(const void *table, memxx_private_offset *offsets);

/* Pure: the verdict on offsets[0..count). Returns 1 when every offset without a public path
 * matches, and sets *public_paths to the paths the mismatched others turn on (MEMXX_PUBLIC_*
 * bits, 0 if none); returns 0 at the first mismatch without one, with `message` (of `size`
 * bytes) set to one line naming the field and both offsets. */
int memxx_offsets_verdict(const memxx_private_offset *offsets, int count, unsigned *public_paths,
                          char *message, size_t size);

/* The check run at import over `table` (memxx_published_debug_offsets(), or a copy): returns 0
 * with ImportError set (one line) on a mismatch without a public path; 1 otherwise, with
 * *public_paths set to the paths to turn on (the caller turns them on). 1 and no path when
 * `table` is NULL (3.11, 3.12: nothing to compare). */
int memxx_check_private_offsets(const void *table, unsigned *public_paths);

#ifdef __cplusplus
}
#endif

#endif /* MEMXX_PY_COMPAT_OFFSETS_H */

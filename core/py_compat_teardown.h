/* The record of a profiled frame being torn down (the frames area of the compat layer,
 * core/py_compat_frames.c, fills and reads it). Plain C with no Python header, so that the line
 * ledger (pure C++, core/line_ledger.hpp) keeps it by value and reads its watched words without
 * knowing what they are.
 *
 * A profiled frame that returned or raised, while the interpreter tears it down (drops its
 * locals, whose finalisers may run code). The interpreter unlinks the frame before clearing it
 * (gh-99729), so "the current frame" cannot tell the teardown from what its caller does next;
 * this records what can: the frame's slot on the thread's data stack and its instruction
 * pointer (a frame pushed into the slot afterwards starts elsewhere), or, for a generator's
 * frame (which lives in the generator, not on the data stack), its caller's instruction pointer
 * (the caller moves on right after the teardown). */
#ifndef MEMXX_PY_COMPAT_TEARDOWN_H
#define MEMXX_PY_COMPAT_TEARDOWN_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { MEMXX_TEARDOWN_WATCHED = 3 };

typedef struct memxx_teardown {
    /* Up to three words of the thread's state that keep these values while the teardown runs,
     * to be read in order, each only if the ones before matched (then it is mapped memory):
     * a check of a few loads before memxx_teardown_running. watched[0] NULL: none. */
    const void *const *watched[MEMXX_TEARDOWN_WATCHED];
    const void *expected[MEMXX_TEARDOWN_WATCHED];
    const void *tstate;      /* the thread's state */
    const void *frame;       /* the dying interpreter frame */
    const void *frame_instr; /* its instruction pointer at the event */
    const void *slot_end;    /* end of its data-stack slot; NULL for a generator's frame */
    const void *chunk;       /* the data-stack chunk holding the slot */
    const void *caller;      /* a generator's frame: the frame it returns to */
    const void *caller_instr;
    const void *below_caller; /* reaching it while looking for the caller: the caller is gone */
    const void *code;         /* 3.11 generators: the code, whose last reference the */
    ptrdiff_t code_refs;      /* teardown drops at its very end */
} memxx_teardown;

#ifdef __cplusplus
}
#endif

#endif /* MEMXX_PY_COMPAT_TEARDOWN_H */

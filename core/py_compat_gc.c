/* The compat layer's collector area (core/py_compat_gc.h): the objects the cyclic collector
 * tracks, read from its generation lists, or through its public visitor when the collector's
 * state differs from the one compiled in (core/py_compat_offsets.c). */
#include "core/py_compat_internal.h"

/* The lists are read in place by default, on every version, for two reasons: on 3.12 and 3.13
 * PyUnstable_GC_VisitObjects does not visit the permanent generation (gc.freeze()), which
 * objgraphxx shows; and where it does (3.14, 3.15) it costs more on the walks that dominate
 * objgraphxx's calls (tests/bench/bench_heap_walk.py, 2 M tracked objects, medians of 7
 * interleaved rounds: show_most_common_types 1.13x on 3.14.10 and 1.10x on 3.13.0,
 * get_leaking_objects 1.07x on both; it takes and drops a reference per object). The visitor is
 * the fallback when the collector's state is not the one compiled in.
 * Set at import, before any walk, with the GIL held. */
static int g_public_walk = 0;

int memxx_gc_set_public_walk(int on) {
#if PY_VERSION_HEX >= 0x030C0000
    g_public_walk = on != 0;
    return 1;
#else
    (void)on;
    return 0;
#endif
}

int memxx_gc_public_walk(void) { return g_public_walk; }

/* The list heads of the three generations and of the permanent generation, youngest first. */
static int gc_list_heads(PyGC_Head **heads, int capacity) {
    PyInterpreterState *interp = PyInterpreterState_Get();
    struct _gc_runtime_state *gcstate = &interp->gc;
    int n = 0;
    for (int i = 0; i < NUM_GENERATIONS && n < capacity; i++) {
        heads[n++] = &gcstate->generations[i].head;
    }
    if (n < capacity) {
        heads[n++] = &gcstate->permanent_generation.head;
    }
    return n;
}

static PyGC_Head *gc_next(PyGC_Head *g) { return (PyGC_Head *)g->_gc_next; }

#if PY_VERSION_HEX >= 0x030C0000
struct public_visit {
    memxx_gc_visit_fn visit;
    void *arg;
    int stopped;
};

/* PyUnstable_GC_VisitObjects' callback: 0 stops the walk (3.12's stops only the generation it
 * is in: a visitor that stopped is not called again). */
static int public_visit_one(PyObject *op, void *arg) {
    struct public_visit *walk = (struct public_visit *)arg;
    if (walk->stopped) {
        return 0;
    }
    walk->stopped = walk->visit(op, walk->arg) != 0;
    return !walk->stopped;
}
#endif

int memxx_gc_visit_tracked(memxx_gc_visit_fn visit, void *arg) {
#if PY_VERSION_HEX >= 0x030C0000
    if (g_public_walk) {
        struct public_visit walk = {visit, arg, 0};
        PyUnstable_GC_VisitObjects(public_visit_one, &walk);
        return walk.stopped;
    }
#endif
    PyGC_Head *heads[NUM_GENERATIONS + 1];
    int n = gc_list_heads(heads, NUM_GENERATIONS + 1);
    for (int i = 0; i < n; i++) {
        for (PyGC_Head *g = gc_next(heads[i]); g != heads[i]; g = gc_next(g)) {
            if (visit((PyObject *)(g + 1), arg)) {
                return 1;
            }
        }
    }
    return 0;
}

static int count_one(PyObject *op, void *arg) {
    (void)op;
    ++*(Py_ssize_t *)arg;
    return 0;
}

Py_ssize_t memxx_gc_tracked_count(void) {
    Py_ssize_t count = 0;
    memxx_gc_visit_tracked(count_one, &count);
    return count;
}

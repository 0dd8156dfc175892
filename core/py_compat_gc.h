/* The compat layer's collector area: the objects the cyclic collector tracks, for the heap walk
 * (gc_walker/heap_walk.hpp). The only file, with core/py_compat_gc.c, that reads the
 * collector's state. */
#ifndef MEMXX_PY_COMPAT_GC_H
#define MEMXX_PY_COMPAT_GC_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Called for each tracked object; return non-zero to stop the walk. Must not allocate
 * Python objects or run Python code: the walk follows the collector's own linked lists. */
typedef int (*memxx_gc_visit_fn)(PyObject *op, void *arg);

/* Visits every object tracked by the collector of the current interpreter: the generations
 * youngest first (the order of gc.get_objects()), then the permanent generation filled by
 * gc.freeze(), which gc.get_objects() does not show. Returns non-zero if the visitor stopped.
 * GIL held. */
int memxx_gc_visit_tracked(memxx_gc_visit_fn visit, void *arg);

/* With `on`, the walk goes through the collector's public visitor, PyUnstable_GC_VisitObjects
 * (3.12+), instead of its lists: set at import when the collector's state differs from the one
 * compiled in (core/py_compat_offsets.h). The public visitor does not show the permanent
 * generation (gc.freeze()) on 3.12 and 3.13. Returns 0 (and changes nothing) where the
 * interpreter has no public visitor (3.11). GIL held. */
int memxx_gc_set_public_walk(int on);
int memxx_gc_public_walk(void);

/* Number of tracked objects (all generations, permanent included). GIL held. */
Py_ssize_t memxx_gc_tracked_count(void);

#ifdef __cplusplus
}
#endif

#endif /* MEMXX_PY_COMPAT_GC_H */

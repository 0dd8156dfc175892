/* The compat layer's reference-tracer area: the interpreter's object events (PyRefTracer,
 * 3.13+), which tracemalloc uses too (3.13: from tracemalloc.start(); 3.14+: its own tracer is
 * installed at start() and removed at stop()). The only file, with core/py_compat_reftracer.c,
 * that installs or reads the interpreter's reference tracer. */
#ifndef MEMXX_PY_COMPAT_REFTRACER_H
#define MEMXX_PY_COMPAT_REFTRACER_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 3.13+ (PyRefTracer): calls `created` whenever an object is created, free-list reuse
 * included, and `destroyed` before one is deallocated; a tracer set before (tracemalloc's) is
 * called after them. Returns 1 when installed; 0 when the interpreter has no such events
 * (3.11, 3.12). Installing again while ours is still the interpreter's tracer changes nothing
 * but the two functions. GIL held. */
typedef void (*memxx_object_event_fn)(PyObject *obj);
int memxx_object_events_install(memxx_object_event_fn created, memxx_object_event_fn destroyed);

/* Puts ours back on top, the one that replaced it called after ours, when another tracer took
 * the interpreter's object events since the install: 3.13's tracemalloc.start() sets its own
 * without calling ours. Returns 1 when ours is the interpreter's tracer after the call; 0 when
 * the interpreter has no object events or they were never installed. GIL held. */
int memxx_object_events_reclaim(void);

/* Removes them if they are still the interpreter's tracer, putting back the one before. GIL
 * held. */
void memxx_object_events_remove(void);

#ifdef __cplusplus
}
#endif

#endif /* MEMXX_PY_COMPAT_REFTRACER_H */

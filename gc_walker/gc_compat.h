/* Every CPython-version difference the heap walker depends on, behind named helpers.
 * The rest of gc_walker has no PY_VERSION_HEX and includes no internal header. */
#ifndef MEMXX_GC_COMPAT_H
#define MEMXX_GC_COMPAT_H

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

/* What sys.getsizeof() adds to __sizeof__(): the collector's header and the managed-dict
 * pointers. */
size_t memxx_getsizeof_overhead(PyObject *obj);

/* Called once per complete Python frame of every thread of the interpreter (innermost frame
 * first) with name and value NULL, then for each of its named slots (local, cell or free
 * variable) that holds a value: `depth` counts complete frames from the top of that thread's
 * stack, `code` is the frame's code object. Return non-zero to stop. No object is created. */
typedef int (*memxx_frame_slot_fn)(unsigned long thread_id, int depth, PyObject *code,
                                   PyObject *name, PyObject *value, void *arg);
int memxx_visit_frame_slots(memxx_frame_slot_fn visit, void *arg);

#ifdef __cplusplus
}
#endif

#endif /* MEMXX_GC_COMPAT_H */

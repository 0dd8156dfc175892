/* The compat layer's object-layout area: what the interpreter puts before an object, where an
 * instance keeps its attributes, which objects are immortal, and pymalloc's arenas. The only
 * file, with core/py_compat_objects.c, that reads an object's pre-header, inline values or
 * managed dict. */
#ifndef MEMXX_PY_COMPAT_OBJECTS_H
#define MEMXX_PY_COMPAT_OBJECTS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes the interpreter puts before an object of `type` in its allocator block: the collector's
 * header and the managed-dict (3.12+: and weakref) pointers. */
size_t memxx_object_preheader_bytes(PyTypeObject *type);

/* Where the allocator block of `obj` starts (obj minus its pre-header). */
const void *memxx_object_block_start(PyObject *obj);

/* True for objects that are never freed on this version (3.12+ immortal objects). */
int memxx_is_immortal(PyObject *obj);

/* What sys.getsizeof() adds to __sizeof__(): the object's pre-header (none for a static type
 * object on 3.13+, which is not allocated). */
size_t memxx_getsizeof_overhead(PyObject *obj);

/* Calls `visit` for each value of an instance's attributes stored outside a dict object
 * (3.11+ inline values), with the attribute name; does not create the instance __dict__.
 * Returns 0 if the object keeps no inline values (its attributes, if any, are in a dict). */
typedef int (*memxx_attr_visit_fn)(PyObject *name, PyObject *value, void *arg);
int memxx_visit_inline_attributes(PyObject *obj, memxx_attr_visit_fn visit, void *arg);

/* The instance __dict__ if it already exists, else NULL (borrowed; never creates it). */
PyObject *memxx_existing_instance_dict(PyObject *obj);

/* The bytes from `at` (page-aligned, `length` bytes mapped) that are one of pymalloc's arenas,
 * told by the header of its first pool; 0 when `at` does not start one. Reads memory only. */
size_t memxx_pymalloc_arena_at(const void *at, size_t length);

#ifdef __cplusplus
}
#endif

#endif /* MEMXX_PY_COMPAT_OBJECTS_H */

/* The interpreter's internal headers, for the compat layer.
 * Included by the compat layer's .c files only (core/py_compat_*.c): nothing else includes an
 * internal header. */
#ifndef MEMXX_PY_COMPAT_INTERNAL_H
#define MEMXX_PY_COMPAT_INTERNAL_H

/* The internal headers expect Py_BUILD_CORE before Python.h is first included. */
#define Py_BUILD_CORE 1
#include "core/py_compat.h"

#if PY_VERSION_HEX >= 0x030D0000
#include <internal/pycore_ceval.h> /* _PY_EVAL_EVENTS_MASK: the eval breaker's event bits */
#endif
#include <internal/pycore_dict.h>
#include <internal/pycore_frame.h>
#include <internal/pycore_gc.h>
#include <internal/pycore_interp.h>
#include <internal/pycore_object.h>
#include <internal/pycore_runtime.h>
#if PY_VERSION_HEX >= 0x030E0000
/* 3.14 moved the interpreter frame's helpers and the generator's layout out of pycore_frame.h. */
#include <internal/pycore_genobject.h>
#include <internal/pycore_interpframe.h>
#endif

#endif /* MEMXX_PY_COMPAT_INTERNAL_H */

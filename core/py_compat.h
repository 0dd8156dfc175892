/* The compat layer: every CPython-version difference and every read of interpreter internals
 * that core and gc_walker depend on, behind named helpers, one file pair per interpreter area,
 * each the only home of its area:
 *   py_compat_frames.c/.h     threads, frames, code objects, teardowns, sys.monitoring's ints
 *   py_compat_teardown.h      the teardown record (plain C: the line ledger keeps it)
 *   py_compat_gc.c/.h         the collector's lists (the heap walk)
 *   py_compat_objects.c/.h    object layout: pre-headers, inline attribute values, immortality,
 *                             pymalloc's arenas
 *   py_compat_reftracer.c/.h  the reference tracer (object events) beside tracemalloc's
 *   py_compat_offsets.c/.h    the private offsets above, checked at import against the
 *                             interpreter's own _Py_DebugOffsets
 *   py_compat_internal.h      the interpreter's internal headers, for the .c files above only
 * The rest of the code includes this header, has no PY_VERSION_HEX and includes no internal
 * header. Each helper says whether it needs the GIL; the ones the allocator hook calls create no
 * object and take no lock. The internals read are those of the GIL builds of CPython 3.11-3.15,
 * each tested; the top-level CMakeLists.txt refuses any other interpreter at configure. */
#ifndef MEMXX_PY_COMPAT_H
#define MEMXX_PY_COMPAT_H

#include "core/py_compat_frames.h"
#include "core/py_compat_gc.h"
#include "core/py_compat_objects.h"
#include "core/py_compat_offsets.h"
#include "core/py_compat_reftracer.h"

#endif /* MEMXX_PY_COMPAT_H */

/* The compat layer's reference-tracer area (core/py_compat_reftracer.h): the interpreter's
 * object events (PyRefTracer, 3.13+), chained with the tracer set before ours (tracemalloc's). */
#include "core/py_compat_internal.h"

#if PY_VERSION_HEX >= 0x030D0000
static memxx_object_event_fn g_created = NULL;
static memxx_object_event_fn g_destroyed = NULL;
/* The tracer that was installed before ours, called after ours: 3.13's tracemalloc leaves its
   own in place after tracemalloc.stop() (it then does nothing), and a tool still tracing must go
   on hearing its events. */
static PyRefTracer g_previous = NULL;
static void *g_previous_data = NULL;

/* Set while an event runs here: a tracer that went on top of ours and calls it, then found
   itself under ours after a re-install, would otherwise call us back without end. */
static _Thread_local int t_in_event = 0;

static int object_event(PyObject *obj, PyRefTracerEvent event, void *data) {
    (void)data;
#if PY_VERSION_HEX >= 0x030F0000
    /* 3.15 tells a tracer that another replaced it (no object): nothing to record or pass on. */
    if (event == PyRefTracer_TRACKER_REMOVED) {
        return 0;
    }
#endif
    if (t_in_event) {
        return 0;
    }
    t_in_event = 1;
    if (event == PyRefTracer_CREATE) {
        g_created(obj);
    } else {
        g_destroyed(obj);
    }
    const int status = g_previous != NULL ? g_previous(obj, event, g_previous_data) : 0;
    t_in_event = 0;
    return status;
}
#endif

int memxx_object_events_install(memxx_object_event_fn created, memxx_object_event_fn destroyed) {
#if PY_VERSION_HEX >= 0x030D0000
    void *data = NULL;
    PyRefTracer current = PyRefTracer_GetTracer(&data);
    g_created = created;
    g_destroyed = destroyed;
    if (current != object_event) {
        g_previous = current;
        g_previous_data = data;
    }
    return PyRefTracer_SetTracer(object_event, NULL) == 0;
#else
    (void)created;
    (void)destroyed;
    return 0;
#endif
}

int memxx_object_events_reclaim(void) {
#if PY_VERSION_HEX >= 0x030D0000
    if (g_created == NULL) {
        return 0;
    }
    void *data = NULL;
    if (PyRefTracer_GetTracer(&data) == object_event) {
        return 1;
    }
    return memxx_object_events_install(g_created, g_destroyed);
#else
    return 0;
#endif
}

void memxx_object_events_remove(void) {
#if PY_VERSION_HEX >= 0x030D0000
    void *data = NULL;
    if (PyRefTracer_GetTracer(&data) == object_event) {
        PyRefTracer_SetTracer(g_previous, g_previous_data);
        g_previous = NULL;
        g_previous_data = NULL;
    }
#endif
}

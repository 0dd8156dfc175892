/* CPython-version differences of the heap walker. The only gc_walker file that reads
 * interpreter internals (the collector's generation lists and 3.11+ inline attribute values). */
/* The internal headers expect Py_BUILD_CORE before Python.h is first included. */
#define Py_BUILD_CORE 1
#include "gc_walker/gc_compat.h"

#include <internal/pycore_dict.h>
#include <internal/pycore_frame.h>
#include <internal/pycore_gc.h>
#include <internal/pycore_interp.h>
#include <internal/pycore_object.h>

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

int memxx_gc_visit_tracked(memxx_gc_visit_fn visit, void *arg) {
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

Py_ssize_t memxx_gc_tracked_count(void) {
    PyGC_Head *heads[NUM_GENERATIONS + 1];
    int n = gc_list_heads(heads, NUM_GENERATIONS + 1);
    Py_ssize_t count = 0;
    for (int i = 0; i < n; i++) {
        for (PyGC_Head *g = gc_next(heads[i]); g != heads[i]; g = gc_next(g)) {
            count++;
        }
    }
    return count;
}

/* The inline values of an instance whose attributes are not (yet) in a dict object, or NULL. */
static PyDictValues *inline_values(PyObject *obj) {
    PyTypeObject *tp = Py_TYPE(obj);
    if (!(tp->tp_flags & Py_TPFLAGS_MANAGED_DICT)) {
        return NULL;
    }
#if PY_VERSION_HEX >= 0x030D0000
    if (!(tp->tp_flags & Py_TPFLAGS_INLINE_VALUES)) {
        return NULL;
    }
    PyDictValues *values = _PyObject_InlineValues(obj);
    return values->valid ? values : NULL;
#elif PY_VERSION_HEX >= 0x030C0000
    PyDictOrValues dorv = *_PyObject_DictOrValuesPointer(obj);
    return _PyDictOrValues_IsValues(dorv) ? _PyDictOrValues_GetValues(dorv) : NULL;
#else
    return *_PyObject_ValuesPointer(obj);
#endif
}

int memxx_visit_inline_attributes(PyObject *obj, memxx_attr_visit_fn visit, void *arg) {
    PyDictValues *values = inline_values(obj);
    if (values == NULL) {
        return 0;
    }
    PyDictKeysObject *keys = ((PyHeapTypeObject *)Py_TYPE(obj))->ht_cached_keys;
    if (keys == NULL) {
        return 0;
    }
    PyDictUnicodeEntry *entries = DK_UNICODE_ENTRIES(keys);
    for (Py_ssize_t i = 0; i < keys->dk_nentries; i++) {
        PyObject *value = values->values[i];
        if (value != NULL && entries[i].me_key != NULL) {
            if (visit(entries[i].me_key, value, arg)) {
                break;
            }
        }
    }
    return 1;
}

PyObject *memxx_existing_instance_dict(PyObject *obj) {
    PyTypeObject *tp = Py_TYPE(obj);
    if (tp->tp_flags & Py_TPFLAGS_MANAGED_DICT) {
        if (inline_values(obj) != NULL) {
            return NULL;
        }
#if PY_VERSION_HEX >= 0x030D0000
        return (PyObject *)_PyObject_ManagedDictPointer(obj)->dict;
#elif PY_VERSION_HEX >= 0x030C0000
        return _PyObject_DictOrValuesPointer(obj)->dict;
#else
        return *_PyObject_ManagedDictPointer(obj);
#endif
    }
    if (tp->tp_dictoffset > 0) {
        return *(PyObject **)((char *)obj + tp->tp_dictoffset);
    }
    return NULL;
}

int memxx_is_immortal(PyObject *obj) {
#if PY_VERSION_HEX >= 0x030C0000
    return _Py_IsImmortal(obj);
#else
    (void)obj;
    return 0;
#endif
}

size_t memxx_getsizeof_overhead(PyObject *obj) {
#if PY_VERSION_HEX >= 0x030D0000
    /* 3.13 counts no header for static types (they are not allocated). */
    if (PyType_Check(obj) && !(((PyTypeObject *)obj)->tp_flags & Py_TPFLAGS_HEAPTYPE)) {
        return 0;
    }
#endif
    return _PyType_PreHeaderSize(Py_TYPE(obj));
}

static _PyInterpreterFrame *top_frame(PyThreadState *tstate) {
#if PY_VERSION_HEX >= 0x030D0000
    return tstate->current_frame;
#else
    return tstate->cframe->current_frame;
#endif
}

static PyCodeObject *frame_code(_PyInterpreterFrame *frame) {
#if PY_VERSION_HEX >= 0x030C0000
    if (frame->owner == FRAME_OWNED_BY_CSTACK) {
        return NULL;
    }
#endif
#if PY_VERSION_HEX >= 0x030D0000
    if (!PyCode_Check(frame->f_executable)) {
        return NULL;
    }
#endif
    if (_PyFrame_IsIncomplete(frame)) {
        return NULL;
    }
#if PY_VERSION_HEX >= 0x030D0000
    return (PyCodeObject *)frame->f_executable;
#else
    return frame->f_code;
#endif
}

int memxx_visit_frame_slots(memxx_frame_slot_fn visit, void *arg) {
    PyInterpreterState *interp = PyInterpreterState_Get();
    for (PyThreadState *t = PyInterpreterState_ThreadHead(interp); t != NULL;
         t = PyThreadState_Next(t)) {
        int depth = 0;
        for (_PyInterpreterFrame *f = top_frame(t); f != NULL; f = f->previous) {
            PyCodeObject *code = frame_code(f);
            if (code == NULL) {
                continue;
            }
            if (visit(t->thread_id, depth, (PyObject *)code, NULL, NULL, arg)) {
                return 1;
            }
            /* Only the named slots: the value stack's extent is not saved while a frame runs. */
            for (int i = 0; i < code->co_nlocalsplus; i++) {
                PyObject *value = f->localsplus[i];
                if (value != NULL &&
                    visit(t->thread_id, depth, (PyObject *)code,
                          PyTuple_GET_ITEM(code->co_localsplusnames, i), value, arg)) {
                    return 1;
                }
            }
            depth++;
        }
    }
    return 0;
}

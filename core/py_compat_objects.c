/* The compat layer's object-layout area (core/py_compat_objects.h): pre-headers, inline
 * attribute values, managed dicts, immortality, pymalloc's arenas. */
#include "core/py_compat_internal.h"

#include <sys/mman.h>
#include <unistd.h>

size_t memxx_object_preheader_bytes(PyTypeObject *type) { return _PyType_PreHeaderSize(type); }

const void *memxx_object_block_start(PyObject *obj) {
    return (const char *)obj - memxx_object_preheader_bytes(Py_TYPE(obj));
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
#if PY_VERSION_HEX >= 0x030D0000
        /* 3.13+: a dict made from inline values shares them, which stay valid; the object
         * refers to that dict (3.14's traverse visits it). */
        return (PyObject *)_PyObject_ManagedDictPointer(obj)->dict;
#else
        if (inline_values(obj) != NULL) {
            return NULL;
        }
#if PY_VERSION_HEX >= 0x030C0000
        return _PyObject_DictOrValuesPointer(obj)->dict;
#else
        return *_PyObject_ManagedDictPointer(obj);
#endif
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
    return memxx_object_preheader_bytes(Py_TYPE(obj));
}

/* pymalloc (Objects/obmalloc.c, 3.11-3.13 on 64-bit): 1 MiB arenas of 16 KiB pools, size classes
 * of 16 bytes up to 512; an arena's first pool starts at its first 16 KiB boundary and is taken
 * as soon as the arena is made. */
/* Reads the first words of a mapping someone else made (under ASan, its allocator's own). */
__attribute__((no_sanitize("address"))) size_t memxx_pymalloc_arena_at(const void *at,
                                                                       size_t length) {
    enum { kArena = 1 << 20, kPool = 1 << 14, kAlignment = 16, kClasses = 512 / 16 };
    struct pool_header_view {
        void *ref;
        void *freeblock;
        void *nextpool;
        void *prevpool;
        unsigned int arenaindex;
        unsigned int szidx;
        unsigned int nextoffset;
        unsigned int maxnextoffset;
    };
    const uintptr_t begin = (uintptr_t)at;
    const uintptr_t pool = (begin + kPool - 1) & ~(uintptr_t)(kPool - 1);
    if (length < kArena || pool + sizeof(struct pool_header_view) > begin + length) {
        return 0;
    }
    /* A page never written holds no header; reading it would map the zero page in, which
     * mincore then reports as resident. */
    unsigned char resident = 0;
    if (mincore((void *)(pool & ~(uintptr_t)(sysconf(_SC_PAGESIZE) - 1)), 1, &resident) != 0 ||
        (resident & 1) == 0) {
        return 0;
    }
    const struct pool_header_view *header = (const struct pool_header_view *)pool;
    const unsigned int size = (header->szidx + 1) * kAlignment;
    const int looks_like_a_pool =
        header->szidx < kClasses && header->maxnextoffset == kPool - size &&
        header->nextoffset <= kPool && header->nextoffset % kAlignment == 0;
    return looks_like_a_pool ? kArena : 0;
}

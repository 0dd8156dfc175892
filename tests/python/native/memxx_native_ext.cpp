// A C++ extension module for the native-memory tests: allocates known sizes through every
// function the native hooks redirect, from the calling thread or a thread of its own.
// Built by tests/python/_native.py; addresses travel to Python as ints.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <malloc.h>
#include <pthread.h>
#include <string>
#include <sys/mman.h>
#include <unistd.h>

namespace {

void *volatile g_escape = nullptr;

void *allocate(const std::string &kind, std::size_t size) {
    void *p = nullptr;
    if (kind == "malloc") {
        p = std::malloc(size);
    } else if (kind == "calloc") {
        p = std::calloc(size / 8, 8);
    } else if (kind == "realloc") {
        p = std::realloc(nullptr, size);
    } else if (kind == "reallocarray") {
        p = reallocarray(nullptr, size / 8, 8);
    } else if (kind == "posix_memalign") {
        if (posix_memalign(&p, 64, size) != 0) {
            p = nullptr;
        }
    } else if (kind == "aligned_alloc") {
        p = aligned_alloc(64, size);
    } else if (kind == "memalign") {
        p = memalign(64, size);
    } else if (kind == "valloc") {
        p = valloc(size);
    } else if (kind == "pvalloc") {
        p = pvalloc(size);
    } else if (kind == "mmap") {
        p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        p = p == MAP_FAILED ? nullptr : p;
    } else if (kind == "mmap64") {
        p = mmap64(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        p = p == MAP_FAILED ? nullptr : p;
    } else if (kind == "new") {
        p = new char[size];
    }
    if (p != nullptr) {
        std::memset(p, 1, size);
    }
    return p;
}

void release(const std::string &kind, void *p, std::size_t size) {
    if (kind == "mmap" || kind == "mmap64") {
        munmap(p, size);
    } else if (kind == "new") {
        delete[] static_cast<char *>(p);
    } else {
        std::free(p);
    }
}

PyObject *py_alloc(PyObject *, PyObject *args) {
    const char *kind;
    Py_ssize_t size;
    if (!PyArg_ParseTuple(args, "sn", &kind, &size)) {
        return nullptr;
    }
    void *p = allocate(kind, static_cast<std::size_t>(size));
    if (p == nullptr) {
        return PyErr_Format(PyExc_MemoryError, "%s(%zd) failed", kind, size);
    }
    return PyLong_FromVoidPtr(p);
}

PyObject *py_release(PyObject *, PyObject *args) {
    const char *kind;
    PyObject *address;
    Py_ssize_t size;
    if (!PyArg_ParseTuple(args, "sOn", &kind, &address, &size)) {
        return nullptr;
    }
    release(kind, PyLong_AsVoidPtr(address), static_cast<std::size_t>(size));
    Py_RETURN_NONE;
}

// realloc / reallocarray / mremap of a block to a new size; returns the new address.
PyObject *py_resize(PyObject *, PyObject *args) {
    const char *kind;
    PyObject *address;
    Py_ssize_t old_size, new_size;
    if (!PyArg_ParseTuple(args, "sOnn", &kind, &address, &old_size, &new_size)) {
        return nullptr;
    }
    void *p = PyLong_AsVoidPtr(address);
    void *q = nullptr;
    if (std::strcmp(kind, "realloc") == 0) {
        q = std::realloc(p, static_cast<std::size_t>(new_size));
    } else if (std::strcmp(kind, "reallocarray") == 0) {
        q = reallocarray(p, static_cast<std::size_t>(new_size) / 8, 8);
    } else if (std::strcmp(kind, "mremap") == 0) {
        q = mremap(p, static_cast<std::size_t>(old_size), static_cast<std::size_t>(new_size),
                   MREMAP_MAYMOVE);
        q = q == MAP_FAILED ? nullptr : q;
        if (q != nullptr && new_size > old_size) { // the growth is used, as a grown buffer is
            std::memset(static_cast<char *>(q) + old_size, 4,
                        static_cast<std::size_t>(new_size - old_size));
        }
    }
    if (q == nullptr) {
        return PyErr_Format(PyExc_MemoryError, "%s failed", kind);
    }
    return PyLong_FromVoidPtr(q);
}

// A reservation, as embedded allocators make one: mmap(MAP_NORESERVE), not touched.
PyObject *py_reserve(PyObject *, PyObject *args) {
    Py_ssize_t length;
    if (!PyArg_ParseTuple(args, "n", &length)) {
        return nullptr;
    }
    void *p = mmap(nullptr, static_cast<std::size_t>(length), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        return PyErr_Format(PyExc_MemoryError, "mmap(%zd) failed", length);
    }
    return PyLong_FromVoidPtr(p);
}

// Writes to [address + offset, address + offset + length): the pages become resident.
PyObject *py_touch(PyObject *, PyObject *args) {
    PyObject *address;
    Py_ssize_t offset, length;
    if (!PyArg_ParseTuple(args, "Onn", &address, &offset, &length)) {
        return nullptr;
    }
    std::memset(static_cast<char *>(PyLong_AsVoidPtr(address)) + offset, 5,
                static_cast<std::size_t>(length));
    Py_RETURN_NONE;
}

// madvise(advice) of [address + offset, address + offset + length); advice "dontneed" or "free".
PyObject *py_advise(PyObject *, PyObject *args) {
    PyObject *address;
    Py_ssize_t offset, length;
    const char *advice;
    if (!PyArg_ParseTuple(args, "Onns", &address, &offset, &length, &advice)) {
        return nullptr;
    }
    const int code = std::strcmp(advice, "free") == 0 ? MADV_FREE : MADV_DONTNEED;
    if (madvise(static_cast<char *>(PyLong_AsVoidPtr(address)) + offset,
                static_cast<std::size_t>(length), code) != 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

// munmap of part of a mapping: [address + offset, address + offset + length).
PyObject *py_unmap_part(PyObject *, PyObject *args) {
    PyObject *address;
    Py_ssize_t offset, length;
    if (!PyArg_ParseTuple(args, "Onn", &address, &offset, &length)) {
        return nullptr;
    }
    munmap(static_cast<char *>(PyLong_AsVoidPtr(address)) + offset,
           static_cast<std::size_t>(length));
    Py_RETURN_NONE;
}

// A file-backed mapping of /dev/zero's neighbour: a real file (the module's own), not counted.
PyObject *py_map_file(PyObject *, PyObject *args) {
    const char *path;
    Py_ssize_t length;
    if (!PyArg_ParseTuple(args, "sn", &path, &length)) {
        return nullptr;
    }
    FILE *file = std::fopen(path, "rb");
    if (file == nullptr) {
        return PyErr_SetFromErrnoWithFilename(PyExc_OSError, path);
    }
    void *p =
        mmap(nullptr, static_cast<std::size_t>(length), PROT_READ, MAP_PRIVATE, fileno(file), 0);
    std::fclose(file);
    if (p == MAP_FAILED) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromVoidPtr(p);
}

struct ThreadJob {
    std::size_t size;
    void *result;
};

void *thread_body(void *arg) {
    auto *job = static_cast<ThreadJob *>(arg);
    job->result = std::malloc(job->size);
    std::memset(job->result, 2, job->size);
    return nullptr;
}

// malloc(size) on a thread of the extension's own (joined before returning).
PyObject *py_thread_alloc(PyObject *, PyObject *args) {
    Py_ssize_t size;
    if (!PyArg_ParseTuple(args, "n", &size)) {
        return nullptr;
    }
    ThreadJob job{static_cast<std::size_t>(size), nullptr};
    pthread_t thread;
    Py_BEGIN_ALLOW_THREADS;
    pthread_create(&thread, nullptr, thread_body, &job);
    pthread_join(thread, nullptr);
    Py_END_ALLOW_THREADS;
    return PyLong_FromVoidPtr(job.result);
}

// A temporary: malloc(size), touched, freed, all inside the call.
PyObject *py_temporary(PyObject *, PyObject *args) {
    Py_ssize_t size;
    if (!PyArg_ParseTuple(args, "n", &size)) {
        return nullptr;
    }
    void *p = std::malloc(static_cast<std::size_t>(size));
    std::memset(p, 3, static_cast<std::size_t>(size));
    g_escape = p; // else the compiler may drop the malloc/free pair altogether
    std::free(p);
    Py_RETURN_NONE;
}

// `pairs` malloc/free pairs of mixed sizes (16 B .. 4 KiB), 32 blocks live at a time; the GIL is
// released when `release_gil` (a GIL-free native thread's churn).
PyObject *py_churn(PyObject *, PyObject *args) {
    Py_ssize_t pairs;
    int release_gil = 0;
    if (!PyArg_ParseTuple(args, "n|p", &pairs, &release_gil)) {
        return nullptr;
    }
    void *live[32] = {};
    std::uint64_t sum = 0;
    PyThreadState *state = release_gil ? PyEval_SaveThread() : nullptr;
    for (Py_ssize_t i = 0; i < pairs; ++i) {
        const std::size_t slot = static_cast<std::size_t>(i) & 31;
        std::free(live[slot]);
        const std::size_t size = 16 + ((static_cast<std::size_t>(i) * 2654435761u) & 4095);
        live[slot] = std::malloc(size);
        static_cast<char *>(live[slot])[0] = 1;
        sum += reinterpret_cast<std::uintptr_t>(live[slot]) & 1;
    }
    for (void *p : live) {
        std::free(p);
    }
    if (state != nullptr) {
        PyEval_RestoreThread(state);
    }
    return PyLong_FromUnsignedLongLong(sum);
}

PyMethodDef g_methods[] = {
    {"alloc", py_alloc, METH_VARARGS, "alloc(kind, size) -> address"},
    {"release", py_release, METH_VARARGS, "release(kind, address, size)"},
    {"resize", py_resize, METH_VARARGS, "resize(kind, address, old_size, new_size) -> address"},
    {"unmap_part", py_unmap_part, METH_VARARGS, "unmap_part(address, offset, length)"},
    {"reserve", py_reserve, METH_VARARGS, "reserve(length) -> address (MAP_NORESERVE, untouched)"},
    {"touch", py_touch, METH_VARARGS, "touch(address, offset, length)"},
    {"advise", py_advise, METH_VARARGS, "advise(address, offset, length, 'dontneed'|'free')"},
    {"map_file", py_map_file, METH_VARARGS, "map_file(path, length) -> address"},
    {"thread_alloc", py_thread_alloc, METH_VARARGS, "thread_alloc(size) -> address"},
    {"temporary", py_temporary, METH_VARARGS, "temporary(size)"},
    {"churn", py_churn, METH_VARARGS, "churn(pairs, release_gil=False)"},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef g_module = {PyModuleDef_HEAD_INIT, "memxx_native_ext", nullptr, -1, g_methods,
                        nullptr, nullptr, nullptr, nullptr};

} // namespace

PyMODINIT_FUNC PyInit_memxx_native_ext() { return PyModule_Create(&g_module); }

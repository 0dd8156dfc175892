// numpy's data allocator (PyDataMem_Handler, numpy >= 1.22) as a source of allocations: our
// handler becomes the current context's while a thread is profiled, and passes each call on to
// the handler it replaced.
#include <Python.h>

#include <cstdint>
#include <cstring>
#include <malloc.h>

#include "core/alloc_accounting.hpp"
#include "core/alloc_hook.hpp"

namespace memxx::core {

namespace {

using namespace accounting;

// numpy's PyDataMem_Handler, version 1 (numpy/ndarraytypes.h); its layout is part of numpy's ABI.
struct NumpyAllocator {
    void *ctx;
    void *(*malloc)(void *ctx, std::size_t size);
    void *(*calloc)(void *ctx, std::size_t count, std::size_t elsize);
    void *(*realloc)(void *ctx, void *address, std::size_t size);
    void (*free)(void *ctx, void *address, std::size_t size);
};
struct NumpyHandler {
    char name[127];
    std::uint8_t version;
    NumpyAllocator allocator;
};
// Slots of numpy's C-API table (stable across numpy 1.22 - 2.x).
constexpr int kApiFeatureVersion = 211;
constexpr int kApiSetHandler = 304;
constexpr int kApiGetHandler = 305;
constexpr unsigned kNumpy122FeatureVersion = 0x0f;

NumpyAllocator g_numpy_previous{};
bool g_numpy_previous_is_malloc = false;
PyObject *g_numpy_capsule = nullptr;
PyObject *(*g_numpy_set_handler)(PyObject *) = nullptr;
PyObject *(*g_numpy_get_handler)() = nullptr;

void *numpy_malloc(void *, std::size_t size) noexcept {
    const NumpyAllocator &prev = g_numpy_previous;
    if (!counting()) {
        return prev.malloc(prev.ctx, size);
    }
    return alloc_counted(size, Source::python, Guard::none,
                         [&] { return prev.malloc(prev.ctx, size); });
}

void *numpy_calloc(void *, std::size_t count, std::size_t elsize) noexcept {
    const NumpyAllocator &prev = g_numpy_previous;
    if (!counting()) {
        return prev.calloc(prev.ctx, count, elsize);
    }
    return alloc_counted(count * elsize, Source::python, Guard::none,
                         [&] { return prev.calloc(prev.ctx, count, elsize); });
}

// numpy's default handler is plain malloc: glibc knows the size of a block from before
// profiling. Under another handler it cannot be known.
struct NumpyOldSize {
    std::size_t size = kNoSize;
    void before(void *address) noexcept {
        size = g_numpy_previous_is_malloc ? malloc_usable_size(address) : kNoSize;
    }
    std::size_t after(std::size_t) const noexcept { return size; }
};

void *numpy_realloc(void *, void *address, std::size_t size) noexcept {
    const NumpyAllocator &prev = g_numpy_previous;
    if (!counting()) {
        return prev.realloc(prev.ctx, address, size);
    }
    return realloc_counted(
        address, size, Source::python, Guard::none,
        [&prev](void *block, std::size_t bytes) { return prev.realloc(prev.ctx, block, bytes); },
        NumpyOldSize{});
}

void numpy_free(void *, void *address, std::size_t size) noexcept {
    const NumpyAllocator &prev = g_numpy_previous;
    if (address == nullptr || !counting()) {
        prev.free(prev.ctx, address, size);
        return;
    }
    free_counted(address, Source::python, Guard::none, [&] { prev.free(prev.ctx, address, size); });
}

NumpyHandler g_numpy_handler = {
    "memory_profilerxx", 1, {nullptr, numpy_malloc, numpy_calloc, numpy_realloc, numpy_free}};

// numpy is imported but its arrays cannot be counted: said once per process, in one line on
// stderr, with the error that stopped us (then cleared: profiling goes on without numpy).
bool numpy_not_counted(const char *why) {
    static bool said = false;
    PyObject *type = nullptr;
    PyObject *value = nullptr;
    PyObject *traceback = nullptr;
    PyErr_Fetch(&type, &value, &traceback);
    if (!said) {
        said = true;
        if (value != nullptr) {
            PySys_FormatStderr("memory_profilerxx: numpy's arrays are not counted: %s (%S)\n",
                               why, value);
        } else {
            PySys_FormatStderr("memory_profilerxx: numpy's arrays are not counted: %s\n", why);
        }
    }
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(traceback);
    return false;
}

bool numpy_bind() {
    if (g_numpy_capsule != nullptr) {
        return true;
    }
    PyObject *modules = PyImport_GetModuleDict(); // borrowed
    PyObject *umath = PyDict_GetItemString(modules, "numpy._core._multiarray_umath");
    if (umath == nullptr) {
        umath = PyDict_GetItemString(modules, "numpy.core._multiarray_umath");
    }
    if (umath == nullptr) {
        return false; // numpy is not imported: nothing to hook
    }
    PyObject *api_capsule = PyObject_GetAttrString(umath, "_ARRAY_API");
    if (api_capsule == nullptr) {
        return numpy_not_counted("its C API table (_ARRAY_API) cannot be read");
    }
    auto **api = static_cast<void **>(PyCapsule_GetPointer(api_capsule, nullptr));
    Py_DECREF(api_capsule); // the table is static in numpy, which is never unloaded
    if (api == nullptr) {
        return numpy_not_counted("its C API table (_ARRAY_API) is not a capsule");
    }
    auto feature_version = reinterpret_cast<unsigned (*)()>(api[kApiFeatureVersion]);
    if (feature_version() < kNumpy122FeatureVersion) {
        return numpy_not_counted("numpy 1.22 or later is needed (its allocator handler API)");
    }
    g_numpy_set_handler = reinterpret_cast<PyObject *(*)(PyObject *)>(api[kApiSetHandler]);
    g_numpy_get_handler = reinterpret_cast<PyObject *(*)()>(api[kApiGetHandler]);
    PyObject *current = g_numpy_get_handler();
    if (current == nullptr) {
        return numpy_not_counted("its current allocator handler cannot be read");
    }
    auto *handler = static_cast<NumpyHandler *>(PyCapsule_GetPointer(current, "mem_handler"));
    if (handler == nullptr) {
        Py_DECREF(current);
        return numpy_not_counted("its current allocator handler is not a mem_handler capsule");
    }
    g_numpy_previous = handler->allocator;
    g_numpy_previous_is_malloc = std::strcmp(handler->name, "default_allocator") == 0;
    // Keep the previous handler alive for good: arrays made with ours free through it forever.
    g_numpy_capsule = PyCapsule_New(&g_numpy_handler, "mem_handler", nullptr);
    if (g_numpy_capsule == nullptr) {
        Py_DECREF(current);
        return numpy_not_counted("our allocator handler could not be made");
    }
    return true;
}

} // namespace

void *numpy_install_handler() {
    if (!numpy_bind()) {
        return nullptr;
    }
    PyObject *previous = g_numpy_set_handler(g_numpy_capsule);
    if (previous == nullptr) {
        numpy_not_counted("numpy refused our allocator handler");
    }
    return previous;
}

void numpy_restore_handler(void *previous) {
    if (previous == nullptr || g_numpy_set_handler == nullptr) {
        return;
    }
    PyObject *ours = g_numpy_set_handler(static_cast<PyObject *>(previous));
    Py_XDECREF(ours);
    Py_DECREF(static_cast<PyObject *>(previous));
}

} // namespace memxx::core

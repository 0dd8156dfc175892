#include "core/thread_exit.hpp"

#include <Python.h>
#include <pythread.h>

#include "core/alloc_accounting.hpp"

namespace memxx::core {

namespace {

// The thread state the calling thread's watch was set on (a state is recreated on the same
// thread by each PyGILState_Ensure of a native thread: the watch goes with the state).
MEMXX_TLS const PyThreadState *t_watched_state = nullptr;

constexpr const char *kCapsuleName = "memory_profilerxx.thread_exit";

struct ExitWatch {
    unsigned long thread;
    void (*on_exit)();
};

// The capsule lives in the thread state's dict, which the interpreter clears when the state
// ends. The interpreter also clears other threads' states (at finalisation, in a forked child):
// then the capsule dies on another thread, whose ledger is not the one meant, and nothing runs.
void capsule_ended(PyObject *capsule) {
    auto *watch = static_cast<ExitWatch *>(PyCapsule_GetPointer(capsule, kCapsuleName));
    if (watch == nullptr) {
        PyErr_Clear();
        return;
    }
    if (watch->thread == PyThread_get_thread_ident()) {
        t_watched_state = nullptr;
        watch->on_exit();
    }
    PyMem_RawFree(watch);
}

} // namespace

bool watch_thread_exit(void (*on_exit)()) {
    PyThreadState *state = PyThreadState_Get();
    if (t_watched_state == state) {
        return true;
    }
    // Made uncounted: the watch is the profiler's, not the profiled line's.
    accounting::ReentrancyGuard uncounted;
    PyObject *dict = PyThreadState_GetDict();
    if (dict == nullptr) {
        return false;
    }
    if (PyDict_GetItemString(dict, kCapsuleName) == nullptr) {
        auto *watch = static_cast<ExitWatch *>(PyMem_RawMalloc(sizeof(ExitWatch)));
        if (watch == nullptr) {
            return false;
        }
        *watch = ExitWatch{PyThread_get_thread_ident(), on_exit};
        PyObject *capsule = PyCapsule_New(watch, kCapsuleName, capsule_ended);
        if (capsule == nullptr) {
            PyMem_RawFree(watch);
            PyErr_Clear();
            return false;
        }
        const int stored = PyDict_SetItemString(dict, kCapsuleName, capsule);
        if (stored != 0) {
            PyCapsule_SetDestructor(capsule, nullptr); // not the state's end: nothing to run
            PyMem_RawFree(watch);
        }
        Py_DECREF(capsule); // the dict holds it
        if (stored != 0) {
            PyErr_Clear();
            return false;
        }
    }
    t_watched_state = state;
    return true;
}

} // namespace memxx::core

#include "core/alloc_hook.hpp"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <malloc.h>
#include <new>
#include <pthread.h>

#include "core/alloc_sites.hpp"
#include "core/live_blocks.hpp"
#include "core/py_compat.h"
#include "core/spin_lock.hpp"
#include "core/thread_local.hpp"

namespace memxx::core {

namespace {

MEMXX_TLS ThreadLedger *t_ledger = nullptr;
MEMXX_TLS bool t_in_hook = false;
// A realloc of a block the table does not know asks the nested RAW call for the old size.
MEMXX_TLS const void *t_probe_address = nullptr;
MEMXX_TLS std::size_t t_probe_size = 0;

constexpr std::size_t kNoSize = SIZE_MAX;
// pymalloc serves requests up to this size itself; larger ones go to the RAW domain.
constexpr std::size_t kSmallRequest = 512;

SpinLock g_lock;
LiveBlocks *g_blocks = nullptr; // created once, never freed: hooks may still run at exit
std::atomic<bool> g_active{false};
int g_sessions = 0;            // profiled threads; changed with the GIL held
bool g_sites_attached = false; // allocation-site tracking wants the hooks; GIL held
bool g_usable_size_ok = false; // RAW blocks are plain glibc blocks (no debug hooks)

class ReentrancyGuard {
  public:
    ReentrancyGuard() noexcept { t_in_hook = true; }
    ~ReentrancyGuard() { t_in_hook = false; }
    ReentrancyGuard(const ReentrancyGuard &) = delete;
    ReentrancyGuard &operator=(const ReentrancyGuard &) = delete;
};

// --- what the hooks record --------------------------------------------------------------------

void record_alloc(void *address, std::size_t size) noexcept {
    ThreadLedger *ledger = t_ledger;
    if (ledger == nullptr) {
        return;
    }
    bool tracked;
    {
        SpinLockGuard guard(g_lock);
        tracked = g_blocks->insert(address, size);
    }
    if (tracked) {
        ledger->on_alloc(size);
    }
}

// Called before the real free: another thread could get the same address back in between.
void record_free(void *address) noexcept {
    std::size_t size;
    bool known;
    {
        SpinLockGuard guard(g_lock);
        known = g_blocks->erase(address, &size);
    }
    ThreadLedger *ledger = t_ledger;
    if (known && ledger != nullptr) {
        ledger->on_free(size);
    }
}

bool take_block(const void *address, std::size_t *size) noexcept {
    SpinLockGuard guard(g_lock);
    return g_blocks->erase(address, size);
}

// After a realloc: the block now at `address` has `size` bytes and replaced one of `old_size`.
void record_resized(void *address, std::size_t size, std::size_t old_size) noexcept {
    ThreadLedger *ledger = t_ledger;
    bool tracked;
    {
        SpinLockGuard guard(g_lock);
        tracked = g_blocks->insert(address, size);
    }
    ledger->on_free(old_size);
    if (tracked) {
        ledger->on_alloc(size);
    }
}

std::size_t raw_block_size(void *address) noexcept {
    return g_usable_size_ok ? malloc_usable_size(address) : kNoSize;
}

// --- the PyMem hooks: every wrapper has the same steps --------------------------------------
// re-entrancy check, call the previous allocator (guarded), record.

enum DomainIndex { kRaw = 0, kMem = 1, kObj = 2, kDomains = 3 };

struct Domain {
    PyMemAllocatorDomain id;
    PyMemAllocatorEx previous;
    PyMemAllocatorEx ours;
    bool installed;
};
Domain g_domains[kDomains];

// PyMem's allocators and numpy's share the malloc and calloc shapes.
template <class Allocator> void *counted_malloc(const Allocator &prev, std::size_t size) noexcept {
    if (t_in_hook || !g_active.load(std::memory_order_relaxed)) {
        return prev.malloc(prev.ctx, size);
    }
    ReentrancyGuard guard;
    void *address = prev.malloc(prev.ctx, size);
    if (address != nullptr) {
        record_alloc(address, size);
    }
    return address;
}

template <class Allocator>
void *counted_calloc(const Allocator &prev, std::size_t count, std::size_t elsize) noexcept {
    if (t_in_hook || !g_active.load(std::memory_order_relaxed)) {
        return prev.calloc(prev.ctx, count, elsize);
    }
    ReentrancyGuard guard;
    void *address = prev.calloc(prev.ctx, count, elsize);
    if (address != nullptr) {
        record_alloc(address, count * elsize);
    }
    return address;
}

// Allocation sites are kept for the OBJ domain only (objects); it is always called with the GIL.
// The check sits after the real call so that the accounting path is unchanged when it is off.
inline bool sites_wanted() noexcept { return !t_in_hook && site_tracking() != SiteTracking::off; }

template <int D> void *hook_malloc(void *, std::size_t size) noexcept {
    void *address = counted_malloc(g_domains[D].previous, size);
    if (D == kObj && address != nullptr && sites_wanted()) {
        ReentrancyGuard guard;
        sites_on_alloc(address);
    }
    return address;
}

template <int D> void *hook_calloc(void *, std::size_t count, std::size_t elsize) noexcept {
    void *address = counted_calloc(g_domains[D].previous, count, elsize);
    if (D == kObj && address != nullptr && sites_wanted()) {
        ReentrancyGuard guard;
        sites_on_alloc(address);
    }
    return address;
}

template <int D> void *accounted_realloc(void *address, std::size_t size) noexcept;

template <int D> void *hook_realloc(void *, void *address, std::size_t size) noexcept {
    if (D != kObj || !sites_wanted()) {
        return accounted_realloc<D>(address, size);
    }
    void *resized = accounted_realloc<D>(address, size);
    if (resized != nullptr) {
        ReentrancyGuard guard;
        sites_on_realloc(address, resized);
    }
    return resized;
}

template <int D> void *accounted_realloc(void *address, std::size_t size) noexcept {
    const PyMemAllocatorEx &prev = g_domains[D].previous;
    if (t_in_hook) {
        if (D == kRaw && address != nullptr && address == t_probe_address) {
            t_probe_size = raw_block_size(address);
        }
        return prev.realloc(prev.ctx, address, size);
    }
    if (!g_active.load(std::memory_order_relaxed)) {
        return prev.realloc(prev.ctx, address, size);
    }
    ReentrancyGuard guard;
    std::size_t old_size = 0;
    const bool known = address != nullptr && take_block(address, &old_size);
    const bool profiled = t_ledger != nullptr;
    bool counted = known || address == nullptr;
    if (!counted && profiled) {
        // A block from before profiling: count only its growth.
        if (D == kRaw) {
            old_size = raw_block_size(address);
        } else {
            t_probe_address = address;
            t_probe_size = kNoSize;
        }
    }
    void *resized = prev.realloc(prev.ctx, address, size);
    if (!counted && profiled) {
        if (D != kRaw) {
            // No nested RAW realloc: pymalloc owned it, so it was at most 512 bytes.
            old_size = t_probe_size != kNoSize ? t_probe_size : std::min(size, kSmallRequest);
            t_probe_address = nullptr;
        }
        counted = old_size != kNoSize;
    }
    if (resized == nullptr) {
        if (known) { // the old block is still there
            SpinLockGuard lock(g_lock);
            g_blocks->insert(address, old_size);
        }
        return resized;
    }
    if (profiled && counted) {
        record_resized(resized, size, old_size);
    }
    return resized;
}

template <int D> void hook_free(void *, void *address) noexcept {
    const PyMemAllocatorEx &prev = g_domains[D].previous;
    if (D == kObj && address != nullptr && sites_wanted()) {
        ReentrancyGuard guard;
        sites_on_free(address); // before the real free, as record_free
    }
    if (t_in_hook || address == nullptr || !g_active.load(std::memory_order_relaxed)) {
        prev.free(prev.ctx, address);
        return;
    }
    ReentrancyGuard guard;
    record_free(address);
    prev.free(prev.ctx, address);
}

template <int D> void init_domain(PyMemAllocatorDomain id) {
    Domain &domain = g_domains[D];
    domain.id = id;
    domain.ours =
        PyMemAllocatorEx{nullptr, hook_malloc<D>, hook_calloc<D>, hook_realloc<D>, hook_free<D>};
}

bool pymalloc_has_debug_hooks() {
    // Debug hooks (PYTHONMALLOC=*debug, -X dev) put a header before RAW blocks.
    const char *env = std::getenv("PYTHONMALLOC");
    if (env != nullptr && std::strstr(env, "debug") != nullptr) {
        return true;
    }
    PyObject *flags = PySys_GetObject("flags"); // borrowed
    if (flags == nullptr) {
        return true;
    }
    PyObject *dev_mode = PyObject_GetAttrString(flags, "dev_mode");
    if (dev_mode == nullptr) {
        PyErr_Clear();
        return true;
    }
    const bool on = PyObject_IsTrue(dev_mode) != 0;
    Py_DECREF(dev_mode);
    return on;
}

void install_hooks() {
    if (g_domains[kRaw].ours.malloc == nullptr) {
        init_domain<kRaw>(PYMEM_DOMAIN_RAW);
        init_domain<kMem>(PYMEM_DOMAIN_MEM);
        init_domain<kObj>(PYMEM_DOMAIN_OBJ);
        g_usable_size_ok = !pymalloc_has_debug_hooks();
    }
    for (Domain &domain : g_domains) {
        if (!domain.installed) {
            // `previous` is set before our functions become visible to other threads.
            PyMem_GetAllocator(domain.id, &domain.previous);
            PyMem_SetAllocator(domain.id, &domain.ours);
            domain.installed = true;
        }
    }
}

void remove_hooks() {
    for (Domain &domain : g_domains) {
        if (!domain.installed) {
            continue;
        }
        PyMemAllocatorEx current;
        PyMem_GetAllocator(domain.id, &current);
        // Another hook (tracemalloc, ...) stacked on top of ours keeps calling us: stay in the
        // chain, passing through, rather than cut it out from under it.
        if (current.malloc == domain.ours.malloc) {
            PyMem_SetAllocator(domain.id, &domain.previous);
            domain.installed = false;
        }
    }
}

// A thread without the GIL (lzma, bz2) may hold the table's lock when another thread forks; the
// child would inherit it held, and its first hooked allocation would spin forever. So the
// forking thread takes the lock across fork() and both sides release it.
void lock_before_fork() noexcept { g_lock.lock(); }
void unlock_after_fork() noexcept { g_lock.unlock(); }

} // namespace

void hook_session_begin() {
    if (g_sessions++ > 0) {
        return;
    }
    static const bool fork_handlers =
        pthread_atfork(lock_before_fork, unlock_after_fork, unlock_after_fork) == 0;
    (void)fork_handlers;
    if (g_blocks == nullptr) {
        void *memory = mi_malloc(sizeof(LiveBlocks));
        g_blocks = new (memory) LiveBlocks();
    }
    install_hooks();
    g_active.store(true, std::memory_order_release);
}

void hook_session_end() {
    if (g_sessions == 0 || --g_sessions > 0) {
        return;
    }
    g_active.store(false, std::memory_order_release);
    {
        // Blocks of this session will be freed unseen: stale entries would be wrong next time.
        SpinLockGuard guard(g_lock);
        g_blocks->clear();
    }
    if (!g_sites_attached) {
        remove_hooks();
    }
}

void hook_sites_attach() {
    g_sites_attached = true;
    install_hooks();
}

void hook_sites_detach() {
    g_sites_attached = false;
    if (g_sessions == 0) {
        remove_hooks();
    }
}

void set_thread_ledger(ThreadLedger *ledger) noexcept { t_ledger = ledger; }

ThreadLedger *thread_ledger() noexcept { return t_ledger; }

HookStats hook_stats() {
    HookStats stats{0, 0, false, g_active.load(std::memory_order_relaxed)};
    for (const Domain &domain : g_domains) {
        stats.installed = stats.installed || domain.installed;
    }
    if (g_blocks != nullptr) {
        SpinLockGuard guard(g_lock);
        stats.live_blocks = g_blocks->count();
        stats.table_bytes = g_blocks->memory_bytes();
    }
    return stats;
}

// --- numpy's data allocator (PyDataMem_Handler, numpy >= 1.22) ------------------------------

namespace {

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
    return counted_malloc(g_numpy_previous, size);
}

void *numpy_calloc(void *, std::size_t count, std::size_t elsize) noexcept {
    return counted_calloc(g_numpy_previous, count, elsize);
}

void *numpy_realloc(void *, void *address, std::size_t size) noexcept {
    const NumpyAllocator &prev = g_numpy_previous;
    if (t_in_hook || !g_active.load(std::memory_order_relaxed)) {
        return prev.realloc(prev.ctx, address, size);
    }
    ReentrancyGuard guard;
    std::size_t old_size = 0;
    const bool known = address != nullptr && take_block(address, &old_size);
    bool counted = known || address == nullptr;
    if (!counted && g_numpy_previous_is_malloc) {
        old_size = malloc_usable_size(address);
        counted = true;
    }
    void *resized = prev.realloc(prev.ctx, address, size);
    if (resized == nullptr) {
        if (known) {
            SpinLockGuard lock(g_lock);
            g_blocks->insert(address, old_size);
        }
        return resized;
    }
    if (t_ledger != nullptr && counted) {
        record_resized(resized, size, old_size);
    }
    return resized;
}

void numpy_free(void *, void *address, std::size_t size) noexcept {
    const NumpyAllocator &prev = g_numpy_previous;
    if (t_in_hook || address == nullptr || !g_active.load(std::memory_order_relaxed)) {
        prev.free(prev.ctx, address, size);
        return;
    }
    ReentrancyGuard guard;
    record_free(address);
    prev.free(prev.ctx, address, size);
}

NumpyHandler g_numpy_handler = {
    "memory_profilerxx", 1, {nullptr, numpy_malloc, numpy_calloc, numpy_realloc, numpy_free}};

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
        PyErr_Clear();
        return false;
    }
    auto **api = static_cast<void **>(PyCapsule_GetPointer(api_capsule, nullptr));
    Py_DECREF(api_capsule); // the table is static in numpy, which is never unloaded
    if (api == nullptr) {
        PyErr_Clear();
        return false;
    }
    auto feature_version = reinterpret_cast<unsigned (*)()>(api[kApiFeatureVersion]);
    if (feature_version() < kNumpy122FeatureVersion) {
        return false;
    }
    g_numpy_set_handler = reinterpret_cast<PyObject *(*)(PyObject *)>(api[kApiSetHandler]);
    g_numpy_get_handler = reinterpret_cast<PyObject *(*)()>(api[kApiGetHandler]);
    PyObject *current = g_numpy_get_handler();
    if (current == nullptr) {
        PyErr_Clear();
        return false;
    }
    auto *handler = static_cast<NumpyHandler *>(PyCapsule_GetPointer(current, "mem_handler"));
    if (handler == nullptr) {
        PyErr_Clear();
        Py_DECREF(current);
        return false;
    }
    g_numpy_previous = handler->allocator;
    g_numpy_previous_is_malloc = std::strcmp(handler->name, "default_allocator") == 0;
    // Keep the previous handler alive for good: arrays made with ours free through it forever.
    g_numpy_capsule = PyCapsule_New(&g_numpy_handler, "mem_handler", nullptr);
    if (g_numpy_capsule == nullptr) {
        PyErr_Clear();
        Py_DECREF(current);
        return false;
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
        PyErr_Clear();
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

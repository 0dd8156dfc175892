// The PyMem domains as a source of allocations: our functions on top of each domain's chain.
// pymalloc hands requests over 512 B to the RAW domain: the re-entrancy flag, held across the
// call to the previous allocator, makes such a block count once.
#include <Python.h>

#include <cstdlib>
#include <cstring>
#include <malloc.h>

#include "core/alloc_accounting.hpp"
#include "core/alloc_sources.hpp"
#include "core/py_compat.h"

namespace memxx::core {

namespace {

using namespace accounting;

// A realloc of a MEM/OBJ block the table does not know asks the nested RAW call for the old size.
MEMXX_TLS const void *t_probe_address = nullptr;
MEMXX_TLS std::size_t t_probe_size = 0;

// Set while a chain probe runs (see chain_reaches_us): our malloc, reached, sets its domain's bit.
MEMXX_TLS bool t_chain_probe = false;
MEMXX_TLS unsigned t_chain_reached = 0;

// pymalloc serves requests up to this size itself; larger ones go to the RAW domain.
constexpr std::size_t kSmallRequest = 512;

bool g_usable_size_ok = false; // RAW blocks are plain glibc blocks (no debug hooks)

std::size_t raw_block_size(void *address) noexcept {
    return g_usable_size_ok ? malloc_usable_size(address) : kNoSize;
}

enum DomainIndex { kRaw = 0, kMem = 1, kObj = 2, kDomains = 3 };

// MEM and OBJ are called with the GIL held; RAW from any thread.
template <int D> constexpr Guard kGuard = D == kRaw ? Guard::none : Guard::gil;

struct Domain {
    PyMemAllocatorDomain id;
    PyMemAllocatorEx previous;
    PyMemAllocatorEx ours;
    bool installed;
    // The domain's malloc when the chain was last seen to reach ours (see pymem_hooks_verify).
    void *(*seen_top)(void *, std::size_t);
};
Domain g_domains[kDomains];

// The OBJ domain's blocks (objects) go on the stream's objects events for the consumers that
// want them (allocation sites); it is always called with the GIL. The check sits after the real
// call so that the accounting path is unchanged when nobody wants them.
inline bool objects_wanted() noexcept { return !t_in_hook && stream::wanted(stream::kObjects); }

template <int D> void *passthrough_malloc(std::size_t size) noexcept {
    if (__builtin_expect(t_chain_probe, false)) {
        t_chain_reached |= 1u << D;
    }
    const PyMemAllocatorEx &prev = g_domains[D].previous;
    return prev.malloc(prev.ctx, size);
}

// 3.12+: the monitoring data the interpreter gives a code object at its first run while we trace
// (py_compat_frames.h) is the profiler's cost: passed down uncounted, the nested RAW call too.
// Its free, later, finds no block of ours to credit.
template <int D> bool instrumenting() noexcept { return D == kMem && memxx_instrumenting_code(); }

template <int D, class Call> auto uncounted(Call call) noexcept {
    ReentrancyGuard guard;
    return call();
}

// A new block of `size` bytes for malloc and calloc: `real` calls the previous allocator (counted
// around it while a session counts); `passthrough` runs instead when none does.
template <int D, class Real, class Passthrough>
void *new_block(std::size_t size, Real real, Passthrough passthrough) noexcept {
    void *address = !counting()          ? passthrough()
                    : instrumenting<D>() ? uncounted<D>(real)
                                         : alloc_counted(size, Source::python, kGuard<D>, real);
    if (D == kObj && address != nullptr && objects_wanted()) {
        ReentrancyGuard guard;
        stream::object_alloc(address);
    }
    return address;
}

template <int D> void *hook_malloc(void *, std::size_t size) noexcept {
    const PyMemAllocatorEx &prev = g_domains[D].previous;
    const auto real = [&] { return prev.malloc(prev.ctx, size); };
    return new_block<D>(size, real, [&] { return passthrough_malloc<D>(size); });
}

template <int D> void *hook_calloc(void *, std::size_t count, std::size_t elsize) noexcept {
    const PyMemAllocatorEx &prev = g_domains[D].previous;
    const auto real = [&] { return prev.calloc(prev.ctx, count, elsize); };
    return new_block<D>(count * elsize, real, real);
}

// The old size of a block from before profiling: RAW blocks are glibc's (malloc_usable_size);
// a MEM/OBJ block over 512 B was passed down to RAW, whose nested realloc reports its size.
template <int D> struct PymemOldSize {
    std::size_t raw_size = kNoSize;
    void before(void *address) noexcept {
        if (D == kRaw) {
            raw_size = raw_block_size(address);
        } else {
            t_probe_address = address;
            t_probe_size = kNoSize;
        }
    }
    std::size_t after(std::size_t size) noexcept {
        if (D == kRaw) {
            return raw_size;
        }
        t_probe_address = nullptr;
        // No nested RAW realloc: pymalloc owned it, so it was at most 512 bytes.
        return t_probe_size != kNoSize ? t_probe_size : std::min(size, kSmallRequest);
    }
};

template <int D> void *accounted_realloc(void *address, std::size_t size) noexcept {
    const PyMemAllocatorEx &prev = g_domains[D].previous;
    if (t_in_hook) {
        if (D == kRaw && address != nullptr && address == t_probe_address) {
            t_probe_size = raw_block_size(address);
        }
        return prev.realloc(prev.ctx, address, size);
    }
    if (!counting()) {
        return prev.realloc(prev.ctx, address, size);
    }
    if (instrumenting<D>()) {
        return uncounted<D>([&] { return prev.realloc(prev.ctx, address, size); });
    }
    return realloc_counted(
        address, size, Source::python, kGuard<D>,
        [&prev](void *block, std::size_t bytes) { return prev.realloc(prev.ctx, block, bytes); },
        PymemOldSize<D>{});
}

template <int D> void *hook_realloc(void *, void *address, std::size_t size) noexcept {
    if (D != kObj || !objects_wanted()) {
        return accounted_realloc<D>(address, size);
    }
    void *resized = accounted_realloc<D>(address, size);
    if (resized != nullptr) {
        ReentrancyGuard guard;
        stream::object_realloc(address, resized);
    }
    return resized;
}

template <int D> void hook_free(void *, void *address) noexcept {
    const PyMemAllocatorEx &prev = g_domains[D].previous;
    if (D == kObj && address != nullptr && objects_wanted()) {
        ReentrancyGuard guard;
        stream::object_free(address); // before the real free
    }
    if (address == nullptr || !counting()) {
        prev.free(prev.ctx, address);
        return;
    }
    free_counted(address, Source::python, kGuard<D>, [&] { prev.free(prev.ctx, address); });
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

// Benchmarks' floor of every PyMem allocation tracker: functions that only call the domain's
// previous allocator, so a program pays the indirect call a hook adds and nothing else.
Domain g_floor[kDomains] = {{PYMEM_DOMAIN_RAW, {}, {}, false, nullptr},
                            {PYMEM_DOMAIN_MEM, {}, {}, false, nullptr},
                            {PYMEM_DOMAIN_OBJ, {}, {}, false, nullptr}};

template <int D> void *floor_malloc(void *, std::size_t size) noexcept {
    const PyMemAllocatorEx &prev = g_floor[D].previous;
    return prev.malloc(prev.ctx, size);
}
template <int D> void *floor_calloc(void *, std::size_t count, std::size_t elsize) noexcept {
    const PyMemAllocatorEx &prev = g_floor[D].previous;
    return prev.calloc(prev.ctx, count, elsize);
}
template <int D> void *floor_realloc(void *, void *address, std::size_t size) noexcept {
    const PyMemAllocatorEx &prev = g_floor[D].previous;
    return prev.realloc(prev.ctx, address, size);
}
template <int D> void floor_free(void *, void *address) noexcept {
    const PyMemAllocatorEx &prev = g_floor[D].previous;
    prev.free(prev.ctx, address);
}
template <int D> PyMemAllocatorEx floor_functions() {
    return PyMemAllocatorEx{nullptr, floor_malloc<D>, floor_calloc<D>, floor_realloc<D>,
                            floor_free<D>};
}

} // namespace

bool pymem_floor(bool on) {
    if (on) {
        if (pymem_hooks_installed() || g_floor[kRaw].installed || g_floor[kMem].installed ||
            g_floor[kObj].installed) {
            return false; // in already, or it would measure a hook stacked on ours
        }
        g_floor[kRaw].ours = floor_functions<kRaw>();
        g_floor[kMem].ours = floor_functions<kMem>();
        g_floor[kObj].ours = floor_functions<kObj>();
        for (int d = 0; d < kDomains; ++d) {
            PyMem_GetAllocator(g_floor[d].id, &g_floor[d].previous);
            PyMem_SetAllocator(g_floor[d].id, &g_floor[d].ours);
            g_floor[d].installed = true;
        }
        return true;
    }
    bool removed = false;
    for (int d = 0; d < kDomains; ++d) {
        PyMemAllocatorEx current;
        PyMem_GetAllocator(g_floor[d].id, &current);
        // As with our hooks: one stacked on top keeps calling the floor, which stays.
        if (g_floor[d].installed && current.malloc == g_floor[d].ours.malloc) {
            PyMem_SetAllocator(g_floor[d].id, &g_floor[d].previous);
            g_floor[d].installed = false;
            removed = true;
        }
    }
    return removed;
}

namespace {

// True when a call to `top` (the domain's allocator now) reaches our malloc: no hook that was
// set since has cut ours out of the chain. Runs one 1-byte malloc and free down the chain,
// which our function passes through uncounted. GIL held.
bool chain_reaches_us(int d, const PyMemAllocatorEx &top) noexcept {
    ReentrancyGuard guard;
    t_chain_reached = 0;
    t_chain_probe = true;
    void *block = top.malloc(top.ctx, 1);
    t_chain_probe = false;
    top.free(top.ctx, block);
    return (t_chain_reached & (1u << d)) != 0;
}

// A hook that was below ours when we installed (tracemalloc started first) puts back, when it
// stops, the allocator it had saved: ours is then out of the chain and must go on top again.
// A hook stacked on ours since keeps calling ours and is left alone. GIL held.
void keep_in_chain(int d) {
    Domain &domain = g_domains[d];
    PyMemAllocatorEx current;
    PyMem_GetAllocator(domain.id, &current);
    if (current.malloc == domain.ours.malloc || current.malloc == domain.seen_top) {
        domain.seen_top = current.malloc;
        return;
    }
    if (!chain_reaches_us(d, current)) {
        domain.previous = current;
        PyMem_SetAllocator(domain.id, &domain.ours);
        current.malloc = domain.ours.malloc;
    }
    domain.seen_top = current.malloc;
}

// tracemalloc is tracing: asked of its module, if it was imported at all. GIL held.
bool tracemalloc_tracing() {
    static PyObject *name = PyUnicode_InternFromString("_tracemalloc");
    PyObject *module = name != nullptr ? PyImport_GetModule(name) : nullptr;
    if (module == nullptr) {
        if (name == nullptr || PyErr_Occurred()) {
            PyErr_WriteUnraisable(nullptr);
            return true; // unknown: watch the chain
        }
        return false; // never imported: nothing is tracing
    }
    PyObject *tracing = PyObject_CallMethod(module, "is_tracing", nullptr);
    Py_DECREF(module);
    if (tracing == nullptr) {
        PyErr_WriteUnraisable(nullptr);
        return true; // unknown: watch the chain
    }
    const bool on = tracing == Py_True;
    Py_DECREF(tracing);
    return on;
}

} // namespace

bool g_pymem_chain_shared = false;

void pymem_hooks_install() {
    if (g_domains[kRaw].ours.malloc == nullptr) {
        init_domain<kRaw>(PYMEM_DOMAIN_RAW);
        init_domain<kMem>(PYMEM_DOMAIN_MEM);
        init_domain<kObj>(PYMEM_DOMAIN_OBJ);
        g_usable_size_ok = !pymalloc_has_debug_hooks();
    }
    for (int d = 0; d < kDomains; ++d) {
        Domain &domain = g_domains[d];
        if (domain.installed) {
            keep_in_chain(d);
            continue;
        }
        // `previous` is set before our functions become visible to other threads.
        PyMem_GetAllocator(domain.id, &domain.previous);
        PyMem_SetAllocator(domain.id, &domain.ours);
        domain.installed = true;
        domain.seen_top = domain.ours.malloc;
    }
    // Ours shares the chain with tracemalloc: it may cut ours out at any time (see keep_in_chain).
    g_pymem_chain_shared = tracemalloc_tracing() ||
                           g_domains[kObj].seen_top != g_domains[kObj].ours.malloc;
}

void pymem_hooks_verify() {
    // tracemalloc starts and stops all three domains together: the OBJ domain tells.
    const Domain &obj = g_domains[kObj];
    PyMemAllocatorEx current;
    PyMem_GetAllocator(obj.id, &current);
    if (current.malloc == obj.ours.malloc || current.malloc == obj.seen_top) {
        return;
    }
    for (int d = 0; d < kDomains; ++d) {
        if (g_domains[d].installed) {
            keep_in_chain(d);
        }
    }
}

void pymem_hooks_remove() {
    g_pymem_chain_shared = false;
    for (int d = 0; d < kDomains; ++d) {
        Domain &domain = g_domains[d];
        if (!domain.installed) {
            continue;
        }
        PyMemAllocatorEx current;
        PyMem_GetAllocator(domain.id, &current);
        if (current.malloc == domain.ours.malloc) {
            PyMem_SetAllocator(domain.id, &domain.previous);
            domain.installed = false;
        } else if (!chain_reaches_us(d, current)) {
            domain.installed = false; // cut out already: nothing calls ours
        }
        // Otherwise another hook (tracemalloc, ...) stacked on top of ours keeps calling us:
        // stay in the chain, passing through, rather than cut it out from under it.
    }
}

bool pymem_hooks_installed() noexcept {
    for (const Domain &domain : g_domains) {
        if (domain.installed) {
            return true;
        }
    }
    return false;
}

} // namespace memxx::core

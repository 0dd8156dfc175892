// Native code as a source of allocations: the malloc family and anonymous mappings that loaded
// shared objects make, redirected to our functions by rewriting each object's GOT slots for them
// (core/got_slots). No LD_PRELOAD and no restart: the slots are rewritten when a session with
// native counting starts and put back when it ends; objects loaded meanwhile (an import, a
// dlopen) are rewritten by our dlopen before their first call.
//
// Never rewritten, so that each block counts once and our own memory never counts: the objects
// that implement the allocator (libc, or whatever defines the malloc we call, such as ASan's
// runtime), the loader, mimalloc, this extension, and the allocation slots of the interpreter's
// own object, whose malloc is the PyMem RAW domain, counted in pymem_hooks.cpp. Its dlopen
// (how extension modules are loaded) is rewritten.
#include <Python.h>

#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <ctime>
#include <dlfcn.h>
#include <gnu/libc-version.h>
#include <iterator>
#include <link.h>
#include <malloc.h>
#include <map>
#include <mutex>
#include <pthread.h>
#include <string>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include <mimalloc.h>

#include "core/alloc_accounting.hpp"
#include "core/alloc_sources.hpp"
#include "core/got_slots.hpp"
#include "core/mapped_pages.hpp"
#include "core/process_memory.hpp"
#include "core/py_compat.h"
#include "core/session.hpp"

namespace memxx::core {

namespace {

using namespace accounting;

std::atomic<bool> g_native_on{false};

inline bool native_counting() noexcept {
    return !t_in_hook && g_native_on.load(std::memory_order_relaxed);
}

std::uintptr_t page_round_up(std::size_t length) noexcept {
    static const auto page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
    return (length + page - 1) & ~(page - 1);
}

// --- the hooks: re-entrancy check, real call, record -----------------------------------------

void *native_malloc(std::size_t size) noexcept {
    if (!native_counting()) {
        return malloc(size);
    }
    return alloc_counted(size, Source::native, Guard::none, [size] { return malloc(size); });
}

void *native_calloc(std::size_t count, std::size_t size) noexcept {
    std::size_t bytes;
    if (!native_counting() || __builtin_mul_overflow(count, size, &bytes)) {
        return calloc(count, size);
    }
    return alloc_counted(bytes, Source::native, Guard::none, [=] { return calloc(count, size); });
}

// glibc knows the size of a block from before profiling.
struct NativeOldSize {
    std::size_t size = kNoSize;
    void before(void *address) noexcept { size = malloc_usable_size(address); }
    std::size_t after(std::size_t) const noexcept { return size; }
};

void *native_realloc(void *address, std::size_t size) noexcept {
    if (!native_counting()) {
        return realloc(address, size);
    }
    return realloc_counted(
        address, size, Source::native, Guard::none,
        [](void *block, std::size_t bytes) { return realloc(block, bytes); }, NativeOldSize{});
}

void *native_reallocarray(void *address, std::size_t count, std::size_t size) noexcept {
    std::size_t bytes;
    if (!native_counting() || __builtin_mul_overflow(count, size, &bytes)) {
        return reallocarray(address, count, size);
    }
    return realloc_counted(
        address, bytes, Source::native, Guard::none,
        [count, size](void *block, std::size_t) { return reallocarray(block, count, size); },
        NativeOldSize{});
}

void native_free(void *address) noexcept {
    if (address == nullptr || !native_counting()) {
        free(address);
        return;
    }
    free_counted(address, Source::native, Guard::none, [address] { free(address); });
}

// The aligned allocators: real call, then `size` bytes recorded at the result.
template <class RealAlloc> void *aligned_counted(std::size_t size, RealAlloc &&real) noexcept {
    return native_counting() ? alloc_counted(size, Source::native, Guard::none, real) : real();
}

int native_posix_memalign(void **result, std::size_t alignment, std::size_t size) noexcept {
    int error = 0;
    aligned_counted(size, [&]() -> void * {
        error = posix_memalign(result, alignment, size);
        return error == 0 ? *result : nullptr;
    });
    return error;
}

void *native_aligned_alloc(std::size_t alignment, std::size_t size) noexcept {
    return aligned_counted(size, [=] { return aligned_alloc(alignment, size); });
}

void *native_memalign(std::size_t alignment, std::size_t size) noexcept {
    return aligned_counted(size, [=] { return memalign(alignment, size); });
}

void *native_valloc(std::size_t size) noexcept {
    return aligned_counted(size, [=] { return valloc(size); });
}

// pvalloc rounds the size up to whole pages: that is what it allocates.
void *native_pvalloc(std::size_t size) noexcept {
    return aligned_counted(page_round_up(size), [=] { return pvalloc(size); });
}

// Anonymous mappings count by the pages they occupy (core/mapped_pages): a mapping is tracked
// when it is made (with the stack that made it, for the peak recorder), and its pages are
// charged as they are touched and given back.
void *native_mmap(void *address, std::size_t length, int protection, int flags, int fd,
                  off_t offset) noexcept {
    if ((flags & MAP_ANONYMOUS) == 0 || !native_counting()) {
        return mmap(address, length, protection, flags, fd, offset);
    }
    ReentrancyGuard guard;
    ThreadLedger *ledger = t_ledger;
    if ((flags & MAP_FIXED) != 0) {
        pages::count_own_faults(ledger);
        pages::peak_count(address, length);
    }
    void *mapped = mmap(address, length, protection, flags, fd, offset);
    if (mapped != MAP_FAILED) {
        if ((flags & MAP_FIXED) != 0) { // replaced whatever was mapped there
            pages::unmapped(mapped, length, ledger);
        }
        const std::uint32_t maker = stream::mapping_maker();
        const bool bystander = ledger == nullptr && accounting::thread_pays_nobody();
        pages::mapped(mapped, length, (flags & (MAP_POPULATE | MAP_LOCKED)) != 0, maker,
                      bystander, ledger);
    }
    return mapped;
}

int native_munmap(void *address, std::size_t length) noexcept {
    if (!native_counting()) {
        return munmap(address, length);
    }
    ReentrancyGuard guard;
    // Forgotten before the real munmap: another thread could map the same range in between.
    pages::count_own_faults(t_ledger);
    pages::peak_count(address, length);
    pages::unmapped(address, length, t_ledger);
    return munmap(address, length);
}

int native_madvise(void *address, std::size_t length, int advice) noexcept {
    const bool gives_back =
        advice == MADV_DONTNEED || advice == MADV_FREE || advice == MADV_REMOVE;
    if (!gives_back || !native_counting()) {
        return madvise(address, length, advice);
    }
    ReentrancyGuard guard;
    pages::count_own_faults(t_ledger);
    pages::peak_count(address, length);
    const int result = madvise(address, length, advice);
    if (result == 0) {
        pages::given_back(address, length, advice == MADV_FREE, t_ledger);
    }
    return result;
}

void *native_mremap(void *address, std::size_t old_length, std::size_t new_length, int flags,
                    ...) noexcept {
    void *new_address = nullptr;
    if ((flags & MREMAP_FIXED) != 0) {
        va_list rest;
        va_start(rest, flags);
        new_address = va_arg(rest, void *);
        va_end(rest);
    }
    if (!native_counting() || old_length == 0) {
        return mremap(address, old_length, new_length, flags, new_address);
    }
    ReentrancyGuard guard;
    pages::count_own_faults(t_ledger);
    if (page_round_up(new_length) < old_length) { // the pages cut off count before they go
        pages::peak_count(static_cast<char *>(address) + page_round_up(new_length),
                          old_length - page_round_up(new_length));
    }
    void *moved = mremap(address, old_length, new_length, flags, new_address);
    if (moved != MAP_FAILED) {
        pages::remapped(address, old_length, moved, new_length, t_ledger);
    }
    return moved;
}

// --- ctypes and cffi calling the allocator's functions through libffi ------------------------
// `libc.malloc(n)` or `libc.mmap(...)` through ctypes calls libc's function through ffi_call,
// never through a slot we rewrite: the block or mapping would go unseen, and a free of one seen
// would stay counted. So ffi_call is rewritten too, and a call of one of the functions we
// rewrite is a call of ours (defined with the same signature), below the table.

using FfiCall = void (*)(void *cif, void (*function)(), void *result, void **arguments);
std::atomic<FfiCall> g_ffi_call{nullptr};

int find_ffi_call(dl_phdr_info *info, std::size_t, void *found) {
    const char *name = info->dlpi_name;
    if (name == nullptr || std::strstr(name, "/libffi") == nullptr) {
        return 0;
    }
    if (void *object = dlopen(name, RTLD_LAZY | RTLD_NOLOAD)) {
        *static_cast<void **>(found) = dlsym(object, "ffi_call");
        dlclose(object);
    }
    return *static_cast<void **>(found) != nullptr ? 1 : 0;
}

// libffi's ffi_call, found the first time (outside any pass over the objects: it needs the
// loader's lock). libffi is loaded: an object calling ffi_call through a slot needs it.
FfiCall real_ffi_call() noexcept {
    FfiCall real = g_ffi_call.load(std::memory_order_acquire);
    if (real == nullptr) {
        ReentrancyGuard guard;
        void *found = nullptr;
        dl_iterate_phdr(find_ffi_call, &found);
        if (found == nullptr) {
            found = dlsym(RTLD_DEFAULT, "ffi_call");
        }
        real = reinterpret_cast<FfiCall>(found);
        g_ffi_call.store(real, std::memory_order_release);
    }
    return real;
}

void native_ffi_call(void *cif, void (*function)(), void *result, void **arguments);

void patch_new_objects();

// The object that called dlopen searches a bare file name in its own RPATH/RUNPATH: were we
// simply to call dlopen, the loader would search ours instead (memray's bug #212). So a bare
// name not loaded yet is looked up in the caller's search path (dlinfo) and opened by path.
void *open_as_caller(const char *file, int mode, const void *caller) noexcept {
    if (file == nullptr || std::strchr(file, '/') != nullptr) {
        return dlopen(file, mode);
    }
    if (void *loaded = dlopen(file, mode | RTLD_NOLOAD)) {
        return loaded;
    }
    Dl_info info;
    link_map *caller_map = nullptr;
    if (dladdr1(caller, &info, reinterpret_cast<void **>(&caller_map), RTLD_DL_LINKMAP) != 0 &&
        caller_map != nullptr) {
        Dl_serinfo size;
        if (dlinfo(caller_map, RTLD_DI_SERINFOSIZE, &size) == 0) {
            auto *paths = static_cast<Dl_serinfo *>(mi_malloc(size.dls_size));
            if (paths != nullptr) {
                *paths = size;
                std::basic_string<char, std::char_traits<char>, mi_stl_allocator<char>> path;
                void *opened = nullptr;
                if (dlinfo(caller_map, RTLD_DI_SERINFO, paths) == 0) {
                    for (unsigned i = 0; i < paths->dls_cnt && opened == nullptr; ++i) {
                        const char *directory = paths->dls_serpath[i].dls_name;
                        if (directory == nullptr || directory[0] == '\0') {
                            continue;
                        }
                        path.assign(directory).append("/").append(file);
                        struct stat status;
                        if (stat(path.c_str(), &status) == 0 && S_ISREG(status.st_mode)) {
                            opened = dlopen(path.c_str(), mode);
                        }
                    }
                }
                mi_free(paths);
                if (opened != nullptr) {
                    return opened;
                }
            }
        }
    }
    return dlopen(file, mode); // the loader's cache and default directories are the same for all
}

void *native_dlopen(const char *file, int mode) noexcept {
    void *handle = open_as_caller(file, mode, __builtin_return_address(0));
    if (handle != nullptr && g_native_on.load(std::memory_order_acquire)) {
        patch_new_objects();
    }
    return handle;
}

// --- which slots are rewritten ----------------------------------------------------------------

struct NativeFunction {
    const char *name;
    void *ours;
    void *real;     // the address the loader binds the name to (a data slot must hold it)
    bool allocates; // false: rewritten in the interpreter's object too
};

#define MEMXX_NATIVE(name, ours, allocates)                                                     \
    NativeFunction {                                                                            \
        #name, reinterpret_cast<void *>(ours), reinterpret_cast<void *>(&name), allocates       \
    }
const NativeFunction g_functions[] = {
    MEMXX_NATIVE(malloc, native_malloc, true),
    MEMXX_NATIVE(calloc, native_calloc, true),
    MEMXX_NATIVE(realloc, native_realloc, true),
    MEMXX_NATIVE(reallocarray, native_reallocarray, true),
    MEMXX_NATIVE(free, native_free, true),
    MEMXX_NATIVE(posix_memalign, native_posix_memalign, true),
    MEMXX_NATIVE(aligned_alloc, native_aligned_alloc, true),
    MEMXX_NATIVE(memalign, native_memalign, true),
    MEMXX_NATIVE(valloc, native_valloc, true),
    MEMXX_NATIVE(pvalloc, native_pvalloc, true),
    MEMXX_NATIVE(mmap, native_mmap, true),
    MEMXX_NATIVE(mmap64, native_mmap, true),
    MEMXX_NATIVE(mremap, native_mremap, true),
    MEMXX_NATIVE(munmap, native_munmap, true),
    MEMXX_NATIVE(madvise, native_madvise, true),
    MEMXX_NATIVE(dlopen, native_dlopen, false),
    // Its real address is found on first use (libffi may be loaded later): no data slot is
    // rewritten for it.
    NativeFunction{"ffi_call", reinterpret_cast<void *>(native_ffi_call), nullptr, true},
};
#undef MEMXX_NATIVE

const NativeFunction *function_named(const char *name) noexcept {
    for (const NativeFunction &function : g_functions) {
        if (std::strcmp(function.name, name) == 0) {
            return &function;
        }
    }
    return nullptr;
}

// The allocator's functions as libc defines them. Under a non-PIE interpreter (Debian's 3.14
// and 3.15) `&free` is the interpreter's PLT entry, while ctypes.CDLL("libc.so.6").free is
// libc's function itself: both are recognised. Filled once, before any session.
void *g_libc_functions[std::size(g_functions)] = {};

void find_libc_functions() noexcept {
    Dl_info info;
    if (dladdr(reinterpret_cast<void *>(&gnu_get_libc_version), &info) == 0 ||
        info.dli_fname == nullptr) {
        return;
    }
    if (void *libc = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD)) {
        for (std::size_t i = 0; i < std::size(g_functions); ++i) {
            if (g_functions[i].real != nullptr) {
                g_libc_functions[i] = dlsym(libc, g_functions[i].name);
            }
        }
        dlclose(libc);
    }
}

void native_ffi_call(void *cif, void (*function)(), void *result, void **arguments) {
    const auto called = reinterpret_cast<void *>(function);
    for (std::size_t i = 0; i < std::size(g_functions); ++i) {
        const NativeFunction &known = g_functions[i];
        if (known.allocates && called != nullptr &&
            (called == known.real || called == g_libc_functions[i])) {
            function = reinterpret_cast<void (*)()>(known.ours);
            break;
        }
    }
    real_ffi_call()(cif, function, result, arguments);
}

template <class T> using MiVector = std::vector<T, mi_stl_allocator<T>>;
using MiString = std::basic_string<char, std::char_traits<char>, mi_stl_allocator<char>>;

struct RedirectedSlot {
    void **slot;
    void *ours;
    void *original; // what the slot held when it was rewritten
    void *expected; // a data slot: rewritten only while it holds this; nullptr for a GOT slot
};

// An object's slots for our functions, found once by walking its relocations.
struct PatchedObject {
    std::uintptr_t base;
    const void *headers;
    MiString name;
    ReadOnlyAfterRelocation relro;
    MiVector<RedirectedSlot> slots;
    bool seen; // found loaded by the current pass
};

struct Excluded {
    std::uintptr_t whole[4]; // lowest mapped addresses of the objects never rewritten
    std::uintptr_t loader;   // the loader's load address
    std::uintptr_t interpreter;
};

std::mutex g_patch_mutex; // the records and the slots; taken before the loader's lock
MiVector<PatchedObject> *g_objects = nullptr;
bool g_redirected = false;
Excluded g_excluded{};
double g_last_pass_seconds = 0;

std::uintptr_t base_of(const void *address) noexcept {
    Dl_info info;
    return dladdr(address, &info) != 0 ? reinterpret_cast<std::uintptr_t>(info.dli_fbase) : 0;
}

// dladdr gives the lowest mapped address of an object, dl_iterate_phdr its load bias: compare
// the object's first PT_LOAD address instead.
std::uintptr_t mapped_start(const dl_phdr_info &object) noexcept {
    for (ElfW(Half) i = 0; i < object.dlpi_phnum; ++i) {
        if (object.dlpi_phdr[i].p_type == PT_LOAD) {
            return (object.dlpi_addr + object.dlpi_phdr[i].p_vaddr) &
                   ~static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE) - 1);
        }
    }
    return object.dlpi_addr;
}

void find_excluded() noexcept {
    g_excluded.whole[0] = base_of(reinterpret_cast<void *>(&find_excluded));       // this extension
    g_excluded.whole[1] = base_of(reinterpret_cast<void *>(&gnu_get_libc_version)); // libc
    g_excluded.whole[3] = base_of(reinterpret_cast<void *>(&mi_malloc));
    g_excluded.loader = getauxval(AT_BASE);
    g_excluded.interpreter = base_of(reinterpret_cast<void *>(&PyMem_RawMalloc));
    // The allocator we call. A non-PIE interpreter (Debian's python3.14 and 3.15) makes its own
    // PLT entry the address of malloc for every object: that names the interpreter, whose dlopen
    // slot must still be rewritten (libc itself is excluded above).
    const std::uintptr_t allocator = base_of(reinterpret_cast<void *>(&malloc));
    g_excluded.whole[2] = allocator != g_excluded.interpreter ? allocator : 0;
}

PatchedObject *record_of(const dl_phdr_info &object) {
    for (PatchedObject &known : *g_objects) {
        if (known.base == object.dlpi_addr && known.headers == object.dlpi_phdr &&
            known.name == (object.dlpi_name != nullptr ? object.dlpi_name : "")) {
            return &known;
        }
    }
    return nullptr;
}

struct SlotCollector {
    PatchedObject *object;
    bool interpreter;
};

void collect_slot(const char *symbol, void **slot, SlotKind kind, void *context) {
    auto *collector = static_cast<SlotCollector *>(context);
    const NativeFunction *function = function_named(symbol);
    if (function == nullptr || (collector->interpreter && function->allocates)) {
        return;
    }
    if (kind == SlotKind::data && function->real == nullptr) {
        return;
    }
    void *expected = kind == SlotKind::data ? function->real : nullptr;
    // A data word naming the function but holding something else is not a pointer to it.
    if (expected == nullptr || __atomic_load_n(slot, __ATOMIC_ACQUIRE) == expected) {
        collector->object->slots.push_back(RedirectedSlot{slot, function->ours, nullptr, expected});
    }
}

int redirect_object(dl_phdr_info *info, std::size_t, void *) {
    const dl_phdr_info &object = *info;
    const char *name = object.dlpi_name != nullptr ? object.dlpi_name : "";
    if (std::strncmp(name, "linux-vdso", 10) == 0 || std::strncmp(name, "linux-gate", 10) == 0) {
        return 0;
    }
    const std::uintptr_t start = mapped_start(object);
    for (std::uintptr_t excluded : g_excluded.whole) {
        if (excluded != 0 && excluded == start) {
            return 0;
        }
    }
    if (g_excluded.loader != 0 && object.dlpi_addr == g_excluded.loader) {
        return 0;
    }
    PatchedObject *record = record_of(object);
    if (record == nullptr) {
        g_objects->push_back(PatchedObject{object.dlpi_addr, object.dlpi_phdr, MiString(name),
                                           relro_pages(object), {}, false});
        record = &g_objects->back();
        SlotCollector collector{record, start == g_excluded.interpreter};
        for_each_got_slot(object, collect_slot, &collector);
    }
    record->seen = true;
    MiVector<void **> slots;
    MiVector<void *> values;
    for (RedirectedSlot &redirected : record->slots) {
        void *current = __atomic_load_n(redirected.slot, __ATOMIC_ACQUIRE);
        // A data slot the library has set to a function of its own (xmlMemSetup) keeps it.
        const bool settable = redirected.expected == nullptr || current == redirected.expected;
        if (current != redirected.ours && settable) {
            redirected.original = current;
            slots.push_back(redirected.slot);
            values.push_back(redirected.ours);
        }
    }
    if (!slots.empty()) {
        write_got_slots(slots.data(), values.data(), slots.size(), record->relro);
    }
    return 0;
}

int restore_object(dl_phdr_info *info, std::size_t, void *) {
    PatchedObject *record = record_of(*info);
    if (record == nullptr) {
        return 0;
    }
    record->seen = true;
    MiVector<void **> slots;
    MiVector<void *> values;
    for (const RedirectedSlot &redirected : record->slots) {
        // Someone who rewrote the slot after us (another profiler) keeps it.
        if (redirected.original != nullptr &&
            __atomic_load_n(redirected.slot, __ATOMIC_ACQUIRE) == redirected.ours) {
            slots.push_back(redirected.slot);
            values.push_back(redirected.original);
        }
    }
    if (!slots.empty()) {
        write_got_slots(slots.data(), values.data(), slots.size(), record->relro);
    }
    return 0;
}

int count_redirected(dl_phdr_info *info, std::size_t, void *context) {
    auto *stats = static_cast<NativeHookStats *>(context);
    if (const PatchedObject *record = record_of(*info)) {
        for (const RedirectedSlot &redirected : record->slots) {
            if (__atomic_load_n(redirected.slot, __ATOMIC_ACQUIRE) == redirected.ours) {
                ++stats->slots_now;
            }
        }
    }
    return 0;
}

// One pass over the loaded objects, under the loader's lock (no object is unloaded meanwhile);
// records of objects no longer loaded are dropped. Caller holds g_patch_mutex.
void pass_locked(int (*visit)(dl_phdr_info *, std::size_t, void *)) {
    ReentrancyGuard guard;
    for (PatchedObject &known : *g_objects) {
        known.seen = false;
    }
    dl_iterate_phdr(visit, nullptr);
    MiVector<PatchedObject> loaded;
    for (PatchedObject &known : *g_objects) {
        if (known.seen) {
            loaded.push_back(std::move(known));
        }
    }
    g_objects->swap(loaded);
}

void patch_new_objects() {
    std::lock_guard<std::mutex> lock(g_patch_mutex);
    if (g_redirected) {
        pass_locked(redirect_object);
    }
}

// --- mappings made before the session ---------------------------------------------------------

// How many bytes from `at` belong to an allocator whose blocks are counted one by one (so that
// its pages must not count again): glibc's arenas and mmapped chunks, pymalloc's arenas, our
// own mimalloc. 0 when `at` starts none of them.
// Reads the first words of a mapping someone else made (under ASan, its allocator's own).
__attribute__((no_sanitize("address"))) std::size_t
block_counted_bytes(std::uintptr_t at, std::uintptr_t end) noexcept {
    const auto *words = reinterpret_cast<const std::size_t *>(at);
    const std::size_t length = end - at;
    // A segment starts at its mapping; mimalloc looks up the segment of `p - 1`.
    if (length > 1 && mi_is_in_heap_region(reinterpret_cast<const char *>(at) + 1)) {
        return length;
    }
    if (const std::size_t arena = memxx_pymalloc_arena_at(words, length)) {
        return arena;
    }
    // glibc writes its headers: a first page never written holds none (and reading it would map
    // the zero page in, which mincore then reports as resident).
    unsigned char resident = 0;
    if (mincore(const_cast<std::size_t *>(words), 1, &resident) != 0 || (resident & 1) == 0) {
        return 0;
    }
    // A glibc arena's heap: 64 MiB aligned, its header (heap_info) first: the arena (ar_ptr) in
    // the first page of a heap, then prev, size and mprotect_size (the part mapped RW), whole
    // pages with size <= mprotect_size <= 64 MiB. mprotect_size is not compared with the
    // mapping's length: the heap's thread can grow or shrink it between the read of
    // /proc/self/maps and this one (1 time in 5,000 here with lzma and bz2 threads running), and
    // a heap taken for a reservation has its thread's frees charged to a profiled line.
    constexpr std::uintptr_t kHeapMax = std::uintptr_t{64} << 20;
    static const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    const std::size_t arena = words[0];
    const std::size_t heap_size = words[2];
    const std::size_t mapped_rw = words[3];
    if (at % kHeapMax == 0 && arena >= kHeapMax && arena % kHeapMax < page &&
        heap_size % page == 0 && mapped_rw % page == 0 && heap_size <= mapped_rw &&
        mapped_rw != 0 && mapped_rw <= kHeapMax) {
        return length;
    }
    // A glibc mmapped chunk: prev_size 0, a size with IS_MMAPPED alone among its flags (glibc
    // 2.43's is not a whole number of pages: 16 B under one).
    const std::size_t chunk = words[1] & ~std::size_t{7};
    if (words[0] == 0 && (words[1] & 7) == 2 && chunk != 0 && chunk <= length) {
        return chunk;
    }
    return 0;
}

// A reservation made before profiling (pyarrow's mimalloc at its first array, polars' jemalloc
// at import) is filled during it: its pages count from now on. Left out: thread stacks, the .bss
// of loaded objects, and any mapping that starts with a piece of a block-counted allocator, all
// of which the kernel may have merged into one mapping with their neighbours (a reservation made
// with MAP_NORESERVE, as mimalloc and jemalloc make theirs, is not merged with those), and
// mappings under 1 MiB (reservations are larger; small ones of unknown owners come and go with
// threads).
// `own` is a block of our own mimalloc: mimalloc 3 keeps an arena's metadata at its start, where
// mi_is_in_heap_region answers false, so the arena holding our tables is told by that block.
// A mapping of exactly a default thread stack's size (stack and guard) is a thread's stack too:
// glibc 2.42+ keeps the stacks of ended threads in a cache without their guard region.
std::uintptr_t default_thread_stack_bytes() noexcept {
    pthread_attr_t attr;
    std::size_t stack = 0;
    std::size_t guard = 0;
    if (pthread_getattr_default_np(&attr) == 0) {
        pthread_attr_getstacksize(&attr, &stack);
        pthread_attr_getguardsize(&attr, &guard);
        pthread_attr_destroy(&attr);
    }
    return page_round_up(stack + guard);
}

void adopt_mapping(std::uintptr_t begin, std::uintptr_t end, MappingBelow below, void *own) {
    constexpr std::uintptr_t kSmallest = std::uintptr_t{1} << 20;
    static const std::uintptr_t thread_stack = default_thread_stack_bytes();
    const auto own_block = reinterpret_cast<std::uintptr_t>(own);
    const bool ours = begin <= own_block && own_block < end;
    if (below == MappingBelow::other && end - begin >= kSmallest && !ours &&
        end - begin != thread_stack &&
        block_counted_bytes(begin, end) == 0) {
        pages::adopt(begin, end);
    }
}

double seconds_now() noexcept {
    timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
}

} // namespace

// A thread without the GIL may hold the mutex (a dlopen) when another forks: the child would
// inherit it held and hang at its next dlopen or profiling session (core/session.hpp).
void native_hooks_fork_prepare() noexcept { g_patch_mutex.lock(); }
void native_hooks_fork_parent() noexcept { g_patch_mutex.unlock(); }
void native_hooks_fork_child() noexcept { g_patch_mutex.unlock(); }

void native_hooks_enable() {
    fork_locks_install();
    std::lock_guard<std::mutex> lock(g_patch_mutex);
    if (g_objects == nullptr) {
        g_objects = new (mi_malloc(sizeof(MiVector<PatchedObject>))) MiVector<PatchedObject>();
        find_excluded();
        find_libc_functions();
    }
    const double start = seconds_now();
    g_redirected = true;
    pass_locked(redirect_object);
    {
        ReentrancyGuard guard;
        // Adoption tells the block allocator's own mappings by their headers (glibc's, pymalloc's,
        // mimalloc's): under another malloc (ASan's runtime) it would take that allocator's
        // regions for reservations, so none is adopted there.
        const bool glibc_malloc =
            g_excluded.whole[2] == 0 || g_excluded.whole[2] == g_excluded.whole[1];
        void *own = mi_malloc(64);
        if (glibc_malloc) {
            for_each_anonymous_mapping(adopt_mapping, own);
        }
        mi_free(own);
    }
    g_last_pass_seconds = seconds_now() - start;
    g_native_on.store(true, std::memory_order_release);
}

void native_hooks_disable() {
    std::lock_guard<std::mutex> lock(g_patch_mutex);
    if (!g_redirected) {
        return;
    }
    g_native_on.store(false, std::memory_order_release);
    g_redirected = false;
    pass_locked(restore_object);
    pages::forget_all();
}

NativeHookStats native_hook_stats() {
    std::lock_guard<std::mutex> lock(g_patch_mutex);
    NativeHookStats stats{g_redirected, 0, 0, 0, 0, g_last_pass_seconds};
    if (g_objects != nullptr) {
        // Read under the loader's lock: the objects recorded cannot be unloaded meanwhile.
        dl_iterate_phdr(count_redirected, &stats);
        for (const PatchedObject &object : *g_objects) {
            stats.objects += object.slots.empty() ? 0 : 1;
            stats.slots += object.slots.size();
        }
        stats.live_mappings = pages::tracked_mappings();
    }
    return stats;
}

} // namespace memxx::core

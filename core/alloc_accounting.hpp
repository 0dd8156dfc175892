// The accounting core that every source of allocations charges: the live-block table, the
// profiled thread's ledger, the re-entrancy flag. One file per source calls into it (PyMem
// domains: pymem_hooks.cpp, numpy's handler: numpy_hooks.cpp, native code's malloc and mmap:
// native_hooks.cpp), each wrapper with the same steps: re-entrancy check, real call, record.
// Every block is also put on the allocation stream (core/alloc_stream.hpp) for the consumers
// subscribed to it; no consumer's header is included here.
//
// Internal to core. Callable from any thread, with or without the GIL: no Python API here.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "core/alloc_stream.hpp"
#include "core/line_ledger.hpp"
#include "core/live_blocks.hpp"
#include "core/other_threads.hpp"
#include "core/recent_blocks.hpp"
#include "core/session.hpp"
#include "core/spin_lock.hpp"
#include "core/thread_local.hpp"

namespace memxx::core::accounting {

// Who made the allocation: native blocks are also summed on their own (the line's native share).
enum class Source { python, native };

constexpr std::size_t kNoSize = SIZE_MAX;

extern MEMXX_TLS ThreadLedger *t_ledger; // nullptr: the thread is not profiled
extern MEMXX_TLS bool t_in_hook;         // inside a hook: nested allocator calls are not counted
extern MEMXX_TLS const void *t_last_block; // the block the thread's ledger was charged for last
extern std::atomic<bool> g_active;       // accounting is on (a profiling session is open)

// The tables are created at the first session and never freed: hooks may still run at exit.
// g_blocks holds the blocks of the RAW domain, numpy and native code, which may be allocated and
// freed on any thread without the GIL: g_lock (the session's, core/session.hpp) guards it.
using session::g_lock;
extern LiveBlocks *g_blocks;

// The blocks of the MEM and OBJ domains, which are always called with the GIL held: the most
// recent ones in a small cache, the others in a table of their own. The main interpreter's GIL
// guards both while no other interpreter exists; once one does (it could have a GIL of its own)
// g_lock guards them too. Set at the first session.
extern RecentBlocks *g_recent;
extern LiveBlocks *g_gil_blocks;
extern void *const *g_newest_interpreter;
extern const void *g_main_interpreter;

// Where a block's allocator call came from: the MEM and OBJ domains are called with the GIL
// held; the RAW domain and native code may be called from any thread without it.
enum class Guard { gil, none };

// The GIL alone guards the MEM and OBJ blocks: no interpreter but the main one exists.
inline bool main_interpreter_only() noexcept {
    return __atomic_load_n(g_newest_interpreter, __ATOMIC_RELAXED) == g_main_interpreter;
}

inline bool recent_usable(Guard guard) noexcept {
    return guard == Guard::gil && main_interpreter_only();
}

// Runs `step` on the MEM and OBJ blocks: under the GIL alone, or with g_lock held as well.
template <class Step>
__attribute__((always_inline)) inline auto with_gil_blocks(Step &&step) noexcept {
    if (main_interpreter_only()) {
        return step();
    }
    SpinLockGuard lock(g_lock);
    return step();
}

// Records a block; false when it cannot be kept.
inline bool track_block(void *address, std::size_t size, Guard guard) noexcept {
    if (guard == Guard::gil) {
        return with_gil_blocks([&] {
            RecentBlocks::Moves moves;
            switch (g_recent->put(address, size, &moves)) {
            case RecentBlocks::Put::kept:
                return true;
            case RecentBlocks::Put::displaced:
                // Should the table be unable to grow, the displaced block's free goes uncounted.
                g_gil_blocks->insert(moves.to_table, moves.to_table_size);
                return true;
            case RecentBlocks::Put::unfit:
                break;
            }
            return g_gil_blocks->insert(address, size);
        });
    }
    SpinLockGuard lock(g_lock);
    return g_blocks->insert(address, size);
}

// Forgets a block; false when no table knows it.
inline bool untrack_block(void *address, std::size_t *size, Guard guard) noexcept {
    if (guard == Guard::gil) {
        return with_gil_blocks([&] {
            return g_recent->take(address, size) ||
                   (!g_gil_blocks->empty() && g_gil_blocks->erase(address, size));
        });
    }
    SpinLockGuard lock(g_lock);
    return !g_blocks->empty() && g_blocks->erase(address, size);
}

// Fast path of every wrapper: false when the call must go straight to the real allocator.
inline bool counting() noexcept { return !t_in_hook && g_active.load(std::memory_order_relaxed); }

class ReentrancyGuard {
  public:
    ReentrancyGuard() noexcept { t_in_hook = true; }
    ~ReentrancyGuard() { t_in_hook = false; }
    ReentrancyGuard(const ReentrancyGuard &) = delete;
    ReentrancyGuard &operator=(const ReentrancyGuard &) = delete;
};

inline void charge_alloc(ThreadLedger *ledger, std::size_t size, Source source) noexcept {
    if (source == Source::native) {
        ledger->on_native_alloc(size);
    } else {
        ledger->on_alloc(size);
    }
}

inline void charge_free(ThreadLedger *ledger, std::size_t size, Source source) noexcept {
    t_last_block = nullptr; // the last allocation is no longer the ledger's last change
    if (source == Source::native) {
        ledger->on_native_free(size);
    } else {
        ledger->on_free(size);
    }
}

// Other threads' blocks go to a profiled thread's share (core/other_threads.hpp); these are
// the hooks' paths for a thread without a ledger, out of line: the profiled thread's own path
// stays as short as it was.
__attribute__((noinline)) inline void record_alloc_for_share(void *address, std::size_t size,
                                                             Source source, Guard guard) noexcept {
    ShareRef share(share_paying_for_this_thread);
    if (share.get() != nullptr && track_block(address, size, guard)) {
        share.add(static_cast<std::int64_t>(size), source == Source::native);
    }
}

__attribute__((noinline)) inline void credit_free_to_share(std::size_t size,
                                                           Source source) noexcept {
    ShareRef share(share_crediting_a_free);
    if (share.get() != nullptr) {
        share.add(-static_cast<std::int64_t>(size), source == Source::native);
    }
}

// Charges the ledger, or else the share (nobody pays when neither is there).
inline void pay_alloc(ThreadLedger *ledger, const ShareRef &share, std::size_t size,
                      Source source) noexcept {
    if (ledger != nullptr) {
        charge_alloc(ledger, size, source);
    } else if (share.get() != nullptr) {
        share.add(static_cast<std::int64_t>(size), source == Source::native);
    }
}

inline void pay_free(ThreadLedger *ledger, const ShareRef &share, std::size_t size,
                     Source source) noexcept {
    if (ledger != nullptr) {
        charge_free(ledger, size, source);
    } else if (share.get() != nullptr) {
        share.add(-static_cast<std::int64_t>(size), source == Source::native);
    }
}

// A new block on the calling thread: kept in the table and charged when the thread is profiled
// (or works for a profiled thread).
inline void record_alloc(void *address, std::size_t size, Source source, Guard guard) noexcept {
    if (stream::wanted(stream::kBlocks)) {
        stream::block_alloc(address, size);
    }
    ThreadLedger *ledger = t_ledger;
    if (ledger == nullptr) {
        if (g_other_threads_on.load(std::memory_order_relaxed)) {
            record_alloc_for_share(address, size, source, guard);
        }
        return;
    }
    if (track_block(address, size, guard)) {
        t_last_block = address;
        charge_alloc(ledger, size, source);
    }
}

// The malloc/calloc/aligned steps shared by every source: `real()` is the real allocation, of
// `size` bytes. The caller has checked counting().
template <class RealAlloc>
void *alloc_counted(std::size_t size, Source source, Guard table_guard, RealAlloc &&real) noexcept {
    ReentrancyGuard guard;
    void *address = real();
    if (address != nullptr) {
        record_alloc(address, size, source, table_guard);
    }
    return address;
}

// The free steps shared by every source. The caller has checked counting() and address != 0.
template <class RealFree>
void free_counted(void *address, Source source, Guard table_guard, RealFree &&real) noexcept {
    ReentrancyGuard guard;
    if (stream::wanted(stream::kBlocks)) {
        stream::block_free(address);
    }
    std::size_t size = 0;
    bool known = false;
    if (table_guard == Guard::gil && main_interpreter_only()) {
        // The GIL keeps the address from being handed out again before the table forgets it,
        // so a block that is not in the cache is looked up after the real free, which overlaps
        // the cache miss of its table slot.
        known = g_recent->take(address, &size);
        const bool look_up = !known && !g_gil_blocks->empty();
        if (look_up) {
            g_gil_blocks->prefetch(address);
        }
        real();
        known = known || (look_up && g_gil_blocks->erase(address, &size));
    } else {
        // Forgotten before the real free: another thread could get the address back in between.
        known = untrack_block(address, &size, table_guard);
        real();
    }
    if (!known) {
        return;
    }
    ThreadLedger *ledger = t_ledger;
    if (ledger != nullptr) {
        charge_free(ledger, size, source);
    } else if (g_other_threads_on.load(std::memory_order_relaxed)) {
        credit_free_to_share(size, source); // a block handed to another thread
    }
}

// The realloc steps shared by every source. `real(address, size)` is the real realloc;
// `unknown.before(address)` runs before it for a block the table does not know (allocated before
// profiling) and `unknown.after(size)` then gives that block's old size, or kNoSize when it
// cannot be known (the resize is then not counted: only growth of known sizes is). The caller
// has checked counting().
template <class RealRealloc, class UnknownOldSize>
void *realloc_counted(void *address, std::size_t size, Source source, Guard table_guard,
                      RealRealloc &&real, UnknownOldSize &&unknown) noexcept {
    ReentrancyGuard guard;
    std::size_t old_size = 0;
    bool known = false;
    const bool stream_blocks = stream::wanted(stream::kBlocks);
    if (stream_blocks && address != nullptr) {
        stream::block_free(address);
    }
    if (address != nullptr) {
        known = untrack_block(address, &old_size, table_guard);
    }
    ThreadLedger *const ledger = t_ledger;
    // Another thread resizing a block pays as it would allocate; a block of a profiled thread
    // it resizes stays in the table at its new size, the change credited as its free would be.
    ShareRef share(ledger != nullptr || !g_other_threads_on.load(std::memory_order_relaxed)
                       ? nullptr
                       : known ? share_crediting_a_free : share_paying_for_this_thread);
    const bool profiled = ledger != nullptr || share.get() != nullptr;
    bool counted = known || address == nullptr;
    if (!counted && profiled) {
        unknown.before(address);
    }
    void *resized = real(address, size);
    if (stream_blocks && resized != nullptr) {
        stream::block_alloc(resized, size);
    }
    if (!counted && profiled) {
        old_size = unknown.after(size);
        counted = old_size != kNoSize;
    }
    if (resized == nullptr) {
        if (known && size == 0 && source == Source::native) { // glibc's realloc(p, 0) frees p
            pay_free(ledger, share, old_size, source);
        } else if (known) { // the old block is still there
            track_block(address, old_size, table_guard);
        }
        return resized;
    }
    if (profiled && counted) {
        const bool tracked = track_block(resized, size, table_guard);
        pay_free(ledger, share, old_size, source);
        if (tracked) {
            pay_alloc(ledger, share, size, source);
        }
    }
    return resized;
}

} // namespace memxx::core::accounting

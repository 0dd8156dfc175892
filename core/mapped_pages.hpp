// Anonymous mappings that native code makes itself (an embedded allocator's reservation, a BLAS
// buffer), counted by the pages they occupy, not by their length: a reservation never touched
// costs nothing, the pages touched while a line runs count for that line, and pages given back
// (munmap, madvise DONTNEED/FREE/REMOVE, mremap shrinking) count as freed.
//
// Two observers keep each tracked page's state: the profiled thread's own page faults, read from
// a perf_event ring buffer (a line boundary where nothing faulted costs a few loads and no lock),
// and a mincore(2) pass over the tracked mappings (at a thread's first observation, when the ring
// buffer lost records or the thread's fault count changed where no perf event can be opened, and
// at the end of a line that ran 20 times longer than the last pass took: the pages other threads
// touched). While nothing is tracked, a line boundary costs one load of `g_watching`.
//
// Mappings made before the session (an allocator's reservation made at import) are adopted when
// it starts (native_hooks.cpp picks them), their resident pages as the baseline.
//
// The peak recorder (core/peak_recorder.cpp) counts the same pages by the same rule, with its own
// two bits of each page's state, so that neither observer disturbs the other: its passes
// (peak_pass) count the pages that became resident or went away, the hooks count the pages given
// back at once, and those found resident just before (told to the allocation stream's mappings
// consumer, core/alloc_stream.hpp), each charged to the code that made the mapping (`maker`, its
// tag from the stream, 0 for a mapping adopted or made before the recording).
//
// The hooks (mapped/unmapped/given_back/remapped) are called by native_hooks.cpp under its
// re-entrancy guard, from any thread, with or without the GIL; `observe` by the line tracer on a
// profiled thread. No Python API.
//
// Lock: an internal spin lock guards the mappings, a leaf of the lock order (HACKING's lock
// table, core/session.hpp): under it only the tables change, mincore runs and mimalloc
// allocates (never hooked). What a hook or pass found is charged to the ledger and told to the
// stream (stream::pages_changed: the peak recorder takes session::g_lock and may wait for room)
// after it lets go; the maker's tag (stream::mapping_maker) is taken before. Taken under
// native_hooks' g_patch_mutex by the session (adopt, forget_all), never with session::g_lock or
// m_apply.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace memxx::core {

class ThreadLedger;

namespace pages {

// Some mapping is tracked, or pages given back by an unprofiled thread wait to be charged.
extern std::atomic<bool> g_watching;

// Charges `ledger` (the calling thread's) with the pages that became resident or went away
// since the last observation. The slow path of at_line_boundary.
void observe(ThreadLedger *ledger) noexcept;
// Called where a line (or a frame) of a profiled thread begins or ends.
inline void at_line_boundary(ThreadLedger *ledger) noexcept {
    if (__builtin_expect(g_watching.load(std::memory_order_relaxed), false) && ledger != nullptr) {
        observe(ledger);
    }
}

// Before a hook unmaps, gives back or moves pages (before the real call, while the range is still
// mapped): the pages the calling profiled thread touched so far count first.
void count_own_faults(ThreadLedger *ledger) noexcept;
// A new anonymous mapping, made while profiling: tracked from now on. `populated`: its pages
// are resident already (MAP_POPULATE, MAP_LOCKED), charged to `ledger` now.
// `maker`: the stream's tag of the calling code (stream::mapping_maker; 0 when none).
// `bystander`: made by a thread that pays nobody (core/other_threads.hpp: a Python thread
// without a ledger or a cause, whose data stack is such a mapping): the line profiler never
// counts its pages, so that neither their coming nor their going is charged to a profiled line.
void mapped(void *address, std::size_t length, bool populated, std::uint32_t maker,
            bool bystander, ThreadLedger *ledger) noexcept;
// A mapping made before the session (an allocator's reservation made at import or at first use,
// filled later): tracked from now on, its resident pages counted as they are now, charged to no
// one. A range overlapping a tracked mapping is left alone.
void adopt(std::uintptr_t begin, std::uintptr_t end) noexcept;
// [address, address + length) is unmapped (munmap, or a MAP_FIXED mapping replacing it): its
// counted pages are freed. `ledger` is the calling thread's (nullptr: charged at the next
// observation of a profiled thread).
void unmapped(void *address, std::size_t length, ThreadLedger *ledger) noexcept;
// madvise(DONTNEED, REMOVE, FREE) of the range returned: its counted pages are freed. `lazily`
// (MADV_FREE): the kernel may leave them resident until it needs them; they count as freed.
// On an unprofiled thread (ledger nullptr) nothing changes: the pages other threads touch and
// give back are both seen by the mincore passes.
void given_back(void *address, std::size_t length, bool lazily, ThreadLedger *ledger) noexcept;
// mremap moved or resized [old, old + old_length) to [now, now + new_length): pages moved keep
// their state, pages cut off are freed, a tracked mapping's growth is tracked.
void remapped(void *old, std::size_t old_length, void *now, std::size_t new_length,
              ThreadLedger *ledger) noexcept;
// The calling thread stops being profiled: its fault watcher is closed.
void thread_end() noexcept;
// The session ends: every mapping is forgotten (no hook sees them any more).
void forget_all() noexcept;
std::size_t tracked_mappings() noexcept;

// --- the peak recorder's side (core/peak_recorder.cpp) -----------------------------------------
// The recording starts: the pages resident now are its baseline (never charged), every mapping's
// maker is forgotten (0). From now on the hooks queue the frees of the pages it counted.
void peak_begin() noexcept;
// Before a hook gives [address, address + length) back (munmap, madvise, mremap): the peak
// recorder counts the pages resident there now, so that a temporary touched and given back
// between two passes still makes its peak. Tells stream::pages_changed; takes the pages' lock.
void peak_count(void *address, std::size_t length) noexcept;
void peak_end() noexcept;
struct PeakPagesChanged {
    std::uint32_t maker; // a stack id
    std::int64_t bytes;  // counted since the last pass: pages that became resident less those gone
};
// One mincore pass over every tracked mapping: fills `changed` (at most `capacity` makers; more
// go to the root stack) and returns how many; `memory_bytes` receives the tables' own memory.
// Leaves the line profiler's state alone. Not called under session::g_lock's hold by a hook.
std::size_t peak_pass(PeakPagesChanged *changed, std::size_t capacity,
                      std::size_t *memory_bytes) noexcept;

} // namespace pages
} // namespace memxx::core

// The allocator hook: wraps the RAW, MEM and OBJ PyMem domains, numpy's data allocator and the
// malloc family and anonymous mmap of native code (through each loaded object's GOT), and charges
// every block allocated or freed on a profiled thread to that thread's ThreadLedger.
//
// The hooks call no Python API: RAW-domain and native calls arrive without the GIL.
#pragma once

#include <cstddef>

#include "core/line_ledger.hpp"
#include "core/session.hpp"
#include "core/thread_local.hpp"

namespace memxx::core {

// The calling thread's accounting, from its first profiled frame (or watch) to the end of its
// last teardown: its blocks are charged to `ledger`, the first such thread opens the session,
// numpy's handler is ours in the thread's context. hook_thread_end gives it all back (the ledger
// stays the caller's to free). GIL held.
void hook_thread_begin(ThreadLedger *ledger);
void hook_thread_end();

// True while our PyMem hooks share the allocator chain with tracemalloc, which puts back the
// allocator it saved when it stops and so can cut ours out: pymem_hooks_verify (each line event
// calls it then) puts ours back on top if so. GIL held.
extern bool g_pymem_chain_shared;
void pymem_hooks_verify();

namespace accounting {
extern MEMXX_TLS ThreadLedger *t_ledger;   // core/alloc_accounting.hpp
extern MEMXX_TLS const void *t_last_block; // the block the thread's ledger was charged for last
}

// The ledger the hook charges for the calling thread; nullptr when the thread is not profiled.
void set_thread_ledger(ThreadLedger *ledger) noexcept;
inline ThreadLedger *thread_ledger() noexcept { return accounting::t_ledger; }

// The interpreter allocated `block` (an int it passes to an event callback: a line number or an
// offset past 256) just before calling us: if it is the last block charged on this thread, the
// charge and its effect on the highs are taken back, and its free will be charged nothing.
// GIL held.
void retract_event_temporary(const void *block) noexcept;

struct HookStats {
    std::size_t live_blocks; // blocks allocated while profiling and not freed yet
    std::size_t table_bytes; // the live-block table's own memory
    bool installed;          // our functions are in the PyMem chain of at least one domain
    bool active;             // accounting is on
    bool native;             // native code's GOT slots point at our functions
    std::size_t native_objects;   // loaded objects with redirected slots
    std::size_t native_slots;     // slots found for our functions
    std::size_t native_slots_now; // of them, those pointing at our functions now (read back)
    std::size_t native_mappings;  // anonymous mappings made while profiling, still mapped
    double native_patch_seconds;  // the last pass over the loaded objects
};
HookStats hook_stats();

// Benchmarks' floor of any allocation tracker: PyMem functions that only call the previous
// allocator. False when nothing changed (a session's hooks or the floor are in already; or the
// floor is not in, or another hook stacked on it keeps it). GIL held.
bool set_floor_allocator(bool on);

// numpy's PyDataMem handler: makes ours the current context's handler; returns the previous
// handler capsule (new reference) to hand back to numpy_restore_handler, or nullptr if numpy is
// not imported or too old. GIL held.
void *numpy_install_handler();
void numpy_restore_handler(void *previous);

} // namespace memxx::core

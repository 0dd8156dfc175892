// The allocator hook: wraps the RAW, MEM and OBJ PyMem domains (and numpy's data allocator) and
// charges every block allocated or freed on a profiled thread to that thread's ThreadLedger.
//
// The hook calls no Python API: RAW-domain calls arrive without the GIL (lzma, bz2, ...).
#pragma once

#include <cstddef>

#include "core/line_ledger.hpp"

namespace memxx::core {

// Accounting starts with the first profiled thread and stops with the last one. Both install or
// remove the hooks, so both need the GIL.
void hook_session_begin();
void hook_session_end();

// Allocation-site tracking (core/alloc_sites) needs the hooks without a profiling session: the
// hooks stay installed while either wants them. GIL held.
void hook_sites_attach();
void hook_sites_detach();

// The ledger the hook charges for the calling thread; nullptr when the thread is not profiled.
void set_thread_ledger(ThreadLedger *ledger) noexcept;
ThreadLedger *thread_ledger() noexcept;

struct HookStats {
    std::size_t live_blocks; // blocks allocated while profiling and not freed yet
    std::size_t table_bytes; // the live-block table's own memory
    bool installed;          // our functions are in the PyMem chain of at least one domain
    bool active;             // accounting is on
};
HookStats hook_stats();

// numpy's PyDataMem handler: makes ours the current context's handler; returns the previous
// handler capsule (new reference) to hand back to numpy_restore_handler, or nullptr if numpy is
// not imported or too old. GIL held.
void *numpy_install_handler();
void numpy_restore_handler(void *previous);

} // namespace memxx::core

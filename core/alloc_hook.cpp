// The hook's side of a profiled thread (its ledger, numpy's handler in its context) and the
// accounting core's globals; the session that starts and stops the sources is core/session.cpp.
#include "core/alloc_hook.hpp"

#include <Python.h>

#include "core/alloc_accounting.hpp"
#include "core/alloc_sources.hpp"
#include "core/mapped_pages.hpp"
#include "core/py_compat.h"

namespace memxx::core {

namespace accounting {

MEMXX_TLS ThreadLedger *t_ledger = nullptr;
MEMXX_TLS bool t_in_hook = false;
MEMXX_TLS const void *t_last_block = nullptr;
std::atomic<bool> g_active{false};
LiveBlocks *g_blocks = nullptr;
RecentBlocks *g_recent = nullptr;
LiveBlocks *g_gil_blocks = nullptr;
void *const *g_newest_interpreter = nullptr;
const void *g_main_interpreter = nullptr;

} // namespace accounting

namespace {

using namespace accounting;

MEMXX_TLS void *t_numpy_previous = nullptr; // numpy's handler before hook_thread_begin

} // namespace

void hook_thread_begin(ThreadLedger *ledger) {
    hook_session_begin();
    t_numpy_previous = numpy_install_handler();
    set_thread_ledger(ledger);
}

void hook_thread_end() {
    pages::thread_end();
    set_thread_ledger(nullptr);
    numpy_restore_handler(t_numpy_previous);
    t_numpy_previous = nullptr;
    hook_session_end();
}

void set_thread_ledger(ThreadLedger *ledger) noexcept { t_ledger = ledger; }

void retract_event_temporary(const void *block) noexcept {
    ThreadLedger *ledger = t_ledger;
    std::size_t size = 0;
    if (ledger != nullptr && block == t_last_block && recent_usable(Guard::gil) &&
        g_recent->forget_size(block, &size)) {
        ledger->retract_last_alloc(size);
    }
    t_last_block = nullptr;
}

bool set_floor_allocator(bool on) { return pymem_floor(on); }

HookStats hook_stats() {
    const NativeHookStats native = native_hook_stats();
    HookStats stats{0,
                    0,
                    pymem_hooks_installed(),
                    g_active.load(std::memory_order_relaxed),
                    native.enabled,
                    native.objects,
                    native.slots,
                    native.slots_now,
                    native.live_mappings,
                    native.last_enable_seconds};
    if (g_blocks != nullptr) {
        SpinLockGuard guard(session::g_lock);
        stats.live_blocks = g_blocks->count() + g_gil_blocks->count() + g_recent->count();
        stats.table_bytes = g_blocks->memory_bytes() + g_gil_blocks->memory_bytes() +
                            RecentBlocks::memory_bytes();
    }
    return stats;
}

} // namespace memxx::core

// The session around the sources of allocations: the first profiled thread installs them and
// turns accounting on, the last one turns it off and takes them away again.
#include "core/alloc_hook.hpp"

#include <Python.h>

#include <new>
#include <pthread.h>

#include "core/alloc_accounting.hpp"
#include "core/alloc_sources.hpp"
#include "core/fork_locks.hpp"
#include "core/mapped_pages.hpp"
#include "core/py_compat.h"

namespace memxx::core {

namespace accounting {

MEMXX_TLS ThreadLedger *t_ledger = nullptr;
MEMXX_TLS bool t_in_hook = false;
MEMXX_TLS const void *t_last_block = nullptr;
std::atomic<bool> g_active{false};
SpinLock g_lock;
LiveBlocks *g_blocks = nullptr;
RecentBlocks *g_recent = nullptr;
LiveBlocks *g_gil_blocks = nullptr;
void *const *g_newest_interpreter = nullptr;
const void *g_main_interpreter = nullptr;

} // namespace accounting

namespace {

using namespace accounting;

int g_sessions = 0;            // profiled threads; changed with the GIL held
bool g_sites_attached = false; // allocation-site tracking wants the PyMem hooks; GIL held
int g_native_wanted = 0;       // enabled profilers and watches that count native memory; GIL held
bool g_native_enabled = false; // native_hooks_enable() is in force; GIL held
MEMXX_TLS void *t_numpy_previous = nullptr; // numpy's handler before hook_thread_begin

// Native counting is on while a session is open and someone wants it.
void update_native() {
    const bool wanted = g_sessions > 0 && g_native_wanted > 0;
    if (wanted && !g_native_enabled) {
        native_hooks_enable();
        g_native_enabled = true;
    } else if (!wanted && g_native_enabled) {
        native_hooks_disable();
        g_native_enabled = false;
    }
}

} // namespace

void hook_session_begin() {
    if (g_sessions++ > 0) {
        return;
    }
    // A thread without the GIL (lzma, bz2) may hold the table's lock when another thread forks.
    fork_locks_install();
    if (g_blocks == nullptr) {
        void *memory = mi_malloc(sizeof(LiveBlocks));
        g_blocks = new (memory) LiveBlocks();
        g_gil_blocks = new (mi_malloc(sizeof(LiveBlocks))) LiveBlocks();
        g_recent = new (mi_malloc(sizeof(RecentBlocks))) RecentBlocks();
        g_newest_interpreter = memxx_newest_interpreter_slot();
        g_main_interpreter = memxx_main_interpreter();
    }
    pymem_hooks_install();
    g_active.store(true, std::memory_order_release);
    update_native();
}

void hook_session_end() {
    if (g_sessions == 0 || --g_sessions > 0) {
        return;
    }
    update_native();
    g_active.store(false, std::memory_order_release);
    {
        // Blocks of this session will be freed unseen: stale entries would be wrong next time.
        SpinLockGuard guard(g_lock);
        g_blocks->clear();
        g_gil_blocks->clear();
        g_recent->clear();
    }
    if (!g_sites_attached) {
        pymem_hooks_remove();
    }
}

void native_want(bool on) {
    g_native_wanted += on ? 1 : -1;
    if (g_native_wanted < 0) {
        g_native_wanted = 0;
    }
    update_native();
}

void hook_sites_attach() {
    g_sites_attached = true;
    pymem_hooks_install();
}

void hook_sites_detach() {
    g_sites_attached = false;
    if (g_sessions == 0) {
        pymem_hooks_remove();
    }
}

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
        SpinLockGuard guard(g_lock);
        stats.live_blocks = g_blocks->count() + g_gil_blocks->count() + g_recent->count();
        stats.table_bytes = g_blocks->memory_bytes() + g_gil_blocks->memory_bytes() +
                            RecentBlocks::memory_bytes();
    }
    return stats;
}

} // namespace memxx::core

// The profiling session (core/session.hpp): the sources installed and counting while profiled
// threads or consumers of the stream need them, and the one fork registration.
#include "core/session.hpp"

#include <new>
#include <pthread.h>

#include <mimalloc.h>

#include "core/alloc_accounting.hpp"
#include "core/alloc_sources.hpp"
#include "core/py_compat.h"

namespace memxx::core {

namespace session {
SpinLock g_lock;
}

namespace {

using namespace accounting;

// All changed with the GIL held.
int g_sessions = 0;            // profiled threads and consumers needing accounting
int g_pymem_holders = 0;       // consumers needing the PyMem hooks without a session
int g_native_wanted = 0;       // enabled profilers, watches and consumers counting native memory
bool g_native_enabled = false; // native_hooks_enable() is in force
SourceNeeds g_needs[stream::kMaxConsumers]; // what each subscribed consumer asked for

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
        g_blocks = new (mi_malloc(sizeof(LiveBlocks))) LiveBlocks();
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
        SpinLockGuard guard(session::g_lock);
        g_blocks->clear();
        g_gil_blocks->clear();
        g_recent->clear();
    }
    if (g_pymem_holders == 0) {
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

int session_subscribe(const stream::Consumer *consumer, SourceNeeds needs) {
    const int slot = stream::subscribe(consumer);
    if (slot < 0) {
        return slot;
    }
    g_needs[slot] = needs;
    if (needs == SourceNeeds::pymem) {
        ++g_pymem_holders;
        pymem_hooks_install();
        return slot;
    }
    hook_session_begin();
    if (needs == SourceNeeds::accounting_native) {
        native_want(true);
    }
    return slot;
}

void session_unsubscribe(int slot) {
    if (slot < 0 || slot >= stream::kMaxConsumers) {
        return;
    }
    const SourceNeeds needs = g_needs[slot];
    if (needs == SourceNeeds::pymem) {
        if (--g_pymem_holders == 0 && g_sessions == 0) {
            pymem_hooks_remove();
        }
    } else {
        if (needs == SourceNeeds::accounting_native) {
            native_want(false);
        }
        hook_session_end();
    }
    stream::unsubscribe(slot);
}

// --- fork() -----------------------------------------------------------------------------------

namespace {

void prepare() noexcept {
    native_hooks_fork_prepare();
    session::g_lock.lock();
    peak_fork_prepare();
    pages::fork_prepare();
    shares_fork_prepare();
}

void parent() noexcept {
    shares_fork_parent();
    pages::fork_parent();
    peak_fork_parent();
    session::g_lock.unlock();
    native_hooks_fork_parent();
}

void child() noexcept {
    shares_fork_child();
    pages::fork_child();
    peak_fork_child();
    session::g_lock.unlock();
    native_hooks_fork_child();
}

} // namespace

void fork_locks_install() noexcept {
    static const bool installed = pthread_atfork(prepare, parent, child) == 0;
    (void)installed;
}

} // namespace memxx::core

// The lifetime of the profiled threads' shares and the routing of other threads' memory to them
// (core/other_threads.hpp).
#include "core/other_threads.hpp"

#include "core/alloc_hook.hpp"
#include "core/session.hpp"

#include <Python.h>

#include <new>
#include <pthread.h>

#include <mimalloc.h>

namespace memxx::core {

namespace accounting {
std::atomic<bool> g_other_threads_on{false};
} // namespace accounting

namespace {

using accounting::g_other_threads_on;

// Guards the open shares' list and the free list. Never held while another lock is taken but
// a share's own (so no order with the block table's lock or the loader's lock exists).
SpinLock g_shares_lock;
ThreadShare *g_newest = nullptr;   // the open shares, linked newest to oldest through `older`
ThreadShare *g_recycled = nullptr; // closed shares nobody references, linked through `older`
int g_wanted = 0;                  // GIL held

MEMXX_TLS ThreadShare *t_cause = nullptr; // referenced; the thread's adopted cause
MEMXX_TLS const void *t_cause_frame = nullptr; // its target line (ShareTarget, in scalars)
MEMXX_TLS std::uint32_t t_cause_depth = 0;
MEMXX_TLS int t_cause_lineno = 0;
MEMXX_TLS bool t_python_thread = false;   // seen with a Python thread state once

// A thread that once had a Python thread state keeps it until it ends; one without may get
// one later (PyGILState_Ensure from a native thread), so only "yes" is remembered.
// PyGILState_GetThisThreadState reads a thread-specific key: no GIL needed, nothing allocated.
bool python_thread() noexcept {
    if (t_python_thread) {
        return true;
    }
    t_python_thread = PyGILState_GetThisThreadState() != nullptr;
    return t_python_thread;
}

ThreadShare *newest_open_acquired() noexcept {
    SpinLockGuard guard(g_shares_lock);
    if (g_newest != nullptr) {
        g_newest->references.fetch_add(1, std::memory_order_relaxed);
    }
    return g_newest;
}

// The cause the thread holds (a reference of its own already), when its ledger is still open.
ThreadShare *open_cause() noexcept {
    ThreadShare *cause = t_cause;
    return cause != nullptr && cause->open.load(std::memory_order_relaxed) ? cause : nullptr;
}

} // namespace

// A thread in the middle of fork() must not leave the lock held in the child (core/session.hpp).
void shares_fork_prepare() noexcept { g_shares_lock.lock(); }
void shares_fork_parent() noexcept { g_shares_lock.unlock(); }
void shares_fork_child() noexcept { g_shares_lock.unlock(); }

ThreadShare *share_open() {
    fork_locks_install();
    ThreadShare *share = nullptr;
    {
        SpinLockGuard guard(g_shares_lock);
        share = g_recycled;
        if (share != nullptr) {
            g_recycled = share->older;
        }
    }
    if (share == nullptr) {
        // Its own cache line: other threads write to it while the ledger's thread reads it.
        void *memory = mi_malloc_aligned(sizeof(ThreadShare), 64);
        if (memory == nullptr) {
            return nullptr;
        }
        share = new (memory) ThreadShare();
    }
    ThreadShare::Taken stale;
    share->take(&stale); // what late workers added after it closed last time
    share->references.store(1, std::memory_order_relaxed);
    share->open.store(true, std::memory_order_relaxed);
    SpinLockGuard guard(g_shares_lock);
    share->older = g_newest;
    share->newer = nullptr;
    if (g_newest != nullptr) {
        g_newest->newer = share;
    }
    g_newest = share;
    return share;
}

void share_close(ThreadShare *share) {
    {
        SpinLockGuard guard(g_shares_lock);
        share->open.store(false, std::memory_order_relaxed);
        if (share->newer != nullptr) {
            share->newer->older = share->older;
        } else {
            g_newest = share->older;
        }
        if (share->older != nullptr) {
            share->older->newer = share->newer;
        }
        share->older = share->newer = nullptr;
    }
    share_release(share);
}

ThreadShare *share_acquire(ThreadShare *share) noexcept {
    if (share != nullptr) {
        share->references.fetch_add(1, std::memory_order_relaxed);
    }
    return share;
}

void share_release(ThreadShare *share) noexcept {
    if (share == nullptr || share->references.fetch_sub(1, std::memory_order_acq_rel) != 1) {
        return;
    }
    SpinLockGuard guard(g_shares_lock);
    share->older = g_recycled;
    g_recycled = share;
}

void other_threads_want(bool on) {
    g_wanted += on ? 1 : -1;
    if (g_wanted < 0) {
        g_wanted = 0;
    }
    g_other_threads_on.store(g_wanted > 0, std::memory_order_relaxed);
}

ThreadCause thread_cause() {
    if (!g_other_threads_on.load(std::memory_order_relaxed)) {
        return {};
    }
    if (const ThreadLedger *ledger = thread_ledger()) {
        // nullptr if it could not get one
        return {share_acquire(ledger->share()), ledger->running_target()};
    }
    return {share_acquire(open_cause()), {t_cause_frame, t_cause_depth, t_cause_lineno}};
}

ThreadCause adopt_thread_cause(const ThreadCause &cause) {
    const ThreadCause previous{t_cause, {t_cause_frame, t_cause_depth, t_cause_lineno}};
    t_cause = share_acquire(cause.share);
    t_cause_frame = cause.target.frame;
    t_cause_depth = cause.target.depth;
    t_cause_lineno = cause.target.lineno;
    return previous;
}

namespace accounting {

ThreadShare *share_paying_for_this_thread(bool *referenced, ShareTarget *target) noexcept {
    if (ThreadShare *cause = open_cause()) {
        *target = ShareTarget{t_cause_frame, t_cause_depth, t_cause_lineno};
        return cause;
    }
    if (t_cause != nullptr || python_thread()) {
        return nullptr; // a late worker, or a bystander
    }
    *referenced = true;
    return newest_open_acquired();
}

bool thread_pays_nobody() noexcept { return open_cause() == nullptr && python_thread(); }

ThreadShare *share_crediting_a_free(bool *referenced, ShareTarget *target) noexcept {
    if (ThreadShare *cause = open_cause()) {
        *target = ShareTarget{t_cause_frame, t_cause_depth, t_cause_lineno};
        return cause;
    }
    *referenced = true;
    return newest_open_acquired();
}

} // namespace accounting

} // namespace memxx::core

// The profiling session: which sources of allocations are installed and counting, for whom
// (the profiled threads; the consumers of the allocation stream, core/alloc_stream.hpp, with
// what each needs), the lock the hooks and the peak recorder's producers share, and the one
// pthread_atfork registration that takes every lock of ours across fork().
//
// Its state (the profiled threads, the native wants, the consumers' needs) changes with the GIL
// held only: every call here needs the GIL but fork_locks_install's handlers and the lock.
//
// The order in which our locks nest, and in which the forking thread takes them all across
// fork() (also HACKING's lock table). Code holding one takes only locks below it, and only
// tries one above it (the peak recorder's producers try 3):
//
//   0. the GIL                          (session changes, start/stop of sources and consumers)
//   1. native_hooks' g_patch_mutex      (the session's enable/disable adopt and forget mappings
//                                        under it: it comes before 4)
//   2. session::g_lock                  (the hooks' table; the peak recorder's producers hold it
//                                        to intern a stack and queue an event, and only try 3)
//   3. the peak recorder's m_apply      (held while events are applied; no other lock under it)
//   4. mapped_pages' spin lock          (held for table changes and mincore only: no allocation
//                                        hook, no queueing, no other lock under it)
//   5. other_threads' g_shares_lock     (never held while taking another lock but a share's own)
//
// Separate pthread_atfork registrations would run their prepare handlers in the reverse of
// whatever order the modules were first used in, which a program decides: hence one, here.
#pragma once

#include "core/alloc_stream.hpp"
#include "core/spin_lock.hpp"

namespace memxx::core {

namespace session {
// Lock 2 above. Any thread, with or without the GIL; a spin lock: held for a table change or a
// queued event only.
extern SpinLock g_lock;
} // namespace session

// Accounting starts with the first profiled thread (or consumer needing it) and stops with the
// last one. Both install or remove the hooks. GIL held.
void hook_session_begin();
void hook_session_end();

// Native memory (malloc and mmap calls of loaded shared objects) is counted while a session is
// open and at least one enabled profiler, watch or consumer wants it: each wants it with
// native_want(true) and drops it with native_want(false). GIL held.
void native_want(bool on);

// What a consumer of the stream needs the sources to do while it is subscribed.
enum class SourceNeeds {
    pymem,             // the PyMem hooks installed (objects events), no accounting session
    accounting,        // a session: every PyMem block counted
    accounting_native, // a session with native memory counted too
};

// Subscribes `consumer` to the stream (core/alloc_stream.hpp) and starts what it `needs`; its
// events flow from before the sources start. Returns its slot for session_unsubscribe, or -1
// (nothing started) when every slot is taken. GIL held.
int session_subscribe(const stream::Consumer *consumer, SourceNeeds needs);
// Stops what the slot's consumer needed (in the reverse order), then its events. GIL held.
void session_unsubscribe(int slot);

// --- fork() -------------------------------------------------------------------------------------
// Registers the handlers below, once per process. GIL held; called before any of the locks is
// first taken (a session's begin, the peak recorder's start, each module's first use).
void fork_locks_install() noexcept;

// Each module's part, called by the registration only, in the order above (prepare) and its
// reverse (parent, child).
void native_hooks_fork_prepare() noexcept;
void native_hooks_fork_parent() noexcept;
void native_hooks_fork_child() noexcept;
void peak_fork_prepare() noexcept; // m_apply: session::g_lock is held, the recorder stable
void peak_fork_parent() noexcept;
void peak_fork_child() noexcept; // also forgets the applying thread, which did not come along
namespace pages {
void fork_prepare() noexcept;
void fork_parent() noexcept;
void fork_child() noexcept; // also closes the forking thread's fault watcher (the parent's)
} // namespace pages
void shares_fork_prepare() noexcept;
void shares_fork_parent() noexcept;
void shares_fork_child() noexcept;

} // namespace memxx::core

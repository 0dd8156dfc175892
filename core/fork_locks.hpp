// fork(): a lock of ours that another thread holds at the fork would stay held in the child
// (whose first hooked allocation, mapping or session would then wait forever), and data it
// guards could be half-changed. So the forking thread takes every such lock across fork(), and
// both sides let go of them. One pthread_atfork registration takes them all, in the order of
// HACKING's lock table, the order in which any code path nests them:
//
//   1. native_hooks' g_patch_mutex      (the session's enable/disable adopt and forget mappings
//                                        under it: it comes before 4)
//   2. accounting::g_lock               (the hooks' table; the peak recorder's producers hold it
//                                        and only try 3)
//   3. the peak recorder's m_apply      (held while events are applied; no other lock under it)
//   4. mapped_pages' spin lock          (held for table changes and mincore only: no allocation
//                                        hook, no queueing, no other lock under it)
//   5. other_threads' g_shares_lock     (never held while taking another lock but a share's own)
//
// Separate registrations would run their prepare handlers in the reverse of whatever order
// the modules were first used in, which a program decides.
//
// install: GIL held; called before any of these locks is first taken (a session's begin, the
// peak recorder's start, and each module's first use, for safety), once per process.
#pragma once

namespace memxx::core {

void fork_locks_install() noexcept;

// Each module's part, called by the registration above only, in the order above (prepare) and
// its reverse (parent, child). Declared here so that the order is visible in one place.
void native_hooks_fork_prepare() noexcept;
void native_hooks_fork_parent() noexcept;
void native_hooks_fork_child() noexcept;
void peak_fork_prepare() noexcept; // m_apply: accounting::g_lock is held, g_recorder stable
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

// Which profiled thread pays for another thread's memory. A profiled thread's ledger gets a
// ThreadShare (core/thread_share.hpp); another thread's blocks are charged to one when:
//  - the thread carries a cause: a thread the profiled code started, a pool worker running a
//    work item it submitted (the Python layer adopts the cause around the work);
//  - the thread has no Python thread state (a native pool: arrow's, polars', BLAS threads):
//    the newest open share, i.e. the profiled thread that started profiling last;
//  - a block a profiled thread (or its workers) allocated is freed by any thread without a
//    ledger: the freeing thread's cause, else the newest open share.
// Python threads with no cause (a server's other threads, a logging thread) pay nobody.
//
// Shares are never given back to the allocator: a closed one is recycled once its last
// reference (a ledger, a cause held by a thread or a Python object) is dropped, so a late
// worker never writes to freed memory; it writes to a closed share, which nobody reads.
#pragma once

#include <atomic>

#include "core/thread_local.hpp"
#include "core/thread_share.hpp"

namespace memxx::core {

// A new ledger's share: open, the newest, holding one reference (the ledger's). GIL held.
ThreadShare *share_open();
// The ledger is done with it: closed (no more charges routed to it), reference dropped.
void share_close(ThreadShare *share);

// Other threads are charged while at least one enabled profiler or watch wants it
// (threads="all"), counted like native_want. GIL held.
void other_threads_want(bool on);

// A reference more, or one less. Any thread.
ThreadShare *share_acquire(ThreadShare *share) noexcept;
void share_release(ThreadShare *share) noexcept;

// What a thread works for: a share, and the line in it that handed the work over.
struct ThreadCause {
    ThreadShare *share = nullptr;
    ShareTarget target;
};

// The cause the calling thread's blocks go to now (its own ledger's running line, or the cause
// it adopted), with a new reference; no share when none, or when no profiler wants other
// threads. GIL held.
ThreadCause thread_cause();
// The calling thread charges `cause` (no share: nobody) from now on; takes a reference of it
// and returns the previous cause, whose reference passes to the caller. GIL held.
ThreadCause adopt_thread_cause(const ThreadCause &cause);

namespace accounting {

extern std::atomic<bool> g_other_threads_on; // some profiler wants other threads charged

// For a thread without a ledger (the allocator hook's slow path, any thread, any GIL state):
// the share its allocations go to, or the share credited with a block it frees, and the line
// in it. Each returns nullptr or a share the caller must hand to ShareRef (which drops the
// reference if one was taken: `*referenced`).
ThreadShare *share_paying_for_this_thread(bool *referenced, ShareTarget *target) noexcept;
ThreadShare *share_crediting_a_free(bool *referenced, ShareTarget *target) noexcept;
// True when the calling thread (without a ledger) is a Python thread with no open cause: its
// memory is nobody's. Any thread, any GIL state; allocates nothing.
bool thread_pays_nobody() noexcept;

using FindShare = ThreadShare *(*)(bool *referenced, ShareTarget *target) noexcept;

// A share found by `find` (nullptr: none looked for), held for the duration of a hook.
class ShareRef {
  public:
    explicit ShareRef(FindShare find) noexcept {
        if (find != nullptr) {
            share_ = find(&referenced_, &target_);
        }
    }
    ~ShareRef() {
        if (referenced_) {
            share_release(share_);
        }
    }
    ShareRef(const ShareRef &) = delete;
    ShareRef &operator=(const ShareRef &) = delete;
    ThreadShare *get() const noexcept { return share_; }
    // `bytes` allocated (> 0) or freed (< 0) for the line found with the share.
    void add(std::int64_t bytes, bool native) const noexcept {
        share_->add(bytes, native, target_);
    }

  private:
    ThreadShare *share_ = nullptr;
    ShareTarget target_;
    bool referenced_ = false;
};

} // namespace accounting

} // namespace memxx::core

// The end of a Python thread state: a function run when the calling thread's state is cleared
// (the thread exits, or a native thread's PyGILState_Release drops the state it borrowed), with
// the GIL held and on that thread. A ledger must not outlive its thread: no event comes for it
// any more, and it would keep the allocator hook's session open for the rest of the process.
#pragma once

namespace memxx::core {

// Runs `on_exit` when the calling thread's current Python thread state is cleared; once per
// thread state (later calls for the same state do nothing). GIL held. False if the watch could
// not be set (no memory): the Python error is cleared, the thread is then not watched.
bool watch_thread_exit(void (*on_exit)());

} // namespace memxx::core

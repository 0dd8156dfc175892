// The ending signals (SIGTERM, SIGHUP) of a process that `mprofxx run --peak` records: their
// Python handler writes the peak table, and it must run even when the main thread is blocked.
//
// Python runs a signal's handler in the main thread, when its eval loop next looks. A signal
// that another thread takes (its C-level handler only trips a flag), or that the main thread
// takes just before it blocks in a wait that no one else ends, leaves the handler pending for
// good: a multiprocessing Pool worker entering its queue's lock while the pool terminates it
// (the pool holds that lock and waits for the worker) hung so. The relay wraps Python's C-level
// handler: once a signal came, it is sent again to the main thread every 100 ms (its wait returns
// EINTR there and Python runs the handler) until the handler says it runs.
//
// install/taken: GIL held, from the main thread. poll: the peak recorder's thread, each wake.
// The relay itself is async-signal-safe (atomics and clock_gettime). No lock.
#pragma once

namespace memxx::core {

// Wraps the handler Python installed for `signum` (signal.signal with a Python function, just
// before); the calling thread is the one the signal is sent again to. False when the signal's
// handler is not Python's C-level one (SIG_DFL, SIG_IGN, a SA_SIGINFO handler): left alone.
bool signal_relay_install(int signum) noexcept;
// The Python handler runs: the signal is not sent again.
void signal_relay_taken() noexcept;
// Sends a signal that came and whose handler has not run yet again to the main thread, at most
// every 100 ms.
void signal_relay_poll() noexcept;

} // namespace memxx::core

// The line tracer: tells each thread's ThreadLedger which profiled frame and line are running,
// and, from a frame's return or unwind event on, how to tell when the interpreter has finished
// tearing that frame down (memxx_teardown_begin), so that what the teardown frees is charged.
//
// This is the shared part: the profiled code objects, the claims on them, the per-thread
// ledgers. The events come from one event source chosen at build time (core/line_events.hpp:
// sys.monitoring on 3.12+, a C trace function on 3.11). GIL held for every call here.
#pragma once

#include <exception>
#include <utility>
#include <vector>

#include "core/line_ledger.hpp"
#include "core/py_compat.h"
#include "core/python_error.hpp"

namespace memxx::core {

// The code objects one LineProfiler measures, with their line tables. GIL held for every call.
class ProfiledCodes {
  public:
    ProfiledCodes() = default;
    ~ProfiledCodes();
    ProfiledCodes(const ProfiledCodes &) = delete;
    ProfiledCodes &operator=(const ProfiledCodes &) = delete;

    // Adds a code object (a strong reference is kept); false if it was there already.
    // add, add_nested and enable throw PythonErrorSet when the code's events cannot be set
    // (every sys.monitoring tool id held by other tools: the error names them).
    // falls_off: byte offsets of the code's return instructions that are no `return` statement
    // (the function falls off its end there): the teardown after them is charged to the
    // header row, the code's first line, rather than to the last line run.
    bool add(PyObject *code, int last_line, std::vector<int> falls_off = {});
    // Adds the code of a function nested in `parent` (already added): its lines are charged to
    // the parent's table, where memory_profiler reports them too. False if known already.
    bool add_nested(PyObject *code, PyObject *parent, std::vector<int> falls_off = {});
    bool contains(PyObject *code) const;
    // Counted: the first enable claims the code objects, and on 3.11 each enable arms the
    // calling thread's trace function until its matching disable. A generator or coroutine
    // between two of its steps holds the claim without arming (arm = false): the consumer's
    // frames then run untraced while the profiled code keeps its events (3.12+), and the
    // allocator hook keeps its block table so that a later step's frees are charged.
    void enable(bool arm = true);
    void disable(bool armed = true);
    // generator.close(), its frees (and its finally blocks' work) charged to the line at which
    // the generator or coroutine was suspended. Returns close()'s result (new reference), or
    // nullptr with the exception set.
    PyObject *close_generator(PyObject *generator);
    int enabled() const noexcept { return enabled_; }
    // Whether native memory (malloc/mmap of shared objects) is counted while this is enabled.
    bool native() const noexcept { return native_; }
    void set_native(bool on);
    // Whether other threads' memory is charged to the lines that caused it (threads="all",
    // core/other_threads.hpp) while this is enabled; false: the profiled threads' own only.
    bool other_threads() const noexcept { return other_threads_; }
    void set_other_threads(bool on);
    const std::vector<std::pair<PyObject *, CodeLines *>> &codes() const noexcept { return codes_; }

  private:
    void forget_falls_off(PyObject *code);

    bool claim(); // false with the Python error set, nothing claimed
    void release();

    bool claim_one(PyObject *code, CodeLines *lines);
    void release_one(PyObject *code, CodeLines *lines);

    std::vector<std::pair<PyObject *, CodeLines *>> codes_;
    std::vector<std::pair<PyObject *, CodeLines *>> nested_; // tables owned by codes_
    int enabled_ = 0;
    bool native_ = true;
    bool other_threads_ = true;
};

// Watches the calling thread's allocations (no profiled frame needed) from begin to end: end
// returns the highest net bytes allocated since its begin. With `other_threads`, what other
// threads allocate for it counts too (core/other_threads.hpp). Nests with itself and with
// profiled frames. GIL held for both.
struct WatchMark {
    std::int64_t saved_peak; // the enclosing watch's peak so far
    std::int64_t start_net;
    bool other_threads;
};
WatchMark watch_thread_begin(bool other_threads);
std::int64_t watch_thread_end(WatchMark mark);
// The net bytes the thread allocated since `mark`'s begin (the watch goes on). GIL held.
std::int64_t watch_thread_net(WatchMark mark);

// Depth of profiled frames on the calling thread (0 when nothing profiled runs here).
std::size_t thread_profiled_depth();
// Where a thread hands work over (a pool worker between two work items, GIL held): the
// teardowns that are over on it end their lines, and its ledger closes when nothing is left on
// it. A worker whose profiled frame returned into unprofiled code gets no later event that
// would, and its ledger would keep the allocator hook's session open until it exits.
void settle_thread_ledger();

// Benchmarks' floor: the interpreter's own cost of tracing, with a trace function (3.11) that
// does nothing, on the calling thread. False where the event source has no such thing (3.12+).
bool set_floor_trace(bool on);

} // namespace memxx::core

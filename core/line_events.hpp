// The line tracer's event source: what tells it that a profiled frame starts, moves to a line,
// suspends or returns. One implementation per file, chosen at build time in core/CMakeLists.txt:
//   line_events_monitoring.cpp  3.12+: sys.monitoring events set on the profiled code objects only
//   line_events_settrace.cpp    3.11: a C trace function armed on a thread while it is profiled
// The source turns the interpreter's events into the frame_* calls below, which the tracer's
// shared part (line_tracer.cpp: profiled codes, per-thread ledgers) implements.
//
// Everything here is called with the GIL held.
#pragma once

#include <cstdint>

#include "core/alloc_hook.hpp"
#include "core/line_ledger.hpp"
#include "core/mapped_pages.hpp"
#include "core/py_compat.h"

namespace memxx::core {

// --- what an event source provides ----------------------------------------------------------

namespace line_events {

// The first profiler is enabled: take what the source needs (3.12+: a sys.monitoring tool id and
// the events that cannot be chosen per code object). False with the Python error set when it
// cannot (every tool id held by other tools: the error names them).
bool start();
// The last profiler is disabled: give up what start() took.
void stop();
// `code` is claimed by a profiler (on) or by none any more (off). False with the Python error
// set when its events cannot be set.
bool follow_code(PyObject *code, bool on);
// The calling thread runs a profiled call from arm_thread to disarm_thread (counted; 3.11: the
// trace function is installed on the thread, chaining the one that was there).
void arm_thread();
void disarm_thread();
// Benchmarks' floor: a trace function that does nothing on the calling thread; false where the
// source has no such thing.
bool floor_trace(bool on);

} // namespace line_events

// --- what the tracer's shared part provides to the source -----------------------------------

// The line table charged for a code object's frames; nullptr if no enabled profiler claims it.
CodeLines *claimed_lines(PyObject *code);
// True while an enabled profiler claims at least one code object.
bool any_code_claimed();
// A profiled frame starts (count_line: its first line is a new occurrence) or resumes.
// made_before: bytes already allocated for this frame (3.11's frame object) that its lines, not
// the caller's, should hold.
void frame_started(const void *frame, CodeLines *lines, int lineno, bool count_line,
                   std::int64_t made_before = 0);
// Inline: it runs for every line event. A line of a frame that is not the innermost one goes
// to frame_line_missed (which closes a ledger left idle).
void frame_line_missed(ThreadLedger *ledger);
inline void frame_line(const void *frame, int lineno) {
    if (__builtin_expect(g_pymem_chain_shared, false)) {
        pymem_hooks_verify();
    }
    ThreadLedger *ledger = thread_ledger();
    pages::at_line_boundary(ledger); // the line ending now touched or gave back mapped pages
    if (ledger != nullptr && !ledger->line(frame, lineno)) {
        frame_line_missed(ledger);
    }
}
// A profiled frame suspends (a yield or await), or is given up: closed now.
void frame_left(const void *frame);
// A profiled frame returns or raises (`code` is its code, `offset` the byte offset of the
// instruction that left it): its line stays open while the interpreter tears the frame down,
// which happens after this, the frame's last event. When that instruction is one where the
// function falls off its end, the header row gets the teardown instead (see ProfiledCodes::add).
void frame_returned(const void *frame, PyObject *code, int offset);
// The calling thread's profiled frames are all closed (those being torn down too), and its ledger
// unless a watch keeps it: no event will come for them any more.
void leave_thread_frames();

} // namespace memxx::core

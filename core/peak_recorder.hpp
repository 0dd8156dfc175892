// What held the memory at the peak: every block the program allocates while recording, tagged
// with the Python call stack that allocated it (stacks interned: a stack id per block, not a copy
// of the stack), the live bytes per stack, and those figures as they stood at the moment the
// total was highest.
//
// A consumer of the allocation stream (core/alloc_stream.hpp): its events come from any thread,
// with or without the GIL, inside the re-entrancy guard (core/peak_recorder.cpp). Start, stop
// and the report need the GIL.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

struct _object; // PyObject

namespace memxx::core {

// --- recording (GIL held) ----------------------------------------------------------------------
// Starts recording every thread's allocations (and native code's, with `native`). Throws
// std::logic_error if it is already running.
void peak_start(bool native);
// Stops recording and drops the tables.
void peak_stop();
// With `on`, the calling frame is the program's runner (mprofxx's child): the frames below it
// are the same for every stack recorded while it runs, and need not be walked each time. The
// runner clears it (`on` false) before it returns. GIL held.
void peak_runner_frame(bool on);

// 3.12, 3.13: the frames' shadow (core/peak_shadow.cpp), on while the runner's frame is the
// base; no-op on the other versions. For tests: peak_shadow_keys, the stack keys it gave the
// calling thread; peak_shadow_stacks, the stacks interned by its memos instead of a walk since
// the last peak_start. GIL held.
void peak_shadow(bool on);
unsigned long long peak_shadow_keys();
unsigned long long peak_shadow_stacks();
// False where peak_shadow never runs (the other versions, or MEMXX_PEAK_FRAME_WALKS=1): the
// allocations then skip the bookkeeping the two calls below need.
bool peak_shadow_possible();

// Takes `block` out of the tables if it is the calling thread's last allocation: the int an event
// of sys.monitoring was passed, allocated for the call (GIL held).
void peak_retract_event_block(const void *block) noexcept;

// While on, the blocks the calling thread allocates are the recorder's own (the sys.monitoring
// calls that start and stop the shadow): not recorded.
void peak_own_calls(bool on) noexcept;

struct PeakFrame {
    _object *code; // borrowed: the recorder holds a reference until peak_stop
    int line;      // the line that was running
};

// The stacks form a tree: node 0 is the root (no Python frame), node 1 the root of stacks whose
// outer frames were left out (deeper than kPeakMaxDepth); every other node is one line of a
// function called from its parent node. A stack is named by its innermost node.
struct PeakNode {
    std::uint32_t parent;
    PeakFrame frame; // code nullptr for nodes 0 and 1
};

struct PeakRow {
    std::uint32_t stack; // its innermost node
    std::int64_t bytes;
};

struct PeakReport {
    std::int64_t peak_bytes = 0;    // bytes live at the peak, of blocks allocated while recording
    double peak_time = 0;           // seconds since the epoch when the total left its peak
    std::int64_t current_bytes = 0; // bytes live now
    std::vector<PeakRow> at_peak;   // live bytes per stack at the peak, those above 0
    std::vector<PeakRow> live_now;  // live bytes per stack now, those above 0 (what is kept)
    std::vector<PeakNode> nodes;    // every node of the stacks kept (core/stack_tree.hpp); with
                                    // `largest`: those its stacks go through
    std::size_t left_rows = 0;      // with `largest`: the stacks left out of at_peak
    std::int64_t left_bytes = 0;    // and their bytes
    std::size_t live_blocks = 0;
    std::size_t block_table_bytes = 0; // the live-block table's own memory
    std::size_t peak_live_blocks = 0;  // the same two at the peak
    std::size_t peak_block_table_bytes = 0;
    std::size_t stack_table_bytes = 0; // stack nodes, their tags and the per-stack figures
    std::size_t stack_nodes = 0;       // nodes kept
    std::size_t stacks = 0;            // stacks kept: allocated at since the last collection,
                                       // or holding bytes now or at the peak
    std::size_t tags = 0;              // (stack, size) pairs live blocks share
};
// The figures so far; the peak is that of the whole recording. `live_now`: also the bytes each
// stack holds now (left empty otherwise). `largest` >= 0: at_peak lists only that many stacks,
// the largest, and nodes only those they go through (renumbered, parents first; live_now is
// then not asked for). GIL held.
PeakReport peak_report(bool live_now = false, std::int64_t largest = -1);

// Deepest stack recorded; the outer frames of a deeper one are left out.
constexpr int kPeakMaxDepth = 128;

} // namespace memxx::core

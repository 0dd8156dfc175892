// Per-line accounting: which line of which profiled frame is running on a thread, and what the
// bytes allocated and freed on that thread add up to for each line.
//
// Pure C++ (no Python): the tracer feeds it frame and line events, the allocator hook feeds it
// sizes. Memory is `base + net`: the process memory when the thread's outermost profiled frame
// started, plus the bytes this thread allocated minus those it freed since.
//
// A frame that returns or raises is torn down after its last event (its locals are dropped,
// their finalisers run): its last line stays open through that teardown, which a probe given by
// the tracer tells apart from what runs next. So the increments of a call's lines add up to
// what the thread's blocks grew by across the whole call.
#pragma once

#include <cstddef>
#include <algorithm>
#include <cstdint>
#include <vector>

#include <mimalloc.h>

#include "core/py_compat_teardown.h"
#include "core/thread_share.hpp"

namespace memxx::core {

struct LineStats {
    std::uint64_t occurrences = 0; // times the line started
    std::int64_t increment = 0;    // bytes allocated minus freed while it ran, over all occurrences
    std::int64_t peak = 0;         // highest memory while it ran (0 until it ran)
    std::int64_t memory = 0;       // memory when its last occurrence ended (0 until then)
    // The native share (malloc/mmap of shared objects): of the increment, and of the memory at
    // the moment of the peak (native bytes the thread held then, counted from the ledger's start).
    std::int64_t native_increment = 0;
    std::int64_t native_peak = 0;
    // Other threads' share of the increment: bytes they allocated minus freed for this thread
    // while the line ran (core/thread_share.hpp).
    std::int64_t threads_increment = 0;
};

// A point of the thread's allocation curve: net bytes, and the native part of them.
struct Level {
    std::int64_t net = 0;
    std::int64_t native = 0;
    bool operator<(const Level &other) const noexcept { return net < other.net; }
};

// The line table of one code object, indexed from its first line.
class CodeLines {
  public:
    CodeLines(int first_line, int last_line);
    // nullptr for a line before the first one; lines past the last one grow the table.
    LineStats *at(int lineno) {
        const auto index = static_cast<std::size_t>(lineno - first_line_);
        return lineno >= first_line_ && index < lines_.size() ? &lines_[index] : grow_to(lineno);
    }
    int first_line() const noexcept { return first_line_; }
    const std::vector<LineStats, mi_stl_allocator<LineStats>> &lines() const noexcept {
        return lines_;
    }
    // Frames of this code on some thread's ledger right now (changed with the GIL held).
    int active_frames = 0;

  private:
    LineStats *grow_to(int lineno);

    int first_line_;
    std::vector<LineStats, mi_stl_allocator<LineStats>> lines_;
};

struct ActiveFrame {
    const void *frame; // identity of the running frame
    CodeLines *code;
    int lineno;                     // the line running now; 0 between lines
    Level line_start;               // when the line began (moved by nested same-code frames)
    Level line_peak;                // highest seen while the line ran, folded from callees
    Level frame_peak;               // highest seen while the frame ran
    Level entry;                    // when the frame was entered
    std::ptrdiff_t outer_same_code; // index of the nearest enclosing frame of the same code, or -1
    // Set by teardown_on_row: the row charged for the teardown, and its memory figure to keep.
    int kept_row = 0;
    std::int64_t kept_memory = 0;
};

// Where a frame being torn down sits, as the tracer recorded it at the frame's last event: the
// compat layer's record (core/py_compat_teardown.h, plain C). The ledger keeps it and hands it
// back to the probe; of its fields the ledger reads only the watched words: words of the
// interpreter's state that all keep these values while the teardown runs, read in order (a read
// is safe once the ones before it matched). While they match, the teardown is known to run and
// the probe is not asked. An entry watching nullptr ends the list.
using TeardownMark = memxx_teardown;
constexpr int kTeardownWatched = MEMXX_TEARDOWN_WATCHED;
// True while the teardown `mark` describes still runs. Called from the allocator hook (any GIL
// state, no Python API) and from the ledger's event methods.
using TeardownProbe = bool (*)(const TeardownMark &mark) noexcept;

class ThreadLedger {
  public:
    // Without a probe a teardown is over at the next allocation, free or event.
    explicit ThreadLedger(std::int64_t base_memory, TeardownProbe probe = nullptr)
        : base_(base_memory), probe_(probe) {}

    // Hot path, called by the allocator hook on this thread. While no frame is being torn down
    // it costs one predictable branch more than the plain sum.
    void on_alloc(std::size_t size) noexcept {
        settle_if_over();
        before_last_alloc_ = Undo{hwm_, peak_net_};
        add(size);
    }
    // The last allocation, of `size` bytes, is taken back with its effect on the highs: it was
    // the interpreter's temporary for the event being handled, not the program's.
    void retract_last_alloc(std::size_t size) noexcept {
        net_ -= static_cast<std::int64_t>(size);
        hwm_ = before_last_alloc_.hwm;
        peak_net_ = before_last_alloc_.peak_net;
    }
    // A free may be of a block another thread made for this one: its charge is taken first,
    // so the highs see the block that was there.
    void on_free(std::size_t size) noexcept {
        settle_if_over();
        take_other_threads();
        net_ -= static_cast<std::int64_t>(size);
    }
    // Native blocks (malloc/mmap of shared objects) count the same and are also summed apart.
    void on_native_alloc(std::size_t size) noexcept {
        settle_if_over();
        native_ += static_cast<std::int64_t>(size);
        add(size);
    }
    void on_native_free(std::size_t size) noexcept {
        settle_if_over();
        take_other_threads();
        native_ -= static_cast<std::int64_t>(size);
        net_ -= static_cast<std::int64_t>(size);
    }

    // Other threads' memory for this one arrives through `share` (nullptr: none), taken at each
    // line event and by take_other_threads. The share must outlive its use by the ledger.
    void set_share(ThreadShare *share) noexcept { share_ = share; }
    ThreadShare *share() const noexcept { return share_; }
    // The line running now, as other threads' charges name it (no frame: a watch only).
    ShareTarget running_target() const noexcept {
        if (frames_.empty() || frames_.back().lineno == 0) {
            return {};
        }
        return {frames_.back().frame, static_cast<std::uint32_t>(frames_.size() - 1),
                frames_.back().lineno};
    }
    // Adds what other threads allocated and freed since the last take to the running line.
    void take_other_threads() noexcept {
        if (__builtin_expect(share_ != nullptr && share_->pending(), false)) {
            take_other_threads_now();
        }
    }

    // Each event first settles the teardowns that are over (see settle).
    // A profiled frame starts (count_line: its first line is a new occurrence) or resumes.
    // made_before: bytes allocated for the frame just before this event, which it (not the
    // caller's line alone) holds from now on.
    void enter(const void *frame, CodeLines *code, int lineno, bool count_line,
               std::int64_t made_before = 0);
    // The innermost frame moves to a new line; false if `frame` is not the innermost one.
    // Inline: it runs for every line event.
    bool line(const void *frame, int lineno) {
        if (__builtin_expect(tearing_down_ || frames_.empty() || frames_.back().frame != frame,
                             false)) {
            return line_settled(frame, lineno);
        }
        next_line(frames_.back(), lineno);
        return true;
    }
    // A profiled frame yields, or is given up: it is closed now, with the frames above it.
    bool leave(const void *frame);
    // A profiled frame returns or raises: the frames above it are closed now; it stays the
    // innermost frame, its line open, until the probe says its teardown is over. False if
    // `frame` is not on the ledger.
    bool leave_after_teardown(const void *frame, const TeardownMark &mark);
    // `frame`, the innermost frame and being torn down, fell off its end: its running line ends
    // now, and the teardown is charged to `row` (its header row), whose memory figure (the
    // memory at the frame's entry) stays. False if `frame` is not the innermost frame.
    bool teardown_on_row(const void *frame, int row);
    // Closes the innermost frames whose teardown is over. A frame called during a teardown (by
    // a finaliser) runs above the frame being torn down, which waits for it.
    void settle() noexcept {
        if (tearing_down_) {
            settle_teardowns();
        }
    }
    bool tearing_down() const noexcept { return tearing_down_; }
    bool contains(const void *frame) const noexcept;

    bool empty() const noexcept { return frames_.empty(); }
    std::size_t depth() const noexcept { return frames_.size(); }
    const ActiveFrame *innermost() const noexcept {
        return frames_.empty() ? nullptr : &frames_.back();
    }
    std::int64_t memory() const noexcept { return base_ + net_; }
    std::int64_t net() const noexcept { return net_; }
    std::int64_t native_net() const noexcept { return native_; }
    std::int64_t others_net() const noexcept { return others_; }

    // Highest net since the last restart_peak; watchers keep the ledger open without frames.
    std::int64_t peak_net() const noexcept { return peak_net_; }
    void restart_peak(std::int64_t from) noexcept { peak_net_ = from; }
    int watchers = 0;
    bool idle() const noexcept { return frames_.empty() && watchers == 0; }

  private:
    // The innermost teardown's watched words still hold their values (a teardown's frees call
    // this once each: it must stay a few loads).
    bool teardown_surely_running() const noexcept {
        for (int i = 0; i < kTeardownWatched && watched_[i] != nullptr; ++i) {
            if (*watched_[i] != expected_[i]) {
                return false;
            }
        }
        return watched_[0] != nullptr;
    }
    void settle_teardowns() noexcept;
    void watch_innermost_teardown() noexcept;
    // Inline: a line event is an end_line and a begin_line.
    void begin_line(ActiveFrame &frame, int lineno, bool count) noexcept {
        LineStats *stats = frame.code->at(lineno);
        if (stats == nullptr) {
            frame.lineno = 0;
            return;
        }
        if (count) {
            ++stats->occurrences;
        }
        frame.lineno = lineno;
        frame.line_start = level();
        frame.line_peak = level();
        hwm_ = level();
    }
    void end_line(ActiveFrame &frame) noexcept {
        const Level peak = std::max(frame.line_peak, hwm_);
        frame.frame_peak = std::max(frame.frame_peak, peak);
        if (frame.lineno == 0) {
            return;
        }
        LineStats *stats = frame.code->at(frame.lineno);
        stats->increment += net_ - frame.line_start.net;
        stats->native_increment += native_ - frame.line_start.native;
        if (base_ + peak.net > stats->peak) {
            stats->peak = base_ + peak.net;
            stats->native_peak = peak.native;
        }
        stats->memory = base_ + net_;
        frame.lineno = 0;
    }
    void next_line(ActiveFrame &frame, int lineno) noexcept {
        take_other_threads();
        end_line(frame);
        begin_line(frame, lineno, true);
    }
    bool line_settled(const void *frame, int lineno);
    void pop() noexcept;
    void take_other_threads_now() noexcept;

    struct Teardown {
        std::size_t depth; // frames_.size() while it is the innermost frame
        TeardownMark mark;
    };

    std::int64_t base_;
    Level level() const noexcept { return Level{net_, native_}; }
    // Before a block is counted: a teardown that is over gives its line up first.
    void settle_if_over() noexcept {
        if (__builtin_expect(tearing_down_, false) && !teardown_surely_running()) {
            settle_teardowns();
        }
    }
    void add(std::size_t size) noexcept {
        net_ += static_cast<std::int64_t>(size);
        if (net_ > hwm_.net) {
            hwm_ = level();
        }
        if (net_ > peak_net_) {
            peak_net_ = net_;
        }
    }

    TeardownProbe probe_;
    bool tearing_down_ = false; // teardowns_ is not empty
    // A copy of the innermost teardown's watch, next to the flag the hot path reads.
    const void *const *watched_[kTeardownWatched] = {};
    const void *expected_[kTeardownWatched] = {};
    std::int64_t net_ = 0;
    std::int64_t native_ = 0;   // the native part of net_
    std::int64_t others_ = 0;   // the part of net_ other threads allocated and freed
    // Other threads' bytes count in the threads_increment of the running lines of frames
    // [0, end) (their callers' lines hold them too), straight away: never on the line path.
    void add_threads_increment(std::size_t end, std::int64_t bytes) noexcept;
    ThreadShare *share_ = nullptr;
    Level hwm_;                 // highest net since the innermost line began
    std::int64_t peak_net_ = 0; // highest net since restart_peak
    struct Undo {
        Level hwm;
        std::int64_t peak_net = 0;
    };
    Undo before_last_alloc_; // the highs before the last on_alloc
    std::vector<ActiveFrame, mi_stl_allocator<ActiveFrame>> frames_;
    std::vector<Teardown, mi_stl_allocator<Teardown>> teardowns_; // innermost last
};

} // namespace memxx::core

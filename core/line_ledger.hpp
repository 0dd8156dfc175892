// Per-line accounting: which line of which profiled frame is running on a thread, and what the
// bytes allocated and freed on that thread add up to for each line.
//
// Pure C++ (no Python): the tracer feeds it frame and line events, the allocator hook feeds it
// sizes. Memory is `base + net`: the process memory when the thread's outermost profiled frame
// started, plus the bytes this thread allocated minus those it freed since.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <mimalloc.h>

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
};

class ThreadLedger {
  public:
    explicit ThreadLedger(std::int64_t base_memory) : base_(base_memory) {}

    // Hot path, called by the allocator hook on this thread.
    void on_alloc(std::size_t size) noexcept {
        net_ += static_cast<std::int64_t>(size);
        if (net_ > hwm_.net) {
            hwm_ = Level{net_, native_};
        }
        if (net_ > peak_net_) {
            peak_net_ = net_;
        }
    }
    void on_free(std::size_t size) noexcept { net_ -= static_cast<std::int64_t>(size); }
    void on_native_alloc(std::size_t size) noexcept {
        native_ += static_cast<std::int64_t>(size);
        on_alloc(size);
    }
    void on_native_free(std::size_t size) noexcept {
        native_ -= static_cast<std::int64_t>(size);
        on_free(size);
    }

    // A profiled frame starts (count_line: its first line is a new occurrence) or resumes.
    void enter(const void *frame, CodeLines *code, int lineno, bool count_line);
    // The innermost frame moves to a new line; false if `frame` is not the innermost one.
    bool line(const void *frame, int lineno);
    // A profiled frame returns, yields or unwinds; frames above it are closed too.
    bool leave(const void *frame);

    bool empty() const noexcept { return frames_.empty(); }
    std::size_t depth() const noexcept { return frames_.size(); }
    const ActiveFrame *innermost() const noexcept {
        return frames_.empty() ? nullptr : &frames_.back();
    }
    std::int64_t memory() const noexcept { return base_ + net_; }
    std::int64_t net() const noexcept { return net_; }
    std::int64_t native_net() const noexcept { return native_; }

    // Highest net since the last restart_peak; watchers keep the ledger open without frames.
    std::int64_t peak_net() const noexcept { return peak_net_; }
    void restart_peak(std::int64_t from) noexcept { peak_net_ = from; }
    int watchers = 0;
    bool idle() const noexcept { return frames_.empty() && watchers == 0; }

  private:
    void begin_line(ActiveFrame &frame, int lineno, bool count);
    void end_line(ActiveFrame &frame);
    void pop();

    std::int64_t base_;
    Level level() const noexcept { return Level{net_, native_}; }

    std::int64_t net_ = 0;
    std::int64_t native_ = 0;   // the native part of net_
    Level hwm_;                 // highest net since the innermost line began
    std::int64_t peak_net_ = 0; // highest net since restart_peak
    std::vector<ActiveFrame, mi_stl_allocator<ActiveFrame>> frames_;
};

} // namespace memxx::core

#include "core/line_ledger.hpp"

#include <algorithm>

namespace memxx::core {

CodeLines::CodeLines(int first_line, int last_line)
    : first_line_(first_line),
      lines_(static_cast<std::size_t>(std::max(last_line - first_line + 1, 1))) {}

LineStats *CodeLines::grow_to(int lineno) {
    if (lineno < first_line_) {
        return nullptr;
    }
    const auto index = static_cast<std::size_t>(lineno - first_line_);
    if (index >= lines_.size()) {
        lines_.resize(index + 1);
    }
    return &lines_[index];
}

void ThreadLedger::begin_line(ActiveFrame &frame, int lineno, bool count) {
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

void ThreadLedger::end_line(ActiveFrame &frame) {
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

void ThreadLedger::enter(const void *frame, CodeLines *code, int lineno, bool count_line) {
    std::ptrdiff_t outer_same_code = -1;
    if (!frames_.empty()) {
        ActiveFrame &caller = frames_.back();
        caller.line_peak = std::max(caller.line_peak, hwm_);
        for (std::ptrdiff_t i = static_cast<std::ptrdiff_t>(frames_.size()) - 1; i >= 0; --i) {
            if (frames_[static_cast<std::size_t>(i)].code == code) {
                outer_same_code = i;
                break;
            }
        }
    }
    frames_.push_back(
        ActiveFrame{frame, code, 0, level(), level(), level(), level(), outer_same_code});
    ++code->active_frames;
    begin_line(frames_.back(), lineno, count_line);
}

bool ThreadLedger::line(const void *frame, int lineno) {
    if (frames_.empty() || frames_.back().frame != frame) {
        return false;
    }
    ActiveFrame &current = frames_.back();
    end_line(current);
    begin_line(current, lineno, true);
    return true;
}

void ThreadLedger::pop() {
    ActiveFrame &done = frames_.back();
    end_line(done);
    const Level delta{net_ - done.entry.net, native_ - done.entry.native};
    const Level peak = done.frame_peak;
    const std::ptrdiff_t outer_same_code = done.outer_same_code;
    --done.code->active_frames;
    frames_.pop_back();
    hwm_ = level();
    if (frames_.empty()) {
        return;
    }
    ActiveFrame &caller = frames_.back();
    caller.line_peak = std::max(caller.line_peak, peak);
    if (outer_same_code >= 0) {
        // Those bytes are already on this code's lines (in the inner frame): the enclosing
        // frame of the same code must not count them a second time.
        Level &start = frames_[static_cast<std::size_t>(outer_same_code)].line_start;
        start.net += delta.net;
        start.native += delta.native;
    }
}

bool ThreadLedger::leave(const void *frame) {
    auto it = std::find_if(frames_.rbegin(), frames_.rend(),
                           [frame](const ActiveFrame &f) { return f.frame == frame; });
    if (it == frames_.rend()) {
        return false;
    }
    const std::size_t keep = static_cast<std::size_t>(frames_.rend() - it) - 1;
    while (frames_.size() > keep) {
        pop();
    }
    return true;
}

} // namespace memxx::core

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

void ThreadLedger::enter(const void *frame, CodeLines *code, int lineno, bool count_line,
                         std::int64_t made_before) {
    settle();
    take_other_threads();
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
    ActiveFrame &entered = frames_.back();
    begin_line(entered, lineno, count_line);
    entered.line_start.net -= made_before; // a frame object: Python memory, not native
    entered.entry.net -= made_before;
}

bool ThreadLedger::line_settled(const void *frame, int lineno) {
    settle();
    if (frames_.empty() || frames_.back().frame != frame) {
        return false;
    }
    next_line(frames_.back(), lineno);
    return true;
}

void ThreadLedger::watch_innermost_teardown() noexcept {
    tearing_down_ = !teardowns_.empty();
    for (int i = 0; i < kTeardownWatched; ++i) {
        watched_[i] = tearing_down_ ? teardowns_.back().mark.watched[i] : nullptr;
        expected_[i] = tearing_down_ ? teardowns_.back().mark.expected[i] : nullptr;
    }
}

void ThreadLedger::take_other_threads_now() noexcept {
    ThreadShare::Taken taken;
    share_->take(&taken);
    // The other threads' bytes rose by `high` at most since the last take while this thread's
    // own stood still at its line event (or at what it is now): the highest point seen.
    if (net_ + taken.high > hwm_.net) {
        hwm_ = Level{net_ + taken.high, native_};
    }
    if (net_ + taken.high > peak_net_) {
        peak_net_ = net_ + taken.high;
    }
    for (int i = 0; i < taken.used; ++i) {
        const ThreadShare::Charge &charge = taken.targeted[i];
        const std::size_t depth = charge.target.depth;
        LineStats *stats = depth < frames_.size() && frames_[depth].frame == charge.target.frame
                               ? frames_[depth].code->at(charge.target.lineno)
                               : nullptr;
        if (stats == nullptr) { // that frame is gone: the running line takes it
            taken.running.net += charge.net;
            taken.running.native += charge.native;
            continue;
        }
        // The line that handed the work over gets it; the lines running now in its frame and
        // the frames it called do not (their starts move by as much), their callers' do.
        stats->increment += charge.net;
        stats->native_increment += charge.native;
        stats->threads_increment += charge.net;
        add_threads_increment(depth, charge.net);
        for (std::size_t j = depth; j < frames_.size(); ++j) {
            frames_[j].line_start.net += charge.net;
            frames_[j].line_start.native += charge.native;
        }
        net_ += charge.net;
        native_ += charge.native;
        others_ += charge.net;
    }
    add_threads_increment(frames_.size(), taken.running.net);
    net_ += taken.running.net;
    native_ += taken.running.native;
    others_ += taken.running.net;
}

void ThreadLedger::add_threads_increment(std::size_t end, std::int64_t bytes) noexcept {
    for (std::size_t j = 0; j < end && bytes != 0; ++j) {
        if (frames_[j].lineno != 0) {
            frames_[j].code->at(frames_[j].lineno)->threads_increment += bytes;
        }
    }
}

void ThreadLedger::pop() noexcept {
    take_other_threads();
    if (tearing_down_ && teardowns_.back().depth == frames_.size()) {
        teardowns_.pop_back();
        watch_innermost_teardown();
    }
    ActiveFrame &done = frames_.back();
    end_line(done);
    if (done.kept_row != 0) {
        done.code->at(done.kept_row)->memory = done.kept_memory; // the header keeps its entry
    }
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

bool ThreadLedger::contains(const void *frame) const noexcept {
    return std::any_of(frames_.rbegin(), frames_.rend(),
                       [frame](const ActiveFrame &f) { return f.frame == frame; });
}

bool ThreadLedger::leave(const void *frame) {
    settle();
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

bool ThreadLedger::leave_after_teardown(const void *frame, const TeardownMark &mark) {
    settle();
    auto it = std::find_if(frames_.rbegin(), frames_.rend(),
                           [frame](const ActiveFrame &f) { return f.frame == frame; });
    if (it == frames_.rend()) {
        return false;
    }
    const std::size_t depth = static_cast<std::size_t>(frames_.rend() - it);
    while (frames_.size() > depth) {
        pop();
    }
    // A frame on the ledger is torn down once; a second mark for it would be a tracer bug.
    if (!tearing_down_ || teardowns_.back().depth != depth) {
        teardowns_.push_back(Teardown{depth, mark});
        watch_innermost_teardown();
    }
    return true;
}

bool ThreadLedger::teardown_on_row(const void *frame, int row) {
    if (frames_.empty() || frames_.back().frame != frame) {
        return false;
    }
    ActiveFrame &innermost = frames_.back();
    end_line(innermost);
    const LineStats *header = innermost.code->at(row);
    innermost.kept_row = header != nullptr && header->memory != 0 ? row : 0;
    innermost.kept_memory = header != nullptr ? header->memory : 0;
    begin_line(innermost, row, false);
    return true;
}

void ThreadLedger::settle_teardowns() noexcept {
    while (tearing_down_) {
        const Teardown &innermost = teardowns_.back();
        if (innermost.depth != frames_.size() || teardown_surely_running() ||
            (probe_ != nullptr && probe_(innermost.mark))) {
            return; // a finaliser's profiled call runs above it, or the teardown still runs
        }
        pop();
    }
}

} // namespace memxx::core

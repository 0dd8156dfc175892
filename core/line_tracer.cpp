#include "core/line_tracer.hpp"

#include <algorithm>
#include <new>
#include <unordered_map>

#include "core/alloc_hook.hpp"
#include "core/line_events.hpp"
#include "core/mapped_pages.hpp"
#include "core/other_threads.hpp"
#include "core/process_memory.hpp"
#include "core/thread_exit.hpp"

namespace memxx::core {

namespace {

// code object -> line tables of the enabled profilers that hold it; the last one is charged.
std::unordered_map<PyObject *, std::vector<CodeLines *>> &claims() {
    static auto *table = new std::unordered_map<PyObject *, std::vector<CodeLines *>>();
    return *table;
}

// code object -> the offsets of its return instructions where it falls off its end, for the codes
// some ProfiledCodes holds (`holders` of them: the entry goes with the last one).
struct FallsOff {
    int holders = 0;
    std::vector<int> offsets;
};
std::unordered_map<PyObject *, FallsOff> &falls_off_table() {
    static auto *table = new std::unordered_map<PyObject *, FallsOff>();
    return *table;
}

bool falls_off_at(PyObject *code, int offset) {
    const auto &table = falls_off_table();
    const auto it = table.find(code);
    return it != table.end() && std::find(it->second.offsets.begin(), it->second.offsets.end(),
                                          offset) != it->second.offsets.end();
}

void hold_falls_off(PyObject *code, std::vector<int> offsets) {
    FallsOff &entry = falls_off_table()[code];
    ++entry.holders;
    entry.offsets = std::move(offsets); // a property of the code: every holder gives the same
}

// --- teardowns: the ledger's marks are the compat layer's records -----------------------------

bool teardown_running(const TeardownMark &mark) noexcept {
    return memxx_teardown_running(&mark) != 0;
}

// --- a thread's ledger lives from its outermost profiled frame to the end of its teardown -----

void close_ledger(ThreadLedger *ledger);

// The calling thread's state ends (core/thread_exit.hpp): no event will come for its ledger any
// more. A thread whose outermost profiled frame returned keeps its ledger open for that frame's
// teardown, which only a later event or call on the thread settles (a thread the profiled code
// started runs no profiled code after it): its ledger, and the hook's session, close here.
void thread_state_ended() {
    if (ThreadLedger *ledger = thread_ledger()) {
        pages::at_line_boundary(ledger);
        ledger->watchers = 0; // a watch left open on a thread that ended ends with it
        close_ledger(ledger);
    }
}

ThreadLedger *open_ledger() {
    ThreadLedger *ledger = thread_ledger();
    if (ledger != nullptr) {
        ledger->settle();
        if (!ledger->idle()) {
            return ledger;
        }
        // Its last frame's teardown ended after the last event: a new call starts afresh.
        close_ledger(ledger);
    }
    watch_thread_exit(thread_state_ended); // unwatched (no memory): closed by its next event only
    void *memory = mi_malloc(sizeof(ThreadLedger));
    if (memory == nullptr) {
        return nullptr;
    }
    ledger = new (memory) ThreadLedger(current_rss_bytes(), teardown_running);
    ledger->set_share(share_open()); // without one, only this thread's own blocks count
    hook_thread_begin(ledger);
    return ledger;
}

void leave_all(ThreadLedger *ledger) {
    while (const ActiveFrame *frame = ledger->innermost()) {
        ledger->leave(frame->frame);
    }
}

void close_ledger(ThreadLedger *ledger) {
    leave_all(ledger);
    hook_thread_end();
    if (ThreadShare *share = ledger->share()) {
        share_close(share); // a late worker's charges go nowhere from now on
    }
    ledger->~ThreadLedger();
    mi_free(ledger);
}

// Closes the teardowns that are over on the calling thread, and its ledger when nothing is left
// on it. GIL held (closing a ledger removes hooks).
void settle_thread() {
    if (ThreadLedger *ledger = thread_ledger()) {
        ledger->settle();
        if (ledger->idle()) {
            close_ledger(ledger);
        }
    }
}

} // namespace

// --- what the event source calls (core/line_events.hpp) --------------------------------------

CodeLines *claimed_lines(PyObject *code) {
    auto &table = claims();
    auto it = table.find(code);
    return it == table.end() || it->second.empty() ? nullptr : it->second.back();
}

bool any_code_claimed() { return !claims().empty(); }

void frame_started(const void *frame, CodeLines *lines, int lineno, bool count_line,
                   std::int64_t made_before) {
    pages::at_line_boundary(thread_ledger());
    ThreadLedger *ledger = open_ledger();
    if (ledger != nullptr) {
        ledger->enter(frame, lines, lineno, count_line, made_before);
    }
}

void frame_line_missed(ThreadLedger *ledger) {
    if (ledger->idle()) {
        close_ledger(ledger);
    }
}

void frame_left(const void *frame) {
    ThreadLedger *ledger = thread_ledger();
    pages::at_line_boundary(ledger);
    if (ledger != nullptr && ledger->leave(frame) && ledger->idle()) {
        close_ledger(ledger);
    }
}

void frame_returned(const void *frame, PyObject *code, int offset) {
    ThreadLedger *ledger = thread_ledger();
    pages::at_line_boundary(ledger);
    if (ledger == nullptr || !ledger->contains(frame)) {
        return;
    }
    memxx_teardown teardown;
    if (!memxx_teardown_begin(code, &teardown)) {
        frame_left(frame); // a yield (3.11 reports it as a return), or nothing to watch
        return;
    }
    ledger->leave_after_teardown(frame, teardown);
    if (falls_off_at(code, offset)) {
        // Fell off its end: the last line did not release the locals, the function's end did.
        ledger->teardown_on_row(frame, memxx_code_first_line(code));
    }
    if (ledger->idle()) {
        close_ledger(ledger);
    }
}

void leave_thread_frames() {
    if (ThreadLedger *ledger = thread_ledger()) {
        pages::at_line_boundary(ledger);
        leave_all(ledger);
        if (ledger->idle()) {
            close_ledger(ledger);
        }
    }
}

// --- the profiled codes ------------------------------------------------------------------------

ProfiledCodes::~ProfiledCodes() {
    if (enabled_ > 0) {
        enabled_ = 0;
        release();
        if (other_threads_) {
            other_threads_want(false);
        }
    }
    for (auto &[code, lines] : nested_) {
        forget_falls_off(code);
        Py_DECREF(code);
    }
    for (auto &[code, lines] : codes_) {
        forget_falls_off(code);
        Py_DECREF(code);
        // A frame of it still on some thread's ledger keeps the table (it is then leaked).
        if (lines->active_frames == 0) {
            lines->~CodeLines();
            mi_free(lines);
        }
    }
}

void ProfiledCodes::forget_falls_off(PyObject *code) {
    auto &table = falls_off_table();
    const auto it = table.find(code);
    if (it != table.end() && --it->second.holders == 0) {
        table.erase(it);
    }
}

bool ProfiledCodes::add(PyObject *code, int last_line, std::vector<int> falls_off) {
    if (contains(code)) {
        return false;
    }
    void *memory = mi_malloc(sizeof(CodeLines));
    if (memory == nullptr) {
        throw std::bad_alloc();
    }
    auto *lines = new (memory) CodeLines(memxx_code_first_line(code), last_line);
    Py_INCREF(code);
    codes_.emplace_back(code, lines);
    if (enabled_ > 0 && !claim_one(code, lines)) {
        release_one(code, lines);
        codes_.pop_back();
        Py_DECREF(code);
        lines->~CodeLines();
        mi_free(lines);
        throw PythonErrorSet();
    }
    hold_falls_off(code, std::move(falls_off));
    return true;
}

bool ProfiledCodes::add_nested(PyObject *code, PyObject *parent, std::vector<int> falls_off) {
    if (contains(code)) {
        return false;
    }
    auto owner = std::find_if(codes_.begin(), codes_.end(),
                              [parent](const auto &entry) { return entry.first == parent; });
    if (owner == codes_.end()) {
        return false;
    }
    Py_INCREF(code);
    CodeLines *lines = owner->second;
    nested_.emplace_back(code, lines);
    if (enabled_ > 0 && !claim_one(code, lines)) {
        release_one(code, lines);
        nested_.pop_back();
        Py_DECREF(code);
        throw PythonErrorSet();
    }
    hold_falls_off(code, std::move(falls_off));
    return true;
}

bool ProfiledCodes::contains(PyObject *code) const {
    const auto is_code = [code](const auto &entry) { return entry.first == code; };
    return std::any_of(codes_.begin(), codes_.end(), is_code) ||
           std::any_of(nested_.begin(), nested_.end(), is_code);
}

bool ProfiledCodes::claim_one(PyObject *code, CodeLines *lines) {
    auto &owners = claims()[code];
    owners.push_back(lines);
    return owners.size() > 1 || line_events::follow_code(code, true);
}

void ProfiledCodes::release_one(PyObject *code, CodeLines *lines) {
    auto &owners = claims()[code];
    owners.erase(std::remove(owners.begin(), owners.end(), lines), owners.end());
    if (owners.empty()) {
        claims().erase(code);
        line_events::follow_code(code, false);
    }
}

bool ProfiledCodes::claim() {
    if (!line_events::start()) {
        return false;
    }
    for (auto *table : {&codes_, &nested_}) {
        for (auto &[code, lines] : *table) {
            if (!claim_one(code, lines)) {
                release(); // the error stays set
                return false;
            }
        }
    }
    return true;
}

void ProfiledCodes::release() {
    for (auto &[code, lines] : codes_) {
        release_one(code, lines);
    }
    for (auto &[code, lines] : nested_) {
        release_one(code, lines);
    }
    line_events::stop();
}

void ProfiledCodes::enable(bool arm) {
    if (enabled_ == 0) {
        if (native_) {
            native_want(true);
        }
        if (!claim()) {
            if (native_) {
                native_want(false);
            }
            throw PythonErrorSet();
        }
        if (other_threads_) {
            other_threads_want(true);
        }
    }
    ++enabled_;
    if (arm) {
        line_events::arm_thread();
    } else {
        // Between steps the hook keeps watching frees, so that the blocks of one step are
        // still known when a later step (or the close) frees them.
        hook_session_begin();
    }
}

void ProfiledCodes::disable(bool armed) {
    if (enabled_ == 0) {
        return;
    }
    settle_thread(); // a teardown that ended before this call ends its line there
    if (armed) {
        line_events::disarm_thread();
    } else {
        hook_session_end();
    }
    if (--enabled_ == 0) {
        release();
        if (native_) {
            native_want(false);
        }
        if (other_threads_) {
            other_threads_want(false);
        }
    }
}

void ProfiledCodes::set_native(bool on) {
    if (enabled_ > 0 && on != native_) {
        native_want(on);
    }
    native_ = on;
}

void ProfiledCodes::set_other_threads(bool on) {
    if (enabled_ > 0 && on != other_threads_) {
        other_threads_want(on);
    }
    other_threads_ = on;
}

PyObject *ProfiledCodes::close_generator(PyObject *generator) {
    // Made once, outside the measured call (a name made per call is kept by some interpreters).
    static PyObject *close_name = nullptr;
    if (close_name == nullptr && (close_name = PyUnicode_InternFromString("close")) == nullptr) {
        return nullptr;
    }
    // gen.close() may drop the locals without running the frame at all (3.12+, when it is not
    // inside a try block): no event then, so the suspended line is entered here for the call.
    PyObject *code = nullptr;
    const int lineno = memxx_suspended_line(generator, &code);
    CodeLines *lines = lineno > 0 ? claimed_lines(code) : nullptr;
    if (lines != nullptr) {
        frame_started(generator, lines, lineno, false);
    }
    PyObject *result = PyObject_CallMethodNoArgs(generator, close_name);
    if (lines != nullptr) {
        frame_left(generator);
    }
    return result;
}

bool set_floor_trace(bool on) { return line_events::floor_trace(on); }

WatchMark watch_thread_begin(bool other_threads) {
    native_want(true);
    ThreadLedger *ledger = open_ledger();
    if (ledger == nullptr) {
        native_want(false);
        throw std::bad_alloc();
    }
    if (other_threads) {
        other_threads_want(true);
    }
    ++ledger->watchers;
    ledger->take_other_threads();
    const WatchMark mark{ledger->peak_net(), ledger->net(), other_threads};
    ledger->restart_peak(ledger->net());
    return mark;
}

std::int64_t watch_thread_end(WatchMark mark) {
    ThreadLedger *ledger = thread_ledger();
    if (mark.other_threads) {
        other_threads_want(false);
    }
    if (ledger == nullptr || ledger->watchers == 0) {
        native_want(false);
        return 0;
    }
    ledger->take_other_threads();
    const std::int64_t peak = ledger->peak_net() - mark.start_net;
    // An enclosing watch still needs the highest point of this one.
    ledger->restart_peak(std::max(mark.saved_peak, ledger->peak_net()));
    --ledger->watchers;
    settle_thread();
    native_want(false);
    return peak;
}

std::int64_t watch_thread_net(WatchMark mark) {
    ThreadLedger *ledger = thread_ledger();
    if (ledger == nullptr) {
        return 0;
    }
    ledger->take_other_threads();
    return ledger->net() - mark.start_net;
}

void settle_thread_ledger() { settle_thread(); }

std::size_t thread_profiled_depth() {
    settle_thread();
    const ThreadLedger *ledger = thread_ledger();
    return ledger == nullptr ? 0 : ledger->depth();
}

} // namespace memxx::core

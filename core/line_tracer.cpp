#include "core/line_tracer.hpp"

#include <algorithm>
#include <cstring>
#include <new>
#include <unordered_map>

#include "core/alloc_hook.hpp"
#include "core/process_memory.hpp"
#include "core/thread_local.hpp"

namespace memxx::core {

namespace {

// code object -> line tables of the enabled profilers that hold it; the last one is charged.
std::unordered_map<PyObject *, std::vector<CodeLines *>> &claims() {
    static auto *table = new std::unordered_map<PyObject *, std::vector<CodeLines *>>();
    return *table;
}

CodeLines *claimed_lines(PyObject *code) {
    auto &table = claims();
    auto it = table.find(code);
    return it == table.end() || it->second.empty() ? nullptr : it->second.back();
}

MEMXX_TLS void *t_numpy_previous = nullptr;

// --- teardowns: the ledger's marks are py_compat's records ----------------------------------

static_assert(sizeof(memxx_teardown) <= sizeof(TeardownMark::words), "TeardownMark too small");
static_assert(TeardownMark::kWatched == 3, "py_compat watches three words");

TeardownMark mark_of(const memxx_teardown &teardown) {
    TeardownMark mark{};
    for (int i = 0; i < TeardownMark::kWatched; ++i) {
        mark.watched[i] = teardown.watched[0] != nullptr ? teardown.watched[i] : nullptr;
        mark.expected[i] = teardown.expected[i];
    }
    std::memcpy(mark.words, &teardown, sizeof(teardown));
    return mark;
}

bool teardown_running(const TeardownMark &mark) noexcept {
    memxx_teardown teardown;
    std::memcpy(&teardown, mark.words, sizeof(teardown));
    return memxx_teardown_running(&teardown) != 0;
}

// --- a thread's ledger lives from its outermost profiled frame to the end of its teardown -----

void close_ledger(ThreadLedger *ledger);

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
    void *memory = mi_malloc(sizeof(ThreadLedger));
    if (memory == nullptr) {
        return nullptr;
    }
    ledger = new (memory) ThreadLedger(current_rss_bytes(), teardown_running);
    hook_session_begin();
    t_numpy_previous = numpy_install_handler();
    set_thread_ledger(ledger);
    return ledger;
}

void close_ledger(ThreadLedger *ledger) {
    set_thread_ledger(nullptr);
    while (const ActiveFrame *frame = ledger->innermost()) {
        ledger->leave(frame->frame);
    }
    numpy_restore_handler(t_numpy_previous);
    t_numpy_previous = nullptr;
    hook_session_end();
    ledger->~ThreadLedger();
    mi_free(ledger);
}

// made_before: bytes already allocated for this frame (3.11's frame object) that its lines, not
// the caller's, should hold.
void frame_started(const void *frame, CodeLines *lines, int lineno, bool count_line,
                   std::int64_t made_before = 0) {
    ThreadLedger *ledger = open_ledger();
    if (ledger != nullptr) {
        ledger->enter(frame, lines, lineno, count_line, made_before);
    }
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

void frame_line(const void *frame, int lineno) {
    if (ThreadLedger *ledger = thread_ledger()) {
        if (!ledger->line(frame, lineno) && ledger->idle()) {
            close_ledger(ledger);
        }
    }
}

// A profiled frame suspends (a yield or await), or is given up: closed now.
void frame_left(const void *frame) {
    ThreadLedger *ledger = thread_ledger();
    if (ledger != nullptr && ledger->leave(frame) && ledger->idle()) {
        close_ledger(ledger);
    }
}

// A profiled frame returns or raises (`code` is its code): its line stays open while the
// interpreter tears the frame down, which happens after this, the frame's last event.
void frame_returned(const void *frame, PyObject *code) {
    ThreadLedger *ledger = thread_ledger();
    if (ledger == nullptr || !ledger->contains(frame)) {
        return;
    }
    memxx_teardown teardown;
    if (!memxx_teardown_begin(code, &teardown)) {
        frame_left(frame); // a yield (3.11 reports it as a return), or nothing to watch
        return;
    }
    ledger->leave_after_teardown(frame, mark_of(teardown));
    if (ledger->idle()) {
        close_ledger(ledger);
    }
}

#if MEMXX_USE_MONITORING
// --- 3.12+: sys.monitoring --------------------------------------------------------------------
// The frame is identified by its code object: events of a code object come from its innermost
// frame on the thread, so the ledger's innermost frame with that code is the one meant.

int g_tool_id = -1;
long g_event_line = 0, g_event_start = 0, g_event_resume = 0, g_event_return = 0, g_event_yield = 0,
     g_event_unwind = 0, g_event_throw = 0;

int arg_int(PyObject *value) { return static_cast<int>(PyLong_AsLong(value)); }

PyObject *on_py_start(PyObject *, PyObject *const *args, Py_ssize_t) {
    if (CodeLines *lines = claimed_lines(args[0])) {
        frame_started(args[0], lines, memxx_code_first_line(args[0]), true);
    }
    Py_RETURN_NONE;
}

PyObject *on_py_resume(PyObject *, PyObject *const *args, Py_ssize_t) {
    if (CodeLines *lines = claimed_lines(args[0])) {
        frame_started(args[0], lines, memxx_code_line(args[0], arg_int(args[1])), false);
    }
    Py_RETURN_NONE;
}

PyObject *on_py_return(PyObject *, PyObject *const *args, Py_ssize_t) {
    frame_returned(args[0], args[0]);
    Py_RETURN_NONE;
}

PyObject *on_py_yield(PyObject *, PyObject *const *args, Py_ssize_t) {
    frame_left(args[0]);
    Py_RETURN_NONE;
}

PyObject *on_line(PyObject *, PyObject *const *args, Py_ssize_t) {
    frame_line(args[0], arg_int(args[1]));
    Py_RETURN_NONE;
}

PyMethodDef g_callbacks[] = {
    {"_memxx_py_start", reinterpret_cast<PyCFunction>(reinterpret_cast<void *>(on_py_start)),
     METH_FASTCALL, nullptr},
    {"_memxx_py_resume", reinterpret_cast<PyCFunction>(reinterpret_cast<void *>(on_py_resume)),
     METH_FASTCALL, nullptr},
    {"_memxx_py_return", reinterpret_cast<PyCFunction>(reinterpret_cast<void *>(on_py_return)),
     METH_FASTCALL, nullptr},
    {"_memxx_line", reinterpret_cast<PyCFunction>(reinterpret_cast<void *>(on_line)), METH_FASTCALL,
     nullptr},
    {"_memxx_py_yield", reinterpret_cast<PyCFunction>(reinterpret_cast<void *>(on_py_yield)),
     METH_FASTCALL, nullptr},
};

PyObject *monitoring() {
    PyObject *sys_monitoring = PyImport_ImportModule("sys");
    if (sys_monitoring == nullptr) {
        return nullptr;
    }
    PyObject *mon = PyObject_GetAttrString(sys_monitoring, "monitoring");
    Py_DECREF(sys_monitoring);
    return mon;
}

long event_bit(PyObject *events, const char *name) {
    PyObject *value = PyObject_GetAttrString(events, name);
    if (value == nullptr) {
        return 0;
    }
    const long bit = PyLong_AsLong(value);
    Py_DECREF(value);
    return bit;
}

bool register_callback(PyObject *mon, long event, PyMethodDef *def) {
    PyObject *func = PyCFunction_New(def, nullptr);
    if (func == nullptr) {
        return false;
    }
    PyObject *old = PyObject_CallMethod(mon, "register_callback", "ilO", g_tool_id, event, func);
    Py_DECREF(func);
    Py_XDECREF(old);
    return old != nullptr;
}

// Takes a sys.monitoring tool id (PROFILER_ID, or a free one) and registers the callbacks.
bool ensure_tool() {
    if (g_tool_id >= 0) {
        return true;
    }
    PyObject *mon = monitoring();
    if (mon == nullptr) {
        return false;
    }
    PyObject *events = PyObject_GetAttrString(mon, "events");
    if (events == nullptr) {
        Py_DECREF(mon);
        return false;
    }
    g_event_line = event_bit(events, "LINE");
    g_event_start = event_bit(events, "PY_START");
    g_event_resume = event_bit(events, "PY_RESUME");
    g_event_return = event_bit(events, "PY_RETURN");
    g_event_yield = event_bit(events, "PY_YIELD");
    g_event_unwind = event_bit(events, "PY_UNWIND");
    g_event_throw = event_bit(events, "PY_THROW");
    Py_DECREF(events);
    for (int id : {2, 3, 4, 5}) {
        PyObject *ok = PyObject_CallMethod(mon, "use_tool_id", "is", id, "memory_profilerxx");
        if (ok != nullptr) {
            Py_DECREF(ok);
            g_tool_id = id;
            break;
        }
        PyErr_Clear();
    }
    if (g_tool_id < 0) {
        Py_DECREF(mon);
        PyErr_SetString(PyExc_RuntimeError,
                        "memory_profilerxx: every sys.monitoring tool id is in use");
        return false;
    }
    const bool ok = register_callback(mon, g_event_start, &g_callbacks[0]) &&
                    register_callback(mon, g_event_resume, &g_callbacks[1]) &&
                    register_callback(mon, g_event_throw, &g_callbacks[1]) &&
                    register_callback(mon, g_event_return, &g_callbacks[2]) &&
                    register_callback(mon, g_event_yield, &g_callbacks[4]) &&
                    register_callback(mon, g_event_unwind, &g_callbacks[2]) &&
                    register_callback(mon, g_event_line, &g_callbacks[3]);
    Py_DECREF(mon);
    return ok;
}

void set_code_events(PyObject *code, bool on) {
    if (!ensure_tool()) {
        PyErr_Clear();
        return;
    }
    PyObject *mon = monitoring();
    if (mon == nullptr) {
        PyErr_Clear();
        return;
    }
    const long local =
        on ? (g_event_line | g_event_start | g_event_resume | g_event_return | g_event_yield) : 0;
    PyObject *done = PyObject_CallMethod(mon, "set_local_events", "iOl", g_tool_id, code, local);
    if (done == nullptr) {
        PyErr_Clear();
    }
    Py_XDECREF(done);
    Py_DECREF(mon);
}

int g_global_events_users = 0;

// Unwinds and throws cannot be chosen per code object: they stay on while anything is profiled.
void set_global_events(bool on) {
    if (on ? g_global_events_users++ > 0 : --g_global_events_users > 0) {
        return;
    }
    if (!ensure_tool()) {
        PyErr_Clear();
        return;
    }
    PyObject *mon = monitoring();
    if (mon == nullptr) {
        PyErr_Clear();
        return;
    }
    const long events = on ? (g_event_unwind | g_event_throw) : 0;
    PyObject *done = PyObject_CallMethod(mon, "set_events", "il", g_tool_id, events);
    if (done == nullptr) {
        PyErr_Clear();
    }
    Py_XDECREF(done);
    Py_DECREF(mon);
}

#else
// --- 3.11: the C trace function ---------------------------------------------------------------

MEMXX_TLS int t_armed = 0;
MEMXX_TLS Py_tracefunc t_previous_func = nullptr;
MEMXX_TLS PyObject *t_previous_obj = nullptr;

void on_call(PyFrameObject *frame) {
    PyCodeObject *code = PyFrame_GetCode(frame);
    auto *code_object = reinterpret_cast<PyObject *>(code);
    CodeLines *lines = claimed_lines(code_object);
    if (lines == nullptr) {
        // Another tracer still wants this frame's lines; a generator frame can outlive us.
        if (t_previous_func == nullptr && !memxx_code_is_resumable(code_object)) {
            memxx_frame_skip_lines(frame);
        }
        Py_DECREF(code);
        return;
    }
    const int lineno = PyFrame_GetLineNumber(frame);
    const bool first_entry =
        !memxx_code_is_resumable(code_object) || lineno == memxx_code_first_line(code_object);
    Py_DECREF(code);
    // A call that starts while this thread is profiled had its frame object counted on the
    // calling line; its teardown frees it on the call's last line, so it belongs to the call.
    const std::int64_t frame_object =
        first_entry && thread_ledger() != nullptr ? memxx_frame_object_bytes(frame) : 0;
    frame_started(frame, lines, lineno, first_entry, frame_object);
}

int trace_function(PyObject *, PyFrameObject *frame, int what, PyObject *arg) {
    switch (what) {
    case PyTrace_LINE:
        frame_line(frame, PyFrame_GetLineNumber(frame));
        break;
    case PyTrace_CALL:
        on_call(frame);
        break;
    case PyTrace_RETURN:
        if (ThreadLedger *ledger = thread_ledger(); ledger != nullptr && ledger->contains(frame)) {
            // Borrowed: the frame holds its code (and a 3.11 generator's teardown is told by the
            // code's reference count, which must not include ours).
            PyCodeObject *code = PyFrame_GetCode(frame);
            Py_DECREF(code);
            frame_returned(frame, reinterpret_cast<PyObject *>(code));
        }
        break;
    default:
        break;
    }
    if (t_previous_func != nullptr) {
        return t_previous_func(t_previous_obj, frame, what, arg);
    }
    return 0;
}

void arm_thread() {
    if (t_armed++ > 0) {
        return;
    }
    Py_tracefunc func;
    PyObject *obj;
    memxx_thread_tracer(PyThreadState_Get(), &func, &obj);
    t_previous_func = func == trace_function ? nullptr : func;
    t_previous_obj = t_previous_func != nullptr ? obj : nullptr;
    Py_XINCREF(t_previous_obj); // PyEval_SetTrace drops the thread's reference
    PyEval_SetTrace(trace_function, nullptr);
}

void disarm_thread() {
    if (t_armed == 0 || --t_armed > 0) {
        return;
    }
    if (ThreadLedger *ledger = thread_ledger()) {
        if (ledger->watchers == 0) {
            close_ledger(ledger);
        } else {
            while (const ActiveFrame *frame = ledger->innermost()) {
                ledger->leave(frame->frame);
            }
        }
    }
    PyEval_SetTrace(t_previous_func, t_previous_obj);
    Py_XDECREF(t_previous_obj);
    t_previous_func = nullptr;
    t_previous_obj = nullptr;
}
#endif

} // namespace

ProfiledCodes::~ProfiledCodes() {
    if (enabled_ > 0) {
        enabled_ = 0;
        release();
    }
    for (auto &[code, lines] : nested_) {
        Py_DECREF(code);
    }
    for (auto &[code, lines] : codes_) {
        Py_DECREF(code);
        // A frame of it still on some thread's ledger keeps the table (it is then leaked).
        if (lines->active_frames == 0) {
            lines->~CodeLines();
            mi_free(lines);
        }
    }
}

bool ProfiledCodes::add(PyObject *code, int last_line) {
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
    if (enabled_ > 0) {
        claim_one(code, lines);
    }
    return true;
}

bool ProfiledCodes::add_nested(PyObject *code, PyObject *parent) {
    if (contains(code)) {
        return false;
    }
    auto owner = std::find_if(codes_.begin(), codes_.end(),
                              [parent](const auto &entry) { return entry.first == parent; });
    if (owner == codes_.end()) {
        return false;
    }
    Py_INCREF(code);
    nested_.emplace_back(code, owner->second);
    if (enabled_ > 0) {
        claim_one(code, owner->second);
    }
    return true;
}

bool ProfiledCodes::contains(PyObject *code) const {
    const auto is_code = [code](const auto &entry) { return entry.first == code; };
    return std::any_of(codes_.begin(), codes_.end(), is_code) ||
           std::any_of(nested_.begin(), nested_.end(), is_code);
}

void ProfiledCodes::claim_one(PyObject *code, CodeLines *lines) {
    claims()[code].push_back(lines);
#if MEMXX_USE_MONITORING
    set_code_events(code, true);
#endif
}

void ProfiledCodes::release_one(PyObject *code, CodeLines *lines) {
    auto &owners = claims()[code];
    owners.erase(std::remove(owners.begin(), owners.end(), lines), owners.end());
    if (owners.empty()) {
        claims().erase(code);
#if MEMXX_USE_MONITORING
        set_code_events(code, false);
#endif
    }
}

void ProfiledCodes::claim() {
    for (auto &[code, lines] : codes_) {
        claim_one(code, lines);
    }
    for (auto &[code, lines] : nested_) {
        claim_one(code, lines);
    }
#if MEMXX_USE_MONITORING
    set_global_events(true);
#endif
}

void ProfiledCodes::release() {
    for (auto &[code, lines] : codes_) {
        release_one(code, lines);
    }
    for (auto &[code, lines] : nested_) {
        release_one(code, lines);
    }
#if MEMXX_USE_MONITORING
    set_global_events(false);
    // With nothing profiled any more no event will close a ledger still open on this thread.
    if (ThreadLedger *ledger = thread_ledger(); ledger != nullptr && claims().empty()) {
        while (const ActiveFrame *frame = ledger->innermost()) {
            ledger->leave(frame->frame);
        }
        if (ledger->idle()) {
            close_ledger(ledger);
        }
    }
#endif
}

void ProfiledCodes::enable(bool arm) {
    if (enabled_++ == 0) {
        if (native_) {
            native_want(true);
        }
        claim();
    }
    if (!arm) {
        // Between steps the hook keeps watching frees, so that the blocks of one step are
        // still known when a later step (or the close) frees them.
        hook_session_begin();
    }
#if !MEMXX_USE_MONITORING
    if (arm) {
        arm_thread();
    }
#endif
}

void ProfiledCodes::disable(bool armed) {
    if (enabled_ == 0) {
        return;
    }
    settle_thread(); // a teardown that ended before this call ends its line there
#if !MEMXX_USE_MONITORING
    if (armed) {
        disarm_thread();
    }
#endif
    if (!armed) {
        hook_session_end();
    }
    if (--enabled_ == 0) {
        release();
        if (native_) {
            native_want(false);
        }
    }
}

void ProfiledCodes::set_native(bool on) {
    if (enabled_ > 0 && on != native_) {
        native_want(on);
    }
    native_ = on;
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

bool set_floor_trace(bool on) {
#if MEMXX_USE_MONITORING
    (void)on;
    return false;
#else
    static Py_tracefunc floor = [](PyObject *, PyFrameObject *, int, PyObject *) { return 0; };
    PyEval_SetTrace(on ? floor : nullptr, nullptr);
    return true;
#endif
}

WatchMark watch_thread_begin() {
    native_want(true);
    ThreadLedger *ledger = open_ledger();
    if (ledger == nullptr) {
        native_want(false);
        throw std::bad_alloc();
    }
    ++ledger->watchers;
    const WatchMark mark{ledger->peak_net(), ledger->net()};
    ledger->restart_peak(ledger->net());
    return mark;
}

std::int64_t watch_thread_end(WatchMark mark) {
    ThreadLedger *ledger = thread_ledger();
    if (ledger == nullptr || ledger->watchers == 0) {
        native_want(false);
        return 0;
    }
    const std::int64_t peak = ledger->peak_net() - mark.start_net;
    // An enclosing watch still needs the highest point of this one.
    ledger->restart_peak(std::max(mark.saved_peak, ledger->peak_net()));
    --ledger->watchers;
    settle_thread();
    native_want(false);
    return peak;
}

std::int64_t watch_thread_net(WatchMark mark) {
    const ThreadLedger *ledger = thread_ledger();
    return ledger == nullptr ? 0 : ledger->net() - mark.start_net;
}

std::size_t thread_profiled_depth() {
    settle_thread();
    const ThreadLedger *ledger = thread_ledger();
    return ledger == nullptr ? 0 : ledger->depth();
}

} // namespace memxx::core

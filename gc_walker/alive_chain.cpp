#include "gc_walker/alive_chain.hpp"

#include "gc_walker/heap_walk.hpp"

#include <algorithm>
#include <cstring>

namespace memxx::gc {

namespace {

struct FrameSlot {
    unsigned long thread_id;
    int depth;
    PyObject *code;
    PyObject *name;
    PyObject *value;
    bool in_namespace; // an entry of a module-level (or class body) frame's namespace dict
};

bool file_matches(PyObject *code, const std::vector<std::string> &prefixes) {
    PyObject *filename = reinterpret_cast<PyCodeObject *>(code)->co_filename;
    const char *path = PyUnicode_Check(filename) ? PyUnicode_AsUTF8(filename) : nullptr;
    if (path == nullptr) {
        PyErr_Clear();
        return false;
    }
    for (const std::string &p : prefixes) {
        if (std::strncmp(path, p.c_str(), p.size()) == 0) {
            return true;
        }
    }
    return false;
}

bool named(PyObject *code, const char *name) {
    PyObject *co_name = reinterpret_cast<PyCodeObject *>(code)->co_name;
    return PyUnicode_Check(co_name) && PyUnicode_CompareWithASCIIString(co_name, name) == 0;
}

// The deepest frame of the question on the calling thread: with a debugger prompt on the
// stack (cmd's onecmd running a pdb command, code's runcode running a console line), the
// prompt's frames and everything they run above them; -1 without one.
int asking_depth(const std::vector<FrameSlot> &frames, const AliveQuery &query) {
    int prompt = -1;
    for (const FrameSlot &f : frames) {
        if ((named(f.code, "onecmd") || named(f.code, "runcode")) &&
            file_matches(f.code, query.debugger_prefixes)) {
            prompt = f.depth;
            break;
        }
    }
    if (prompt < 0) {
        return -1;
    }
    // Down through the debugger's own frames to the frame being debugged.
    int deepest = prompt;
    for (const FrameSlot &f : frames) {
        if (f.depth == deepest + 1 && file_matches(f.code, query.debugger_prefixes)) {
            deepest = f.depth;
        }
    }
    return deepest;
}

// A shell's output history name: _, __, ___ or _<digits>.
bool is_history_name(PyObject *key) {
    if (!PyUnicode_Check(key)) {
        return false;
    }
    Py_ssize_t size = 0;
    const char *text = PyUnicode_AsUTF8AndSize(key, &size);
    if (text == nullptr) {
        PyErr_Clear();
        return false;
    }
    if (size == 0 || text[0] != '_') {
        return false;
    }
    if (size <= 3 && std::strspn(text, "_") == static_cast<size_t>(size)) {
        return true;
    }
    return size > 1 && std::strspn(text + 1, "0123456789") == static_cast<size_t>(size - 1);
}

// True when `referrer` is a shell namespace that holds `target` only under history names.
bool only_history_refers(PyObject *referrer, PyObject *target, const AliveQuery &query) {
    if (std::find(query.history_namespaces.begin(), query.history_namespaces.end(), referrer) ==
            query.history_namespaces.end() ||
        !PyDict_Check(referrer)) {
        return false;
    }
    PyObject *key = nullptr;
    PyObject *value = nullptr;
    Py_ssize_t pos = 0;
    while (PyDict_Next(referrer, &pos, &key, &value)) {
        if ((value == target || key == target) && !is_history_name(key)) {
            return false;
        }
    }
    return true;
}

struct RootSlots {
    std::vector<FrameSlot> roots; // in thread order, innermost frame first
    // The caller's own variables holding the object itself: named only when no root reaches
    // it, so that "why is it alive" is answered beyond the question's own reference, and yet
    // an object only a local holds (the debugged frame's, at a pdb prompt) is not called garbage.
    std::vector<FrameSlot> callers_own;
};

// The frame slots that count as roots, and the caller's own references to `obj`.
RootSlots root_slots(PyObject *obj, const AliveQuery &query) {
    std::vector<FrameSlot> all;
    auto collect = [](unsigned long tid, int depth, PyObject *code, PyObject *name, PyObject *value,
                      int in_namespace, void *arg) -> int {
        static_cast<std::vector<FrameSlot> *>(arg)->push_back(
            {tid, depth, code, name, value, in_namespace != 0});
        return 0;
    };
    memxx_visit_frame_slots(collect, &all, 1);
    const unsigned long self = PyThread_get_thread_ident();
    std::vector<FrameSlot> own_frames; // the calling thread's frames, innermost first
    for (const FrameSlot &s : all) {
        if (s.thread_id == self && s.value == nullptr) {
            own_frames.push_back(s);
        }
    }
    const int asking = asking_depth(own_frames, query);
    // The caller: the first frame below the question that is not an observer's.
    int caller = -1;
    for (const FrameSlot &f : own_frames) {
        if (f.depth > asking && !file_matches(f.code, query.observer_prefixes)) {
            caller = f.depth;
            break;
        }
    }
    RootSlots found;
    for (const FrameSlot &s : all) {
        if (s.value == nullptr) {
            continue; // the frame's own entry
        }
        if (s.thread_id == self && s.depth <= asking) {
            continue;
        }
        if (file_matches(s.code, query.observer_prefixes) ||
            file_matches(s.code, query.debugger_prefixes)) {
            continue;
        }
        // A shell's output history is no reason for being alive (see only_history_refers).
        if (s.in_namespace && !query.history_namespaces.empty() && is_history_name(s.name)) {
            continue;
        }
        // A module's global is the user's own variable, not a reference made to ask. A name
        // that is no identifier is a tool's temporary (pytest's @py_assert1), never an answer.
        if (s.thread_id == self && s.depth == caller && s.value == obj && !s.in_namespace) {
            if (PyUnicode_Check(s.name) && PyUnicode_IsIdentifier(s.name) == 1) {
                found.callers_own.push_back(s);
            }
            continue;
        }
        found.roots.push_back(s);
    }
    return found;
}

} // namespace

AliveChain why_alive(PyObject *obj, const AliveQuery &query) {
    const RootSlots found = root_slots(obj, query);
    const std::vector<FrameSlot> &slots = found.roots;
    PointerIndex slot_of(slots.size());
    for (size_t i = 0; i < slots.size(); ++i) {
        slot_of.insert(slots[i].value, static_cast<uint32_t>(i));
    }
    PointerIndex modules(query.root_modules.size());
    for (PyObject *m : query.root_modules) {
        modules.insert(m, 0);
    }

    auto root_kind = [&](PyObject *o) {
        if (modules.contains(o)) {
            return AliveChain::Root::module;
        }
        if (PyType_Check(o) &&
            (reinterpret_cast<PyTypeObject *>(o)->tp_flags & Py_TPFLAGS_HEAPTYPE)) {
            return AliveChain::Root::type;
        }
        if (slot_of.contains(o)) {
            return AliveChain::Root::frame;
        }
        return AliveChain::Root::none;
    };
    auto name_frame_root = [](AliveChain &result, const FrameSlot &s) {
        result.root = AliveChain::Root::frame;
        result.thread_id = s.thread_id;
        result.frame_depth = s.depth;
        result.code = PyRef::borrow(s.code);
        result.slot_name = PyRef::borrow(s.name);
    };
    AliveChain result;
    result.chain = search_levels(
        obj, Steps{}, query.max_depth, query.excluded,
        [&](PyObject *o) { return root_kind(o) != AliveChain::Root::none; },
        [&](PyObject *referrer, PyObject *target) {
            return !only_history_refers(referrer, target, query);
        });
    if (result.chain.empty()) {
        if (!found.callers_own.empty()) {
            result.chain.push_back(PyRef::borrow(obj));
            name_frame_root(result, found.callers_own.front());
        }
        return result;
    }
    PyObject *root = result.chain.front().get();
    result.root = root_kind(root);
    if (result.root == AliveChain::Root::frame) {
        name_frame_root(result, slots[slot_of.find(root)]);
    }
    return result;
}

} // namespace memxx::gc

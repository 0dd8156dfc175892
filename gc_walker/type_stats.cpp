#include "gc_walker/type_stats.hpp"

#include "gc_walker/heap_walk.hpp"
#include "gc_walker/pointer_index.hpp"

#include <unordered_set>

namespace memxx::gc {

namespace {

std::string utf8(PyObject *str) {
    Py_ssize_t size = 0;
    const char *data = PyUnicode_AsUTF8AndSize(str, &size);
    if (data == nullptr) {
        throw core::PythonErrorSet{};
    }
    return std::string(data, static_cast<size_t>(size));
}

// Calls filter(obj); false if it returned a falsy value.
bool accepted(PyObject *filter, PyObject *obj) {
    PyRef verdict = PyRef::steal(checked(PyObject_CallOneArg(filter, obj)));
    int truth = PyObject_IsTrue(verdict.get());
    if (truth < 0) {
        throw core::PythonErrorSet{};
    }
    return truth != 0;
}

template <class F> void for_each_item(PyObject *iterable, F &&f) {
    PyRef it = PyRef::steal(checked(PyObject_GetIter(iterable)));
    while (PyObject *item = PyIter_Next(it.get())) {
        PyRef hold = PyRef::steal(item);
        f(item);
    }
    if (PyErr_Occurred()) {
        throw core::PythonErrorSet{};
    }
}

// Set of types whose name equals `name`, resolving each distinct type once.
class TypeNameMatcher {
  public:
    explicit TypeNameMatcher(const std::string &name)
        : name_(name), shortnames_(name.find('.') == std::string::npos) {}
    bool operator()(PyTypeObject *type) {
        auto it = verdicts_.find(type);
        if (it != verdicts_.end()) {
            return it->second;
        }
        bool match = type_name(type, shortnames_) == name_;
        verdicts_.emplace(type, match);
        return match;
    }

  private:
    std::string name_;
    bool shortnames_;
    std::unordered_map<PyTypeObject *, bool> verdicts_;
};

} // namespace

std::string type_name(PyTypeObject *type, bool shortnames) {
    PyObject *type_obj = reinterpret_cast<PyObject *>(type);
    PyRef name = PyRef::steal(checked(PyObject_GetAttrString(type_obj, "__name__")));
    PyRef name_str = PyRef::steal(checked(PyObject_Str(name.get())));
    if (shortnames) {
        return utf8(name_str.get());
    }
    PyRef module = PyRef::steal(PyObject_GetAttrString(type_obj, "__module__"));
    if (!module) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
            throw core::PythonErrorSet{};
        }
        PyErr_Clear();
        return utf8(name_str.get());
    }
    int truth = PyObject_IsTrue(module.get());
    if (truth < 0) {
        throw core::PythonErrorSet{};
    }
    if (!truth) {
        return utf8(name_str.get());
    }
    PyRef module_str = PyRef::steal(checked(PyObject_Str(module.get())));
    return utf8(module_str.get()) + "." + utf8(name_str.get());
}

TypeTally tally(PyObject *objects, PyObject *filter) {
    TypeTally result;
    if (objects != nullptr) {
        for_each_item(objects, [&](PyObject *o) {
            if (filter == nullptr || accepted(filter, o)) {
                result.add(Py_TYPE(o));
            }
        });
        return result;
    }
    if (filter == nullptr) {
        for_each_tracked([&](PyObject *o) { result.add(Py_TYPE(o)); });
        return result;
    }
    // The filter runs Python code, which may allocate: hold every object first, then call it.
    std::vector<PyRef> held;
    held.reserve(tracked_count());
    for_each_tracked([&](PyObject *o) { held.push_back(PyRef::borrow(o)); });
    for (const PyRef &o : held) {
        if (accepted(filter, o.get())) {
            result.add(Py_TYPE(o.get()));
        }
    }
    return result;
}

NameCounts name_counts(const TypeTally &tally, bool shortnames) {
    // Hold the types: resolving a name may run Python code (a metaclass property).
    std::vector<PyRef> held;
    for (PyTypeObject *t : tally.types()) {
        held.push_back(PyRef::borrow(reinterpret_cast<PyObject *>(t)));
    }
    NameCounts result;
    std::unordered_map<std::string, size_t> row_of;
    for (size_t i = 0; i < tally.types().size(); ++i) {
        std::string name = type_name(tally.types()[i], shortnames);
        auto [it, inserted] = row_of.try_emplace(name, result.size());
        if (inserted) {
            result.emplace_back(std::move(name), 0);
        }
        result[it->second].second += tally.counts()[i];
    }
    return result;
}

std::vector<PyRef> objects_named(const std::string &name, PyObject *objects) {
    TypeNameMatcher matches(name);
    std::vector<PyRef> result;
    if (objects != nullptr) {
        for_each_item(objects, [&](PyObject *o) {
            if (matches(Py_TYPE(o))) {
                result.push_back(PyRef::borrow(o));
            }
        });
        return result;
    }
    TypeTally types = tally(nullptr, nullptr);
    std::vector<PyRef> held;
    std::unordered_set<PyTypeObject *> wanted;
    for (PyTypeObject *t : types.types()) {
        held.push_back(PyRef::borrow(reinterpret_cast<PyObject *>(t)));
    }
    for (PyTypeObject *t : types.types()) {
        if (matches(t)) {
            wanted.insert(t);
        }
    }
    if (wanted.empty()) {
        return result;
    }
    // Resolving names may have run Python code: walk again rather than trust a snapshot.
    for_each_tracked([&](PyObject *o) {
        if (wanted.count(Py_TYPE(o))) {
            result.push_back(PyRef::borrow(o));
        }
    });
    return result;
}

PyObject *tracked_object_at(uintptr_t addr) {
    PyObject *found = nullptr;
    auto visit = [](PyObject *op, void *arg) -> int {
        auto *state = static_cast<std::pair<uintptr_t, PyObject *> *>(arg);
        if (reinterpret_cast<uintptr_t>(op) == state->first) {
            state->second = op;
            return 1;
        }
        return 0;
    };
    std::pair<uintptr_t, PyObject *> state{addr, nullptr};
    memxx_gc_visit_tracked(visit, &state);
    found = state.second;
    return found;
}

std::vector<PyRef> tracked_objects_at(const std::vector<uintptr_t> &addrs) {
    PointerIndex wanted(addrs.size());
    for (uintptr_t a : addrs) {
        if (a != 0) {
            wanted.insert(reinterpret_cast<const void *>(a), 0);
        }
    }
    std::vector<PyRef> result;
    for_each_tracked([&](PyObject *o) {
        if (wanted.contains(o)) {
            result.push_back(PyRef::borrow(o));
        }
    });
    return result;
}

} // namespace memxx::gc

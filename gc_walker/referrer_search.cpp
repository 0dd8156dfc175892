#include "gc_walker/referrer_search.hpp"

#include "gc_walker/heap_walk.hpp"


namespace memxx::gc {

namespace {

PointerIndex address_index(const std::vector<uintptr_t> &addresses) {
    PointerIndex index(addresses.size());
    for (uintptr_t a : addresses) {
        if (a != 0) {
            index.insert(reinterpret_cast<const void *>(a), 0);
        }
    }
    return index;
}

void referrers_pass(const std::vector<PyObject *> &targets, const Excluded &excluded,
                    const PointerIndex &excluded_addrs, std::vector<std::vector<PyRef>> &out) {
    PointerIndex slot_of(targets.size());
    for (size_t i = 0; i < targets.size(); ++i) {
        slot_of.insert(targets[i], static_cast<uint32_t>(i));
    }
    out.assign(targets.size(), {});
    std::vector<uint32_t> hits;
    for_each_tracked([&](PyObject *x) {
        for_each_referent(x, [&](PyObject *r) {
            uint32_t t = slot_of.find(r);
            if (t != PointerIndex::npos) {
                hits.push_back(t);
            }
        });
        if (hits.empty()) {
            return;
        }
        if (!excluded.contains(x, excluded_addrs)) {
            for (uint32_t t : hits) {
                if (out[t].empty() || out[t].back().get() != x) {
                    out[t].push_back(PyRef::borrow(x));
                }
            }
        }
        hits.clear();
    });
}

} // namespace

bool Excluded::contains(PyObject *o, const PointerIndex &addrs) const {
    if (addrs.contains(o)) {
        return true;
    }
    for (PyTypeObject *t : observer_types) {
        if (PyObject_TypeCheck(o, t)) {
            return true;
        }
    }
    return false;
}

std::vector<std::vector<PyRef>> referrers_of(const std::vector<PyObject *> &targets,
                                             const Excluded &excluded) {
    std::vector<std::vector<PyRef>> out;
    referrers_pass(targets, excluded, address_index(excluded.addresses), out);
    return out;
}

std::vector<PyRef> referents_of(PyObject *obj) {
    std::vector<PyRef> out;
    for_each_referent(obj, [&](PyObject *r) { out.push_back(PyRef::borrow(r)); });
    return out;
}

namespace {

// The next nodes of each node of `level`, as `steps` says, excluded objects left out.
void next_level(const std::vector<PyObject *> &level, const Steps &steps, const Excluded &excluded,
                const PointerIndex &excluded_addrs, std::vector<std::vector<PyRef>> &out) {
    if (steps.kind == Steps::Kind::referrers) {
        referrers_pass(level, excluded, excluded_addrs, out);
        return;
    }
    out.clear();
    for (PyObject *o : level) {
        std::vector<PyRef> next;
        if (steps.kind == Steps::Kind::referents) {
            next = referents_of(o);
        } else {
            PyRef found = PyRef::steal(checked(PyObject_CallOneArg(steps.callable, o)));
            PyRef it = PyRef::steal(checked(PyObject_GetIter(found.get())));
            while (PyObject *item = PyIter_Next(it.get())) {
                if (item != found.get()) {
                    next.push_back(PyRef::steal(item));
                } else {
                    Py_DECREF(item);
                }
            }
            if (PyErr_Occurred()) {
                throw core::PythonErrorSet{};
            }
        }
        std::vector<PyRef> kept;
        for (PyRef &r : next) {
            if (!excluded.contains(r.get(), excluded_addrs)) {
                kept.push_back(std::move(r));
            }
        }
        out.push_back(std::move(kept));
    }
}

} // namespace

std::vector<PyRef> search_levels(PyObject *start, const Steps &steps, long max_depth,
                                 const Excluded &excluded,
                                 const std::function<bool(PyObject *)> &is_goal,
                                 const std::function<bool(PyObject *, PyObject *)> &keep) {
    struct Node {
        PyRef obj;
        size_t parent;
    };
    constexpr size_t no_parent = SIZE_MAX;
    const PointerIndex excluded_addrs = address_index(excluded.addresses);
    std::vector<Node> nodes;
    PointerIndex seen(64);
    nodes.push_back({PyRef::borrow(start), no_parent});
    seen.insert(start, 0);
    size_t level_begin = 0;
    size_t level_end = 1;
    std::vector<PyObject *> level;
    std::vector<std::vector<PyRef>> neighbours;
    for (long depth = 0;; ++depth) {
        for (size_t i = level_begin; i < level_end; ++i) {
            if (is_goal(nodes[i].obj.get())) {
                std::vector<PyRef> chain;
                for (size_t n = i; n != no_parent; n = nodes[n].parent) {
                    chain.push_back(nodes[n].obj);
                }
                return chain;
            }
        }
        if (depth >= max_depth) {
            break;
        }
        level.clear();
        for (size_t i = level_begin; i < level_end; ++i) {
            level.push_back(nodes[i].obj.get());
        }
        next_level(level, steps, excluded, excluded_addrs, neighbours);
        for (size_t i = 0; i < neighbours.size(); ++i) {
            for (PyRef &r : neighbours[i]) {
                if (keep && !keep(r.get(), level[i])) {
                    continue;
                }
                if (seen.find(r.get()) == PointerIndex::npos) {
                    seen.insert(r.get(), 0);
                    nodes.push_back({std::move(r), level_begin + i});
                }
            }
        }
        neighbours.clear();
        level_begin = level_end;
        level_end = nodes.size();
        if (level_begin == level_end) {
            break;
        }
    }
    return {};
}

std::vector<PyRef> find_chain(PyObject *start, PyObject *predicate, const Steps &steps,
                              long max_depth, const Excluded &excluded) {
    auto matches = [predicate](PyObject *o) {
        PyRef verdict = PyRef::steal(checked(PyObject_CallOneArg(predicate, o)));
        int truth = PyObject_IsTrue(verdict.get());
        if (truth < 0) {
            throw core::PythonErrorSet{};
        }
        return truth != 0;
    };
    std::vector<PyRef> chain = search_levels(start, steps, max_depth, excluded, matches);
    if (chain.empty()) {
        chain.push_back(PyRef::borrow(start));
    }
    return chain;
}

std::vector<PyRef> unreferenced_objects(PyObject *objects) {
    constexpr uint32_t unreferenced = 0;
    constexpr uint32_t referenced = 1;
    std::vector<PyRef> result;
    if (objects == nullptr) {
        PointerIndex marks(tracked_count());
        for_each_tracked([&](PyObject *o) { marks.insert(o, unreferenced); });
        for_each_tracked([&](PyObject *x) {
            for_each_referent(x, [&](PyObject *r) { marks.assign(r, referenced); });
        });
        for_each_tracked([&](PyObject *o) {
            if (marks.find(o) == unreferenced) {
                result.push_back(PyRef::borrow(o));
            }
        });
        return result;
    }
    std::vector<PyRef> candidates;
    PyRef it = PyRef::steal(checked(PyObject_GetIter(objects)));
    while (PyObject *item = PyIter_Next(it.get())) {
        candidates.push_back(PyRef::steal(item));
    }
    if (PyErr_Occurred()) {
        throw core::PythonErrorSet{};
    }
    PointerIndex marks(candidates.size());
    for (const PyRef &c : candidates) {
        marks.insert(c.get(), unreferenced);
    }
    for_each_tracked([&](PyObject *x) {
        if (x == objects) {
            return;
        }
        for_each_referent(x, [&](PyObject *r) { marks.assign(r, referenced); });
    });
    for (PyRef &c : candidates) {
        if (marks.find(c.get()) == unreferenced) {
            result.push_back(std::move(c));
        }
    }
    return result;
}

} // namespace memxx::gc

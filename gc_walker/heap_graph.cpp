#include "gc_walker/heap_graph.hpp"

#include "gc_walker/heap_walk.hpp"

#include <unordered_map>
#include <utility>

namespace memxx::gc {

namespace {

// Pauses the automatic collector: a collection freeing objects mid-walk would leave the graph
// pointing at freed memory. Builtin __sizeof__ results are ints, which can start no collection,
// but other allocations in between could.
class CollectorPause {
  public:
    CollectorPause() : was_enabled_(PyGC_Disable()) {}
    ~CollectorPause() {
        if (was_enabled_) {
            PyGC_Enable();
        }
    }
    CollectorPause(const CollectorPause &) = delete;
    CollectorPause &operator=(const CollectorPause &) = delete;

  private:
    int was_enabled_;
};

} // namespace

ShallowSizer::Rule ShallowSizer::rule_for(PyTypeObject *type) {
    for (const auto &[t, rule] : rules_) {
        if (t == type) {
            return rule;
        }
    }
    Rule rule{nullptr};
    PyObject *descr = PyObject_GetAttrString(reinterpret_cast<PyObject *>(type), "__sizeof__");
    if (descr == nullptr) {
        PyErr_Clear();
    } else {
        if (Py_IS_TYPE(descr, &PyMethodDescr_Type)) {
            PyMethodDef *def = reinterpret_cast<PyMethodDescrObject *>(descr)->d_method;
            if ((def->ml_flags & (METH_NOARGS | METH_VARARGS | METH_KEYWORDS | METH_O)) ==
                METH_NOARGS) {
                rule.sizeof_impl = def->ml_meth;
            }
        }
        Py_DECREF(descr);
    }
    rules_.emplace_back(type, rule);
    return rule;
}

uint64_t ShallowSizer::operator()(PyObject *obj) {
    PyTypeObject *type = Py_TYPE(obj);
    if (type != last_type_) {
        last_rule_ = rule_for(type);
        last_type_ = type;
    }
    uint64_t size = 0;
    bool known = false;
    if (last_rule_.sizeof_impl != nullptr) {
        PyObject *result = last_rule_.sizeof_impl(obj, nullptr);
        if (result != nullptr) {
            const Py_ssize_t n = PyLong_AsSsize_t(result);
            Py_DECREF(result);
            if (n >= 0) {
                size = static_cast<uint64_t>(n);
                known = true;
            }
        }
        if (!known) {
            PyErr_Clear();
        }
    }
    if (!known) {
        // object.__sizeof__: basic size plus items.
        size = static_cast<uint64_t>(type->tp_basicsize);
        if (type->tp_itemsize > 0) {
            size += static_cast<uint64_t>(Py_SIZE(obj)) * static_cast<uint64_t>(type->tp_itemsize);
        }
    }
    return size + memxx_getsizeof_overhead(obj);
}

HeapGraph HeapGraph::build(PyObject *focus) {
    CollectorPause pause;
    HeapGraph g;
    const size_t tracked = tracked_count();
    g.index_ = PointerIndex(tracked * 2);
    g.objects_.reserve(tracked + tracked / 2);
    for_each_tracked([&](PyObject *o) {
        g.index_.insert(o, static_cast<uint32_t>(g.objects_.size()));
        g.objects_.push_back(o);
    });
    // Edges; referents not seen yet become nodes and are expanded in turn (an untracked tuple
    // or dict still holds references).
    CsrGraph graph;
    graph.offsets.reserve(g.objects_.capacity() + 2);
    graph.offsets.push_back(0);
    for (size_t i = 0; i < g.objects_.size(); ++i) {
        for_each_referent(g.objects_[i], [&](PyObject *r) {
            const uint32_t next = static_cast<uint32_t>(g.objects_.size());
            const uint32_t node = g.index_.insert(r, next);
            if (node == next) {
                g.objects_.push_back(r);
            }
            graph.targets.push_back(node);
        });
        graph.offsets.push_back(static_cast<uint32_t>(graph.targets.size()));
    }
    const uint32_t n = static_cast<uint32_t>(g.objects_.size());

    // Roots: frame slots, then nodes nothing refers to, then whatever is still unreached.
    std::vector<uint32_t> roots;
    std::vector<uint8_t> reached(n, 0);
    auto add_root = [&](uint32_t r) {
        if (reached[r]) {
            return;
        }
        roots.push_back(r);
        std::vector<uint32_t> stack{r};
        reached[r] = 1;
        while (!stack.empty()) {
            const uint32_t v = stack.back();
            stack.pop_back();
            for (uint32_t e = graph.offsets[v]; e < graph.offsets[v + 1]; ++e) {
                const uint32_t w = graph.targets[e];
                if (!reached[w]) {
                    reached[w] = 1;
                    stack.push_back(w);
                }
            }
        }
    };
    auto collect = [](unsigned long, int, PyObject *, PyObject *, PyObject *value, int,
                      void *arg) -> int {
        if (value != nullptr) {
            static_cast<std::vector<PyObject *> *>(arg)->push_back(value);
        }
        return 0;
    };
    std::vector<PyObject *> slot_values;
    memxx_visit_frame_slots(collect, &slot_values, 0);
    for (PyObject *v : slot_values) {
        const uint32_t node = g.index_.find(v);
        if (node != PointerIndex::npos) {
            add_root(node);
        }
    }
    {
        std::vector<uint8_t> referenced(n, 0);
        for (uint32_t t : graph.targets) {
            referenced[t] = 1;
        }
        for (uint32_t v = 0; v < n; ++v) {
            if (!referenced[v]) {
                add_root(v);
            }
        }
    }
    for (uint32_t v = 0; v < n; ++v) {
        add_root(v);
    }
    reached = {};
    reached.shrink_to_fit();
    // The address index is the biggest structure here: gone before the dominator tree's arrays.
    g.focus_ = focus != nullptr ? g.index_.find(focus) : PointerIndex::npos;
    g.index_ = PointerIndex(0);
    g.super_root_ = n;
    g.objects_.push_back(nullptr);
    graph.targets.insert(graph.targets.end(), roots.begin(), roots.end());
    graph.offsets.push_back(static_cast<uint32_t>(graph.targets.size()));
    roots = {};

    g.tree_ = dominator_tree(std::move(graph), g.super_root_);

    ShallowSizer sizer;
    g.shallow_.resize(n + 1, 0);
    for (uint32_t v = 0; v < n; ++v) {
        g.shallow_[v] = sizer(g.objects_[v]);
    }
    g.retained_ = retained_sizes(g.tree_, g.shallow_);
    g.memory_bytes_ = g.objects_.capacity() * 8 + g.shallow_.capacity() * 8 +
                      g.retained_.capacity() * 8 + g.tree_.idom.capacity() * 4 +
                      g.tree_.preorder.capacity() * 4;
    return g;
}

std::vector<HeapGraph::TypeRow> HeapGraph::by_type() const {
    const uint32_t n = super_root_;
    std::vector<TypeRow> rows;
    std::unordered_map<PyTypeObject *, uint32_t> row_of;
    std::vector<uint32_t> type_row(n);
    for (uint32_t v = 0; v < n; ++v) {
        PyTypeObject *t = Py_TYPE(objects_[v]);
        auto [it, inserted] = row_of.try_emplace(t, static_cast<uint32_t>(rows.size()));
        if (inserted) {
            rows.push_back(TypeRow{t});
        }
        type_row[v] = it->second;
        rows[it->second].count += 1;
        rows[it->second].shallow += shallow_[v];
    }
    // Children lists of the dominator tree, then a depth-first walk that knows how many
    // objects of each type are above the current one.
    std::vector<uint32_t> child_offsets(n + 2, 0);
    for (uint32_t v = 0; v < n; ++v) {
        if (tree_.idom[v] != DominatorTree::npos) {
            ++child_offsets[tree_.idom[v] + 1];
        }
    }
    for (uint32_t v = 0; v <= n; ++v) {
        child_offsets[v + 1] += child_offsets[v];
    }
    std::vector<uint32_t> children(child_offsets[n + 1]);
    {
        std::vector<uint32_t> fill(child_offsets.begin(), child_offsets.end() - 1);
        for (uint32_t v = 0; v < n; ++v) {
            if (tree_.idom[v] != DominatorTree::npos) {
                children[fill[tree_.idom[v]]++] = v;
            }
        }
    }
    std::vector<uint32_t> open_of_type(rows.size(), 0);
    std::vector<std::pair<uint32_t, uint32_t>> stack; // (node, next child)
    stack.emplace_back(n, child_offsets[n]);
    while (!stack.empty()) {
        auto &[v, next] = stack.back();
        if (next == child_offsets[v + 1]) {
            if (v != n) {
                --open_of_type[type_row[v]];
            }
            stack.pop_back();
            continue;
        }
        const uint32_t c = children[next++];
        const uint32_t r = type_row[c];
        if (open_of_type[r] == 0) {
            rows[r].retained += retained_[c];
        }
        ++open_of_type[r];
        stack.emplace_back(c, child_offsets[c]);
    }
    return rows;
}

} // namespace memxx::gc

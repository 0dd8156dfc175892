// The whole heap as a graph, for sizes: every tracked object plus every object one of them
// refers to (str, int, object(), ... are not tracked but are nodes), the references between
// them, shallow sizes, and the dominator tree that gives retained sizes.
#pragma once

#include "gc_walker/dominators.hpp"
#include "gc_walker/pointer_index.hpp"
#include "gc_walker/py_ref.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace memxx::gc {

// sys.getsizeof(obj), computed without running Python code: classes whose __sizeof__ is
// written in Python are counted at their basic size (what object.__sizeof__ would say).
class ShallowSizer {
  public:
    uint64_t operator()(PyObject *obj);

  private:
    struct Rule {
        PyCFunction sizeof_impl; // a builtin __sizeof__, or nullptr: the generic formula
    };
    PyTypeObject *last_type_ = nullptr;
    Rule last_rule_{nullptr};
    std::vector<std::pair<PyTypeObject *, Rule>> rules_;
    Rule rule_for(PyTypeObject *type);
};

class HeapGraph {
  public:
    // Walks the heap (GIL held; the collector is paused meanwhile, no Python code runs). The
    // roots are the objects no other object refers to, the values of the named slots of every
    // live frame, and, so that every node has a dominator, one member of each group of objects
    // that nothing above reaches (cycles held only from C).
    // `focus` (may be nullptr): an object whose node focus_node() then gives.
    static HeapGraph build(PyObject *focus = nullptr);
    // A graph of no nodes: assigning it releases a built graph's memory.
    static HeapGraph build_empty() { return HeapGraph(); }

    uint32_t node_count() const { return static_cast<uint32_t>(objects_.size()); }
    // The node of the `focus` object given to build(), or npos if it is not in the graph (not
    // tracked and referred to by no tracked object).
    uint32_t focus_node() const { return focus_; }
    PyObject *object(uint32_t node) const { return objects_[node]; }
    uint64_t shallow(uint32_t node) const { return shallow_[node]; }
    uint64_t retained(uint32_t node) const { return retained_[node]; }
    uint32_t idom(uint32_t node) const { return tree_.idom[node]; }
    bool is_root_child(uint32_t node) const { return tree_.idom[node] == super_root_; }
    // Bytes the built graph keeps (its peak while building is higher), for the benchmarks.
    size_t memory_bytes() const { return memory_bytes_; }

    // Per distinct type: objects, shallow bytes, and retained bytes of the type's objects taken
    // together (an object dominated by another of the same type is not counted twice).
    struct TypeRow {
        PyTypeObject *type;
        uint64_t count = 0;
        uint64_t shallow = 0;
        uint64_t retained = 0;
    };
    std::vector<TypeRow> by_type() const;

  private:
    HeapGraph() : index_(0) {}

    std::vector<PyObject *> objects_; // node -> object; the super root (last node) is nullptr
    PointerIndex index_;
    std::vector<uint64_t> shallow_;
    std::vector<uint64_t> retained_;
    DominatorTree tree_;
    uint32_t super_root_ = 0;
    uint32_t focus_ = PointerIndex::npos;
    size_t memory_bytes_ = 0;
};

} // namespace memxx::gc

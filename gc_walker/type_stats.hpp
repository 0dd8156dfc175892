// Counting objects by type and finding objects by type name or address.
#pragma once

#include "gc_walker/py_ref.hpp"

#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace memxx::gc {

// Object counts per type object, in the order each type was first seen.
class TypeTally {
  public:
    void add(PyTypeObject *type) {
        if (type == last_type_) {
            ++counts_[last_slot_];
            return;
        }
        auto [it, inserted] = slot_of_.try_emplace(type, static_cast<uint32_t>(types_.size()));
        if (inserted) {
            types_.push_back(type);
            counts_.push_back(0);
        }
        last_type_ = type;
        last_slot_ = it->second;
        ++counts_[last_slot_];
    }
    const std::vector<PyTypeObject *> &types() const { return types_; }
    const std::vector<size_t> &counts() const { return counts_; }

  private:
    std::unordered_map<PyTypeObject *, uint32_t> slot_of_;
    std::vector<PyTypeObject *> types_;
    std::vector<size_t> counts_;
    PyTypeObject *last_type_ = nullptr;
    uint32_t last_slot_ = 0;
};

using NameCounts = std::vector<std::pair<std::string, size_t>>;

// `type(o).__name__`, or `type(o).__module__ + '.' + __name__` when the module is truthy.
std::string type_name(PyTypeObject *type, bool shortnames);

// Tallies every tracked object (objects == nullptr) or the items of an iterable; `filter`
// (may be nullptr) is called per object and objects it rejects are skipped.
TypeTally tally(PyObject *objects, PyObject *filter);

// Resolves the type names of a tally and adds up types that share a name, first-seen order.
NameCounts name_counts(const TypeTally &tally, bool shortnames);

// Objects whose type name is `name` (module-qualified if it contains a dot), in walk order.
std::vector<PyRef> objects_named(const std::string &name, PyObject *objects);

// The tracked object at address `addr`, or nullptr.
PyObject *tracked_object_at(uintptr_t addr);

// The tracked objects whose address is in `addrs`, in walk order.
std::vector<PyRef> tracked_objects_at(const std::vector<uintptr_t> &addrs);

} // namespace memxx::gc

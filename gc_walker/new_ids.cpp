#include "gc_walker/new_ids.hpp"

#include "gc_walker/heap_walk.hpp"
#include "gc_walker/type_stats.hpp"

#include <algorithm>

namespace memxx::gc {

uint32_t NewIdsTracker::name_number(const std::string &name) {
    auto [it, inserted] =
        number_of_name_.try_emplace(name, static_cast<uint32_t>(name_table_.size()));
    if (inserted) {
        name_table_.push_back(name);
    }
    return it->second;
}

std::vector<NewIdsRow> NewIdsTracker::update(bool shortnames) {
    struct Entry {
        uint64_t address;
        PyTypeObject *type;
    };
    std::vector<Entry> scan;
    scan.reserve(tracked_count());
    TypeTally types;
    for_each_tracked([&](PyObject *o) {
        scan.push_back({reinterpret_cast<uint64_t>(o), Py_TYPE(o)});
        types.add(Py_TYPE(o));
    });
    // Names are resolved after the walk (it may run Python code); hold the types meanwhile.
    std::vector<PyRef> held;
    for (PyTypeObject *t : types.types()) {
        held.push_back(PyRef::borrow(reinterpret_cast<PyObject *>(t)));
    }
    std::unordered_map<PyTypeObject *, uint32_t> number_of_type;
    for (PyTypeObject *t : types.types()) {
        number_of_type.emplace(t, name_number(type_name(t, shortnames)));
    }
    std::sort(scan.begin(), scan.end(),
              [](const Entry &a, const Entry &b) { return a.address < b.address; });

    std::vector<uint64_t> addresses(scan.size());
    std::vector<uint32_t> names(scan.size());
    for (size_t i = 0; i < scan.size(); ++i) {
        addresses[i] = scan[i].address;
        names[i] = number_of_type[scan[i].type];
    }
    scan.clear();
    scan.shrink_to_fit();

    std::vector<NewIdsRow> rows(name_table_.size());
    for (uint32_t n : names_) {
        ++rows[n].old_count;
    }
    size_t j = 0;
    for (size_t i = 0; i < addresses.size(); ++i) {
        NewIdsRow &row = rows[names[i]];
        ++row.current_count;
        while (j < addresses_.size() && addresses_[j] < addresses[i]) {
            ++j;
        }
        bool existed =
            j < addresses_.size() && addresses_[j] == addresses[i] && names_[j] == names[i];
        if (!existed) {
            row.new_ids.push_back(addresses[i]);
        }
    }
    std::vector<NewIdsRow> result;
    for (size_t n = 0; n < rows.size(); ++n) {
        if (rows[n].old_count || rows[n].current_count) {
            rows[n].name = name_table_[n];
            result.push_back(std::move(rows[n]));
        }
    }
    addresses_ = std::move(addresses);
    names_ = std::move(names);
    return result;
}

} // namespace memxx::gc

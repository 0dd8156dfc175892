// get_new_ids(): which objects appeared since the previous scan, per type name. The state
// between scans is 12 bytes per tracked object (address + name number), not Python sets.
#pragma once

#include "gc_walker/py_ref.hpp"

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace memxx::gc {

struct NewIdsRow {
    std::string name;
    size_t old_count = 0;
    size_t current_count = 0;
    std::vector<uintptr_t> new_ids; // addresses present now and not before under this name
};

class NewIdsTracker {
  public:
    // Scans the heap, compares with the previous scan and keeps this one for the next call.
    // Rows come for every name seen in either scan, in name-number order.
    std::vector<NewIdsRow> update(bool shortnames);

    size_t retained_bytes() const {
        return addresses_.capacity() * sizeof(uint64_t) + names_.capacity() * sizeof(uint32_t);
    }

  private:
    uint32_t name_number(const std::string &name);

    std::vector<uint64_t> addresses_; // sorted
    std::vector<uint32_t> names_;     // parallel to addresses_
    std::vector<std::string> name_table_;
    std::unordered_map<std::string, uint32_t> number_of_name_;
};

} // namespace memxx::gc

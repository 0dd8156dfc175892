// A map from object address to a small index: core/flat_table.hpp keyed by the address, with
// the walker's "absent" value. Sized for the expected count up front (the hot loop of the
// referrer and leak scans probes it once per reference), it still grows past 70 % load, so the
// expected count is a hint. Its memory is mimalloc's, never the hooked Python allocator's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>

#include "core/flat_table.hpp"

namespace memxx::gc {

class PointerIndex {
  public:
    static constexpr uint32_t npos = UINT32_MAX;

    explicit PointerIndex(size_t expected) {
        if (!table_.reserve(expected)) {
            throw std::bad_alloc();
        }
    }

    // Inserts `key` with `value` unless present; returns the value stored for `key`.
    uint32_t insert(const void *key, uint32_t value) {
        const uint32_t *stored = table_.emplace(reinterpret_cast<uintptr_t>(key), value);
        if (stored == nullptr) {
            throw std::bad_alloc();
        }
        return *stored;
    }

    uint32_t find(const void *key) const {
        const uint32_t *stored = table_.find(reinterpret_cast<uintptr_t>(key));
        return stored != nullptr ? *stored : npos;
    }

    // Replaces the value stored for `key`; false if `key` is absent.
    bool assign(const void *key, uint32_t value) {
        uint32_t *stored = table_.find(reinterpret_cast<uintptr_t>(key));
        if (stored == nullptr) {
            return false;
        }
        *stored = value;
        return true;
    }

    bool contains(const void *key) const { return find(key) != npos; }
    size_t size() const { return table_.size(); }

  private:
    core::FlatTable<uint32_t> table_;
};

} // namespace memxx::gc

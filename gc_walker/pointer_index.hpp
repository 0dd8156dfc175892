// Open-addressing map from object address to a small index, sized once. The hot loop of the
// referrer and leak scans probes it once per reference, so it stays flat and power-of-two.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace memxx::gc {

class PointerIndex {
  public:
    static constexpr uint32_t npos = UINT32_MAX;

    explicit PointerIndex(size_t expected) {
        size_t capacity = 16;
        while (capacity < expected + expected / 3 + 1) {
            capacity *= 2;
        }
        mask_ = capacity - 1;
        keys_.assign(capacity, 0);
        values_.assign(capacity, npos);
    }

    // Inserts `key` with `value` unless present; returns the value stored for `key`. The table
    // doubles past 3/4 load, so the expected size given to the constructor is only a hint.
    uint32_t insert(const void *key, uint32_t value) {
        if ((size_ + 1) * 4 > (mask_ + 1) * 3) {
            grow();
        }
        const uintptr_t k = reinterpret_cast<uintptr_t>(key);
        for (size_t i = slot(k);; i = (i + 1) & mask_) {
            if (keys_[i] == k) {
                return values_[i];
            }
            if (keys_[i] == 0) {
                keys_[i] = k;
                values_[i] = value;
                ++size_;
                return value;
            }
        }
    }

    uint32_t find(const void *key) const {
        const uintptr_t k = reinterpret_cast<uintptr_t>(key);
        for (size_t i = slot(k);; i = (i + 1) & mask_) {
            if (keys_[i] == k) {
                return values_[i];
            }
            if (keys_[i] == 0) {
                return npos;
            }
        }
    }

    // Replaces the value stored for `key`; false if `key` is absent.
    bool assign(const void *key, uint32_t value) {
        const uintptr_t k = reinterpret_cast<uintptr_t>(key);
        for (size_t i = slot(k);; i = (i + 1) & mask_) {
            if (keys_[i] == k) {
                values_[i] = value;
                return true;
            }
            if (keys_[i] == 0) {
                return false;
            }
        }
    }

    bool contains(const void *key) const { return find(key) != npos; }
    size_t size() const { return size_; }

  private:
    void grow() {
        std::vector<uintptr_t> keys(std::move(keys_));
        std::vector<uint32_t> values(std::move(values_));
        mask_ = keys.size() * 2 - 1;
        keys_.assign(keys.size() * 2, 0);
        values_.assign(keys.size() * 2, npos);
        for (size_t j = 0; j < keys.size(); ++j) {
            if (keys[j] != 0) {
                size_t i = slot(keys[j]);
                while (keys_[i] != 0) {
                    i = (i + 1) & mask_;
                }
                keys_[i] = keys[j];
                values_[i] = values[j];
            }
        }
    }

    size_t slot(uintptr_t k) const { return ((k >> 4) * 0x9E3779B97F4A7C15ull >> 20) & mask_; }

    size_t mask_ = 0;
    size_t size_ = 0;
    std::vector<uintptr_t> keys_;
    std::vector<uint32_t> values_;
};

} // namespace memxx::gc

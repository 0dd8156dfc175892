// An open-addressing hash table from 64-bit keys to small values, in mimalloc memory (never in
// the hooked Python allocator): linear probing, backward-shift deletion (core/probe_run.hpp: no
// tombstones, so lookups stay short however many keys come and go), doubling past 70 % load.
// Key 0 marks an empty slot. Not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>

#include <mimalloc.h>

#include "core/probe_run.hpp"

namespace memxx::core {

// A slot: the key and its value. Values of 4 bytes or less are packed after the key in 12 bytes
// instead of 16 (x86 loads the key unaligned at no cost): the tables of interned stacks hold
// millions of slots.
template <class Value, bool = (sizeof(Value) <= 4)> struct FlatSlot {
    std::uint64_t key;
    Value value;
};
template <class Value> struct __attribute__((packed, aligned(4))) FlatSlot<Value, true> {
    std::uint64_t key;
    Value value;
};

template <class Value> class FlatTable {
  public:
    FlatTable() = default;
    FlatTable(const FlatTable &) = delete;
    FlatTable &operator=(const FlatTable &) = delete;
    FlatTable(FlatTable &&other) noexcept { take(other); }
    FlatTable &operator=(FlatTable &&other) noexcept {
        if (this != &other) {
            mi_free(slots_);
            take(other);
        }
        return *this;
    }

    using Slot = FlatSlot<Value>;

    ~FlatTable() { mi_free(slots_); }

    Value *find(std::uint64_t key) noexcept {
        return const_cast<Value *>(static_cast<const FlatTable *>(this)->find(key));
    }

    const Value *find(std::uint64_t key) const noexcept {
        if (slots_ == nullptr) {
            return nullptr;
        }
        for (std::size_t i = home(key);; i = (i + 1) & mask_) {
            if (slots_[i].key == key) {
                return &slots_[i].value;
            }
            if (slots_[i].key == 0) {
                return nullptr;
            }
        }
    }

    // Inserts or overwrites; false if the table could not grow (the key is then not stored).
    bool put(std::uint64_t key, Value value) noexcept {
        Value *stored = emplace(key, value);
        if (stored != nullptr) {
            *stored = value;
        }
        return stored != nullptr;
    }

    // The value stored for `key`, inserting `value` first when the key is absent; nullptr if the
    // table could not grow (the key is then not stored).
    Value *emplace(std::uint64_t key, Value value) noexcept {
        if ((count_ + 1) * 10 > capacity() * 7 && !resize(capacity() ? capacity() * 2 : 1024)) {
            return nullptr;
        }
        for (std::size_t i = home(key);; i = (i + 1) & mask_) {
            if (slots_[i].key == key) {
                return &slots_[i].value;
            }
            if (slots_[i].key == 0) {
                slots_[i] = Slot{key, value};
                ++count_;
                return &slots_[i].value;
            }
        }
    }

    // Room for `count` keys without growing; false if it could not be made.
    bool reserve(std::size_t count) noexcept {
        std::size_t wanted = capacity() ? capacity() : 16;
        while (count * 10 > wanted * 7) {
            wanted *= 2;
        }
        return wanted == capacity() || resize(wanted);
    }

    bool erase(std::uint64_t key, Value *value) noexcept {
        if (slots_ == nullptr) {
            return false;
        }
        std::size_t i = home(key);
        while (slots_[i].key != key) {
            if (slots_[i].key == 0) {
                return false;
            }
            i = (i + 1) & mask_;
        }
        *value = slots_[i].value;
        i = shift_back_over(
            i, [this](std::size_t at) { return (at + 1) & mask_; },
            [this](std::size_t at) { return slots_[at].key == 0; },
            [this](std::size_t at) { return home(slots_[at].key); },
            [this](std::size_t to, std::size_t from) { slots_[to] = slots_[from]; });
        slots_[i].key = 0;
        --count_;
        return true;
    }

    void clear() noexcept {
        mi_free(slots_);
        slots_ = nullptr;
        mask_ = 0;
        count_ = 0;
    }

    std::size_t size() const noexcept { return count_; }
    std::size_t capacity() const noexcept { return slots_ ? mask_ + 1 : 0; }
    std::size_t memory_bytes() const noexcept { return capacity() * sizeof(Slot); }

  private:
    void take(FlatTable &other) noexcept {
        slots_ = other.slots_;
        mask_ = other.mask_;
        shift_ = other.shift_;
        count_ = other.count_;
        other.slots_ = nullptr;
        other.mask_ = 0;
        other.count_ = 0;
    }

    std::size_t home(std::uint64_t key) const noexcept {
        // Fibonacci hashing: the top bits of the product mix every bit of the key.
        return static_cast<std::size_t>((key * 0x9E3779B97F4A7C15ull) >> shift_);
    }

    bool resize(std::size_t new_capacity) noexcept {
        auto *fresh = static_cast<Slot *>(mi_zalloc(new_capacity * sizeof(Slot)));
        if (fresh == nullptr) {
            return false;
        }
        Slot *old = slots_;
        const std::size_t old_capacity = capacity();
        slots_ = fresh;
        mask_ = new_capacity - 1;
        shift_ = 64 - static_cast<unsigned>(__builtin_ctzll(new_capacity));
        for (std::size_t i = 0; i < old_capacity; ++i) {
            if (old[i].key != 0) {
                std::size_t j = home(old[i].key);
                while (slots_[j].key != 0) {
                    j = (j + 1) & mask_;
                }
                slots_[j] = old[i];
            }
        }
        mi_free(old);
        return true;
    }

    Slot *slots_ = nullptr;
    std::size_t mask_ = 0;
    unsigned shift_ = 63; // 64 - log2(capacity)
    std::size_t count_ = 0;
};

} // namespace memxx::core

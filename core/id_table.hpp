// An open-addressing index of dense 32-bit ids (nodes of the stack tree, the peak tables' tags),
// each found by a 64-bit hash of what it names, which the caller computes: a slot holds the id and
// the hash's low bits (a fingerprint), never a key, so it costs 4 bytes where a table of 64-bit
// keys costs 12, and what the id names stays in one place (the caller's array), compared there.
// Linear probing, backward-shift deletion (core/probe_run.hpp), any capacity (a slot from the
// hash's top bits by multiplication), grown by a quarter past 85 % load: 4.7 to 5.9 bytes per id.
// The fingerprint spares most of a probe's reads of the caller's array: only slots whose
// fingerprint matches are compared. Growing and deleting need the hash of ids already stored: the
// caller passes `hash_of(id)`. In mimalloc memory; not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>

#include <mimalloc.h>

#include "core/probe_run.hpp"

namespace memxx::core {

// A hash for the table from any 64 bits (splitmix64's finaliser): every bit of `bits` moves the
// top bits (the slot) and the low ones (the fingerprint).
inline std::uint64_t id_hash(std::uint64_t bits) noexcept {
    bits = (bits ^ (bits >> 30)) * 0xBF58476D1CE4E5B9ull;
    bits = (bits ^ (bits >> 27)) * 0x94D049BB133111EBull;
    return bits ^ (bits >> 31);
}

// IdBits: the bits an id takes (ids up to 2^IdBits - 2); the other 32 - IdBits hold the
// fingerprint.
template <unsigned IdBits> class IdTable {
    static_assert(IdBits >= 16 && IdBits <= 28, "at least 4 bits of fingerprint");

  public:
    static constexpr std::uint32_t kNone = ~std::uint32_t{0};
    static constexpr std::uint32_t kMaxId = (std::uint32_t{1} << IdBits) - 2;

    IdTable() = default;
    IdTable(const IdTable &) = delete;
    IdTable &operator=(const IdTable &) = delete;
    ~IdTable() { mi_free(slots_); }

    // The id stored under `hash` for which `same(id)` holds; kNone when there is none.
    template <class Same> std::uint32_t find(std::uint64_t hash, Same &&same) const noexcept {
        if (capacity_ == 0) {
            return kNone;
        }
        const std::uint32_t print = fingerprint(hash);
        for (std::size_t i = home(hash);; i = next(i)) {
            const std::uint32_t slot = slots_[i];
            if (slot == 0) {
                return kNone;
            }
            if ((slot & ~kIdMask) == print && same((slot & kIdMask) - 1)) {
                return (slot & kIdMask) - 1;
            }
        }
    }

    // Stores `id` (not stored yet, at most kMaxId) under `hash`; false when the table could not
    // grow (the id is then not stored).
    template <class HashOf>
    bool insert(std::uint64_t hash, std::uint32_t id, HashOf &&hash_of) noexcept {
        if (full() &&
            !resize(capacity_ < 1024 ? 1024 : capacity_ + capacity_ / 4, hash_of)) {
            return false;
        }
        place(hash, id);
        ++count_;
        return true;
    }

    // Removes `id`, stored under `hash`; false when it is not there.
    template <class HashOf>
    bool erase(std::uint64_t hash, std::uint32_t id, HashOf &&hash_of) noexcept {
        if (capacity_ == 0) {
            return false;
        }
        std::size_t i = home(hash);
        while ((slots_[i] & kIdMask) != id + 1) {
            if (slots_[i] == 0) {
                return false;
            }
            i = next(i);
        }
        i = shift_back_over(
            i, [this](std::size_t at) { return next(at); },
            [this](std::size_t at) { return slots_[at] == 0; },
            [this, &hash_of](std::size_t at) { return home(hash_of((slots_[at] & kIdMask) - 1)); },
            [this](std::size_t to, std::size_t from) { slots_[to] = slots_[from]; });
        slots_[i] = 0;
        --count_;
        return true;
    }

    // Room for `count` ids without growing (the capacity is set to that, up or down, when
    // `exactly`); false when it could not be made.
    template <class HashOf>
    bool reserve(std::size_t count, HashOf &&hash_of, bool exactly = false) noexcept {
        std::size_t wanted = count * 20 / 17 + 1;
        wanted = wanted < 1024 ? 1024 : wanted;
        if (wanted <= capacity_ && !exactly) {
            return true;
        }
        return wanted == capacity_ || (wanted * 17 >= count_ * 20 && resize(wanted, hash_of));
    }

    // True when the next insert would grow the table.
    bool full() const noexcept { return (count_ + 1) * 20 > capacity_ * 17; }

    // How many ids `pred(id)` holds for (a pass over the slots).
    template <class Pred> std::size_t count_if(Pred &&pred) const noexcept {
        std::size_t found = 0;
        for (std::size_t i = 0; i < capacity_; ++i) {
            found += slots_[i] != 0 && pred((slots_[i] & kIdMask) - 1) ? 1 : 0;
        }
        return found;
    }

    // Keeps only the ids `keep(id)` holds for, in a table with room for `room` ids (at least
    // as many as are kept: count_if(keep)); false, nothing changed, when memory for it is short.
    template <class Keep, class HashOf>
    bool keep_only(Keep &&keep, std::size_t room, HashOf &&hash_of) noexcept {
        const std::size_t wanted = room * 20 / 17 + 1;
        return resize(wanted < 1024 ? 1024 : wanted, hash_of, keep);
    }

    // Makes the table hold the ids [first, end) and nothing else (after the caller renumbered
    // them); when memory is short, it is left empty.
    template <class HashOf>
    void rebuild(std::uint32_t first, std::uint32_t end, HashOf &&hash_of) noexcept {
        clear();
        if (reserve(end, hash_of)) {
            for (std::uint32_t id = first; id < end; ++id) {
                insert(hash_of(id), id, hash_of);
            }
        }
    }

    void clear() noexcept {
        mi_free(slots_);
        slots_ = nullptr;
        capacity_ = 0;
        count_ = 0;
    }

    std::size_t size() const noexcept { return count_; }
    std::size_t capacity() const noexcept { return capacity_; }
    std::size_t memory_bytes() const noexcept { return capacity_ * sizeof(std::uint32_t); }

  private:
    static constexpr std::uint32_t kIdMask = (std::uint32_t{1} << IdBits) - 1;

    static std::uint32_t fingerprint(std::uint64_t hash) noexcept {
        return static_cast<std::uint32_t>(hash) & ~kIdMask;
    }
    std::size_t home(std::uint64_t hash) const noexcept {
        // The top 32 bits scaled to the capacity; the fingerprint comes from the low ones.
        return static_cast<std::size_t>(((hash >> 32) * capacity_) >> 32);
    }
    std::size_t next(std::size_t i) const noexcept { return i + 1 == capacity_ ? 0 : i + 1; }

    void place(std::uint64_t hash, std::uint32_t id) noexcept {
        std::size_t i = home(hash);
        while (slots_[i] != 0) {
            i = next(i);
        }
        slots_[i] = fingerprint(hash) | (id + 1);
    }

    template <class HashOf> bool resize(std::size_t capacity, HashOf &hash_of) noexcept {
        return resize(capacity, hash_of, [](std::uint32_t) { return true; });
    }
    template <class HashOf, class Keep>
    bool resize(std::size_t capacity, HashOf &hash_of, Keep &&keep) noexcept {
        if (capacity > (std::size_t{1} << 32)) {
            return false; // home() scales 32 bits
        }
        auto *fresh = static_cast<std::uint32_t *>(mi_zalloc(capacity * sizeof(std::uint32_t)));
        if (fresh == nullptr) {
            return false;
        }
        std::uint32_t *old = slots_;
        const std::size_t old_capacity = capacity_;
        slots_ = fresh;
        capacity_ = capacity;
        count_ = 0;
        for (std::size_t i = 0; i < old_capacity; ++i) {
            if (old[i] != 0) {
                const std::uint32_t id = (old[i] & kIdMask) - 1;
                if (keep(id)) {
                    place(hash_of(id), id);
                    ++count_;
                }
            }
        }
        mi_free(old);
        return true;
    }

    std::uint32_t *slots_ = nullptr;
    std::size_t capacity_ = 0;
    std::size_t count_ = 0;
};

} // namespace memxx::core

// The blocks allocated most recently: a small direct-mapped cache in front of a live-block table
// (core/live_blocks.hpp). Two of them: the hook's, for the PyMem MEM and OBJ domains
// (core/alloc_accounting.hpp), and the peak recorder's, for every block it records
// (core/peak_tables.hpp), where the "size" kept is the block's value in the peak tables.
//
// Most Python objects die young: a temporary is allocated and freed a few allocations later.
// Held here, such a block is recorded and forgotten without touching the table, whose slot for
// it is a cache miss away. A block that stays is moved to the table when a newer block takes
// its slot; every block is in the cache or in the table, never both.
//
// Not thread-safe: the hook's is only called with the GIL held (while another interpreter,
// which could have a GIL of its own, exists, the caller also holds the hook's lock); the peak
// recorder's, with its m_apply held. Pure C++.
#pragma once

#include <cstddef>
#include <cstdint>

namespace memxx::core {

class RecentBlocks {
  public:
    static constexpr std::size_t kSlots = 2048; // 16 KiB
    // What put() did with a block.
    enum class Put {
        kept,      // in the cache, the slot was free
        displaced, // in the cache; the block that had its slot must go to the table (Moves)
        unfit,     // not cacheable (odd address, 2 MiB or more): it goes to the table
    };

    RecentBlocks() noexcept { clear(); }

    // The block a put() displaced, which goes to the table.
    struct Moves {
        const void *to_table = nullptr;
        std::size_t to_table_size = 0;
    };

    Put put(const void *address, std::size_t size, Moves *moves) noexcept {
        const auto addr = reinterpret_cast<std::uintptr_t>(address);
        if ((addr & 15) != 0 || addr >= kMaxAddress || addr == 0 || size >= kSizeLimit) {
            return Put::unfit;
        }
        std::uint64_t &slot = slots_[index(addr)];
        const std::uint64_t old = slot;
        slot = (key_of(addr) << kSizeBits) | size;
        if (old == 0) {
            ++count_;
            return Put::kept;
        }
        if ((old >> kSizeBits) == key_of(addr)) { // the same address again (a free not seen)
            return Put::kept;
        }
        moves->to_table = address_of(old);
        moves->to_table_size = old & kSizeMask;
        return Put::displaced;
    }

    // Removes a cached block; false when it is not here (it may be in the table).
    bool take(const void *address, std::size_t *size) noexcept {
        const auto addr = reinterpret_cast<std::uintptr_t>(address);
        if ((addr & 15) != 0) {
            return false;
        }
        std::uint64_t *slot = find(addr);
        if (slot == nullptr) {
            return false;
        }
        *size = *slot & kSizeMask;
        *slot = 0;
        --count_;
        return true;
    }

    // Keeps the block but forgets its size (its free is then charged nothing); false when it is
    // not here. `size` gets the size it had.
    bool forget_size(const void *address, std::size_t *size) noexcept {
        const auto addr = reinterpret_cast<std::uintptr_t>(address);
        std::uint64_t *slot = (addr & 15) == 0 ? find(addr) : nullptr;
        if (slot == nullptr) {
            return false;
        }
        *size = *slot & kSizeMask;
        *slot &= ~kSizeMask;
        return true;
    }

    // The block held in the slot `address` would take (itself, when cached), or nullptr.
    const void *occupant(const void *address) const noexcept {
        const std::uint64_t slot = slots_[index(reinterpret_cast<std::uintptr_t>(address))];
        return slot != 0 ? address_of(slot) : nullptr;
    }

    void clear() noexcept {
        for (std::uint64_t &slot : slots_) {
            slot = 0;
        }
        count_ = 0;
    }

    std::size_t count() const noexcept { return count_; }
    static constexpr std::size_t memory_bytes() noexcept { return sizeof(slots_); }

  private:
    // A slot: the address divided by 16 (43 bits) and the size (21 bits); 0 when free.
    static constexpr unsigned kSizeBits = 21;
    static constexpr std::uint64_t kSizeMask = (std::uint64_t{1} << kSizeBits) - 1;
    static constexpr std::size_t kSizeLimit = kSizeMask;
    static constexpr std::uintptr_t kMaxAddress = std::uintptr_t{1} << 47;
    static constexpr unsigned kIndexBits = 11;
    static_assert(kSlots == std::size_t{1} << kIndexBits, "kSlots is 2^kIndexBits");

    static std::uint64_t key_of(std::uintptr_t addr) noexcept { return addr >> 4; }
    static const void *address_of(std::uint64_t slot) noexcept {
        return reinterpret_cast<const void *>((slot >> kSizeBits) << 4);
    }
    // The slot holding the block at `addr` (16-byte aligned), or nullptr.
    std::uint64_t *find(std::uintptr_t addr) noexcept {
        std::uint64_t &slot = slots_[index(addr)];
        return slot != 0 && (slot >> kSizeBits) == key_of(addr) ? &slot : nullptr;
    }

    // By address, not hashed: neighbouring blocks take neighbouring slots, and a newer block
    // displaces the one a multiple of 32 KiB away, so blocks reach the table in address order,
    // where neighbours share cache lines (a hashed index sent them in random order: 0.91x on a
    // loop that keeps every block it makes, 0.92x on the line-heavy benchmark, 3.12).
    static std::size_t index(std::uintptr_t addr) noexcept {
        return static_cast<std::size_t>((addr >> 4) & (kSlots - 1));
    }

    std::uint64_t slots_[kSlots];
    std::size_t count_ = 0;
};

} // namespace memxx::core

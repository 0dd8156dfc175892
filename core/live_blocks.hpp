// The live-block table: address -> size of every block allocated while profiling.
//
// Each entry is one 64-bit slot: the address divided by 16 (43 bits) and the size (21 bits).
// A block is erased by shifting the rest of its run of slots back; in a long run (blocks of one
// stretch of memory share slots, see home()) the shift stops after a few slots and leaves a
// tombstone, which a later insert reuses and a rehash removes.
// Blocks of 2 MiB or more, and addresses that are not 16-byte aligned or above 2^47, keep their
// size in a small side map instead. The slot array grows at 70 % load. Once frees leave it
// under 1/3 full, the next insert shrinks it in one step to the size that fits: a burst of frees
// (a function's locals torn down at its return, a big container freed) moves no block, where
// halving at each third moved the survivors again and again (0.86x on a loop whose objects are
// freed at the return, 3.12). So above the minimum capacity it costs 8 / load <= 24 bytes per
// live block at every insert (22.9 right after growing to 35 % load); after a burst of frees it
// keeps its size until the next insert.
// Its memory comes from mimalloc (large slot arrays from mmap), never from the hooked Python
// allocator.
//
// Not thread-safe: the allocator hook guards each of its tables (its lock, or the GIL).
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_map>

#include <mimalloc.h>

namespace memxx::core {

class LiveBlocks {
  public:
    static constexpr std::size_t kMinCapacity = 1024;

    LiveBlocks() : LiveBlocks(kMinCapacity, true) {}
    // A table that never shrinks below `min_capacity` slots (a power of two >= kMinCapacity);
    // without `shrink_by_itself` it shrinks only when shrink() is called.
    LiveBlocks(std::size_t min_capacity, bool shrink_by_itself);
    ~LiveBlocks();
    LiveBlocks(const LiveBlocks &) = delete;
    LiveBlocks &operator=(const LiveBlocks &) = delete;

    // Records a block; false when the table cannot grow (the block then stays untracked).
    bool insert(const void *address, std::size_t size) noexcept;
    // Removes a block; false when the address is not in the table.
    bool erase(const void *address, std::size_t *size) noexcept;
    bool contains(const void *address) const noexcept;
    // Shrinks the slot array, in one step, to the size that fits when it is under 1/3 full
    // (above the minimum capacity).
    void shrink() noexcept;
    // Starts loading the cache line where `address` would be found or inserted.
    void prefetch(const void *address) const noexcept {
        const auto addr = reinterpret_cast<std::uintptr_t>(address);
        if (fits_slot(addr)) {
            __builtin_prefetch(&slots_[home(addr >> 4)], 1);
        }
    }

    std::size_t count() const noexcept { return count_ + large_.size(); }
    // Inline, for the callers' fast path: a free on a thread that profiles nothing, while the
    // profiled one holds no block in the table, then skips the lookup.
    bool empty() const noexcept { return count_ == 0 && large_.empty(); }
    std::size_t capacity() const noexcept { return capacity_; }
    std::size_t tombstones() const noexcept { return tombstones_; }
    // Bytes the table itself occupies (slots plus side-map nodes).
    std::size_t memory_bytes() const noexcept;
    void clear() noexcept;

  private:
    using LargeMap =
        std::unordered_map<std::uintptr_t, std::size_t, std::hash<std::uintptr_t>,
                           std::equal_to<std::uintptr_t>,
                           mi_stl_allocator<std::pair<const std::uintptr_t, std::size_t>>>;

    // Addresses kept in a slot: 16-byte aligned, non-zero, below 2^47 (the key is address / 16).
    static bool fits_slot(std::uintptr_t address) noexcept {
        return (address & 15) == 0 && address < (std::uintptr_t{1} << 47) && address != 0;
    }
    std::size_t home(std::uint64_t key) const noexcept {
        // The blocks of one 512-byte stretch of memory share the 32 slots (4 cache lines) their
        // group hashes to, each at its own offset, and the groups are scattered: an allocator
        // handing out neighbouring blocks then writes to lines in cache instead of a random
        // line per block (1.7x -> 1.3x on allocation-heavy code). Larger groups make longer
        // probe runs.
        const std::uint64_t group = ((key >> 5) * 0x9E3779B97F4A7C15ull) >> (shift_ + 5);
        return static_cast<std::size_t>((group << 5) | (key & 31));
    }
    // Allocators hand out and programs free neighbouring blocks one after the other, and the
    // next 512-byte stretch's slots are a random cache line away once the table outgrows the
    // cache (512 KiB): start loading them now.
    void prefetch_next_stretch(std::uint64_t key) const noexcept {
        if (capacity_ >= (std::size_t{1} << 16)) {
            __builtin_prefetch(&slots_[home(key + 32)], 1);
        }
    }
    // The slot holding `key`, or capacity_ when absent.
    __attribute__((always_inline)) inline std::size_t find_slot(std::uint64_t key) const noexcept;
    void erase_slot(std::size_t index) noexcept;
    bool resize(std::size_t new_capacity) noexcept;
    // The smallest capacity, at least the minimum, that holds one block more under 70 % load.
    std::size_t fitting_capacity() const noexcept;
    __attribute__((always_inline)) inline void place(std::uint64_t slot) noexcept;

    std::uint64_t *slots_ = nullptr;
    std::size_t capacity_ = 0; // a power of two
    std::size_t min_capacity_ = kMinCapacity;
    bool shrink_by_itself_ = true;
    std::size_t count_ = 0;      // occupied slots
    std::size_t tombstones_ = 0; // erased slots not yet reused
    unsigned shift_ = 64;      // 64 - log2(capacity_)
    LargeMap large_;           // sizes that do not fit a slot, and odd addresses
};

} // namespace memxx::core

// The figures behind the peak table: every live block (address -> the stack that allocated it and
// its size), the bytes live per stack now, and the bytes per stack as they stood at the moment
// the total was highest.
//
// The copy at the peak is kept lazily: when a new high is followed by a fall, the stacks changed
// since the last copy are copied (amortised one copy per change), so the figures are those of the
// true peak moment, not per-stack maxima.
//
// Pure C++ (no Python), in mimalloc memory. Not thread-safe: the peak recorder's consumer thread
// (core/peak_recorder.cpp) calls it under its own mutex.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <mimalloc.h>

#include "core/chunked_array.hpp"
#include "core/flat_table.hpp"
#include "core/id_table.hpp"
#include "core/live_blocks.hpp"
#include "core/recent_blocks.hpp"
#include "core/stack_tree.hpp"

namespace memxx::core {

class PeakTables {
  public:
    template <class T> using Vector = std::vector<T, mi_stl_allocator<T>>;

    // The block table starts (and stays) at 64 Ki slots: a program's first blocks come and go by
    // the hundred thousand, and each resize would move them all. It grows as blocks come, but
    // shrinks only when trim() is called: a burst of frees followed by a burst of allocations
    // (a function called in a loop) would otherwise move every block twice per call.
    static constexpr std::size_t kMinSlots = std::size_t{1} << 16;
    PeakTables() : blocks_(kMinSlots, false) {}

    // Gives back what the block table does not need (its own rule: under 1/3 full, shrink to fit).
    void trim() noexcept { blocks_.shrink(); }

    // Starts loading the table's slot the event for `address` will touch (the caller applies
    // events in order, a few ahead of the one it loads): a free's own, unless its block is still
    // young; for a new block, the one of the block it will displace from the young ones.
    void prefetch(std::uintptr_t address, bool alloc) const noexcept {
        const auto *block = reinterpret_cast<const void *>(address);
        const void *held = (address & 15) == 0 ? recent_.occupant(block) : nullptr;
        if (!alloc && held != block) {
            blocks_.prefetch(block);
        } else if (alloc && held != nullptr && held != block) {
            blocks_.prefetch(held);
        }
    }

    void on_alloc(std::uintptr_t address, std::uint64_t size, std::uint32_t stack) noexcept;
    void on_free(std::uintptr_t address) noexcept;
    // The block at `address` was never the program's (the int a sys.monitoring event of the
    // recorder's was passed): when it is the last block applied, the tables are as they were
    // before it, the high it may have made included; else it is freed.
    void on_retract(std::uintptr_t address) noexcept;
    // Bytes without a block of their own (a mapping's pages, counted by the pages it occupies):
    // `stack` holds `bytes` more (fewer, when negative) from now on.
    void on_pages(std::uint32_t stack, std::int64_t bytes) noexcept;

    // Makes the copy at the peak current (the total may stand at a new high now).
    void settle() noexcept;

    std::int64_t total() const noexcept { return total_; }
    std::int64_t peak() const noexcept { return peak_; }
    double peak_time() const noexcept { return peak_time_; } // seconds since the epoch
    std::size_t stacks() const noexcept { return figures_.size(); } // ids below this are known
    // The bytes `stack` holds now, and held at the peak (after settle()).
    std::int64_t live_bytes(std::uint32_t stack) const noexcept {
        return stack < figures_.size() ? figure(figures_[stack].live, wide_live_, stack) : 0;
    }
    std::int64_t at_peak_bytes(std::uint32_t stack) const noexcept {
        return stack < figures_.size() ? figure(figures_[stack].at_peak, wide_at_peak_, stack) : 0;
    }

    // Whether `stack` holds bytes now or held some at the peak (before settle() too): a stack for
    // which neither holds is in no report, and its id may name another stack after forget_stack.
    bool stack_in_use(std::uint32_t stack) const noexcept;
    // Makes a stack not in use ready to name another one: its figures are those of a new stack.
    void forget_stack(std::uint32_t stack) noexcept;

    std::size_t live_blocks() const noexcept { return blocks_.count() + recent_.count(); }
    // The live blocks and the block table's memory at the peak (after settle()).
    std::size_t peak_live_blocks() const noexcept { return peak_live_blocks_; }
    std::size_t peak_block_table_bytes() const noexcept { return peak_block_table_bytes_; }
    std::size_t block_table_bytes() const noexcept {
        return blocks_.memory_bytes() + RecentBlocks::memory_bytes();
    }
    std::size_t other_bytes() const noexcept; // tags and per-stack figures
    std::size_t tags() const noexcept { return tags_.size() - free_tags_.size(); }

    struct Memory {
        std::size_t figures, dirty, tags, tag_index, free_tags;
    };
    Memory memory() const noexcept;

  private:
    // A block's value in the live-block table: a tag (a stack and a size that live blocks share)
    // when it fits the table's slot, else the stack and the size themselves (the table keeps such
    // values in its side map). A tag lives as long as a block holds it (each value_for is
    // paired with one release), so there are never more tags than live blocks, and a pair has
    // one tag unless the index forgot it (below).
    std::uint64_t value_for(std::uint64_t size, std::uint32_t stack) noexcept;
    void release(std::uint64_t value) noexcept;
    // Called when the tag index is full: if at least half the tags in it are held by one block
    // each, it forgets those (they stay, for their block) instead of growing, and keeps room for
    // half as many again as the others. A long-lived block is mostly the only one of its pair
    // (a pandas + scikit-learn job: 194 k of 255 k tags); if another block of a forgotten pair
    // comes, the pair gets a second tag, with the same figures.
    void forget_lone_tags() noexcept;
    void decode(std::uint64_t value, std::uint32_t *stack, std::uint64_t *size) const noexcept;
    // Records the block at `address` with its value: in the cache of the youngest blocks, which
    // moves the block it displaces to the table. False when it cannot be recorded.
    bool keep(std::uintptr_t address, std::uint64_t value) noexcept;
    // Removes the block at `address` from the table (its figures untouched); false if not live.
    bool remove(std::uintptr_t address, std::uint32_t *stack, std::uint64_t *size) noexcept;
    // Removes the block at `address` and discharges it; false if it is not live.
    bool take(std::uintptr_t address, std::uint32_t *stack, std::uint64_t *size) noexcept;
    void charge(std::uint32_t stack, std::uint64_t size) noexcept;
    void discharge(std::uint32_t stack, std::uint64_t size) noexcept;
    void lower(std::uint32_t stack, std::uint64_t size) noexcept; // discharge, the high left alone
    void touch(std::uint32_t stack) noexcept;
    void keep_peak() noexcept;
    bool add_stacks(std::uint32_t stack) noexcept; // figures for stack ids up to `stack`
    std::uint64_t tag_hash_of(std::uint32_t tag) const noexcept;

    // 8 bytes: a program holds hundreds of thousands (a pandas + scikit-learn job: 255 k for
    // 667 k live blocks). A block of kTagSizeLimit bytes or more has no tag: its stack and size
    // stand in the block table's side map (wide_value).
    static constexpr unsigned kTagSizeBits = 29;
    static constexpr unsigned kTagStackBits = 23;
    static constexpr unsigned kTagBlockBits = 12;
    struct Tag {
        std::uint64_t size : kTagSizeBits;
        std::uint64_t stack : kTagStackBits;
        // The live blocks holding it. One held by kStuckBlocks at once has lost count and is
        // kept for good: a pair that had 4,095 blocks at once, a few per program.
        std::uint64_t blocks : kTagBlockBits;
    };
    static constexpr std::uint64_t kTagSizeLimit = std::uint64_t{1} << kTagSizeBits; // 512 MiB
    static_assert(StackTree::kMaxStacks <= std::uint64_t{1} << kTagStackBits,
                  "every stack id fits a tag");
    static constexpr std::uint32_t kStuckBlocks = (1u << kTagBlockBits) - 1;
    static_assert(sizeof(Tag) == 8);

    // A stack's figures in 32 bits each: a figure of 4 GiB or more is kWideFigure there and
    // stands in the wide map (key: the stack + 1).
    static constexpr std::uint32_t kWideFigure = ~std::uint32_t{0};
    struct Figures {
        std::uint32_t live;    // bytes live now
        std::uint32_t at_peak; // bytes live at the peak
    };
    static std::int64_t figure(std::uint32_t value, const FlatTable<std::uint64_t> &wide,
                               std::uint32_t stack) noexcept {
        if (value != kWideFigure) {
            return value;
        }
        const std::uint64_t *stored = wide.find(std::uint64_t{stack} + 1);
        return stored != nullptr ? static_cast<std::int64_t>(*stored) : 0;
    }
    static void set_figure(std::uint32_t *value, FlatTable<std::uint64_t> *wide,
                           std::uint32_t stack, std::uint64_t bytes) noexcept;
    bool dirty(std::uint32_t stack) const noexcept {
        return (dirty_[stack / 64] >> (stack % 64) & 1) != 0;
    }

    // Every live block is in one of the two: the youngest in recent_ (most blocks die young, and
    // then never touch blocks_, whose slot for them is a cache miss away), the others in blocks_.
    LiveBlocks blocks_;
    RecentBlocks recent_;
    ChunkedArray<Tag> tags_;
    ChunkedArray<std::uint32_t> free_tags_; // tags no block holds, to be given out again
    IdTable<21> tag_index_;                 // (stack, size) -> tag
    ChunkedArray<Figures> figures_;          // by stack
    FlatTable<std::uint64_t> wide_live_;     // stack + 1 -> bytes live now, 4 GiB or more
    FlatTable<std::uint64_t> wide_at_peak_;  // stack + 1 -> bytes at the peak, 4 GiB or more
    ChunkedArray<std::uint64_t, 9> dirty_;   // by stack, a bit: changed since the last copy
    Vector<std::uint32_t> dirty_list_;
    std::int64_t total_ = 0;
    std::int64_t peak_ = 0;
    bool at_high_ = false; // the total stands at a new high not copied yet
    // The last event applied, when it was an allocation: its address, and the high before it.
    std::uintptr_t last_alloc_ = 0;
    std::int64_t peak_before_last_alloc_ = 0;
    bool at_high_before_last_alloc_ = false;
    double peak_time_ = 0;
    std::size_t peak_live_blocks_ = 0;
    std::size_t peak_block_table_bytes_ = 0;
};

} // namespace memxx::core

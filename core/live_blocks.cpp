#include "core/live_blocks.hpp"

#include <cstring>
#include <sys/mman.h>

namespace memxx::core {

namespace {

constexpr unsigned kSizeBits = 21;
constexpr std::uint64_t kSizeMask = (std::uint64_t{1} << kSizeBits) - 1;
constexpr std::uint64_t kLargeMark = kSizeMask; // the size lives in the side map

std::uint64_t key_of(std::uintptr_t address) noexcept { return address >> 4; }
std::uint64_t slot_key(std::uint64_t slot) noexcept { return slot >> kSizeBits; }

// An erased slot that lookups walk past: key 0 belongs to no block (address 0 is never kept).
constexpr std::uint64_t kTombstone = 1;
bool is_block(std::uint64_t slot) noexcept { return slot > kTombstone; }

// The most slots an erase shifts back before it leaves a tombstone instead.
constexpr std::size_t kShiftLimit = 8;

// Slot arrays of 2 MiB and more come straight from mmap: zeroed by the kernel (no memset) and
// backed by transparent huge pages where the kernel allows, so that a probe into a table of
// millions of blocks costs one cache miss rather than a cache miss and a TLB miss.
constexpr std::size_t kHugeBytes = std::size_t{2} << 20;

std::uint64_t *allocate_slots(std::size_t count) noexcept {
    const std::size_t bytes = count * sizeof(std::uint64_t);
    if (bytes < kHugeBytes) {
        return static_cast<std::uint64_t *>(mi_calloc(count, sizeof(std::uint64_t)));
    }
    void *memory = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) {
        return nullptr;
    }
    madvise(memory, bytes, MADV_HUGEPAGE);
    return static_cast<std::uint64_t *>(memory);
}

void free_slots(std::uint64_t *slots, std::size_t count) noexcept {
    const std::size_t bytes = count * sizeof(std::uint64_t);
    if (bytes < kHugeBytes) {
        mi_free(slots);
    } else if (slots != nullptr) {
        munmap(slots, bytes);
    }
}

} // namespace

LiveBlocks::LiveBlocks(std::size_t min_capacity, bool shrink_by_itself)
    : min_capacity_(min_capacity), shrink_by_itself_(shrink_by_itself) {
    resize(min_capacity_);
}

std::size_t LiveBlocks::fitting_capacity() const noexcept {
    std::size_t capacity = min_capacity_;
    while ((count_ + 1) * 10 > capacity * 7) {
        capacity *= 2;
    }
    return capacity;
}

void LiveBlocks::shrink() noexcept {
    if (capacity_ > min_capacity_ && count_ * 3 < capacity_) {
        resize(fitting_capacity());
    }
}

LiveBlocks::~LiveBlocks() { free_slots(slots_, capacity_); }

inline std::size_t LiveBlocks::find_slot(std::uint64_t key) const noexcept {
    const std::size_t mask = capacity_ - 1;
    for (std::size_t i = home(key);; i = (i + 1) & mask) {
        const std::uint64_t slot = slots_[i];
        if (slot == 0) {
            return capacity_;
        }
        if (slot_key(slot) == key) {
            return i;
        }
    }
}

inline void LiveBlocks::place(std::uint64_t slot) noexcept {
    const std::size_t mask = capacity_ - 1;
    std::size_t i = home(slot_key(slot));
    while (slots_[i] != 0) {
        i = (i + 1) & mask;
    }
    slots_[i] = slot;
}

bool LiveBlocks::resize(std::size_t new_capacity) noexcept {
    std::uint64_t *fresh = allocate_slots(new_capacity);
    if (fresh == nullptr) {
        return false;
    }
    std::uint64_t *old = slots_;
    const std::size_t old_capacity = capacity_;
    slots_ = fresh;
    capacity_ = new_capacity;
    shift_ = 64 - static_cast<unsigned>(__builtin_ctzll(new_capacity));
    for (std::size_t i = 0; i < old_capacity; ++i) {
        if (is_block(old[i])) {
            place(old[i]);
        }
    }
    tombstones_ = 0;
    free_slots(old, old_capacity);
    return true;
}

bool LiveBlocks::insert(const void *address, std::size_t size) noexcept {
    const auto addr = reinterpret_cast<std::uintptr_t>(address);
    if (slots_ == nullptr) {
        return false;
    }
    try {
        if (!fits_slot(addr)) {
            large_[addr] = size;
            return true;
        }
        if (shrink_by_itself_ && count_ * 3 < capacity_ && capacity_ > min_capacity_) {
            shrink(); // frees left it under 1/3 full; should it fail, the table stays as it is
        }
        if ((count_ + 1) * 10 > capacity_ * 7) {
            if (!resize(capacity_ * 2)) {
                return false;
            }
        } else if ((count_ + tombstones_ + 1) * 10 > capacity_ * 8 && !resize(capacity_)) {
            return false; // tombstones and blocks fill 80 %: rehashed in place
        }
        const std::uint64_t key = key_of(addr);
        const std::size_t mask = capacity_ - 1;
        prefetch_next_stretch(key);
        std::size_t i = home(key);
        std::size_t reuse = capacity_; // the first tombstone on the way
        while (slots_[i] != 0 && slot_key(slots_[i]) != key) {
            if (slots_[i] == kTombstone && reuse == capacity_) {
                reuse = i;
            }
            i = (i + 1) & mask;
        }
        const bool present = slots_[i] != 0;
        if (!present && reuse != capacity_) {
            i = reuse;
            --tombstones_;
        }
        std::uint64_t size_field = size;
        if (size >= kLargeMark) {
            large_[addr] = size;
            size_field = kLargeMark;
        } else if (present && (slots_[i] & kSizeMask) == kLargeMark) {
            large_.erase(addr);
        }
        slots_[i] = (key << kSizeBits) | size_field;
        count_ += present ? 0 : 1;
        return true;
    } catch (...) { // the side map could not allocate
        return false;
    }
}

void LiveBlocks::erase_slot(std::size_t index) noexcept {
    // Backward-shift deletion keeps every probe chain unbroken without tombstones.
    // Moving a block back towards its home keeps it reachable; so does a tombstone left in the
    // hole when the run is too long to finish the shift.
    const std::size_t mask = capacity_ - 1;
    std::size_t hole = index;
    std::size_t scanned = 0;
    for (std::size_t j = (hole + 1) & mask; slots_[j] != 0; j = (j + 1) & mask) {
        if (++scanned > kShiftLimit) {
            slots_[hole] = kTombstone;
            ++tombstones_;
            --count_;
            return;
        }
        const std::uint64_t slot = slots_[j];
        if (slot == kTombstone ||
            ((j - home(slot_key(slot))) & mask) >= ((j - hole) & mask)) {
            slots_[hole] = slot;
            hole = j;
        }
    }
    slots_[hole] = 0;
    --count_;
}

bool LiveBlocks::erase(const void *address, std::size_t *size) noexcept {
    const auto addr = reinterpret_cast<std::uintptr_t>(address);
    if (!fits_slot(addr)) {
        auto it = large_.find(addr);
        if (it == large_.end()) {
            return false;
        }
        *size = it->second;
        large_.erase(it);
        return true;
    }
    if (slots_ == nullptr) {
        return false;
    }
    prefetch_next_stretch(key_of(addr));
    const std::size_t i = find_slot(key_of(addr));
    if (i == capacity_) {
        return false;
    }
    const std::uint64_t size_field = slots_[i] & kSizeMask;
    if (size_field == kLargeMark) {
        auto it = large_.find(addr);
        *size = it->second;
        large_.erase(it);
    } else {
        *size = size_field;
    }
    erase_slot(i);
    return true;
}

bool LiveBlocks::contains(const void *address) const noexcept {
    const auto addr = reinterpret_cast<std::uintptr_t>(address);
    if (!fits_slot(addr)) {
        return large_.count(addr) != 0;
    }
    return slots_ != nullptr && find_slot(key_of(addr)) != capacity_;
}

std::size_t LiveBlocks::memory_bytes() const noexcept {
    // An unordered_map node holds the pair and a next pointer; the bucket array one pointer each.
    constexpr std::size_t node = sizeof(void *) + sizeof(std::pair<std::uintptr_t, std::size_t>);
    return capacity_ * sizeof(std::uint64_t) + large_.size() * node +
           large_.bucket_count() * sizeof(void *);
}

void LiveBlocks::clear() noexcept {
    large_.clear();
    if (capacity_ != min_capacity_) {
        free_slots(slots_, capacity_);
        slots_ = nullptr;
        capacity_ = 0;
        count_ = 0;
        if (!resize(min_capacity_)) {
            return;
        }
    }
    std::memset(slots_, 0, capacity_ * sizeof(std::uint64_t));
    count_ = 0;
    tombstones_ = 0;
}

} // namespace memxx::core

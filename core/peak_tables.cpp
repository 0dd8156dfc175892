#include "core/peak_tables.hpp"

#include <algorithm>
#include <ctime>

namespace memxx::core {

namespace {

constexpr std::uint64_t kMaxTag = (std::uint64_t{1} << 21) - 2; // below LiveBlocks' side-map mark
constexpr std::uint64_t kWideMark = std::uint64_t{1} << 63;
constexpr unsigned kWideStackShift = 40;
constexpr std::uint64_t kWideSizeMask = (std::uint64_t{1} << kWideStackShift) - 1;

std::uint64_t tag_key(std::uint64_t size, std::uint32_t stack) noexcept {
    std::uint64_t h = (size ^ (static_cast<std::uint64_t>(stack) << 40)) * 0x9E3779B97F4A7C15ull;
    return (h ^ (h >> 29)) | 1;
}

constexpr std::uint32_t kNoTag = ~std::uint32_t{0};

std::uint64_t wide_value(std::uint64_t size, std::uint32_t stack) noexcept {
    return kWideMark | (static_cast<std::uint64_t>(stack) << kWideStackShift) |
           std::min<std::uint64_t>(size, kWideSizeMask);
}

double wall_seconds() noexcept {
    timespec now{};
    clock_gettime(CLOCK_REALTIME_COARSE, &now); // a few ns: this runs at every fall from a peak
    return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
}

} // namespace

std::uint64_t PeakTables::value_for(std::uint64_t size, std::uint32_t stack) noexcept {
    const std::uint64_t key = tag_key(size, stack);
    if (const std::uint32_t *tag = tag_index_.find(key); tag != nullptr) {
        const Tag &known = tags_[*tag];
        if (known.size == size && known.stack == stack) {
            ++tag_blocks_[*tag];
            return *tag;
        }
    }
    if (size <= kWideSizeMask) {
        std::uint32_t tag = 0;
        if (!free_tags_.empty()) {
            tag = free_tags_.back();
        } else if (tags_.size() <= kMaxTag) {
            tag = static_cast<std::uint32_t>(tags_.size());
        } else {
            tag = kNoTag;
        }
        if (tag != kNoTag && tag_index_.put(key, tag)) {
            if (tag == tags_.size()) {
                try {
                    reserve_one_more(tags_);
                    reserve_one_more(tag_blocks_);
                    tags_.push_back(Tag{size, stack});
                    tag_blocks_.push_back(1);
                } catch (...) {
                    std::uint32_t gone = 0;
                    tag_index_.erase(key, &gone);
                    return wide_value(size, stack);
                }
            } else {
                free_tags_.pop_back();
                tags_[tag] = Tag{size, stack};
                tag_blocks_[tag] = 1;
            }
            return tag;
        }
    }
    return wide_value(size, stack);
}

void PeakTables::release(std::uint64_t value) noexcept {
    if ((value & kWideMark) != 0 || --tag_blocks_[value] != 0) {
        return;
    }
    const Tag &tag = tags_[value];
    const std::uint64_t key = tag_key(tag.size, static_cast<std::uint32_t>(tag.stack));
    if (const std::uint32_t *indexed = tag_index_.find(key);
        indexed != nullptr && *indexed == value) {
        std::uint32_t gone = 0;
        tag_index_.erase(key, &gone);
    }
    try {
        reserve_one_more(free_tags_);
        free_tags_.push_back(static_cast<std::uint32_t>(value));
    } catch (...) {
        // Out of memory: the tag is not given out again.
    }
}

void PeakTables::decode(std::uint64_t value, std::uint32_t *stack,
                        std::uint64_t *size) const noexcept {
    if ((value & kWideMark) == 0) {
        *stack = tags_[value].stack;
        *size = tags_[value].size;
    } else {
        *stack = static_cast<std::uint32_t>((value & ~kWideMark) >> kWideStackShift);
        *size = value & kWideSizeMask;
    }
}

bool PeakTables::has_stack(std::uint32_t stack) noexcept {
    try {
        if (stack >= live_.size()) {
            const std::size_t grown =
                std::max<std::size_t>(stack + 1, live_.size() + live_.size() / 4 + 1024);
            for (auto *figures : {&live_, &at_peak_}) {
                figures->reserve(grown); // resize() alone would double the capacity
                figures->resize(grown, 0);
            }
            dirty_.reserve(grown);
            dirty_.resize(grown, 0);
        }
    } catch (...) {
        return false;
    }
    return true;
}

void PeakTables::on_alloc(std::uintptr_t address, std::uint64_t size,
                          std::uint32_t stack) noexcept {
    if (!has_stack(stack)) {
        return; // out of memory: the block stays untracked
    }
    const std::uint64_t value = value_for(size, stack);
    if (!blocks_.insert(reinterpret_cast<const void *>(address), value)) {
        release(value);
        return;
    }
    charge(stack, size);
}

bool PeakTables::take(std::uintptr_t address, std::uint32_t *stack,
                      std::uint64_t *size) noexcept {
    std::size_t value = 0;
    if (!blocks_.erase(reinterpret_cast<const void *>(address), &value)) {
        return false;
    }
    decode(value, stack, size);
    release(value);
    discharge(*stack, *size);
    return true;
}

void PeakTables::on_free(std::uintptr_t address) noexcept {
    std::uint32_t stack = 0;
    std::uint64_t size = 0;
    take(address, &stack, &size);
}

void PeakTables::on_pages(std::uint32_t stack, std::int64_t bytes) noexcept {
    if (bytes > 0 && has_stack(stack)) {
        charge(stack, static_cast<std::uint64_t>(bytes));
    } else if (bytes < 0 && stack < live_.size()) {
        discharge(stack, static_cast<std::uint64_t>(-bytes));
    }
}

void PeakTables::charge(std::uint32_t stack, std::uint64_t size) noexcept {
    touch(stack);
    live_[stack] += static_cast<std::int64_t>(size);
    total_ += static_cast<std::int64_t>(size);
    if (total_ > peak_) {
        peak_ = total_;
        at_high_ = true;
    }
}

void PeakTables::discharge(std::uint32_t stack, std::uint64_t size) noexcept {
    if (at_high_) {
        keep_peak(); // the figures just before this fall are those of the peak
    }
    touch(stack);
    live_[stack] -= static_cast<std::int64_t>(size);
    total_ -= static_cast<std::int64_t>(size);
}

void PeakTables::touch(std::uint32_t stack) noexcept {
    if (dirty_[stack] == 0) {
        dirty_[stack] = 1;
        dirty_list_.push_back(stack);
    }
}

void PeakTables::keep_peak() noexcept {
    for (const std::uint32_t stack : dirty_list_) {
        at_peak_[stack] = live_[stack];
        dirty_[stack] = 0;
    }
    dirty_list_.clear();
    at_high_ = false;
    peak_time_ = wall_seconds();
    peak_live_blocks_ = blocks_.count();
    peak_block_table_bytes_ = blocks_.memory_bytes();
}

void PeakTables::settle() noexcept {
    if (at_high_) {
        keep_peak();
    }
}

std::size_t PeakTables::other_bytes() const noexcept {
    return tags_.capacity() * sizeof(Tag) + tag_blocks_.capacity() * sizeof(std::uint32_t) +
           free_tags_.capacity() * sizeof(std::uint32_t) + tag_index_.memory_bytes() +
           live_.capacity() * 2 * sizeof(std::int64_t) + dirty_.capacity() +
           dirty_list_.capacity() * sizeof(std::uint32_t);
}

} // namespace memxx::core

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
    return id_hash(size ^ (static_cast<std::uint64_t>(stack) << 40));
}

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

std::uint64_t PeakTables::tag_hash_of(std::uint32_t tag) const noexcept {
    return tag_key(tags_[tag].size, static_cast<std::uint32_t>(tags_[tag].stack));
}

std::uint64_t PeakTables::value_for(std::uint64_t size, std::uint32_t stack) noexcept {
    const std::uint64_t key = tag_key(size, stack);
    const std::uint32_t known = tag_index_.find(key, [&](std::uint32_t tag) {
        return tags_[tag].size == size && tags_[tag].stack == stack;
    });
    if (known != IdTable<21>::kNone) {
        Tag &tag = tags_[known];
        if (tag.blocks != kStuckBlocks) {
            ++tag.blocks;
        }
        return known;
    }
    if (size >= kTagSizeLimit) {
        return wide_value(size, stack);
    }
    std::uint32_t tag = 0;
    const bool reused = !free_tags_.empty();
    if (reused) {
        tag = free_tags_.back();
    } else if (tags_.size() <= kMaxTag && tags_.push_back(Tag{size, stack, 1})) {
        tag = static_cast<std::uint32_t>(tags_.size() - 1);
    } else {
        return wide_value(size, stack);
    }
    tags_[tag] = Tag{size, stack, 1};
    if (tag_index_.full()) {
        forget_lone_tags();
    }
    if (!tag_index_.insert(key, tag, [this](std::uint32_t id) { return tag_hash_of(id); })) {
        if (!reused) {
            tags_.pop_back();
        }
        return wide_value(size, stack);
    }
    if (reused) {
        free_tags_.pop_back();
    }
    return tag;
}

void PeakTables::forget_lone_tags() noexcept {
    const auto shared = [this](std::uint32_t tag) { return tags_[tag].blocks > 1; };
    const std::size_t kept = tag_index_.count_if(shared);
    if (kept * 2 <= tag_index_.size()) {
        tag_index_.keep_only(shared, kept + kept / 2, [this](std::uint32_t id) {
            return tag_hash_of(id);
        }); // when memory is short, the index grows as it would have
    }
}

void PeakTables::release(std::uint64_t value) noexcept {
    if ((value & kWideMark) != 0) {
        return;
    }
    Tag &held = tags_[value];
    if (held.blocks == kStuckBlocks || --held.blocks != 0) {
        return;
    }
    const auto tag = static_cast<std::uint32_t>(value);
    // A tag the index forgot is not found there; the erase stops at the end of its run.
    tag_index_.erase(tag_hash_of(tag), tag, [this](std::uint32_t id) { return tag_hash_of(id); });
    // When the list cannot grow the tag is not given out again.
    free_tags_.push_back(tag);
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

bool PeakTables::add_stacks(std::uint32_t stack) noexcept {
    // Every id below `stack` gets its figures, zero, and its dirty bit.
    return figures_.grow_to(std::size_t{stack} + 1, Figures{0, 0}) &&
           dirty_.grow_to(std::size_t{stack} / 64 + 1, 0);
}

void PeakTables::on_alloc(std::uintptr_t address, std::uint64_t size,
                          std::uint32_t stack) noexcept {
    last_alloc_ = 0;
    if (stack >= figures_.size() && !add_stacks(stack)) {
        return; // out of memory: the block stays untracked
    }
    const std::uint64_t value = value_for(size, stack);
    if (!keep(address, value)) {
        release(value);
        return;
    }
    last_alloc_ = address;
    peak_before_last_alloc_ = peak_;
    at_high_before_last_alloc_ = at_high_;
    charge(stack, size);
}

bool PeakTables::keep(std::uintptr_t address, std::uint64_t value) noexcept {
    const auto *block = reinterpret_cast<const void *>(address);
    RecentBlocks::Moves moves;
    switch (recent_.put(block, value, &moves)) {
    case RecentBlocks::Put::kept:
        return true;
    case RecentBlocks::Put::unfit:
        return blocks_.insert(block, value);
    case RecentBlocks::Put::displaced:
        break;
    }
    if (!blocks_.insert(moves.to_table, moves.to_table_size)) {
        // The older block cannot stay: it leaves the figures as its free would.
        std::uint32_t stack = 0;
        std::uint64_t size = 0;
        decode(moves.to_table_size, &stack, &size);
        release(moves.to_table_size);
        discharge(stack, size);
    }
    return true;
}

bool PeakTables::remove(std::uintptr_t address, std::uint32_t *stack,
                        std::uint64_t *size) noexcept {
    const auto *block = reinterpret_cast<const void *>(address);
    std::size_t value = 0;
    if (!recent_.take(block, &value) && !blocks_.erase(block, &value)) {
        return false;
    }
    decode(value, stack, size);
    release(value);
    return true;
}

bool PeakTables::take(std::uintptr_t address, std::uint32_t *stack,
                      std::uint64_t *size) noexcept {
    if (!remove(address, stack, size)) {
        return false;
    }
    discharge(*stack, *size);
    return true;
}

void PeakTables::on_free(std::uintptr_t address) noexcept {
    last_alloc_ = 0;
    std::uint32_t stack = 0;
    std::uint64_t size = 0;
    take(address, &stack, &size);
}

void PeakTables::on_retract(std::uintptr_t address) noexcept {
    if (address != last_alloc_) {
        on_free(address);
        return;
    }
    last_alloc_ = 0;
    std::uint32_t stack = 0;
    std::uint64_t size = 0;
    if (!remove(address, &stack, &size)) {
        return;
    }
    lower(stack, size);
    peak_ = peak_before_last_alloc_;
    at_high_ = at_high_before_last_alloc_;
}

void PeakTables::on_pages(std::uint32_t stack, std::int64_t bytes) noexcept {
    last_alloc_ = 0;
    if (bytes > 0 && (stack < figures_.size() || add_stacks(stack))) {
        charge(stack, static_cast<std::uint64_t>(bytes));
    } else if (bytes < 0 && stack < figures_.size()) {
        discharge(stack, static_cast<std::uint64_t>(-bytes));
    }
}

void PeakTables::set_figure(std::uint32_t *value, FlatTable<std::uint64_t> *wide,
                            std::uint32_t stack, std::uint64_t bytes) noexcept {
    const std::uint64_t key = std::uint64_t{stack} + 1;
    if (bytes < kWideFigure) {
        if (*value == kWideFigure) {
            std::uint64_t gone = 0;
            wide->erase(key, &gone);
        }
        *value = static_cast<std::uint32_t>(bytes);
    } else if (wide->put(key, bytes)) {
        *value = kWideFigure;
    } else {
        *value = kWideFigure - 1; // out of memory: the figure stops just under 4 GiB
    }
}

void PeakTables::charge(std::uint32_t stack, std::uint64_t size) noexcept {
    touch(stack);
    Figures &figures = figures_[stack];
    if (figures.live != kWideFigure && size < kWideFigure - figures.live) {
        figures.live += static_cast<std::uint32_t>(size);
    } else {
        set_figure(&figures.live, &wide_live_, stack,
                   static_cast<std::uint64_t>(figure(figures.live, wide_live_, stack)) + size);
    }
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
    lower(stack, size);
}

void PeakTables::lower(std::uint32_t stack, std::uint64_t size) noexcept {
    touch(stack);
    Figures &figures = figures_[stack];
    if (figures.live != kWideFigure && size <= figures.live) {
        figures.live -= static_cast<std::uint32_t>(size);
    } else {
        const auto live = static_cast<std::uint64_t>(figure(figures.live, wide_live_, stack));
        set_figure(&figures.live, &wide_live_, stack, live > size ? live - size : 0);
    }
    total_ -= static_cast<std::int64_t>(size);
}

void PeakTables::touch(std::uint32_t stack) noexcept {
    std::uint64_t &word = dirty_[stack / 64];
    const std::uint64_t bit = std::uint64_t{1} << (stack % 64);
    if ((word & bit) == 0) {
        word |= bit;
        dirty_list_.push_back(stack);
    }
}

void PeakTables::keep_peak() noexcept {
    for (const std::uint32_t stack : dirty_list_) {
        Figures &figures = figures_[stack];
        if (figures.live != kWideFigure && figures.at_peak != kWideFigure) {
            figures.at_peak = figures.live;
        } else {
            set_figure(&figures.at_peak, &wide_at_peak_, stack,
                       static_cast<std::uint64_t>(figure(figures.live, wide_live_, stack)));
        }
        dirty_[stack / 64] &= ~(std::uint64_t{1} << (stack % 64));
    }
    dirty_list_.clear();
    at_high_ = false;
    peak_time_ = wall_seconds();
    peak_live_blocks_ = live_blocks();
    peak_block_table_bytes_ = block_table_bytes();
}

void PeakTables::settle() noexcept {
    if (at_high_) {
        keep_peak();
    }
}

bool PeakTables::stack_in_use(std::uint32_t stack) const noexcept {
    if (stack >= figures_.size()) {
        return false;
    }
    const Figures &figures = figures_[stack];
    // While the total stands at a new high, the figure at the peak of a stack changed since the
    // last copy is the one it has now (keep_peak copies it at the next fall).
    const bool copy_pending = at_high_ && dirty(stack);
    return figures.live != 0 || (!copy_pending && figures.at_peak != 0);
}

void PeakTables::forget_stack(std::uint32_t stack) noexcept {
    if (stack < figures_.size()) {
        // Its live figure is 0 already; a pending copy would give 0 at the peak too.
        set_figure(&figures_[stack].at_peak, &wide_at_peak_, stack, 0);
    }
}

PeakTables::Memory PeakTables::memory() const noexcept {
    return Memory{figures_.memory_bytes() + wide_live_.memory_bytes() +
                      wide_at_peak_.memory_bytes(),
                  dirty_.memory_bytes() + dirty_list_.capacity() * sizeof(std::uint32_t),
                  tags_.memory_bytes(), tag_index_.memory_bytes(),
                  free_tags_.memory_bytes()};
}

std::size_t PeakTables::other_bytes() const noexcept {
    const Memory parts = memory();
    return parts.figures + parts.dirty + parts.tags + parts.tag_index + parts.free_tags;
}

} // namespace memxx::core

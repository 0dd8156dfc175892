// The peak recorder's tables and the two hooks the sources call. Everything below the hooks'
// stack walk runs under accounting::g_lock, the lock of the line profiler's table, which the
// fork handlers of alloc_hook.cpp already take across fork().
#include "core/peak_recorder.hpp"

#include <Python.h>

#include <ctime>
#include <new>
#include <stdexcept>

#include <mimalloc.h>

#include "core/alloc_accounting.hpp"
#include "core/alloc_hook.hpp"
#include "core/flat_table.hpp"
#include "core/live_blocks.hpp"
#include "core/py_compat.h"

namespace memxx::core {

namespace detail {
std::atomic<bool> g_peak_on{false};
}

namespace {

template <class T> using MiVector = std::vector<T, mi_stl_allocator<T>>;

// A block's value in the live-block table: a tag (a stack and a size seen together before) when
// it fits the table's slot, else the stack and the size themselves (the table keeps such values
// in its side map).
constexpr std::uint64_t kMaxTag = (std::uint64_t{1} << 21) - 2;
constexpr std::uint64_t kWideMark = std::uint64_t{1} << 63;
constexpr unsigned kWideStackShift = 40;
constexpr std::uint64_t kWideSizeMask = (std::uint64_t{1} << kWideStackShift) - 1;

std::uint64_t mix(std::uint64_t h) noexcept {
    h ^= h >> 31;
    h *= 0x9E3779B97F4A7C15ull;
    return h ^ (h >> 29);
}

// The stack's identity: a 64-bit hash of its frames' code objects and offsets. Two stacks are
// taken for one when their hashes are equal (about 1 in 10^13 for a million stacks).
std::uint64_t stack_hash(PyObject *const *codes, const int *offsets, int depth,
                         bool deeper) noexcept {
    std::uint64_t h = 0x243F6A8885A308D3ull + static_cast<std::uint64_t>(deeper);
    for (int i = 0; i < depth; ++i) {
        h = mix(h ^ reinterpret_cast<std::uintptr_t>(codes[i]) ^
                (static_cast<std::uint64_t>(offsets[i]) << 48));
    }
    return h == 0 ? 1 : h;
}

struct StackEntry {
    std::uint64_t hash;
    std::uint32_t first_frame; // in Recorder::frames
    std::uint16_t depth;
    bool deeper;
};

struct Tag {
    std::uint32_t stack;
    std::uint64_t size;
};

double wall_seconds() noexcept {
    timespec now{};
    clock_gettime(CLOCK_REALTIME_COARSE, &now); // a few ns: this runs at every fall from a peak
    return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
}

class Recorder {
  public:
    // The value to store for a block of `size` bytes allocated by the stack walked; false when
    // the tables cannot grow. g_lock held.
    bool value_for(std::uint64_t hash, std::size_t size, PyObject *const *codes,
                   const int *offsets, int depth, bool deeper, std::uint64_t *value,
                   std::uint32_t *stack) noexcept {
        const std::uint64_t key = (mix(hash + size) | 1);
        if (const std::uint32_t *tag = tag_index_.find(key); tag != nullptr) {
            const Tag &known = tags_[*tag];
            if (known.size == size && stacks_[known.stack].hash == hash) {
                *value = *tag;
                *stack = known.stack;
                return true;
            }
        }
        if (!intern_stack(hash, codes, offsets, depth, deeper, stack)) {
            return false;
        }
        if (tags_.size() <= kMaxTag && tag_index_.put(key, static_cast<std::uint32_t>(tags_.size()))) {
            *value = tags_.size();
            tags_.push_back(Tag{*stack, size});
            return true;
        }
        *value = kWideMark | (static_cast<std::uint64_t>(*stack) << kWideStackShift) |
                 std::min<std::uint64_t>(size, kWideSizeMask);
        return true;
    }

    void decode(std::uint64_t value, std::uint32_t *stack, std::uint64_t *size) const noexcept {
        if ((value & kWideMark) == 0) {
            *stack = tags_[value].stack;
            *size = tags_[value].size;
        } else {
            *stack = static_cast<std::uint32_t>((value & ~kWideMark) >> kWideStackShift);
            *size = value & kWideSizeMask;
        }
    }

    void charge(std::uint32_t stack, std::uint64_t size) noexcept {
        touch(stack);
        live_[stack] += static_cast<std::int64_t>(size);
        total_ += static_cast<std::int64_t>(size);
        if (total_ > peak_) {
            peak_ = total_;
            at_high_ = true;
        }
    }

    void discharge(std::uint32_t stack, std::uint64_t size) noexcept {
        if (at_high_) {
            keep_peak(); // the figures just before this fall are those of the peak
        }
        touch(stack);
        live_[stack] -= static_cast<std::int64_t>(size);
        total_ -= static_cast<std::int64_t>(size);
    }

    // Copies the stacks changed since the last copy: amortised, one copy per change.
    void keep_peak() noexcept {
        for (const std::uint32_t stack : dirty_list_) {
            at_peak_[stack] = live_[stack];
            dirty_[stack] = 0;
        }
        dirty_list_.clear();
        at_high_ = false;
        peak_time_ = wall_seconds();
    }

    // Code objects seen without the GIL get their reference at the next call with it. GIL held.
    void own_pending_codes() noexcept {
        for (PyObject *code : pending_codes_) {
            own_code(code);
        }
        pending_codes_.clear();
    }

    void release_codes() noexcept { // GIL held, g_lock not held (a decref may free)
        for (PyObject *code : owned_list_) {
            Py_DECREF(code);
        }
        owned_list_.clear();
    }

    PeakReport report() {
        if (at_high_) {
            keep_peak();
        }
        PeakReport out;
        out.peak_bytes = peak_;
        out.peak_time = peak_time_;
        out.current_bytes = total_;
        for (std::uint32_t stack = 0; stack < at_peak_.size(); ++stack) {
            if (at_peak_[stack] > 0) {
                out.at_peak.push_back(PeakRow{stack, at_peak_[stack]});
            }
        }
        out.stacks.reserve(stacks_.size());
        for (const StackEntry &entry : stacks_) {
            PeakStack stack;
            stack.deeper = entry.deeper;
            stack.frames.assign(frames_.begin() + entry.first_frame,
                                frames_.begin() + entry.first_frame + entry.depth);
            out.stacks.push_back(std::move(stack));
        }
        out.live_blocks = blocks.count();
        out.block_table_bytes = blocks.memory_bytes();
        out.stack_table_bytes = frames_.capacity() * sizeof(PeakFrame) +
                                stacks_.capacity() * sizeof(StackEntry) +
                                tags_.capacity() * sizeof(Tag) + tag_index_.memory_bytes() +
                                stack_index_.memory_bytes() +
                                live_.capacity() * 2 * sizeof(std::int64_t) + dirty_.capacity() +
                                dirty_list_.capacity() * sizeof(std::uint32_t);
        return out;
    }

    LiveBlocks blocks;

  private:
    bool intern_stack(std::uint64_t hash, PyObject *const *codes, const int *offsets, int depth,
                      bool deeper, std::uint32_t *stack) noexcept {
        if (const std::uint32_t *known = stack_index_.find(hash); known != nullptr) {
            *stack = *known;
            return true;
        }
        const auto id = static_cast<std::uint32_t>(stacks_.size());
        if (id >= (std::uint32_t{1} << 23) || !stack_index_.put(hash, id)) {
            return false;
        }
        const bool gil = PyGILState_Check() != 0;
        stacks_.push_back(StackEntry{hash, static_cast<std::uint32_t>(frames_.size()),
                                     static_cast<std::uint16_t>(depth), deeper});
        for (int i = 0; i < depth; ++i) {
            frames_.push_back(PeakFrame{codes[i], offsets[i]});
            if (gil) {
                own_code(codes[i]);
            } else {
                // Its frame holds it alive now; the reference is taken with the GIL later.
                pending_codes_.push_back(codes[i]);
            }
        }
        live_.push_back(0);
        at_peak_.push_back(0);
        dirty_.push_back(0);
        *stack = id;
        return true;
    }

    void own_code(PyObject *code) noexcept {
        const auto key = reinterpret_cast<std::uintptr_t>(code);
        if (owned_.find(key) == nullptr && owned_.put(key, 1)) {
            Py_INCREF(code);
            owned_list_.push_back(code);
        }
    }

    void touch(std::uint32_t stack) noexcept {
        if (dirty_[stack] == 0) {
            dirty_[stack] = 1;
            dirty_list_.push_back(stack);
        }
    }

    MiVector<PeakFrame> frames_;
    MiVector<StackEntry> stacks_;
    FlatTable<std::uint32_t> stack_index_; // stack hash -> stack id
    MiVector<Tag> tags_;
    FlatTable<std::uint32_t> tag_index_; // mix(stack hash, size) -> tag
    MiVector<std::int64_t> live_;        // by stack id: bytes live now
    MiVector<std::int64_t> at_peak_;     // by stack id: bytes live at the peak
    MiVector<std::uint8_t> dirty_;       // changed since the peak figures were last copied
    MiVector<std::uint32_t> dirty_list_;
    FlatTable<std::uint8_t> owned_; // code objects we hold a reference to
    MiVector<PyObject *> owned_list_;
    MiVector<PyObject *> pending_codes_;
    std::int64_t total_ = 0;
    std::int64_t peak_ = 0;
    bool at_high_ = false; // the total stands at a new peak not yet copied
    double peak_time_ = 0;
};

Recorder *g_recorder = nullptr; // set while recording; changed with the GIL and g_lock held
bool g_native = false;

} // namespace

using accounting::g_lock;

void peak_on_alloc(const void *address, std::size_t size) noexcept {
    PyObject *codes[kPeakMaxDepth];
    int offsets[kPeakMaxDepth];
    int deeper = 0;
    const int depth = memxx_thread_stack(codes, offsets, kPeakMaxDepth, &deeper);
    const std::uint64_t hash = stack_hash(codes, offsets, depth, deeper != 0);
    SpinLockGuard guard(g_lock);
    Recorder *recorder = g_recorder;
    if (recorder == nullptr) {
        return;
    }
    std::uint64_t value = 0;
    std::uint32_t stack = 0;
    if (!recorder->value_for(hash, size, codes, offsets, depth, deeper != 0, &value, &stack) ||
        !recorder->blocks.insert(address, value)) {
        return; // the tables cannot grow: the block stays untracked
    }
    recorder->charge(stack, size);
}

bool peak_on_free(const void *address, std::size_t *size) noexcept {
    SpinLockGuard guard(g_lock);
    Recorder *recorder = g_recorder;
    std::size_t value = 0;
    if (recorder == nullptr || !recorder->blocks.erase(address, &value)) {
        return false;
    }
    std::uint32_t stack = 0;
    std::uint64_t bytes = 0;
    recorder->decode(value, &stack, &bytes);
    recorder->discharge(stack, bytes);
    *size = bytes;
    return true;
}

void peak_start(bool native) {
    if (g_recorder != nullptr) {
        throw std::logic_error("the peak recorder is already running");
    }
    auto *recorder = new (mi_malloc(sizeof(Recorder))) Recorder();
    {
        SpinLockGuard guard(g_lock);
        g_recorder = recorder;
    }
    detail::g_peak_on.store(true, std::memory_order_release);
    hook_session_begin();
    g_native = native;
    if (native) {
        native_want(true);
    }
}

void peak_stop() {
    if (g_recorder == nullptr) {
        return;
    }
    if (g_native) {
        native_want(false);
    }
    hook_session_end();
    detail::g_peak_on.store(false, std::memory_order_release);
    Recorder *recorder;
    {
        SpinLockGuard guard(g_lock);
        recorder = g_recorder;
        g_recorder = nullptr;
    }
    recorder->own_pending_codes();
    recorder->release_codes();
    recorder->~Recorder();
    mi_free(recorder);
}

PeakReport peak_report() {
    if (g_recorder == nullptr) {
        throw std::logic_error("the peak recorder is not running");
    }
    {
        SpinLockGuard guard(g_lock);
        g_recorder->own_pending_codes();
    }
    // The copy's own allocations cannot come back here: our extension's malloc calls are never
    // redirected, and the PyMem domains are not used.
    SpinLockGuard guard(g_lock);
    return g_recorder->report();
}

int peak_frame_line(const PeakFrame &frame) { return memxx_code_line(frame.code, frame.offset); }

} // namespace memxx::core

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
constexpr std::uint32_t kMaxNodes = std::uint32_t{1} << 23; // a node must fit a wide value

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

// The stacks are a tree of frames interned outermost first: a stack is its innermost node, and a
// node is its caller's node plus one frame, so stacks that share their callers share nodes.
struct StackNode {
    std::uint32_t parent;
    std::int32_t offset;
    PyObject *code;
};
constexpr std::uint32_t kRootNode = 0;   // no Python frame
constexpr std::uint32_t kDeeperNode = 1; // frames beyond the recorded depth were left out

struct Tag {
    std::uint64_t stack_hash;
    std::uint64_t size : 40;
    std::uint64_t stack : 24; // its innermost node
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
            if (known.size == size && known.stack_hash == hash) {
                *value = *tag;
                *stack = known.stack;
                return true;
            }
        }
        if (!intern_stack(hash, codes, offsets, depth, deeper, stack)) {
            return false;
        }
        if (tags_.size() <= kMaxTag && size <= kWideSizeMask &&
            tag_index_.put(key, static_cast<std::uint32_t>(tags_.size()))) {
            *value = tags_.size();
            tags_.push_back(Tag{hash, size, *stack});
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
        out.nodes.reserve(nodes_.size());
        for (const StackNode &node : nodes_) {
            out.nodes.push_back(PeakNode{node.parent, PeakFrame{node.code, node.offset}});
        }
        out.live_blocks = blocks.count();
        out.block_table_bytes = blocks.memory_bytes();
        out.stack_table_bytes = nodes_.capacity() * sizeof(StackNode) +
                                node_index_.memory_bytes() + stack_index_.memory_bytes() +
                                tags_.capacity() * sizeof(Tag) + tag_index_.memory_bytes() +
                                live_.capacity() * 2 * sizeof(std::int64_t) + dirty_.capacity() +
                                dirty_list_.capacity() * sizeof(std::uint32_t) +
                                owned_.memory_bytes() + owned_list_.capacity() * sizeof(void *);
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
        if (nodes_.empty()) {
            nodes_.push_back(StackNode{kRootNode, 0, nullptr});
            nodes_.push_back(StackNode{kRootNode, 0, nullptr});
            grow_figures(2);
        }
        const bool gil = PyGILState_Check() != 0;
        std::uint32_t node = deeper ? kDeeperNode : kRootNode;
        for (int i = depth - 1; i >= 0; --i) {
            if (!intern_node(node, codes[i], offsets[i], gil, &node)) {
                return false;
            }
        }
        stack_index_.put(hash, node); // when it cannot grow, the next walk interns again
        *stack = node;
        return true;
    }

    // The node for `frame` called from `parent`, added if new.
    bool intern_node(std::uint32_t parent, PyObject *code, int offset, bool gil,
                     std::uint32_t *node) noexcept {
        const std::uint64_t key =
            mix(mix(parent + (static_cast<std::uint64_t>(offset) << 32)) ^
                reinterpret_cast<std::uintptr_t>(code)) | 1;
        if (const std::uint32_t *known = node_index_.find(key); known != nullptr) {
            const StackNode &found = nodes_[*known];
            if (found.parent == parent && found.code == code && found.offset == offset) {
                *node = *known;
                return true;
            }
        }
        const auto id = static_cast<std::uint32_t>(nodes_.size());
        if (id >= kMaxNodes) {
            return false;
        }
        nodes_.push_back(StackNode{parent, offset, code});
        grow_figures(1);
        node_index_.put(key, id); // a key taken by another node only costs a duplicate node
        if (gil) {
            own_code(code);
        } else {
            // Its frame holds it alive now; the reference is taken with the GIL later.
            pending_codes_.push_back(code);
        }
        *node = id;
        return true;
    }

    void grow_figures(std::size_t count) {
        live_.resize(live_.size() + count, 0);
        at_peak_.resize(at_peak_.size() + count, 0);
        dirty_.resize(dirty_.size() + count, 0);
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

    MiVector<StackNode> nodes_;
    FlatTable<std::uint32_t> node_index_;  // mix(parent, code, offset) -> node
    FlatTable<std::uint32_t> stack_index_; // stack hash -> its innermost node
    MiVector<Tag> tags_;
    FlatTable<std::uint32_t> tag_index_; // mix(stack hash, size) -> tag
    MiVector<std::int64_t> live_;        // by node: bytes live now of the stack ending there
    MiVector<std::int64_t> at_peak_;     // by node: those bytes at the peak
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

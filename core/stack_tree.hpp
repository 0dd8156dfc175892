// The peak recorder's interned call stacks, as a tree of lines: a node is one line of a function
// (a frame) called from its parent node, hash-consed, so stacks that share their callers share
// nodes and a new stack costs the nodes of the frames it does not share. A node allocations were
// made at (a stack) also has a dense stack id, the one the recorder's events and the peak tables
// use; nodes that are callers only never get one.
//
// Compact: a node is 10 bytes (its parent, its frame, its stack id) in chunks, a frame (code,
// line) is stored once however many nodes it is in, and the indexes hold ids, not keys
// (core/id_table.hpp).
// It also forgets: collect() drops the stacks the caller no longer needs (in the recorder: those
// that hold no bytes now and held none at the peak) with the nodes only they went through, and
// gives their stack ids out again, so the tree grows with the stacks that matter, not with every
// stack a program ever allocated at (a pandas + scikit-learn job: 101 k of 420 k).
//
// Pure C++ (no Python): code objects are named by the small index the caller gives each. Not
// thread-safe: the peak recorder calls it with session::g_lock held (and its m_apply to
// collect).
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>

#include <mimalloc.h>

#include "core/chunked_array.hpp"
#include "core/id_table.hpp"

namespace memxx::core {

class StackTree {
  public:
    static constexpr std::uint32_t kRootNode = 0;   // no Python frame
    static constexpr std::uint32_t kDeeperNode = 1; // frames beyond the recorded depth left out
    static constexpr std::uint32_t kNoStack = (std::uint32_t{1} << 24) - 1; // a node's 24 bits
    static constexpr std::uint32_t kMaxNodes = IdTable<26>::kMaxId + 1;
    static constexpr std::uint32_t kMaxStacks = std::uint32_t{1} << 23; // an event's 24 bits
    // No collection below this many nodes (a small program's tree stays whole); after one, the
    // next comes when the nodes kept have grown by half (on a pandas + scikit-learn job, 11
    // collections of 30 ms in all; doubling took 7 and left 30 % more stack ids).
    static constexpr std::size_t kFirstCollection = std::size_t{1} << 16;

    // 10 bytes, packed: a job's tree holds 200 k nodes or more.
    struct __attribute__((packed)) Node {
        std::uint32_t parent : 26;
        std::uint32_t frame : 26; // index in the frame list
        std::uint32_t stack : 24; // kNoStack until an allocation is made at it
    };
    static_assert(sizeof(Node) == 10);
    static_assert(kMaxStacks <= kNoStack && kMaxNodes <= (std::uint32_t{1} << 26));
    struct Frame {
        std::uint32_t code; // the caller's index of the code object
        std::int32_t line;
    };

    // The root (stack 0) and the root of stacks whose outer frames were left out (stack 1).
    // Throws std::bad_alloc.
    StackTree() {
        if (!nodes_.push_back(Node{kRootNode, 0, 0}) || !nodes_.push_back(Node{kRootNode, 0, 1}) ||
            !frames_.push_back(Frame{0, 0}) || !free_bits_.push_back(0)) {
            throw std::bad_alloc();
        }
    }

    // The node for the frame (`code`, `line`) called from `*node`, added if new; false when the
    // tree cannot grow.
    bool intern(std::uint32_t code, std::int32_t line, std::uint32_t *node) noexcept {
        std::uint32_t frame = 0;
        if (!frame_id(code, line, &frame)) {
            return false;
        }
        const std::uint32_t parent = *node;
        const std::uint64_t hash = node_hash(parent, frame);
        const std::uint32_t found = node_index_.find(hash, [&](std::uint32_t id) {
            const Node &known = nodes_[id];
            return known.parent == parent && known.frame == frame;
        });
        if (found != IdTable<26>::kNone) {
            *node = found;
            return true;
        }
        const auto id = static_cast<std::uint32_t>(nodes_.size());
        if (id >= kMaxNodes || !nodes_.push_back(Node{parent, frame, kNoStack})) {
            return false;
        }
        // When the index cannot grow: a twin node later.
        node_index_.insert(hash, id, [this](std::uint32_t known) { return hash_of_node(known); });
        *node = id;
        return true;
    }

    // The stack id of `node`, given one if it has none (a freed one first); kNoStack when there
    // is none to give.
    std::uint32_t stack_id(std::uint32_t node) noexcept {
        Node &entry = nodes_[node];
        if (entry.stack == kNoStack) {
            if (free_stacks_ > 0) {
                entry.stack = take_free_stack();
            } else if (stack_ids_ < kMaxStacks && free_bits_.grow_to(stack_ids_ / 64 + 1, 0)) {
                entry.stack = stack_ids_++;
            }
        }
        return entry.stack;
    }

    const Node &node(std::uint32_t id) const noexcept { return nodes_[id]; }
    const Frame &frame_of(std::uint32_t node) const noexcept { return frames_[nodes_[node].frame]; }
    std::size_t nodes() const noexcept { return nodes_.size(); }
    std::size_t frames() const noexcept { return frames_.size(); } // the roots' frame included
    std::size_t stacks() const noexcept { return stack_ids_ - free_stacks_; } // in use
    std::size_t stack_ids() const noexcept { return stack_ids_; } // every id in use is below

    bool wants_collection() const noexcept { return nodes_.size() >= collect_at_; }

    // Keeps the stacks for which `keep(stack)` holds (called once for each stack but 0 and 1,
    // which are always kept) and the nodes they go through; drops the other nodes and gives the
    // other stack ids back, to be handed out again by stack_id(). Node ids change, in the order
    // they had (a caller stays before its callees); kept stacks keep their ids. False, nothing
    // changed, when memory for it is short. The frames no node is at are dropped too; frame
    // ids change, in the order they had.
    template <class Keep> bool collect(Keep &&keep) noexcept {
        const std::size_t count = nodes_.size();
        collect_at_ = count + count / 2; // if it fails: not at every call from now on
        // First a mark per node (non-zero: kept), then, in the same place, its new id.
        auto *renumber = static_cast<std::uint32_t *>(mi_zalloc(count * sizeof(std::uint32_t)));
        if (renumber == nullptr) {
            return false;
        }
        renumber[kRootNode] = renumber[kDeeperNode] = 1;
        // Callees before callers (a parent's id is below its children's): a node is kept when
        // its stack is, or when a kept node is called from it.
        for (std::size_t id = count; id-- > kDeeperNode + 1;) {
            Node &entry = nodes_[id];
            if (entry.stack != kNoStack) {
                if (keep(entry.stack)) {
                    renumber[id] = 1;
                } else {
                    free_bits_[entry.stack / 64] |= std::uint64_t{1} << (entry.stack % 64);
                    ++free_stacks_;
                    entry.stack = kNoStack;
                }
            }
            if (renumber[id] != 0) {
                renumber[entry.parent] = 1;
            }
        }
        std::uint32_t kept = 0;
        for (std::size_t id = 0; id < count; ++id) {
            if (renumber[id] != 0) {
                Node entry = nodes_[id];
                if (id > kDeeperNode) {
                    entry.parent = renumber[entry.parent]; // a parent's new id is known by now
                }
                renumber[id] = kept;
                nodes_[kept++] = entry;
            }
        }
        mi_free(renumber);
        nodes_.truncate(kept);
        free_cursor_ = 0;
        collect_frames(); // when memory is short, the frames stay as they are
        // The index again, for the nodes kept (it grows by a quarter past 85 % load). When it
        // cannot be made, nodes are not found: twins later.
        node_index_.rebuild(kDeeperNode + 1, kept,
                            [this](std::uint32_t known) { return hash_of_node(known); });
        collect_at_ = kept + kept / 2;
        if (collect_at_ < kFirstCollection) {
            collect_at_ = kFirstCollection;
        }
        return true;
    }

    struct Memory {
        std::size_t nodes, node_index, frames, frame_index, free_stacks;
        std::size_t total() const noexcept {
            return nodes + node_index + frames + frame_index + free_stacks;
        }
    };
    Memory memory() const noexcept {
        return Memory{nodes_.memory_bytes(), node_index_.memory_bytes(), frames_.memory_bytes(),
                      frame_index_.memory_bytes(), free_bits_.memory_bytes()};
    }
    std::size_t memory_bytes() const noexcept { return memory().total(); }

  private:
    static std::uint64_t node_hash(std::uint32_t parent, std::uint32_t frame) noexcept {
        return id_hash((static_cast<std::uint64_t>(parent) << 32) | frame);
    }
    static std::uint64_t frame_hash(std::uint32_t code, std::int32_t line) noexcept {
        const std::uint64_t bits =
            (static_cast<std::uint64_t>(code) << 32) | static_cast<std::uint32_t>(line);
        return id_hash(bits ^ 0x243F6A8885A308D3ull);
    }
    std::uint64_t hash_of_node(std::uint32_t id) const noexcept {
        return node_hash(nodes_[id].parent, nodes_[id].frame);
    }
    std::uint64_t hash_of_frame(std::uint32_t id) const noexcept {
        return frame_hash(frames_[id].code, frames_[id].line);
    }

    // A freed id, the lowest from the cursor on: ids are freed by collections only, so the words
    // the cursor passed stay empty until the next one, which starts it again.
    std::uint32_t take_free_stack() noexcept {
        while (free_bits_[free_cursor_] == 0) {
            ++free_cursor_;
        }
        std::uint64_t &word = free_bits_[free_cursor_];
        const auto bit = static_cast<std::uint32_t>(__builtin_ctzll(word));
        word &= word - 1;
        --free_stacks_;
        return static_cast<std::uint32_t>(free_cursor_ * 64) + bit;
    }

    // Drops the frames no node is at any longer (a module's body, run once), in the order they
    // had; false, nothing changed, when memory for it is short.
    bool collect_frames() noexcept {
        const std::size_t count = frames_.size();
        auto *renumber = static_cast<std::uint32_t *>(mi_zalloc(count * sizeof(std::uint32_t)));
        if (renumber == nullptr) {
            return false;
        }
        renumber[0] = 1; // the roots'
        for (std::size_t id = 0; id < nodes_.size(); ++id) {
            renumber[nodes_[id].frame] = 1;
        }
        std::uint32_t kept = 0;
        for (std::size_t id = 0; id < count; ++id) {
            if (renumber[id] != 0) {
                renumber[id] = kept;
                frames_[kept++] = frames_[id];
            }
        }
        for (std::size_t id = 0; id < nodes_.size(); ++id) {
            nodes_[id].frame = renumber[nodes_[id].frame];
        }
        mi_free(renumber);
        frames_.truncate(kept);
        // Frame 0 (the roots') is never looked up. When the index cannot be made: twins later.
        frame_index_.rebuild(1, kept, [this](std::uint32_t known) { return hash_of_frame(known); });
        return true;
    }

    bool frame_id(std::uint32_t code, std::int32_t line, std::uint32_t *frame) noexcept {
        const std::uint64_t hash = frame_hash(code, line);
        const std::uint32_t found = frame_index_.find(hash, [&](std::uint32_t id) {
            return frames_[id].code == code && frames_[id].line == line;
        });
        if (found != IdTable<26>::kNone) {
            *frame = found;
            return true;
        }
        const auto id = static_cast<std::uint32_t>(frames_.size());
        if (id > IdTable<26>::kMaxId || !frames_.push_back(Frame{code, line})) {
            return false;
        }
        frame_index_.insert(hash, id, [this](std::uint32_t known) {
            return hash_of_frame(known);
        }); // when it cannot grow: a twin frame later
        *frame = id;
        return true;
    }

    ChunkedArray<Node> nodes_;
    IdTable<26> node_index_;  // (parent, frame) -> node
    ChunkedArray<Frame> frames_; // frame 0: the roots' (no code)
    IdTable<26> frame_index_; // (code, line) -> frame
    ChunkedArray<std::uint64_t, 9> free_bits_; // a bit per stack id: freed, to be handed out again
    std::size_t free_stacks_ = 0;           // bits set
    std::size_t free_cursor_ = 0;           // the words below it are empty
    std::uint32_t stack_ids_ = 2;
    std::size_t collect_at_ = kFirstCollection;
};

} // namespace memxx::core

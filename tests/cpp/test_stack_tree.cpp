// The peak recorder's stack tree (core/stack_tree.hpp) against its definition: a stack is the
// list of (code, line) frames from the outermost in, interned once, and a collection keeps every
// kept stack's frames and id while it drops the rest. Also its two containers, the id index and
// the chunked array.
#include <catch2/catch.hpp>

#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "core/chunked_array.hpp"
#include "core/id_table.hpp"
#include "core/stack_tree.hpp"

using memxx::core::ChunkedArray;
using memxx::core::IdTable;
using memxx::core::StackTree;

namespace {

using Frames = std::vector<std::pair<std::uint32_t, std::int32_t>>; // outermost first

// The stack id of `frames`, interned from the root.
std::uint32_t intern(StackTree &tree, const Frames &frames) {
    std::uint32_t node = StackTree::kRootNode;
    for (const auto &[code, line] : frames) {
        REQUIRE(tree.intern(code, line, &node));
    }
    return tree.stack_id(node);
}

// The frames of the node whose stack is `stack`, read back up the parents.
Frames frames_of(const StackTree &tree, std::uint32_t stack) {
    for (std::uint32_t node = 0; node < tree.nodes(); ++node) {
        if (tree.node(node).stack == stack) {
            Frames frames;
            for (std::uint32_t at = node; at > StackTree::kDeeperNode; at = tree.node(at).parent) {
                frames.insert(frames.begin(), {tree.frame_of(at).code, tree.frame_of(at).line});
            }
            return frames;
        }
    }
    FAIL("no node has stack " << stack);
    return {};
}

Frames random_stack(std::mt19937_64 &random) {
    // A few outer frames shared by many stacks, then a random tail: a tree with real sharing.
    Frames frames{{1, 10}, {2, static_cast<std::int32_t>(20 + random() % 3)}};
    const int depth = 1 + static_cast<int>(random() % 12);
    for (int i = 0; i < depth; ++i) {
        frames.emplace_back(static_cast<std::uint32_t>(3 + random() % 40),
                            static_cast<std::int32_t>(random() % 6));
    }
    return frames;
}

} // namespace

TEST_CASE("a stack is interned once and shares its callers' nodes") {
    StackTree tree;
    const std::uint32_t a = intern(tree, {{1, 5}, {2, 7}, {3, 9}});
    const std::uint32_t b = intern(tree, {{1, 5}, {2, 7}, {4, 1}}); // same callers
    const std::uint32_t c = intern(tree, {{1, 5}, {2, 8}, {3, 9}}); // another caller line
    CHECK(intern(tree, {{1, 5}, {2, 7}, {3, 9}}) == a);
    CHECK(a != b);
    CHECK(b != c);
    // The roots, then 1:5, 2:7, 3:9, 4:1, 2:8, 3:9 under it.
    CHECK(tree.nodes() == 2 + 6);
    CHECK(tree.stacks() == 2 + 3);
    CHECK(frames_of(tree, c) == Frames{{1, 5}, {2, 8}, {3, 9}});
    // A caller gets a stack id only when an allocation is made at it.
    std::uint32_t caller = StackTree::kRootNode;
    REQUIRE(tree.intern(1, 5, &caller));
    CHECK(tree.node(caller).stack == StackTree::kNoStack);
}

TEST_CASE("random stacks intern as their definition: one id per distinct frame list") {
    std::mt19937_64 random(20261207);
    StackTree tree;
    std::map<Frames, std::uint32_t> truth;
    std::set<Frames> prefixes; // every distinct caller chain is one node
    for (int i = 0; i < 50'000; ++i) {
        const Frames frames = random_stack(random);
        const std::uint32_t stack = intern(tree, frames);
        const auto [it, added] = truth.emplace(frames, stack);
        REQUIRE(it->second == stack);
        for (std::size_t n = 1; n <= frames.size(); ++n) {
            prefixes.insert(Frames(frames.begin(), frames.begin() + n));
        }
    }
    REQUIRE(tree.stacks() == 2 + truth.size());
    REQUIRE(tree.nodes() == 2 + prefixes.size());
    for (const auto &[frames, stack] : truth) {
        REQUIRE(frames_of(tree, stack) == frames);
    }
    // 10 bytes a node plus the index; the frames are few.
    REQUIRE(tree.memory().nodes <= 10 * tree.nodes() + 10 * 4096 + 256);
    REQUIRE(tree.memory().node_index <= 8 * tree.nodes());
}

TEST_CASE("a collection drops the frames only dropped stacks were at") {
    StackTree tree;
    std::map<std::uint32_t, Frames> made;
    for (std::int32_t line = 0; line < 10'000; ++line) { // a line each, run once
        const Frames frames{{1, 1}, {5, line}, {6, line % 3}};
        made.emplace(intern(tree, frames), frames);
    }
    REQUIRE(tree.frames() == 1 + 1 + 10'000 + 3);
    REQUIRE(tree.collect([&](std::uint32_t stack) { return made.at(stack)[1].second % 2 == 0; }));
    REQUIRE(tree.frames() == 1 + 1 + 5'000 + 3);
    REQUIRE(tree.memory().frames <= 8 * (5'000 + 4096));
    for (const auto &[stack, frames] : made) {
        if (frames[1].second % 2 == 0) {
            REQUIRE(frames_of(tree, stack) == frames);
            REQUIRE(intern(tree, frames) == stack); // its frames and nodes found again
        }
    }
    REQUIRE(tree.frames() == 1 + 1 + 5'000 + 3);
    const Frames again{{1, 1}, {5, 1}, {6, 1}}; // a dropped frame comes back
    const std::uint32_t stack = intern(tree, again);
    REQUIRE(frames_of(tree, stack) == again);
    REQUIRE(tree.frames() == 1 + 1 + 5'000 + 3 + 1);
}

TEST_CASE("a collection keeps the kept stacks whole and hands the other ids out again") {
    std::mt19937_64 random(7);
    StackTree tree;
    std::map<std::uint32_t, Frames> kept;
    std::set<std::uint32_t> dropped;
    for (int round = 0; round < 6; ++round) {
        std::map<std::uint32_t, Frames> made;
        for (int i = 0; i < 20'000; ++i) {
            const Frames frames = random_stack(random);
            const std::uint32_t stack = intern(tree, frames);
            REQUIRE(stack < StackTree::kMaxStacks);
            made.emplace(stack, frames);
        }
        // Keep one stack in ten of this round's, and the earlier rounds' kept ones.
        const std::size_t ids_before = tree.stack_ids();
        dropped.clear();
        for (const auto &[stack, frames] : made) {
            if (kept.count(stack) == 0) {
                if (stack % 10 == 0) {
                    kept.emplace(stack, frames);
                } else {
                    dropped.insert(stack);
                }
            }
        }
        std::set<std::uint32_t> asked;
        REQUIRE(tree.collect([&](std::uint32_t stack) {
            REQUIRE(asked.insert(stack).second); // once per stack
            return kept.count(stack) != 0;
        }));
        REQUIRE(asked.size() == kept.size() + dropped.size());
        REQUIRE(tree.stacks() == 2 + kept.size());
        for (const auto &[stack, frames] : kept) {
            REQUIRE(frames_of(tree, stack) == frames);
            REQUIRE(intern(tree, frames) == stack); // found again, not made anew
        }
        // A parent comes before its children, and only kept stacks' nodes are left.
        std::set<Frames> prefixes;
        for (const auto &[stack, frames] : kept) {
            for (std::size_t n = 1; n <= frames.size(); ++n) {
                prefixes.insert(Frames(frames.begin(), frames.begin() + n));
            }
        }
        REQUIRE(tree.nodes() == 2 + prefixes.size());
        for (std::uint32_t node = StackTree::kDeeperNode + 1; node < tree.nodes(); ++node) {
            REQUIRE(tree.node(node).parent < node);
        }
        // The dropped ids serve new stacks before any new id is made.
        for (std::size_t i = 0; i < dropped.size(); ++i) {
            const Frames fresh{{99, static_cast<std::int32_t>(round)},
                               {98, static_cast<std::int32_t>(i)}};
            const std::uint32_t stack = intern(tree, fresh);
            REQUIRE(dropped.count(stack) == 1);
            kept.emplace(stack, fresh);
        }
        REQUIRE(tree.stack_ids() == ids_before);
    }
}

TEST_CASE("the tree asks for a collection once it has grown by half since the last") {
    StackTree tree;
    std::uint32_t leaf = 0;
    for (std::uint32_t i = 0; !tree.wants_collection(); ++i) {
        std::uint32_t node = StackTree::kRootNode;
        REQUIRE(tree.intern(i >> 8, 0, &node));
        REQUIRE(tree.intern(i & 255, 1, &node));
        leaf = tree.stack_id(node);
    }
    CHECK(tree.nodes() >= StackTree::kFirstCollection);
    CHECK(tree.nodes() <= StackTree::kFirstCollection + 1);
    REQUIRE(tree.collect([leaf](std::uint32_t stack) { return stack == leaf; }));
    CHECK(tree.nodes() == 4);
    CHECK(tree.stacks() == 3);
    CHECK_FALSE(tree.wants_collection()); // not again before kFirstCollection nodes
    // The nodes' memory given back: one chunk left, and the index at its minimum.
    CHECK(tree.memory().nodes <= 12 * 4096 + 16 * sizeof(void *));
    CHECK(tree.memory().node_index == 4 * 1024);
}

TEST_CASE("the id index finds each id by its hash and what it names, through growth and erases") {
    std::vector<std::uint64_t> named; // id -> what it names
    const auto hash_of = [&named](std::uint32_t id) {
        std::uint64_t h = named[id] * 0x9E3779B97F4A7C15ull;
        return h ^ (h >> 29) ^ (h << 17);
    };
    IdTable<21> index;
    std::mt19937_64 random(3);
    std::map<std::uint64_t, std::uint32_t> truth;
    for (std::uint32_t id = 0; id < 200'000; ++id) {
        named.push_back(random() % 1'000'000);
        if (truth.count(named[id]) != 0) {
            continue;
        }
        REQUIRE(index.insert(hash_of(id), id, hash_of));
        truth.emplace(named[id], id);
    }
    REQUIRE(index.size() == truth.size());
    REQUIRE(index.size() * 100 >= index.capacity() * 65); // grown by a quarter past 85 %
    std::size_t erased = 0;
    for (auto it = truth.begin(); it != truth.end();) {
        if (it->first % 3 == 0) {
            REQUIRE(index.erase(hash_of(it->second), it->second, hash_of));
            it = truth.erase(it);
            ++erased;
        } else {
            ++it;
        }
    }
    REQUIRE(erased > 0);
    for (std::uint64_t value = 0; value < 1'000'000; value += 7) {
        std::uint64_t h = value * 0x9E3779B97F4A7C15ull;
        h = h ^ (h >> 29) ^ (h << 17);
        const std::uint32_t found =
            index.find(h, [&named, value](std::uint32_t id) { return named[id] == value; });
        const auto it = truth.find(value);
        REQUIRE(found == (it == truth.end() ? IdTable<21>::kNone : it->second));
    }
}

TEST_CASE("a chunked array grows without copying and gives chunks back") {
    ChunkedArray<std::uint32_t, 10> array;
    for (std::uint32_t i = 0; i < 5000; ++i) {
        REQUIRE(array.push_back(i * 3));
    }
    const std::uint32_t *first = &array[0];
    REQUIRE(array.push_back(1)); // a new element never moves the old ones
    CHECK(&array[0] == first);
    CHECK(array[4321] == 4321 * 3);
    CHECK(array.memory_bytes() == 5 * 1024 * 4 + 16 * sizeof(void *));
    array.truncate(1500);
    CHECK(array.size() == 1500);
    CHECK(array.memory_bytes() == 2 * 1024 * 4 + 16 * sizeof(void *));
    REQUIRE(array.grow_to(2100, 7));
    CHECK(array[2099] == 7);
    CHECK(array[1499] == 1499 * 3);
}

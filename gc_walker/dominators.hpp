// Dominator tree of a directed graph (Lengauer-Tarjan, simple version with path compression:
// O(E log N), iterative, so a million-long chain of references does not overflow the stack).
// Pure C++: the heap graph is built elsewhere; tests drive this with small graphs.
#pragma once

#include <cstdint>
#include <vector>

namespace memxx::gc {

// Adjacency in compressed rows: the successors of node v are targets[offsets[v] .. offsets[v+1]).
struct CsrGraph {
    std::vector<uint32_t> offsets; // size nodes + 1
    std::vector<uint32_t> targets;

    uint32_t node_count() const { return offsets.empty() ? 0 : uint32_t(offsets.size() - 1); }
};

struct DominatorTree {
    static constexpr uint32_t npos = UINT32_MAX;
    // idom[v]: the immediate dominator of v; idom[root] = root; npos if v is unreachable.
    std::vector<uint32_t> idom;
    // The reachable nodes in depth-first preorder from the root: every node comes after its
    // immediate dominator, so summing sizes in reverse order gives the retained sizes.
    std::vector<uint32_t> preorder;
};

// Takes the graph by value: it is released as soon as the predecessors are built.
DominatorTree dominator_tree(CsrGraph graph, uint32_t root);

// Retained size of each node: its own size plus those of all nodes it dominates (0 for
// unreachable nodes).
std::vector<uint64_t> retained_sizes(const DominatorTree &tree, const std::vector<uint64_t> &sizes);

} // namespace memxx::gc

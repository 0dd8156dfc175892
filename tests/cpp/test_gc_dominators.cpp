// The dominator tree against the definition: d dominates v iff v is unreachable from the root
// once d is removed.
#include <catch2/catch.hpp>

#include "gc_walker/dominators.hpp"

#include <random>
#include <utility>
#include <vector>

using memxx::gc::CsrGraph;
using memxx::gc::DominatorTree;

namespace {

CsrGraph make_graph(uint32_t nodes, const std::vector<std::pair<uint32_t, uint32_t>> &edges) {
    CsrGraph g;
    g.offsets.assign(nodes + 1, 0);
    for (auto [from, to] : edges) {
        (void)to;
        ++g.offsets[from + 1];
    }
    for (uint32_t i = 0; i < nodes; ++i) {
        g.offsets[i + 1] += g.offsets[i];
    }
    g.targets.resize(edges.size());
    std::vector<uint32_t> fill(g.offsets.begin(), g.offsets.end() - 1);
    for (auto [from, to] : edges) {
        g.targets[fill[from]++] = to;
    }
    return g;
}

// Nodes reachable from `root` when `removed` is taken out of the graph.
std::vector<bool> reachable_without(const CsrGraph &g, uint32_t root, uint32_t removed) {
    std::vector<bool> seen(g.node_count(), false);
    if (root == removed) {
        return seen;
    }
    std::vector<uint32_t> stack{root};
    seen[root] = true;
    while (!stack.empty()) {
        uint32_t v = stack.back();
        stack.pop_back();
        for (uint32_t e = g.offsets[v]; e < g.offsets[v + 1]; ++e) {
            uint32_t w = g.targets[e];
            if (w != removed && !seen[w]) {
                seen[w] = true;
                stack.push_back(w);
            }
        }
    }
    return seen;
}

// Immediate dominators by the definition: the strict dominator of v dominated by all others.
std::vector<uint32_t> brute_force_idom(const CsrGraph &g, uint32_t root) {
    const uint32_t n = g.node_count();
    const std::vector<bool> reachable = reachable_without(g, root, n);
    std::vector<std::vector<bool>> dominates(n, std::vector<bool>(n, false));
    for (uint32_t d = 0; d < n; ++d) {
        const std::vector<bool> still = reachable_without(g, root, d);
        for (uint32_t v = 0; v < n; ++v) {
            dominates[d][v] = reachable[v] && reachable[d] && (d == v || !still[v]);
        }
    }
    std::vector<uint32_t> idom(n, DominatorTree::npos);
    for (uint32_t v = 0; v < n; ++v) {
        if (!reachable[v]) {
            continue;
        }
        if (v == root) {
            idom[v] = root;
            continue;
        }
        for (uint32_t d = 0; d < n; ++d) {
            if (d == v || !dominates[d][v]) {
                continue;
            }
            bool immediate = true;
            for (uint32_t other = 0; other < n && immediate; ++other) {
                if (other != v && other != d && dominates[other][v] && !dominates[other][d]) {
                    immediate = false;
                }
            }
            if (immediate) {
                idom[v] = d;
            }
        }
    }
    return idom;
}

} // namespace

TEST_CASE("a diamond is dominated by its top, a chain by each link") {
    // given 0 -> 1 -> {2, 3} -> 4 -> 5
    CsrGraph g = make_graph(6, {{0, 1}, {1, 2}, {1, 3}, {2, 4}, {3, 4}, {4, 5}});
    // when
    DominatorTree t = memxx::gc::dominator_tree(g, 0);
    // then
    CHECK(t.idom == std::vector<uint32_t>{0, 0, 1, 1, 1, 4});
    std::vector<uint64_t> sizes{0, 10, 20, 30, 40, 50};
    std::vector<uint64_t> retained = memxx::gc::retained_sizes(t, sizes);
    CHECK(retained == std::vector<uint64_t>{150, 150, 20, 30, 90, 50});
}

TEST_CASE("a second path to an object moves its dominator up") {
    // given root -> list -> item, and root -> other -> item
    CsrGraph g = make_graph(4, {{0, 1}, {1, 2}, {0, 3}, {3, 2}});
    DominatorTree t = memxx::gc::dominator_tree(g, 0);
    CHECK(t.idom[2] == 0);
    std::vector<uint64_t> retained = memxx::gc::retained_sizes(t, {0, 56, 16, 8});
    CHECK(retained[1] == 56);
    CHECK(retained[0] == 80);
}

TEST_CASE("unreachable nodes have no dominator and retain nothing") {
    CsrGraph g = make_graph(4, {{0, 1}, {2, 3}});
    DominatorTree t = memxx::gc::dominator_tree(g, 0);
    CHECK(t.idom[2] == DominatorTree::npos);
    CHECK(t.idom[3] == DominatorTree::npos);
    CHECK(t.preorder.size() == 2);
    CHECK(memxx::gc::retained_sizes(t, {1, 2, 3, 4})[2] == 0);
}

TEST_CASE("a million-link chain does not overflow the stack") {
    const uint32_t n = 1000000;
    std::vector<std::pair<uint32_t, uint32_t>> edges;
    for (uint32_t i = 0; i + 1 < n; ++i) {
        edges.emplace_back(i, i + 1);
    }
    edges.emplace_back(n - 1, 1); // a cycle back into the chain
    DominatorTree t = memxx::gc::dominator_tree(make_graph(n, edges), 0);
    CHECK(t.idom[n - 1] == n - 2);
    std::vector<uint64_t> ones(n, 1);
    CHECK(memxx::gc::retained_sizes(t, ones)[1] == n - 1);
}

TEST_CASE("random graphs agree with the definition of dominance") {
    std::mt19937 rng(12345);
    for (int round = 0; round < 300; ++round) {
        const uint32_t n = 2 + rng() % 24;
        const uint32_t m = rng() % (3 * n);
        std::vector<std::pair<uint32_t, uint32_t>> edges;
        for (uint32_t i = 0; i < m; ++i) {
            edges.emplace_back(rng() % n, rng() % n);
        }
        CsrGraph g = make_graph(n, edges);
        DominatorTree t = memxx::gc::dominator_tree(g, 0);
        INFO("round " << round);
        REQUIRE(t.idom == brute_force_idom(g, 0));
    }
}

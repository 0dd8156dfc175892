#include "gc_walker/dominators.hpp"

#include <utility>

namespace memxx::gc {

namespace {

constexpr uint32_t kNone = DominatorTree::npos;

// The forest of processed vertices with path compression (all indexes are preorder numbers).
class EvalForest {
  public:
    EvalForest(uint32_t n, const std::vector<uint32_t> &semi)
        : semi_(semi), ancestor_(n, kNone), label_(n) {
        for (uint32_t i = 0; i < n; ++i) {
            label_[i] = i;
        }
    }

    void link(uint32_t parent, uint32_t child) { ancestor_[child] = parent; }

    // The vertex of minimal semidominator on the forest path above v (v itself if a tree root).
    uint32_t eval(uint32_t v) {
        if (ancestor_[v] == kNone) {
            return v;
        }
        compress(v);
        return label_[v];
    }

  private:
    void compress(uint32_t v) {
        // Collect the path up to the vertex just below the forest root, then fold it top-down.
        path_.clear();
        for (uint32_t x = v; ancestor_[ancestor_[x]] != kNone; x = ancestor_[x]) {
            path_.push_back(x);
        }
        for (auto it = path_.rbegin(); it != path_.rend(); ++it) {
            const uint32_t x = *it;
            const uint32_t a = ancestor_[x];
            if (semi_[label_[a]] < semi_[label_[x]]) {
                label_[x] = label_[a];
            }
            ancestor_[x] = ancestor_[a];
        }
    }

    const std::vector<uint32_t> &semi_;
    std::vector<uint32_t> ancestor_;
    std::vector<uint32_t> label_;
    std::vector<uint32_t> path_;
};

} // namespace

DominatorTree dominator_tree(CsrGraph graph, uint32_t root) {
    const uint32_t nodes = graph.node_count();
    DominatorTree tree;
    tree.idom.assign(nodes, kNone);
    if (root >= nodes) {
        return tree;
    }

    // 1. Depth-first preorder numbering; parent in the DFS tree, by preorder number.
    std::vector<uint32_t> number(nodes, kNone);
    std::vector<uint32_t> &vertex = tree.preorder;
    std::vector<uint32_t> parent;
    std::vector<std::pair<uint32_t, uint32_t>> stack; // (node, next edge)
    number[root] = 0;
    vertex.push_back(root);
    parent.push_back(kNone);
    stack.emplace_back(root, graph.offsets[root]);
    while (!stack.empty()) {
        auto &[v, edge] = stack.back();
        if (edge == graph.offsets[v + 1]) {
            stack.pop_back();
            continue;
        }
        const uint32_t w = graph.targets[edge++];
        if (number[w] == kNone) {
            number[w] = static_cast<uint32_t>(vertex.size());
            parent.push_back(number[v]);
            vertex.push_back(w);
            stack.emplace_back(w, graph.offsets[w]);
        }
    }
    const uint32_t n = static_cast<uint32_t>(vertex.size());

    // 2. Predecessors of each reached vertex, by preorder number.
    std::vector<uint32_t> pred_offsets(n + 1, 0);
    for (uint32_t i = 0; i < n; ++i) {
        const uint32_t v = vertex[i];
        for (uint32_t e = graph.offsets[v]; e < graph.offsets[v + 1]; ++e) {
            ++pred_offsets[number[graph.targets[e]] + 1];
        }
    }
    for (uint32_t i = 0; i < n; ++i) {
        pred_offsets[i + 1] += pred_offsets[i];
    }
    std::vector<uint32_t> preds(pred_offsets[n]);
    {
        std::vector<uint32_t> fill(pred_offsets.begin(), pred_offsets.end() - 1);
        for (uint32_t i = 0; i < n; ++i) {
            const uint32_t v = vertex[i];
            for (uint32_t e = graph.offsets[v]; e < graph.offsets[v + 1]; ++e) {
                preds[fill[number[graph.targets[e]]]++] = i;
            }
        }
    }

    graph = CsrGraph{};
    number = {};

    // 3. Semidominators in reverse preorder, implicit immediate dominators via buckets.
    std::vector<uint32_t> semi(n);
    for (uint32_t i = 0; i < n; ++i) {
        semi[i] = i;
    }
    std::vector<uint32_t> idom(n, kNone);
    std::vector<uint32_t> bucket_head(n, kNone);
    std::vector<uint32_t> bucket_next(n, kNone);
    EvalForest forest(n, semi);
    for (uint32_t w = n - 1; w >= 1; --w) {
        for (uint32_t e = pred_offsets[w]; e < pred_offsets[w + 1]; ++e) {
            const uint32_t u = forest.eval(preds[e]);
            if (semi[u] < semi[w]) {
                semi[w] = semi[u];
            }
        }
        bucket_next[w] = bucket_head[semi[w]];
        bucket_head[semi[w]] = w;
        const uint32_t p = parent[w];
        forest.link(p, w);
        for (uint32_t v = bucket_head[p]; v != kNone; v = bucket_next[v]) {
            const uint32_t u = forest.eval(v);
            idom[v] = semi[u] < semi[v] ? u : p;
        }
        bucket_head[p] = kNone;
    }
    // 4. Make the implicit dominators explicit, in preorder.
    idom[0] = 0;
    for (uint32_t w = 1; w < n; ++w) {
        if (idom[w] != semi[w]) {
            idom[w] = idom[idom[w]];
        }
    }
    for (uint32_t w = 0; w < n; ++w) {
        tree.idom[vertex[w]] = vertex[idom[w]];
    }
    return tree;
}

std::vector<uint64_t> retained_sizes(const DominatorTree &tree,
                                     const std::vector<uint64_t> &sizes) {
    std::vector<uint64_t> retained(sizes.size(), 0);
    for (uint32_t v : tree.preorder) {
        retained[v] = sizes[v];
    }
    for (auto it = tree.preorder.rbegin(); it != tree.preorder.rend(); ++it) {
        const uint32_t v = *it;
        const uint32_t d = tree.idom[v];
        if (d != v) {
            retained[d] += retained[v];
        }
    }
    return retained;
}

} // namespace memxx::gc

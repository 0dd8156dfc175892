#include "gc_walker/object_sites.hpp"

#include "core/alloc_sites.hpp"
#include "core/py_compat.h"
#include "gc_walker/heap_walk.hpp"

#include <unordered_map>

namespace memxx::gc {

namespace {

class SiteTally {
  public:
    void add(PyTypeObject *type, uint32_t site, uint64_t bytes) {
        const auto key = std::make_pair(type, site);
        auto [it, inserted] = row_of_.try_emplace(key, rows_.size());
        if (inserted) {
            rows_.push_back(SiteCount{type, site});
        }
        rows_[it->second].count += 1;
        rows_[it->second].bytes += bytes;
    }
    std::vector<SiteCount> take() { return std::move(rows_); }

  private:
    struct KeyHash {
        size_t operator()(const std::pair<PyTypeObject *, uint32_t> &k) const {
            return std::hash<uintptr_t>()(reinterpret_cast<uintptr_t>(k.first) ^
                                          (static_cast<uintptr_t>(k.second) << 40));
        }
    };
    std::unordered_map<std::pair<PyTypeObject *, uint32_t>, size_t, KeyHash> row_of_;
    std::vector<SiteCount> rows_;
};

} // namespace

uint32_t object_site(PyObject *obj, uint32_t *epoch) {
    if (core::site_tracking() == core::SiteTracking::off) {
        return 0;
    }
    const core::BlockSite found = core::site_of_block(memxx_object_block_start(obj));
    if (epoch != nullptr) {
        *epoch = found.epoch;
    }
    return found.site;
}

std::vector<SiteCount> new_object_sites(uint32_t since) {
    SiteTally tally;
    if (core::site_tracking() == core::SiteTracking::off) {
        return tally.take();
    }
    for_each_tracked([&](PyObject *o) {
        uint32_t epoch = 0;
        const uint32_t site = object_site(o, &epoch);
        if (site != 0 && epoch >= since) {
            tally.add(Py_TYPE(o), site, 0);
        }
    });
    return tally.take();
}

std::vector<SiteCount> heap_sites(const HeapGraph &graph) {
    SiteTally tally;
    if (core::site_tracking() == core::SiteTracking::off) {
        return tally.take();
    }
    for (uint32_t v = 0; v + 1 < graph.node_count(); ++v) {
        PyObject *o = graph.object(v);
        const uint32_t site = object_site(o);
        if (site != 0) {
            tally.add(Py_TYPE(o), site, graph.shallow(v));
        }
    }
    return tally.take();
}

} // namespace memxx::gc

#include "core/alloc_sites.hpp"

#include <cstring>
#include <stdexcept>
#include <vector>

#include <mimalloc.h>

#include "core/alloc_stream.hpp"
#include "core/flat_table.hpp"
#include "core/py_compat.h"
#include "core/session.hpp"

namespace memxx::core {

namespace detail {
std::atomic<int> g_site_tracking{static_cast<int>(SiteTracking::off)};
}

namespace {

struct Site {
    PyObject *code; // strong reference: keeps the address from being reused by another code
    int line;
};

// Everything below is touched with the GIL held only.
FlatTable<std::uint64_t> g_blocks;      // block address -> site << 32 | epoch
FlatTable<std::uint32_t> g_by_location; // (code, byte offset) -> site
FlatTable<std::uint32_t> g_by_line;     // (code, line) -> site
std::vector<Site, mi_stl_allocator<Site>> g_sites{Site{nullptr, 0}}; // site 0: unknown
std::uint32_t g_epoch = 1;
// The last location looked up: allocation-heavy loops allocate from the same few instructions.
PyObject *g_last_code = nullptr;
int g_last_offset = -1;
std::uint32_t g_last_site = 0;

constexpr int kKeyValueLimit = 1 << 20;

// (code, value) packed exactly: code addresses are below 2^47 and 16-byte aligned, so
// code >> 4 takes 43 bits and the value (a byte offset or a line below 2^20) the 20 above.
std::uint64_t location_key(PyObject *code, int value) noexcept {
    return (reinterpret_cast<std::uint64_t>(code) >> 4) | (static_cast<std::uint64_t>(value) << 44);
}

bool packable(PyObject *code, int value) noexcept {
    return value >= 0 && value < kKeyValueLimit &&
           (reinterpret_cast<std::uint64_t>(code) >> 47) == 0;
}

std::uint32_t intern_line(PyObject *code, int line) noexcept {
    const bool cached = packable(code, line);
    if (cached) {
        if (std::uint32_t *site = g_by_line.find(location_key(code, line))) {
            return *site;
        }
    }
    const auto site = static_cast<std::uint32_t>(g_sites.size());
    Py_INCREF(code);
    g_sites.push_back(Site{code, line});
    if (cached) {
        g_by_line.put(location_key(code, line), site);
    }
    return site;
}

std::uint32_t site_at(PyObject *code, int offset) noexcept {
    if (code == g_last_code && offset == g_last_offset) {
        return g_last_site;
    }
    std::uint32_t site = 0;
    const bool cached = packable(code, offset);
    std::uint32_t *known = cached ? g_by_location.find(location_key(code, offset)) : nullptr;
    if (known != nullptr) {
        site = *known;
    } else {
        site = intern_line(code, memxx_code_line(code, offset));
        if (cached) {
            g_by_location.put(location_key(code, offset), site);
        }
    }
    g_last_code = code;
    g_last_offset = offset;
    g_last_site = site;
    return site;
}

void record_current_site(const void *block) noexcept {
    int offset = 0;
    PyObject *code = memxx_current_code_location(&offset);
    if (code == nullptr) {
        return;
    }
    const std::uint32_t site = site_at(code, offset);
    g_blocks.put(reinterpret_cast<std::uint64_t>(block),
                 static_cast<std::uint64_t>(site) << 32 | g_epoch);
}

// 3.11/3.12 (or when another tool holds the object events): the objects events of the
// allocation stream (core/alloc_stream.hpp), GIL held, inside the re-entrancy guard.
void on_object_alloc(const void *block) noexcept {
    if (site_tracking() == SiteTracking::recording) {
        record_current_site(block);
    }
}

// Before the real free: the address may be handed out again right after it.
void on_object_free(const void *block) noexcept {
    std::uint64_t value;
    g_blocks.erase(reinterpret_cast<std::uint64_t>(block), &value);
}

// After a successful realloc that moved or kept the block.
void on_object_realloc(const void *old_block, const void *new_block) noexcept {
    std::uint64_t value = 0;
    const bool known =
        old_block != nullptr && g_blocks.erase(reinterpret_cast<std::uint64_t>(old_block), &value);
    if (known) {
        g_blocks.put(reinterpret_cast<std::uint64_t>(new_block), value);
    } else if (site_tracking() == SiteTracking::recording) {
        record_current_site(new_block);
    }
}

constexpr stream::Consumer kObjects{nullptr,           nullptr, on_object_alloc, on_object_free,
                                    on_object_realloc, nullptr, nullptr};
int g_slot = -1; // our slot in the stream while the allocator hook tells us; GIL held

// 3.13+: sites are taken when an object is created (free-list reuse included) and dropped when
// it is destroyed, through the interpreter's object events instead of the allocator hook.
bool g_object_events = false;

void on_object_created(PyObject *obj) {
    const void *block = memxx_object_block_start(obj);
    if (site_tracking() == SiteTracking::recording) {
        record_current_site(block);
    } else {
        // An object moved by realloc (str, tuple resizes) is re-created without a destroy
        // event for its old address: a tag left there must not name a newcomer.
        std::uint64_t value;
        g_blocks.erase(reinterpret_cast<std::uint64_t>(block), &value);
    }
}

void on_object_destroyed(PyObject *obj) {
    std::uint64_t value;
    g_blocks.erase(reinterpret_cast<std::uint64_t>(memxx_object_block_start(obj)), &value);
}

void drop_sites() {
    g_blocks.clear();
    g_by_location.clear();
    g_by_line.clear();
    g_last_code = nullptr;
    g_last_offset = -1;
    g_last_site = 0;
    // Decref after clearing: freeing a code object re-enters the (now idle) hook.
    std::vector<Site, mi_stl_allocator<Site>> sites;
    sites.swap(g_sites);
    g_sites.push_back(Site{nullptr, 0});
    for (const Site &s : sites) {
        Py_XDECREF(s.code);
    }
}

} // namespace

void sites_start() {
    if (site_tracking() == SiteTracking::off) {
        g_object_events = memxx_object_events_install(on_object_created, on_object_destroyed);
        if (!g_object_events) {
            g_slot = session_subscribe(&kObjects, SourceNeeds::pymem);
            if (g_slot < 0) {
                throw std::runtime_error(
                    "the allocation stream has no free slot for allocation sites");
            }
        }
    } else if (g_object_events) {
        // Another tracer (tracemalloc's) may have taken the object events since.
        memxx_object_events_reclaim();
    }
    detail::g_site_tracking.store(static_cast<int>(SiteTracking::recording),
                                  std::memory_order_release);
}

void sites_stop(bool forget) {
    if (!forget) {
        if (site_tracking() == SiteTracking::recording) {
            detail::g_site_tracking.store(static_cast<int>(SiteTracking::forgetting),
                                          std::memory_order_release);
        }
        return;
    }
    const bool attached = site_tracking() != SiteTracking::off;
    detail::g_site_tracking.store(static_cast<int>(SiteTracking::off), std::memory_order_release);
    if (attached) {
        if (g_object_events) {
            memxx_object_events_remove();
            g_object_events = false;
        } else {
            session_unsubscribe(g_slot);
            g_slot = -1;
        }
    }
    drop_sites();
}

BlockSite site_of_block(const void *block) noexcept {
    const std::uint64_t *value = g_blocks.find(reinterpret_cast<std::uint64_t>(block));
    if (value == nullptr) {
        return BlockSite{};
    }
    return BlockSite{static_cast<std::uint32_t>(*value >> 32),
                     static_cast<std::uint32_t>(*value & 0xffffffffu)};
}

std::uint32_t sites_new_epoch() noexcept { return ++g_epoch; }

std::uint32_t sites_epoch() noexcept { return g_epoch; }

PyObject *site_code(std::uint32_t site) noexcept {
    return site < g_sites.size() ? g_sites[site].code : nullptr;
}

int site_line(std::uint32_t site) noexcept {
    return site < g_sites.size() ? g_sites[site].line : 0;
}

std::size_t site_count() noexcept { return g_sites.size(); }

SiteTableStats sites_stats() noexcept {
    return SiteTableStats{g_blocks.size(), g_blocks.memory_bytes() + g_by_location.memory_bytes() +
                                               g_by_line.memory_bytes() +
                                               g_sites.capacity() * sizeof(Site)};
}

} // namespace memxx::core

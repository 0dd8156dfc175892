// Allocation sites: which line of Python code allocated each live object.
//
// While recording, every object is tagged (by the address of its memory block) with the
// innermost Python frame's code object and line, interned as a site number, and with the
// current epoch; its end removes the tag. On 3.13+ the interpreter's object events (PyRefTracer)
// say when an object is created, free-list reuse included, and destroyed; on 3.11/3.12 (or when
// another tool holds those events) the allocator hook tags every block the OBJ domain hands
// out and untags it when freed (the objects events of the allocation stream,
// core/alloc_stream.hpp), so an object taken from a free list keeps the tag of that memory's
// earlier owner. Objects made before recording started, or by C code with no Python frame on the
// stack, have no site.
//
// All of it runs with the GIL held: the OBJ domain is only called with the GIL, and so are the
// queries. The tables live in mimalloc memory, never in the hooked allocator.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#define PY_SSIZE_T_CLEAN
#include <Python.h>

namespace memxx::core {

enum class SiteTracking : int {
    off = 0,        // no table
    forgetting = 1, // no new sites; frees still remove theirs, so the recorded ones stay valid
    recording = 2,  // new blocks get a site
};

namespace detail {
extern std::atomic<int> g_site_tracking;
}

inline SiteTracking site_tracking() noexcept {
    return static_cast<SiteTracking>(detail::g_site_tracking.load(std::memory_order_relaxed));
}

// Starts recording (installs the allocator hook if needed). GIL held.
void sites_start();
// Stops recording. With `forget`, drops every recorded site and lets the hook go; otherwise the
// hook keeps removing the sites of freed blocks. GIL held.
void sites_stop(bool forget);

// --- queries (GIL held) ------------------------------------------------------------------------
struct BlockSite {
    std::uint32_t site = 0;  // 0: unknown
    std::uint32_t epoch = 0; // the epoch current when the block was allocated
};
// The site recorded for the block starting at `block`; site 0 if none.
BlockSite site_of_block(const void *block) noexcept;

// Starts a new epoch; blocks allocated from now on carry the returned number.
std::uint32_t sites_new_epoch() noexcept;
std::uint32_t sites_epoch() noexcept;

// The code object (borrowed; kept alive by the site table) and line of a site, 1-based.
PyObject *site_code(std::uint32_t site) noexcept;
int site_line(std::uint32_t site) noexcept;
std::size_t site_count() noexcept; // sites interned so far, including the unknown site 0

struct SiteTableStats {
    std::size_t live_blocks; // blocks that carry a site
    std::size_t table_bytes; // memory of the block table and the site tables
};
SiteTableStats sites_stats() noexcept;

} // namespace memxx::core

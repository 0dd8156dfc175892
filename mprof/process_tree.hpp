// Readers of another process's memory and descendants from /proc (Linux), for the sampler.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace memxx::mprof {

// Resident set size of `pid` in bytes from /proc/<pid>/statm; -1 if it cannot be read.
std::int64_t rss_bytes(int pid) noexcept;

// What "memory" means: resident set (what mprof's default psutil backend reads), proportional
// set (shared pages divided among their users) or unique set (private pages only).
enum class MemoryMetric { rss, pss, uss };

// `metric` of `pid` in bytes: statm for RSS, smaps_rollup for PSS/USS; -1 if unreadable.
std::int64_t memory_bytes(int pid, MemoryMetric metric) noexcept;

// True while `pid` exists and is not a zombie (a zombie has exited; it only waits to be reaped).
bool process_running(int pid) noexcept;

// Every live descendant of `pid` (children, grandchildren, ...), parents before their children.
std::vector<int> descendants(int pid);

// One reading of a process tree: the process itself and, if asked, each live descendant.
struct TreeMemory {
    std::int64_t own = 0;
    std::int64_t descendants_total = 0;
    std::vector<std::pair<int, std::int64_t>> descendants; // (pid, bytes)
};

// `metric` of `pid` (and of its descendants when `with_descendants`); false when `pid` has gone
// (a zombie's statm reads all zeros: it has exited and only waits to be reaped).
bool read_tree_memory(int pid, MemoryMetric metric, bool with_descendants, TreeMemory& out);

// The command line of `pid` with arguments joined by spaces; empty if it cannot be read.
std::string command_line(int pid);

} // namespace memxx::mprof

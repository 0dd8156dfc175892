// Readers of the process's memory from /proc, with no allocation per sample.
#pragma once

#include <cstdint>

namespace memxx::core {

// Resident set size of this process in bytes, from a kept /proc/self/statm descriptor
// (about 1.5 us a read); -1 if it cannot be read.
std::int64_t current_rss_bytes() noexcept;

// The kernel's high-water mark of this process's resident set (VmHWM), in bytes; -1 if unknown.
std::int64_t peak_rss_bytes() noexcept;

// Restarts that high-water mark from the current resident set (writes 5 to
// /proc/self/clear_refs, Linux 4.0+); false where the kernel does not allow it.
bool restart_peak_rss() noexcept;

// What ends where an anonymous mapping begins: a mapping with no access (a thread stack's guard
// page; also reported for a mapping whose first page is a guard region, as glibc 2.42+ guards
// stacks), a file's mapping (the anonymous part is that object's .bss), or anything else.
enum class MappingBelow { other, no_access, file };
// Calls visit(begin, end, below, context) for each private read-write mapping of no file in
// /proc/self/maps (not the brk heap, not the main stack). False when the file cannot be read.
using AnonymousMappingVisitor = void (*)(std::uintptr_t begin, std::uintptr_t end,
                                         MappingBelow below, void *context);
bool for_each_anonymous_mapping(AnonymousMappingVisitor visit, void *context) noexcept;

} // namespace memxx::core

// A jemalloc linked into an extension under a prefix of its own with its symbols hidden, as
// polars links tikv-jemallocator ("_rjem_"): its blocks never pass through a slot we rewrite, and
// its pages say more about its caches than about the program (polars' read_csv: 64 MiB of pages
// for a 45.8 MiB frame). So its blocks are counted as its own hook API reports them
// (`experimental.hooks.install`, jemalloc 5.1+, on every thread): each block at its requested
// size, like a malloc block, and the mappings it makes are not counted as pages. The rest of the
// object (pyarrow's libarrow links mimalloc beside a jemalloc) is counted as before.
//
// Found by the object's symbol table on disk (`<prefix>mallctl`), trusted only when the loaded
// code matches the file at that symbol and the allocator says it is jemalloc 5.1 or later.
//
// native_hooks.cpp calls everything here with its g_patch_mutex held (find, install, remove,
// note_adopted); the hooks themselves run on any thread, with or without the GIL, inside the
// allocator's call. No Python API.
#pragma once

#include <cstdint>
#include <link.h>

namespace memxx::core::embedded {

// An embedded jemalloc: its mallctl, and where its code lies (its functions are linked together:
// the mappings it makes are the ones mmap is called for from there).
struct Jemalloc {
    void *mallctl = nullptr; // nullptr: none
    std::uintptr_t code_begin = 0;
    std::uintptr_t code_end = 0;
};

// The object's embedded jemalloc, if any. Reads the object's file; call from a dl_iterate_phdr
// callback (the object stays loaded).
Jemalloc find_jemalloc(const dl_phdr_info &object) noexcept;

// Our hooks in that jemalloc: the handle that removes them, or nullptr when it refused.
void *install_hooks(const Jemalloc &jemalloc) noexcept;
void remove_hooks(const Jemalloc &jemalloc, void *handle) noexcept;

// A mapping function called from the code of a jemalloc whose blocks our hooks count: its pages
// are not counted. `return_address` is the hook's own return address.
bool called_by_hooked_jemalloc(const void *return_address) noexcept;

// Counting on or off (the hooks stay installed briefly after removal: jemalloc does not wait for
// threads inside one).
void set_counting(bool on) noexcept;

// A mapping made before the session and adopted by core/mapped_pages: should an embedded
// jemalloc hand out a block inside it, it is that allocator's, and its pages stop counting (the
// blocks count instead). Noted before the hooks are installed; forgotten when the session ends.
void note_adopted(std::uintptr_t begin, std::uintptr_t end) noexcept;
void forget_adopted() noexcept;

} // namespace memxx::core::embedded

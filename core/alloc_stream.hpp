// The allocation stream: what the sources of allocations see, told to the consumers that
// subscribe to it (the peak recorder, allocation sites). The sources (pymem_hooks.cpp,
// numpy_hooks.cpp, native_hooks.cpp through alloc_accounting.hpp; mapped_pages.cpp) call the
// event functions below and include no consumer's header; a consumer includes this header and
// core/session.hpp (which starts the sources for it), never a source's header or
// alloc_accounting.hpp. tests/python/test_core_layers.py fails on an include either way.
// A new consumer is one new file: a `Consumer` with the events it wants, and session_subscribe.
//
// The events, and from where they come:
//   blocks   every block any source hands out or takes back: any thread, with or without the
//            GIL, inside the re-entrancy guard. block_free comes before the real free (the
//            address may be handed out again right after it); a realloc is the old block's free
//            before the real call and the new block's alloc after it (a failed realloc leaves
//            its block freed).
//   objects  the blocks of the OBJ domain (objects): GIL held, inside the re-entrancy guard;
//            object_free before the real free, object_realloc after a successful one.
//   mappings anonymous mappings native code makes (native_hooks.cpp): mapping_maker is asked
//            for the calling code's tag when one is made (0: none), kept with the mapping by
//            core/mapped_pages, which reports its pages as they come and go with pages_changed,
//            outside its own lock. At most one consumer tags mappings.
//
// Cost: a source tests one relaxed load of the flags word per event; then, when some consumer
// wants the event, one indirect call (to the consumer's own function when it is the only one).
// A consumer's functions may still be called shortly after it unsubscribed, by a thread that
// read the flags before: they check the consumer's own state (a Consumer is never freed).
//
// Subscribing and unsubscribing: GIL held (core/session.hpp does it).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace memxx::core::stream {

struct Consumer {
    // nullptr: the consumer does not want that event. A block's address is a key, never read
    // through (a new block's bytes are not yet initialised): passed as an integer.
    void (*block_alloc)(std::uintptr_t address, std::size_t size) noexcept;
    void (*block_free)(std::uintptr_t address) noexcept;
    void (*object_alloc)(const void *block) noexcept;
    void (*object_free)(const void *block) noexcept;
    void (*object_realloc)(const void *old_block, const void *new_block) noexcept;
    std::uint32_t (*mapping_maker)() noexcept;
    void (*pages_changed)(std::uint32_t maker, std::int64_t bytes) noexcept;
};

constexpr int kMaxConsumers = 8;

enum Kind : unsigned { kBlocks = 0, kObjects = 1, kMappings = 2 };

// Bit k is set while some consumer wants events of kind k.
extern std::atomic<unsigned> g_wants;

inline bool wanted(Kind kind) noexcept {
    return (g_wants.load(std::memory_order_relaxed) & (1u << kind)) != 0;
}

// What the sources call for each event: the lone subscriber's function when one wants the event
// (one indirect call, no loop), a loop over the subscribers when several do, a function that
// does nothing when none does. Changed by subscribe/unsubscribe only.
struct Dispatch {
    std::atomic<void (*)(std::uintptr_t, std::size_t) noexcept> block_alloc;
    std::atomic<void (*)(std::uintptr_t) noexcept> block_free;
    std::atomic<void (*)(const void *) noexcept> object_alloc;
    std::atomic<void (*)(const void *) noexcept> object_free;
    std::atomic<void (*)(const void *, const void *) noexcept> object_realloc;
    std::atomic<std::uint32_t (*)() noexcept> mapping_maker;
    std::atomic<void (*)(std::uint32_t, std::int64_t) noexcept> pages_changed;
};
extern Dispatch g_dispatch;

// --- the sources' side: test wanted(kind) first, then call ------------------------------------
inline void block_alloc(const void *address, std::size_t size) noexcept {
    g_dispatch.block_alloc.load(std::memory_order_relaxed)(
        reinterpret_cast<std::uintptr_t>(address), size);
}
inline void block_free(const void *address) noexcept {
    g_dispatch.block_free.load(std::memory_order_relaxed)(
        reinterpret_cast<std::uintptr_t>(address));
}
inline void object_alloc(const void *block) noexcept {
    g_dispatch.object_alloc.load(std::memory_order_relaxed)(block);
}
inline void object_free(const void *block) noexcept {
    g_dispatch.object_free.load(std::memory_order_relaxed)(block);
}
inline void object_realloc(const void *old_block, const void *new_block) noexcept {
    g_dispatch.object_realloc.load(std::memory_order_relaxed)(old_block, new_block);
}
// The tag of the code making a mapping now (the first tagging consumer's); 0 when none.
inline std::uint32_t mapping_maker() noexcept {
    return wanted(kMappings) ? g_dispatch.mapping_maker.load(std::memory_order_relaxed)() : 0;
}
inline void pages_changed(std::uint32_t maker, std::int64_t bytes) noexcept {
    if (wanted(kMappings)) {
        g_dispatch.pages_changed.load(std::memory_order_relaxed)(maker, bytes);
    }
}

// --- the session's side (core/session.cpp; GIL held) ------------------------------------------
// The slot of a new subscriber (its events wanted from now on), or -1 when all are taken.
int subscribe(const Consumer *consumer) noexcept;
// Its events are no longer wanted; the slot is free again.
void unsubscribe(int slot) noexcept;

} // namespace memxx::core::stream

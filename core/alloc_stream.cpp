#include "core/alloc_stream.hpp"

namespace memxx::core::stream {

namespace {

// The subscribers, by slot; changed with the GIL held. A Consumer is never freed.
std::atomic<const Consumer *> g_consumers[kMaxConsumers] = {};

// Calls `call(consumer)` for each subscriber.
template <class Call> void each(Call &&call) noexcept {
    for (auto &slot : g_consumers) {
        if (const Consumer *consumer = slot.load(std::memory_order_acquire)) {
            call(*consumer);
        }
    }
}

// Several consumers want an event: each one's function for it, where it has one.
template <auto Field, class... Args> void many(Args... args) noexcept {
    each([&](const Consumer &c) {
        if (c.*Field != nullptr) {
            (c.*Field)(args...);
        }
    });
}

// No consumer wants an event (a source that read the flags just before an unsubscribe).
void no_block_alloc(std::uintptr_t, std::size_t) noexcept {}
void no_block_free(std::uintptr_t) noexcept {}
void no_block(const void *) noexcept {}
void no_realloc(const void *, const void *) noexcept {}
std::uint32_t no_maker() noexcept { return 0; }
void no_pages(std::uint32_t, std::int64_t) noexcept {}

// Sets the dispatch of one event: `none`, the lone subscriber's function, or `several`.
// Returns whether anyone wants it.
template <class Fn> bool route(std::atomic<Fn> &to, Fn Consumer::*field, Fn none, Fn several) {
    int wanting = 0;
    Fn lone = none;
    each([&](const Consumer &c) {
        if (c.*field != nullptr) {
            ++wanting;
            lone = c.*field;
        }
    });
    to.store(wanting == 0 ? none : wanting == 1 ? lone : several, std::memory_order_release);
    return wanting > 0;
}

// Routes every event as the subscribers want them now, then publishes the flags.
void update() noexcept {
    unsigned wants = 0;
    bool blocks = route(g_dispatch.block_alloc, &Consumer::block_alloc, no_block_alloc,
                        many<&Consumer::block_alloc, std::uintptr_t, std::size_t>);
    blocks |= route(g_dispatch.block_free, &Consumer::block_free, no_block_free,
                    many<&Consumer::block_free, std::uintptr_t>);
    bool objects = route(g_dispatch.object_alloc, &Consumer::object_alloc, no_block,
                         many<&Consumer::object_alloc, const void *>);
    objects |= route(g_dispatch.object_free, &Consumer::object_free, no_block,
                     many<&Consumer::object_free, const void *>);
    objects |= route(g_dispatch.object_realloc, &Consumer::object_realloc, no_realloc,
                     many<&Consumer::object_realloc, const void *, const void *>);
    bool mappings = route(g_dispatch.pages_changed, &Consumer::pages_changed, no_pages,
                          many<&Consumer::pages_changed, std::uint32_t, std::int64_t>);
    // At most one consumer tags mappings: the first one's tag is kept.
    std::uint32_t (*maker)() noexcept = no_maker;
    each([&](const Consumer &c) {
        if (maker == no_maker && c.mapping_maker != nullptr) {
            maker = c.mapping_maker;
        }
    });
    g_dispatch.mapping_maker.store(maker, std::memory_order_release);
    mappings |= maker != no_maker;
    wants |= blocks ? 1u << kBlocks : 0;
    wants |= objects ? 1u << kObjects : 0;
    wants |= mappings ? 1u << kMappings : 0;
    g_wants.store(wants, std::memory_order_release);
}

} // namespace

std::atomic<unsigned> g_wants{0};
Dispatch g_dispatch{{no_block_alloc}, {no_block_free}, {no_block}, {no_block},
                    {no_realloc},     {no_maker},      {no_pages}};

int subscribe(const Consumer *consumer) noexcept {
    for (int slot = 0; slot < kMaxConsumers; ++slot) {
        if (g_consumers[slot].load(std::memory_order_relaxed) == nullptr) {
            // Routed before the flags say so: a source that sees a flag finds the consumer.
            g_consumers[slot].store(consumer, std::memory_order_release);
            update();
            return slot;
        }
    }
    return -1;
}

void unsubscribe(int slot) noexcept {
    if (slot < 0 || slot >= kMaxConsumers) {
        return;
    }
    g_consumers[slot].store(nullptr, std::memory_order_release);
    update();
}

} // namespace memxx::core::stream

#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "core/alloc_stream.hpp"

namespace stream = memxx::core::stream;

namespace {

// What each test consumer saw, as (consumer, address, size) for blocks and (consumer, block)
// for objects.
struct Seen {
    int consumer;
    std::uintptr_t address;
    std::size_t size;
    bool operator==(const Seen &o) const {
        return consumer == o.consumer && address == o.address && size == o.size;
    }
};
std::vector<Seen> g_seen;

template <int C> void block_alloc(std::uintptr_t address, std::size_t size) noexcept {
    g_seen.push_back(Seen{C, address, size});
}
template <int C> void block_free(std::uintptr_t address) noexcept {
    g_seen.push_back(Seen{C, address, 0});
}
template <int C> void object_alloc(const void *block) noexcept {
    g_seen.push_back(Seen{C, reinterpret_cast<std::uintptr_t>(block), 1});
}
template <int C> std::uint32_t maker() noexcept { return 100 + C; }

constexpr stream::Consumer kBlocks1{block_alloc<1>, block_free<1>, nullptr, nullptr,
                                    nullptr,        nullptr,       nullptr};
constexpr stream::Consumer kBlocks2{block_alloc<2>, nullptr, nullptr, nullptr,
                                    nullptr,        maker<2>, nullptr};
constexpr stream::Consumer kObjects3{nullptr, nullptr,  object_alloc<3>, nullptr,
                                     nullptr, maker<3>, nullptr};

const void *at(std::uintptr_t value) { return reinterpret_cast<const void *>(value); }

} // namespace

TEST_CASE("nobody subscribed: no kind of event is wanted") {
    CHECK_FALSE(stream::wanted(stream::kBlocks));
    CHECK_FALSE(stream::wanted(stream::kObjects));
    CHECK_FALSE(stream::wanted(stream::kMappings));
    CHECK(stream::mapping_maker() == 0);
}

TEST_CASE("each event reaches the consumers that want it, one or several, until they leave") {
    g_seen.clear();
    const int one = stream::subscribe(&kBlocks1);
    REQUIRE(one >= 0);
    CHECK(stream::wanted(stream::kBlocks));
    CHECK_FALSE(stream::wanted(stream::kObjects));
    stream::block_alloc(at(0x1000), 64);
    stream::block_free(at(0x1000));
    CHECK(g_seen == std::vector<Seen>{{1, 0x1000, 64}, {1, 0x1000, 0}});

    g_seen.clear();
    const int two = stream::subscribe(&kBlocks2);
    const int three = stream::subscribe(&kObjects3);
    REQUIRE(two >= 0);
    REQUIRE(three >= 0);
    stream::block_alloc(at(0x2000), 32); // both block consumers
    stream::block_free(at(0x2000));      // only the first wants frees
    stream::object_alloc(at(0x3000));
    CHECK(g_seen == std::vector<Seen>{{1, 0x2000, 32}, {2, 0x2000, 32}, {1, 0x2000, 0},
                                      {3, 0x3000, 1}});
    CHECK(stream::wanted(stream::kMappings));
    CHECK(stream::mapping_maker() == 102); // the first tagging consumer's tag

    g_seen.clear();
    stream::unsubscribe(one);
    stream::block_alloc(at(0x4000), 16);
    stream::block_free(at(0x4000)); // nobody wants frees now: a source that called anyway
    CHECK(g_seen == std::vector<Seen>{{2, 0x4000, 16}});

    stream::unsubscribe(two);
    CHECK_FALSE(stream::wanted(stream::kBlocks));
    CHECK(stream::mapping_maker() == 103);
    stream::unsubscribe(three);
    CHECK_FALSE(stream::wanted(stream::kObjects));
    CHECK_FALSE(stream::wanted(stream::kMappings));
}

TEST_CASE("a slot is handed out again once free; -1 when every slot is taken") {
    std::vector<int> slots;
    for (int i = 0; i < stream::kMaxConsumers; ++i) {
        slots.push_back(stream::subscribe(&kBlocks1));
        REQUIRE(slots.back() == i);
    }
    CHECK(stream::subscribe(&kBlocks2) == -1);
    stream::unsubscribe(slots[3]);
    CHECK(stream::subscribe(&kBlocks2) == 3);
    for (int i = 0; i < stream::kMaxConsumers; ++i) {
        stream::unsubscribe(i);
    }
    CHECK_FALSE(stream::wanted(stream::kBlocks));
    CHECK_FALSE(stream::wanted(stream::kMappings));
}

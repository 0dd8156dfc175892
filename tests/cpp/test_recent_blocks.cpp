#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <unordered_map>

#include "core/live_blocks.hpp"
#include "core/recent_blocks.hpp"

using memxx::core::LiveBlocks;
using memxx::core::RecentBlocks;

namespace {
const void *address(std::uintptr_t value) { return reinterpret_cast<const void *>(value); }
} // namespace

TEST_CASE("a recent block is taken back with its size, once") {
    RecentBlocks recent;
    RecentBlocks::Moves moves;
    REQUIRE(recent.put(address(0x10000), 48, &moves) == RecentBlocks::Put::kept);
    CHECK(recent.count() == 1);
    std::size_t size = 0;
    REQUIRE(recent.take(address(0x10000), &size));
    CHECK(size == 48);
    CHECK_FALSE(recent.take(address(0x10000), &size));
    CHECK(recent.count() == 0);
}

TEST_CASE("a block whose size is forgotten stays, and its free gives back nothing") {
    RecentBlocks recent;
    RecentBlocks::Moves moves;
    REQUIRE(recent.put(address(0x30000), 28, &moves) == RecentBlocks::Put::kept);
    std::size_t size = 0;
    REQUIRE(recent.forget_size(address(0x30000), &size));
    CHECK(size == 28);
    CHECK(recent.count() == 1);
    REQUIRE(recent.take(address(0x30000), &size));
    CHECK(size == 0);
    CHECK_FALSE(recent.forget_size(address(0x30000), &size)); // gone
    CHECK_FALSE(recent.forget_size(address(0x30008), &size)); // never there, odd address
}

TEST_CASE("blocks the cache cannot hold are left to the table") {
    RecentBlocks recent;
    RecentBlocks::Moves moves;
    using Put = RecentBlocks::Put;
    CHECK(recent.put(address(0x10008), 24, &moves) == Put::unfit);
    CHECK(recent.put(address(std::uintptr_t{1} << 50), 5, &moves) == Put::unfit);
    CHECK(recent.put(address(0x20000), std::size_t{1} << 21, &moves) == Put::unfit);
    CHECK(recent.count() == 0);
    std::size_t size = 0;
    CHECK_FALSE(recent.take(address(0x10008), &size));
}

// The slots follow the address: a run of neighbouring blocks fills neighbouring slots, and the
// run 32 KiB on pushes them out to the table in the order they were made.
TEST_CASE("blocks leave the cache for the table in address order") {
    RecentBlocks recent;
    RecentBlocks::Moves moves;
    const std::uintptr_t base = 0x7f0000100000;
    for (std::uintptr_t i = 0; i < RecentBlocks::kSlots; ++i) {
        REQUIRE(recent.put(address(base + 16 * i), 32, &moves) == RecentBlocks::Put::kept);
    }
    CHECK(recent.count() == RecentBlocks::kSlots);
    for (std::uintptr_t i = 0; i < RecentBlocks::kSlots; ++i) {
        REQUIRE(recent.put(address(base + 32768 + 16 * i), 48, &moves) ==
                RecentBlocks::Put::displaced);
        REQUIRE(moves.to_table == address(base + 16 * i));
        CHECK(moves.to_table_size == 32);
    }
}

// The allocator hook's use of the two: every block is in the cache or in the table, and every
// free finds its exact size in one of them, however the cache's slots collide.
TEST_CASE("cache and table together keep every live block's size exactly") {
    RecentBlocks recent;
    LiveBlocks table;
    std::unordered_map<std::uintptr_t, std::size_t> truth;
    std::mt19937_64 random(7);
    std::vector<std::uintptr_t> live;
    std::size_t moved = 0;
    auto track = [&](std::uintptr_t addr, std::size_t size) {
        RecentBlocks::Moves moves;
        switch (recent.put(address(addr), size, &moves)) {
        case RecentBlocks::Put::kept:
            break;
        case RecentBlocks::Put::displaced:
            REQUIRE(table.insert(moves.to_table, moves.to_table_size));
            ++moved;
            break;
        case RecentBlocks::Put::unfit:
            REQUIRE(table.insert(address(addr), size));
            break;
        }
    };
    auto untrack = [&](std::uintptr_t addr, std::size_t *size) {
        return recent.take(address(addr), size) || table.erase(address(addr), size);
    };
    std::uintptr_t next = 0x100000;
    for (int step = 0; step < 200000; ++step) {
        if (live.empty() || random() % 3 != 0) {
            const std::uintptr_t addr = random() % 50 == 0 ? next + 8 : next; // some odd ones
            next += 16 * (1 + random() % 8);
            const std::size_t size = 1 + random() % 600;
            track(addr, size);
            truth[addr] = size;
            live.push_back(addr);
        } else {
            const std::size_t pick = random() % 4 == 0 ? random() % live.size() : live.size() - 1;
            const std::uintptr_t addr = live[pick];
            live[pick] = live.back();
            live.pop_back();
            std::size_t size = 0;
            REQUIRE(untrack(addr, &size));
            CHECK(size == truth[addr]);
            truth.erase(addr);
        }
        REQUIRE(recent.count() + table.count() == truth.size());
    }
    CHECK(moved > 1000); // the cache's slots collided and blocks moved on to the table
    std::size_t size = 0;
    CHECK_FALSE(untrack(0x50, &size)); // never allocated
    for (std::uintptr_t addr : live) {
        REQUIRE(untrack(addr, &size));
        CHECK(size == truth[addr]);
    }
    CHECK(recent.count() + table.count() == 0);
}

#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <unordered_map>
#include <vector>
#include <algorithm>

#include "core/live_blocks.hpp"

using memxx::core::LiveBlocks;

namespace {
const void *address(std::uintptr_t value) { return reinterpret_cast<const void *>(value); }
} // namespace

TEST_CASE("a block inserted is found with its size and erased once") {
    LiveBlocks table;
    REQUIRE(table.insert(address(0x10000), 48));
    CHECK(table.count() == 1);
    std::size_t size = 0;
    REQUIRE(table.erase(address(0x10000), &size));
    CHECK(size == 48);
    CHECK_FALSE(table.erase(address(0x10000), &size));
    CHECK(table.count() == 0);
}

TEST_CASE("empty() holds exactly while no block is kept, side-map blocks included") {
    LiveBlocks table;
    CHECK(table.empty());
    REQUIRE(table.insert(address(0x10000), 48));
    CHECK_FALSE(table.empty());
    std::size_t size = 0;
    REQUIRE(table.erase(address(0x10000), &size));
    CHECK(table.empty());
    REQUIRE(table.insert(address(0x10008), 16)); // odd address: the side map
    CHECK_FALSE(table.empty());
    REQUIRE(table.erase(address(0x10008), &size));
    CHECK(table.empty());
}

TEST_CASE("a free of an address the table never saw is unknown") {
    LiveBlocks table;
    table.insert(address(0x20000), 16);
    std::size_t size = 12345;
    CHECK_FALSE(table.erase(address(0x30000), &size));
    CHECK(size == 12345);
    CHECK(table.count() == 1);
}

TEST_CASE("large sizes and odd addresses keep their exact size") {
    LiveBlocks table;
    const std::size_t big = (std::size_t{1} << 21) + 7; // past the 21-bit slot field
    REQUIRE(table.insert(address(0x40000), big));
    REQUIRE(table.insert(address(0x40008), 24));                // not 16-byte aligned
    REQUIRE(table.insert(address(std::uintptr_t{1} << 50), 5)); // above 2^47
    std::size_t size = 0;
    REQUIRE(table.erase(address(0x40000), &size));
    CHECK(size == big);
    REQUIRE(table.erase(address(0x40008), &size));
    CHECK(size == 24);
    REQUIRE(table.erase(address(std::uintptr_t{1} << 50), &size));
    CHECK(size == 5);
    CHECK(table.count() == 0);
}

TEST_CASE("re-inserting an address replaces its size (a realloc in place)") {
    LiveBlocks table;
    table.insert(address(0x50000), 100);
    table.insert(address(0x50000), 4 << 20);
    table.insert(address(0x50000), 200);
    CHECK(table.count() == 1);
    std::size_t size = 0;
    REQUIRE(table.erase(address(0x50000), &size));
    CHECK(size == 200);
}

// A burst of frees moves no block; the next insert shrinks the table to fit, in one step.
TEST_CASE("the table grows, shrinks at the insert after frees and stays within 24 B per block") {
    LiveBlocks table;
    std::mt19937_64 rng(42);
    std::unordered_map<std::uintptr_t, std::size_t> truth;
    for (int i = 0; i < 200000; ++i) {
        const std::uintptr_t a = (rng() & ((std::uintptr_t{1} << 46) - 1)) & ~std::uintptr_t{15};
        if (a == 0 || truth.count(a)) {
            continue;
        }
        const std::size_t s = rng() % 4096;
        REQUIRE(table.insert(address(a), s));
        truth[a] = s;
    }
    CHECK(table.count() == truth.size());
    CHECK(static_cast<double>(table.memory_bytes()) / table.count() <= 24.0);
    // Erase three quarters, checking every size on the way out.
    std::size_t erased = 0;
    for (auto it = truth.begin(); it != truth.end();) {
        if (erased++ % 4 == 3) {
            ++it;
            continue;
        }
        std::size_t size = 0;
        REQUIRE(table.erase(address(it->first), &size));
        REQUIRE(size == it->second);
        it = truth.erase(it);
    }
    CHECK(table.count() == truth.size());
    const std::size_t after_frees = table.capacity();
    CHECK(after_frees >= 4 * table.count()); // still the size it had, under 1/4 full
    const std::uintptr_t extra = 0x7fff00000000;
    REQUIRE(table.insert(address(extra), 24));
    CHECK(table.capacity() < after_frees);
    CHECK(static_cast<double>(table.memory_bytes()) / table.count() <= 24.0);
    std::size_t extra_size = 0;
    REQUIRE(table.erase(address(extra), &extra_size));
    CHECK(extra_size == 24);
    for (const auto &[a, s] : truth) {
        std::size_t size = 0;
        REQUIRE(table.contains(address(a)));
        REQUIRE(table.erase(address(a), &size));
        REQUIRE(size == s);
    }
    CHECK(table.count() == 0);
    REQUIRE(table.insert(address(extra), 24));
    CHECK(table.capacity() == LiveBlocks::kMinCapacity);
}

// Blocks of neighbouring addresses share slots (a run per stretch of memory): erasing from the
// middle of long runs leaves tombstones, which inserts reuse and rehashes remove. Every lookup
// must still find exactly the live blocks, and the table must not fill up with tombstones.
TEST_CASE("churn in long runs of neighbouring blocks keeps every size exact") {
    LiveBlocks table(LiveBlocks::kMinCapacity, false);
    std::mt19937_64 rng(11);
    std::unordered_map<std::uintptr_t, std::size_t> truth;
    std::vector<std::uintptr_t> live;
    std::uintptr_t next = 0x7f0000000000;
    std::size_t peak_capacity = 0;
    std::size_t most_tombstones = 0;
    for (int step = 0; step < 400000; ++step) {
        const bool grow = step < 150000 || (step < 300000 ? rng() % 2 == 0 : rng() % 4 == 0);
        if (grow || live.empty()) {
            const std::uintptr_t a = next;
            next += 16 * (1 + rng() % 2); // dense: most granules of a stretch are blocks
            const std::size_t s = 1 + rng() % 500;
            REQUIRE(table.insert(address(a), s));
            truth[a] = s;
            live.push_back(a);
        } else {
            const std::size_t pick = rng() % live.size();
            const std::uintptr_t a = live[pick];
            live[pick] = live.back();
            live.pop_back();
            std::size_t size = 0;
            REQUIRE(table.erase(address(a), &size));
            REQUIRE(size == truth[a]);
            truth.erase(a);
            std::size_t again = 0;
            REQUIRE_FALSE(table.erase(address(a), &again));
        }
        REQUIRE(table.count() == truth.size());
        peak_capacity = std::max(peak_capacity, table.capacity());
        most_tombstones = std::max(most_tombstones, table.tombstones());
    }
    CHECK(most_tombstones > 100); // the long runs were cut short
    for (std::uintptr_t a : live) {
        REQUIRE(table.contains(address(a)));
    }
    CHECK_FALSE(table.contains(address(next + 4096)));
    // Tombstones never made it grow past what the live blocks needed (70 % load at most).
    CHECK(peak_capacity <= 2 * std::size_t{1} << (64 - __builtin_clzll(150000 * 10 / 7)));
    table.shrink();
    CHECK(static_cast<double>(table.memory_bytes()) / table.count() <= 24.0);
}

TEST_CASE("clear forgets every block") {
    LiveBlocks table;
    for (std::uintptr_t a = 16; a < 16 * 5000; a += 16) {
        table.insert(address(a), 8);
    }
    table.clear();
    CHECK(table.count() == 0);
    std::size_t size;
    CHECK_FALSE(table.erase(address(160), &size));
}

// The site table's hash table against std::unordered_map, with keys that collide on purpose.
#include <catch2/catch.hpp>

#include "core/flat_table.hpp"

#include <random>
#include <unordered_map>

using memxx::core::FlatTable;

TEST_CASE("inserted keys are found, overwritten and erased") {
    // given
    FlatTable<std::uint64_t> table;
    // when
    for (std::uint64_t k = 1; k <= 5000; ++k) {
        REQUIRE(table.put(k * 16, k));
    }
    REQUIRE(table.put(32, 99));
    // then
    CHECK(table.size() == 5000);
    CHECK(*table.find(32) == 99);
    CHECK(*table.find(5000 * 16) == 5000);
    CHECK(table.find(5001 * 16) == nullptr);
    std::uint64_t value = 0;
    CHECK(table.erase(32, &value));
    CHECK(value == 99);
    CHECK(table.find(32) == nullptr);
    CHECK_FALSE(table.erase(32, &value));
    CHECK(table.size() == 4999);
    CHECK(table.capacity() * 7 >= table.size() * 10); // at most 70 % full
}

TEST_CASE("random puts and erases agree with unordered_map, probe runs included") {
    std::mt19937_64 rng(7);
    FlatTable<std::uint32_t> table;
    std::unordered_map<std::uint64_t, std::uint32_t> model;
    // Few distinct keys in a narrow range: long probe runs that wrap around the table end.
    for (int step = 0; step < 200000; ++step) {
        const std::uint64_t key = 1 + rng() % 3000;
        const std::uint32_t value = static_cast<std::uint32_t>(rng());
        if (rng() % 3 == 0) {
            std::uint32_t got = 0;
            const bool erased = table.erase(key, &got);
            auto it = model.find(key);
            REQUIRE(erased == (it != model.end()));
            if (erased) {
                REQUIRE(got == it->second);
                model.erase(it);
            }
        } else {
            REQUIRE(table.put(key, value));
            model[key] = value;
        }
        if (step % 997 == 0) {
            REQUIRE(table.size() == model.size());
            for (const auto &[k, v] : model) {
                REQUIRE(table.find(k) != nullptr);
                REQUIRE(*table.find(k) == v);
            }
        }
    }
    table.clear();
    CHECK(table.size() == 0);
    CHECK(table.find(1) == nullptr);
    CHECK(table.memory_bytes() == 0);
}

TEST_CASE("emplace keeps the first value, reserve makes room, a move hands the slots over") {
    // given: room reserved for 1,000 keys
    FlatTable<std::uint32_t> table;
    REQUIRE(table.reserve(1000));
    const std::size_t reserved = table.capacity();
    CHECK(reserved * 7 >= 1000 * 10);
    // when: 1,000 keys emplaced, then emplaced again with other values
    for (std::uint64_t k = 1; k <= 1000; ++k) {
        REQUIRE(*table.emplace(k * 48, static_cast<std::uint32_t>(k)) == k);
    }
    for (std::uint64_t k = 1; k <= 1000; ++k) {
        REQUIRE(*table.emplace(k * 48, 7) == k); // present: the stored value, unchanged
    }
    // then: no growth, and the values survive a move
    CHECK(table.capacity() == reserved);
    FlatTable<std::uint32_t> moved(std::move(table));
    CHECK(table.size() == 0);
    CHECK(table.find(48) == nullptr);
    CHECK(moved.size() == 1000);
    CHECK(*moved.find(1000 * 48) == 1000);
    const FlatTable<std::uint32_t> &read_only = moved;
    CHECK(*read_only.find(48) == 1);
}

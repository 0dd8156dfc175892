// The peak tables against their definition: the bytes per stack at the moment the total was
// highest (the first time it stood there), computed by replaying the events with a copy at
// every new high.
#include <catch2/catch.hpp>

#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <unordered_map>
#include <vector>

#include "core/peak_tables.hpp"

using memxx::core::PeakTables;

namespace {

struct Definition {
    std::unordered_map<std::uintptr_t, std::pair<std::uint32_t, std::uint64_t>> live;
    std::map<std::uint32_t, std::int64_t> bytes;
    std::map<std::uint32_t, std::int64_t> at_peak;
    std::int64_t total = 0;
    std::int64_t peak = 0;

    void alloc(std::uintptr_t address, std::uint64_t size, std::uint32_t stack) {
        live[address] = {stack, size};
        bytes[stack] += static_cast<std::int64_t>(size);
        total += static_cast<std::int64_t>(size);
        if (total > peak) {
            peak = total;
            at_peak = bytes;
        }
    }
    void free(std::uintptr_t address) {
        auto it = live.find(address);
        if (it == live.end()) {
            return;
        }
        bytes[it->second.first] -= static_cast<std::int64_t>(it->second.second);
        total -= static_cast<std::int64_t>(it->second.second);
        live.erase(it);
    }
};

std::int64_t at_peak_of(const PeakTables &tables, std::uint32_t stack) {
    return tables.at_peak_bytes(stack);
}

} // namespace

TEST_CASE("a temporary freed before a larger peak is not in the peak's figures") {
    PeakTables tables;
    tables.on_alloc(0x1000, 500, 7); // the temporary
    tables.on_free(0x1000);
    tables.on_alloc(0x2000, 300, 1);
    tables.on_alloc(0x3000, 250, 2); // the peak: 550
    tables.on_free(0x2000);
    tables.settle();
    CHECK(tables.peak() == 550);
    CHECK(at_peak_of(tables, 7) == 0);
    CHECK(at_peak_of(tables, 1) == 300);
    CHECK(at_peak_of(tables, 2) == 250);
    CHECK(tables.total() == 250);
}

TEST_CASE("a peak still standing at the report is copied by settle") {
    PeakTables tables;
    tables.on_alloc(0x1000, 100, 3);
    tables.on_alloc(0x1010, 100, 3);
    tables.settle();
    CHECK(tables.peak() == 200);
    CHECK(at_peak_of(tables, 3) == 200);
}

TEST_CASE("a block retracted right after it came leaves the tables as they were, high included") {
    PeakTables tables;
    tables.on_alloc(0x1000, 100, 1);
    tables.on_free(0x1000);
    tables.on_alloc(0x2000, 90, 2); // under the old high of 100
    tables.on_alloc(0x3000, 32, 3); // an event's int: a new high of 122, never the program's
    tables.on_retract(0x3000);
    tables.on_alloc(0x4000, 5, 2); // the program's own high: 95, not copied at the int's
    tables.on_free(0x4000);
    tables.settle();
    CHECK(tables.peak() == 100);
    CHECK(at_peak_of(tables, 1) == 100);
    CHECK(at_peak_of(tables, 3) == 0);
    CHECK(tables.live_blocks() == 1);
    CHECK(tables.total() == 90);

    PeakTables standing; // the high before the int still stands: it is the peak
    standing.on_alloc(0x1000, 200, 1);
    standing.on_alloc(0x2000, 32, 3);
    standing.on_retract(0x2000);
    standing.on_free(0x1000);
    standing.settle();
    CHECK(standing.peak() == 200);
    CHECK(at_peak_of(standing, 1) == 200);
    CHECK(at_peak_of(standing, 3) == 0);
}

TEST_CASE("a retracted block that is not the last one applied is freed") {
    PeakTables tables;
    tables.on_alloc(0x1000, 32, 3);
    tables.on_alloc(0x2000, 50, 1); // another thread's block came in between
    tables.on_retract(0x1000);
    tables.settle();
    CHECK(tables.peak() == 82);
    CHECK(at_peak_of(tables, 3) == 32);
    CHECK(tables.total() == 50);
    CHECK(tables.live_blocks() == 1);
}

TEST_CASE("a free of a block never allocated changes nothing") {
    PeakTables tables;
    tables.on_alloc(0x1000, 64, 0);
    tables.on_free(0x9990);
    tables.settle();
    CHECK(tables.total() == 64);
    CHECK(tables.live_blocks() == 1);
}

TEST_CASE("a mapping's pages count for the stack that made it, as they come and go") {
    PeakTables tables;
    tables.on_pages(5, 10 * 4096); // a pass finds 10 pages touched in stack 5's mapping
    tables.on_alloc(0x1000, 4096, 2);
    tables.on_pages(5, -10 * 4096); // given back (madvise DONTNEED)
    tables.on_alloc(0x2000, 8 * 4096, 3); // 9 pages: below the peak of 11
    tables.settle();
    CHECK(tables.peak() == 11 * 4096);
    CHECK(at_peak_of(tables, 5) == 10 * 4096);
    CHECK(at_peak_of(tables, 3) == 0);
    CHECK(tables.live_bytes(5) == 0);
    CHECK(tables.live_blocks() == 2); // pages are no blocks
    tables.on_alloc(0x3000, 4 * 4096, 3); // 13 pages: a later, bigger peak without them
    tables.settle();
    CHECK(tables.peak() == 13 * 4096);
    CHECK(at_peak_of(tables, 5) == 0);
    CHECK(at_peak_of(tables, 3) == 12 * 4096);
}

TEST_CASE("pages of a stack never seen before grow the tables") {
    PeakTables tables;
    tables.on_pages(70000, 4096);
    tables.settle();
    CHECK(tables.live_bytes(70000) == 4096);
    CHECK(at_peak_of(tables, 70000) == 4096);
}

TEST_CASE("random event streams give the definition's peak figures exactly") {
    std::mt19937_64 random(20261201);
    for (int round = 0; round < 20; ++round) {
        PeakTables tables;
        Definition truth;
        std::vector<std::uintptr_t> live;
        const int events = 20000 + round * 5000;
        for (int i = 0; i < events; ++i) {
            const bool allocate = live.empty() || random() % 100 < 52;
            if (allocate) {
                // Addresses are reused after a free, as an allocator's are; sizes of several
                // magnitudes, some past the table's 21-bit slot field; 2^24 stacks at most.
                const std::uintptr_t address = 0x100000 + 16 * (random() % 50000);
                if (truth.live.count(address) != 0) {
                    continue;
                }
                const std::uint64_t size = random() % 4 == 0 ? random() % (3u << 21)
                                                             : 16 + random() % 512;
                const auto stack = static_cast<std::uint32_t>(random() % 300);
                tables.on_alloc(address, size, stack);
                truth.alloc(address, size, stack);
                live.push_back(address);
            } else {
                const std::size_t at = random() % live.size();
                tables.on_free(live[at]);
                truth.free(live[at]);
                live[at] = live.back();
                live.pop_back();
            }
        }
        tables.settle();
        REQUIRE(tables.peak() == truth.peak);
        REQUIRE(tables.total() == truth.total);
        for (std::uint32_t stack = 0; stack < 300; ++stack) {
            const auto it = truth.at_peak.find(stack);
            REQUIRE(at_peak_of(tables, stack) == (it == truth.at_peak.end() ? 0 : it->second));
        }
        // A tag per (stack, size) pair that live blocks share, more only for pairs whose lone
        // tag the index forgot; never more than the live blocks.
        std::set<std::pair<std::uint32_t, std::uint64_t>> pairs;
        for (const auto &[address, block] : truth.live) {
            pairs.insert(block);
        }
        REQUIRE(tables.tags() >= pairs.size());
        REQUIRE(tables.tags() <= truth.live.size());
    }
}

TEST_CASE("the tag index forgets the tags of one block each instead of growing") {
    PeakTables tables;
    constexpr std::uintptr_t kLone = 200'000;
    for (std::uintptr_t i = 0; i < kLone; ++i) { // long-lived blocks, each of its own pair
        tables.on_alloc(0x10000000 + 16 * i, 16 + i % 1000, static_cast<std::uint32_t>(i / 1000));
    }
    for (std::uintptr_t i = 0; i < 3; ++i) { // a pair that two blocks share, then three
        tables.on_alloc(0x20000000 + 16 * i, 24, 500);
    }
    REQUIRE(tables.tags() == kLone + 1);
    // Indexing all 200,000 would take 0.9 MB; what is left is room for the shared one.
    CHECK(tables.memory().tag_index <= 8 * 1024);
    // A pair the index forgot gets a second tag; the figures stay exact.
    tables.on_alloc(0x30000000, 16, 0);
    CHECK(tables.tags() == kLone + 2);
    CHECK(tables.live_bytes(0) == 16 * 1000 + 499'500 + 16); // sizes 16 to 1,015, and 16
    CHECK(tables.live_bytes(500) == 3 * 24);
    tables.on_free(0x30000000);
    tables.on_free(0x10000000);
    CHECK(tables.tags() == kLone);
    for (std::uintptr_t i = 1; i < kLone; ++i) {
        tables.on_free(0x10000000 + 16 * i);
    }
    for (std::uintptr_t i = 0; i < 3; ++i) {
        tables.on_free(0x20000000 + 16 * i);
    }
    CHECK(tables.tags() == 0);
    CHECK(tables.total() == 0);
}

TEST_CASE("a tag lives as long as a block holds it, and is given out again") {
    PeakTables tables;
    const auto round = [&tables](std::uintptr_t base, std::uint32_t first_stack) {
        for (std::uintptr_t i = 0; i < 100'000; ++i) {
            tables.on_alloc(base + 16 * i, 16 + i, first_stack + static_cast<std::uint32_t>(i % 7));
        }
        REQUIRE(tables.tags() == 100'000);
        for (std::uintptr_t i = 0; i < 100'000; ++i) {
            tables.on_free(base + 16 * i);
        }
        REQUIRE(tables.tags() == 0);
        REQUIRE(tables.total() == 0);
    };
    round(0x10000000, 0);
    const std::size_t after_first = tables.other_bytes();
    round(0x20000000, 7); // 100,000 other pairs: the freed tags serve them
    // 100,000 new tags would take 2 MB more; only the per-stack figures of 7 stacks are added.
    REQUIRE(tables.other_bytes() <= after_first + 7 * 64);
}

TEST_CASE("the block table stays within 24 bytes per live block above its minimum") {
    PeakTables tables;
    for (std::uintptr_t i = 0; i < 1'000'000; ++i) {
        tables.on_alloc(0x10000000 + 32 * i, 32, static_cast<std::uint32_t>(i % 1000));
        if (i > PeakTables::kMinSlots) {
            REQUIRE(tables.block_table_bytes() <= 24 * tables.live_blocks());
        }
    }
}

TEST_CASE("a stack's figures past 4 GiB stay exact, and come back under it") {
    PeakTables tables;
    constexpr std::uint64_t kGiB = std::uint64_t{1} << 30;
    tables.on_alloc(0x10000000, 3 * kGiB, 4);
    tables.on_alloc(0x20000000, 3 * kGiB + 5, 4); // 6 GiB on one stack
    tables.on_alloc(0x30000000, 100, 4);
    REQUIRE(tables.live_bytes(4) == static_cast<std::int64_t>(6 * kGiB + 105));
    tables.on_free(0x20000000); // the peak: 6 GiB + 105
    tables.settle();
    CHECK(tables.at_peak_bytes(4) == static_cast<std::int64_t>(6 * kGiB + 105));
    CHECK(tables.live_bytes(4) == static_cast<std::int64_t>(3 * kGiB + 100));
    tables.on_free(0x10000000);
    CHECK(tables.live_bytes(4) == 100);
    CHECK(tables.at_peak_bytes(4) == static_cast<std::int64_t>(6 * kGiB + 105));
    CHECK(tables.total() == 100);
}

TEST_CASE("a stack is in use while it holds bytes now or held some at the peak") {
    PeakTables tables;
    tables.on_alloc(0x1000, 100, 2); // freed before the peak: in no report
    tables.on_free(0x1000);
    tables.on_alloc(0x2000, 300, 3); // held at the peak, freed since
    tables.on_alloc(0x3000, 50, 4);  // held now
    tables.on_free(0x2000);
    tables.on_alloc(0x4000, 0, 5); // a block of no bytes: in no report either
    CHECK_FALSE(tables.stack_in_use(2));
    CHECK(tables.stack_in_use(3));
    CHECK(tables.stack_in_use(4));
    CHECK_FALSE(tables.stack_in_use(5));
    CHECK_FALSE(tables.stack_in_use(99)); // never seen
    // While the total stands at a new high (the copy not made yet), what a stack holds now is
    // what it will hold at the peak: a stack that gave everything back is not in use even if
    // its last copy had bytes.
    tables.on_alloc(0x5000, 1000, 6); // 1050
    tables.on_free(0x3000);           // the peak (1050) copied: stack 4 had 50 there
    CHECK(tables.stack_in_use(4));
    tables.on_alloc(0x6000, 2000, 7); // 3000: a new high, stack 4's 0 not copied yet
    CHECK(tables.at_peak_bytes(4) == 50);
    CHECK_FALSE(tables.stack_in_use(4));
    tables.forget_stack(2);
    tables.on_alloc(0x7000, 64, 2); // stack 2's id names another stack now
    tables.on_free(0x6000);
    tables.settle();
    CHECK(tables.at_peak_bytes(2) == 64);
    CHECK(tables.at_peak_bytes(7) == 2000);
    CHECK(tables.at_peak_bytes(4) == 0); // the peak moved past its free
}

TEST_CASE("a tag held by 4,095 blocks at once is kept for good, its figures still exact") {
    PeakTables tables;
    for (std::uintptr_t i = 0; i < 70'000; ++i) {
        tables.on_alloc(0x10000000 + 16 * i, 32, 3);
    }
    tables.on_alloc(0x20000000, 48, 3);
    REQUIRE(tables.tags() == 2);
    REQUIRE(tables.live_bytes(3) == 70'000 * 32 + 48);
    for (std::uintptr_t i = 0; i < 70'000; ++i) {
        tables.on_free(0x10000000 + 16 * i);
    }
    tables.on_free(0x20000000);
    CHECK(tables.live_bytes(3) == 0);
    CHECK(tables.total() == 0);
    CHECK(tables.tags() == 1); // (3, 32) lost count: kept; (3, 48) given back
    tables.on_alloc(0x30000000, 32, 3); // the kept tag serves the pair again
    CHECK(tables.tags() == 1);
    CHECK(tables.live_bytes(3) == 32);
}

TEST_CASE("a block of 512 MiB or more has no tag, and stays exact") {
    PeakTables tables;
    constexpr std::uint64_t kMiB = std::uint64_t{1} << 20;
    tables.on_alloc(0x10000000, 512 * kMiB - 1, 2); // the largest size a tag holds
    tables.on_alloc(0x20000000, 512 * kMiB, 2);
    tables.on_alloc(0x30000000, 5 * 1024 * kMiB + 3, 5);
    CHECK(tables.tags() == 1);
    CHECK(tables.live_bytes(2) == 1024 * kMiB - 1);
    CHECK(tables.live_bytes(5) == 5 * 1024 * kMiB + 3);
    tables.on_free(0x20000000);
    CHECK(tables.live_bytes(2) == 512 * kMiB - 1);
    tables.on_free(0x10000000);
    tables.on_free(0x30000000);
    CHECK(tables.total() == 0);
    CHECK(tables.tags() == 0);
    tables.settle();
    CHECK(tables.at_peak_bytes(2) == 1024 * kMiB - 1);
    CHECK(tables.at_peak_bytes(5) == 5 * 1024 * kMiB + 3);
}

TEST_CASE("a tag counts its blocks up to 4,094 and gives itself back after the last") {
    PeakTables tables;
    for (std::uintptr_t i = 0; i < 4'094; ++i) {
        tables.on_alloc(0x10000000 + 16 * i, 24, 9);
    }
    CHECK(tables.tags() == 1);
    for (std::uintptr_t i = 0; i < 4'094; ++i) {
        tables.on_free(0x10000000 + 16 * i);
    }
    CHECK(tables.tags() == 0); // the count held: the tag was given back
    CHECK(tables.live_bytes(9) == 0);
}

TEST_CASE("young blocks, and the older ones they displace to the table, keep exact figures") {
    // Addresses 32 KiB apart share a slot among the young blocks: each new block there moves
    // the one before it to the table. A model (address -> stack, size) checks every figure.
    PeakTables tables;
    std::map<std::uintptr_t, std::pair<std::uint32_t, std::uint64_t>> model;
    std::mt19937_64 random(7);
    for (int step = 0; step < 200'000; ++step) {
        const std::uintptr_t address = 0x40000000 + 32768 * (random() % 64) + 16 * (random() % 8);
        const auto found = model.find(address);
        if (found != model.end()) {
            tables.on_free(address);
            model.erase(found);
        } else {
            const auto stack = static_cast<std::uint32_t>(2 + random() % 5);
            const std::uint64_t size = 1 + random() % 600;
            tables.on_alloc(address, size, stack);
            model[address] = {stack, size};
        }
        if (step % 997 == 0) {
            std::map<std::uint32_t, std::int64_t> live;
            std::int64_t total = 0;
            for (const auto &[block, held] : model) {
                live[held.first] += static_cast<std::int64_t>(held.second);
                total += static_cast<std::int64_t>(held.second);
            }
            REQUIRE(tables.live_blocks() == model.size());
            REQUIRE(tables.total() == total);
            for (std::uint32_t stack = 2; stack < 7; ++stack) {
                REQUIRE(tables.live_bytes(stack) == live[stack]);
            }
        }
    }
    for (const auto &[block, held] : model) {
        tables.on_free(block);
    }
    CHECK(tables.live_blocks() == 0);
    CHECK(tables.total() == 0);
    CHECK(tables.tags() == 0);
}

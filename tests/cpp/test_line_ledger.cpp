#include <catch2/catch.hpp>

#include "core/line_ledger.hpp"

using memxx::core::CodeLines;
using memxx::core::ThreadLedger;

namespace {
const void *frame_a = reinterpret_cast<const void *>(0x1000);
const void *frame_b = reinterpret_cast<const void *>(0x2000);
const void *frame_c = reinterpret_cast<const void *>(0x3000);
} // namespace

TEST_CASE("allocations are charged to the running line; memory is base plus net") {
    CodeLines code(10, 14);
    ThreadLedger ledger(1000);
    ledger.enter(frame_a, &code, 10, true);
    ledger.line(frame_a, 11);
    ledger.on_alloc(800);
    ledger.line(frame_a, 12);
    ledger.on_alloc(5000);
    ledger.on_free(5000); // a temporary: increment 0, peak still seen
    ledger.line(frame_a, 13);
    ledger.on_free(800);
    REQUIRE(ledger.leave(frame_a));
    CHECK(ledger.empty());
    CHECK(code.at(11)->increment == 800);
    CHECK(code.at(11)->memory == 1800);
    CHECK(code.at(12)->increment == 0);
    CHECK(code.at(12)->peak == 1000 + 800 + 5000);
    CHECK(code.at(13)->increment == -800);
    CHECK(code.at(13)->memory == 1000);
    CHECK(code.at(10)->occurrences == 1);
}

TEST_CASE("occurrences count every start of a line; increments sum over them") {
    CodeLines code(1, 3);
    ThreadLedger ledger(0);
    ledger.enter(frame_a, &code, 1, true);
    for (int i = 0; i < 5; ++i) {
        ledger.line(frame_a, 2);
        ledger.on_alloc(100);
        ledger.line(frame_a, 3);
        ledger.on_free(100);
    }
    ledger.leave(frame_a);
    CHECK(code.at(2)->occurrences == 5);
    CHECK(code.at(2)->increment == 500);
    CHECK(code.at(3)->increment == -500);
}

TEST_CASE("a nested profiled frame: the caller's line holds the callee's net and peak") {
    CodeLines outer(1, 5), inner(20, 22);
    ThreadLedger ledger(0);
    ledger.enter(frame_a, &outer, 1, true);
    ledger.line(frame_a, 2);
    ledger.enter(frame_b, &inner, 20, true);
    ledger.line(frame_b, 21);
    ledger.on_alloc(300);
    ledger.on_alloc(10000);
    ledger.line(frame_b, 22);
    ledger.on_free(10000);
    ledger.leave(frame_b);
    ledger.line(frame_a, 3);
    ledger.leave(frame_a);
    CHECK(inner.at(21)->increment == 10300);
    CHECK(inner.at(22)->increment == -10000);
    CHECK(outer.at(2)->increment == 300);
    CHECK(outer.at(2)->peak == 10300);
}

TEST_CASE("recursion: a deeper frame's bytes are not counted again by the frame above") {
    CodeLines code(1, 3);
    ThreadLedger ledger(0);
    ledger.enter(frame_a, &code, 1, true);
    ledger.line(frame_a, 2); // calls itself
    ledger.enter(frame_b, &code, 1, true);
    ledger.line(frame_b, 3);
    ledger.on_alloc(700);
    ledger.leave(frame_b);
    ledger.line(frame_a, 3);
    ledger.on_alloc(700);
    ledger.leave(frame_a);
    CHECK(code.at(1)->occurrences == 2);
    CHECK(code.at(2)->increment == 0);
    CHECK(code.at(3)->increment == 1400);
    CHECK(code.at(3)->occurrences == 2);
}

TEST_CASE("mutual recursion through another profiled code counts each byte once per code") {
    CodeLines a(1, 3), b(10, 12);
    ThreadLedger ledger(0);
    ledger.enter(frame_a, &a, 1, true);
    ledger.line(frame_a, 2);
    ledger.enter(frame_b, &b, 10, true);
    ledger.line(frame_b, 11);
    ledger.enter(frame_c, &a, 1, true);
    ledger.line(frame_c, 3);
    ledger.on_alloc(50);
    ledger.leave(frame_c);
    ledger.leave(frame_b);
    ledger.leave(frame_a);
    std::int64_t sum_a = 0, sum_b = 0;
    for (const auto &s : a.lines()) {
        sum_a += s.increment;
    }
    for (const auto &s : b.lines()) {
        sum_b += s.increment;
    }
    CHECK(sum_a == 50);
    CHECK(sum_b == 50);
}

TEST_CASE("leaving an outer frame closes the frames above it") {
    CodeLines code(1, 3);
    ThreadLedger ledger(0);
    ledger.enter(frame_a, &code, 1, true);
    ledger.enter(frame_b, &code, 1, true);
    ledger.line(frame_b, 2);
    ledger.on_alloc(10);
    CHECK_FALSE(ledger.line(frame_a, 3)); // not the innermost frame
    REQUIRE(ledger.leave(frame_a));
    CHECK(ledger.empty());
    CHECK(code.at(2)->increment == 10);
    CHECK(code.active_frames == 0);
    CHECK_FALSE(ledger.leave(frame_c));
}

TEST_CASE("a resumed frame does not count its line again") {
    CodeLines code(1, 4);
    ThreadLedger ledger(0);
    ledger.enter(frame_a, &code, 1, true);
    ledger.line(frame_a, 3);
    ledger.leave(frame_a); // yields on line 3
    ledger.enter(frame_a, &code, 3, false);
    ledger.line(frame_a, 4);
    ledger.leave(frame_a);
    CHECK(code.at(3)->occurrences == 1);
    CHECK(code.at(4)->occurrences == 1);
}

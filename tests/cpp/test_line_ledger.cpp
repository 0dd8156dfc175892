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

// --- teardowns: what a frame's teardown frees after its last event counts for its last line --

namespace {
using memxx::core::TeardownMark;

// The probe of these tests: the mark's frame is a flag the test clears when the interpreter
// would have finished tearing the frame down.
bool flag_probe(const TeardownMark &mark) noexcept {
    return *static_cast<const bool *>(mark.frame);
}

TeardownMark mark_of(const bool &running) {
    TeardownMark mark{};
    mark.frame = &running;
    return mark;
}

std::int64_t sum_of(const CodeLines &code) {
    std::int64_t sum = 0;
    for (const auto &s : code.lines()) {
        sum += s.increment;
    }
    return sum;
}
} // namespace

TEST_CASE("frees and a finaliser's allocations during a teardown count for the returning line") {
    CodeLines code(1, 3);
    ThreadLedger ledger(1000, flag_probe);
    bool running = true;
    ledger.enter(frame_a, &code, 1, true);
    ledger.line(frame_a, 2);
    ledger.on_alloc(8000); // a local
    ledger.on_alloc(28);   // the value it returns
    ledger.line(frame_a, 3);
    REQUIRE(ledger.leave_after_teardown(frame_a, mark_of(running)));
    CHECK(ledger.tearing_down());
    ledger.on_free(8000); // the local, dropped by the teardown
    ledger.on_alloc(40);  // its finaliser keeps something
    CHECK_FALSE(ledger.empty());
    running = false;
    ledger.on_alloc(500); // the caller's next allocation closes the teardown first
    CHECK(ledger.empty());
    CHECK_FALSE(ledger.tearing_down());
    CHECK(code.at(3)->increment == -8000 + 40);
    CHECK(code.at(3)->memory == 1000 + 28 + 40);
    CHECK(code.at(3)->peak == 1000 + 8028);
    // The call keeps the returned value and the finaliser's block: its lines add up to that.
    CHECK(sum_of(code) == 28 + 40);
}

TEST_CASE("a frame that fell off its end gives its teardown to the header row, which keeps its "
          "entry memory") {
    CodeLines code(1, 3);
    ThreadLedger ledger(1000, flag_probe);
    bool running = true;
    ledger.enter(frame_a, &code, 1, true); // the header row: the def line, at entry
    ledger.line(frame_a, 2);
    ledger.on_alloc(8000); // a local
    ledger.line(frame_a, 3);
    ledger.on_alloc(28); // another, on the last line
    REQUIRE(ledger.leave_after_teardown(frame_a, mark_of(running)));
    REQUIRE(ledger.teardown_on_row(frame_a, 1));
    CHECK_FALSE(ledger.teardown_on_row(frame_b, 1)); // not the innermost frame
    ledger.on_free(8000);
    ledger.on_free(28);
    running = false;
    ledger.on_alloc(500); // the caller's next allocation closes the teardown
    CHECK(ledger.empty());
    CHECK(code.at(3)->increment == 28); // the last line keeps what it did itself
    CHECK(code.at(3)->memory == 1000 + 8028);
    CHECK(code.at(1)->increment == -8028);
    CHECK(code.at(1)->occurrences == 1); // the teardown is no new occurrence
    CHECK(code.at(1)->memory == 1000);   // the memory at entry
    CHECK(code.at(1)->peak == 1000 + 8028);
    CHECK(sum_of(code) == 0);
}

TEST_CASE("a callee's teardown goes to its return line, the calling line's rest to the caller") {
    CodeLines outer(1, 3), inner(20, 22);
    ThreadLedger ledger(0, flag_probe);
    bool running = true;
    ledger.enter(frame_a, &outer, 1, true);
    ledger.line(frame_a, 2); // x = inner() + [0] * n
    ledger.enter(frame_b, &inner, 20, true);
    ledger.line(frame_b, 21);
    ledger.on_alloc(10000); // scratch
    ledger.on_alloc(300);   // returned
    ledger.line(frame_b, 22);
    REQUIRE(ledger.leave_after_teardown(frame_b, mark_of(running)));
    ledger.on_free(10000);
    running = false;
    ledger.on_alloc(50); // the caller goes on with the same line
    CHECK(ledger.depth() == 1);
    ledger.line(frame_a, 3);
    ledger.leave(frame_a);
    CHECK(inner.at(22)->increment == -10000);
    CHECK(sum_of(inner) == 300);
    CHECK(outer.at(2)->increment == 350);
    CHECK(outer.at(2)->peak == 10300); // the callee's high point
}

TEST_CASE("an event settles a teardown that ended with no allocation after it") {
    CodeLines outer(1, 3), inner(20, 22);
    ThreadLedger ledger(0, flag_probe);
    bool running = true;
    ledger.enter(frame_a, &outer, 1, true);
    ledger.line(frame_a, 2);
    ledger.enter(frame_b, &inner, 20, true);
    ledger.on_alloc(64);
    REQUIRE(ledger.leave_after_teardown(frame_b, mark_of(running)));
    ledger.on_free(64);
    running = false;
    CHECK(ledger.line(frame_a, 3)); // the caller is the innermost frame again
    ledger.on_alloc(7);
    ledger.leave(frame_a);
    CHECK(inner.at(20)->increment == 0);
    CHECK(outer.at(2)->increment == 0);
    CHECK(outer.at(3)->increment == 7);
}

TEST_CASE("recursion: the inner frame's teardown is counted once, on the inner frame's lines") {
    CodeLines code(1, 3);
    ThreadLedger ledger(0, flag_probe);
    bool inner_running = true, outer_running = true;
    ledger.enter(frame_a, &code, 1, true);
    ledger.line(frame_a, 2); // calls itself
    ledger.enter(frame_b, &code, 1, true);
    ledger.line(frame_b, 3);
    ledger.on_alloc(700); // kept
    ledger.on_alloc(100); // a local
    REQUIRE(ledger.leave_after_teardown(frame_b, mark_of(inner_running)));
    ledger.on_free(100);
    inner_running = false;
    ledger.line(frame_a, 3);
    ledger.on_alloc(200); // a local of the outer frame
    REQUIRE(ledger.leave_after_teardown(frame_a, mark_of(outer_running)));
    ledger.on_free(200);
    outer_running = false;
    ledger.settle();
    CHECK(ledger.empty());
    CHECK(code.at(2)->increment == 0);
    CHECK(code.at(3)->increment == 700);
    CHECK(sum_of(code) == 700);
}

TEST_CASE("a profiled call made by a finaliser during a teardown runs above it") {
    CodeLines code(1, 3), finaliser(30, 31);
    ThreadLedger ledger(0, flag_probe);
    bool running = true, finaliser_running = true;
    ledger.enter(frame_a, &code, 1, true);
    ledger.line(frame_a, 2);
    ledger.on_alloc(8000);
    REQUIRE(ledger.leave_after_teardown(frame_a, mark_of(running)));
    ledger.enter(frame_b, &finaliser, 30, true); // __del__ of the local being dropped
    ledger.line(frame_b, 31);
    ledger.on_alloc(16);
    REQUIRE(ledger.leave_after_teardown(frame_b, mark_of(finaliser_running)));
    finaliser_running = false;
    ledger.on_free(8000); // the local's memory, after its finaliser returned
    CHECK(ledger.depth() == 1);
    running = false;
    ledger.settle();
    CHECK(ledger.empty());
    CHECK(finaliser.at(31)->increment == 16);
    CHECK(code.at(2)->increment == 8000 - 8000 + 16); // the return line holds the finaliser's call
    CHECK(sum_of(code) == 16);
}

TEST_CASE("returning from below stale frames closes them first") {
    CodeLines code(1, 3);
    ThreadLedger ledger(0, flag_probe);
    bool running = true;
    ledger.enter(frame_a, &code, 1, true);
    ledger.enter(frame_b, &code, 1, true); // never got its own last event
    ledger.line(frame_b, 2);
    ledger.on_alloc(10);
    REQUIRE(ledger.leave_after_teardown(frame_a, mark_of(running)));
    CHECK(ledger.depth() == 1);
    CHECK_FALSE(ledger.leave_after_teardown(frame_c, mark_of(running)));
    running = false;
    ledger.settle();
    CHECK(ledger.empty());
    CHECK(code.at(2)->increment == 10);
}

TEST_CASE("without a probe a teardown is over at the next allocation") {
    CodeLines code(1, 2);
    ThreadLedger ledger(0);
    bool unused = true;
    ledger.enter(frame_a, &code, 1, true);
    ledger.line(frame_a, 2);
    ledger.leave_after_teardown(frame_a, mark_of(unused));
    ledger.on_free(100);
    CHECK(ledger.empty());
    CHECK(code.at(2)->increment == 0);
}

TEST_CASE("bytes made for a frame before its first event are its own, not its caller's line's") {
    CodeLines outer(1, 3), inner(20, 22);
    ThreadLedger ledger(0, flag_probe);
    bool running = true;
    ledger.enter(frame_a, &outer, 1, true);
    ledger.line(frame_a, 2);
    ledger.on_alloc(168); // the frame object 3.11's tracing makes for the call
    ledger.enter(frame_b, &inner, 20, true, 168);
    ledger.line(frame_b, 21);
    ledger.on_alloc(28);
    REQUIRE(ledger.leave_after_teardown(frame_b, mark_of(running)));
    ledger.on_free(168); // the teardown frees the frame object first
    running = false;
    ledger.line(frame_a, 3);
    ledger.leave(frame_a);
    CHECK(inner.at(20)->increment == 168);
    CHECK(inner.at(21)->increment == -168 + 28);
    CHECK(sum_of(inner) == 28);
    CHECK(outer.at(2)->increment == 28);
}

namespace {
int g_probe_calls = 0;

// Counts how often the ledger asks; the answer comes from the flag as in flag_probe.
bool counting_probe(const TeardownMark &mark) noexcept {
    ++g_probe_calls;
    return flag_probe(mark);
}
} // namespace

TEST_CASE("while the watched words keep their values the probe is not asked") {
    CodeLines code(1, 2);
    ThreadLedger ledger(0, counting_probe);
    bool running = true;
    const void *top = &running; // stands for the interpreter's data-stack top
    TeardownMark mark = mark_of(running);
    mark.watched[0] = &top;
    mark.expected[0] = &running;
    g_probe_calls = 0;
    ledger.enter(frame_a, &code, 1, true);
    ledger.line(frame_a, 2);
    ledger.on_alloc(1000);
    REQUIRE(ledger.leave_after_teardown(frame_a, mark));
    for (int i = 0; i < 100; ++i) {
        ledger.on_free(10);
    }
    CHECK(g_probe_calls == 0);
    top = nullptr; // a finaliser pushed a frame: the watch fails, the probe says it still runs
    ledger.on_free(10);
    CHECK(g_probe_calls == 1);
    CHECK_FALSE(ledger.empty());
    running = false;
    ledger.on_free(10);
    CHECK(g_probe_calls == 2);
    CHECK(ledger.empty());
    CHECK(code.at(2)->increment == 1000 - 1010);
}

TEST_CASE("other threads' bytes go to the line that handed the work over, or the running one") {
    // given a frame whose line 11 handed work over and which now runs line 12
    CodeLines code(10, 14);
    memxx::core::ThreadShare share;
    ThreadLedger ledger(0);
    ledger.set_share(&share);
    ledger.enter(frame_a, &code, 10, true);
    ledger.line(frame_a, 11);
    const memxx::core::ShareTarget line_11 = ledger.running_target();
    ledger.line(frame_a, 12);
    ledger.on_alloc(100);
    // when a worker allocates 7000 for line 11 (2000 of it a temporary) and a native thread
    // 300 for whatever runs
    share.add(2000, false, line_11);
    share.add(-2000, false, line_11);
    share.add(5000, true, line_11);
    share.add(300, true);
    ledger.line(frame_a, 13);
    // then line 11 holds the worker's bytes, line 12 its own and the native thread's
    CHECK(code.at(11)->increment == 5000);
    CHECK(code.at(11)->threads_increment == 5000);
    CHECK(code.at(11)->native_increment == 5000);
    CHECK(code.at(12)->increment == 400);
    CHECK(code.at(12)->threads_increment == 300);
    CHECK(code.at(12)->native_increment == 300);
    // and the peak while line 12 ran saw the others' highest point on top of its own bytes
    CHECK(code.at(12)->peak == 100 + 5300);
    CHECK(ledger.memory() == 5400);
    // when a thread frees a block of line 13 while the frame is gone, the running line gets it
    share.add(-5000, true, line_11);
    REQUIRE(ledger.leave(frame_a));
    CHECK(ledger.net() == 400);
}

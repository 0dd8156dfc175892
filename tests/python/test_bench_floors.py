"""The benchmarks' floors (tests/bench/bench_line_profiler.py): a pass-through PyMem allocator and
an event callback that does nothing. A floor that dropped allocations or left itself behind would
make every ratio measured against it wrong."""

import sys
import tracemalloc

import pytest

import _memxx
from memory_profilerxx import LineProfiler


@pytest.fixture
def floor_off():
    yield
    _memxx.set_floor_allocator(False)


def test_the_floor_allocator_passes_every_call_on(floor_off):
    assert _memxx.set_floor_allocator(True)
    assert not _memxx.set_floor_allocator(True)  # in already
    # tracemalloc stacks on top of it and sees the allocations it passes on, exactly.
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [bytearray(1000) for _ in range(100)]
        grown = tracemalloc.get_traced_memory()[0] - before
        # it stays while a hook sits on top of it, passing calls on
        assert not _memxx.set_floor_allocator(False)
    finally:
        tracemalloc.stop()
    assert grown >= sum(sys.getsizeof(b) for b in kept)
    assert _memxx.set_floor_allocator(False)
    assert not _memxx.set_floor_allocator(False)
    assert not _memxx.hook_stats()["installed"]


def test_the_floor_allocator_does_not_stack_on_a_session(floor_off):
    results = []

    def work():
        results.append(_memxx.set_floor_allocator(True))
        kept = [str(i) for i in range(1000)]
        return kept

    prof = LineProfiler()
    kept = prof(work)()
    assert results == [False]
    # the session's own figures are exact still: the line holds its strings and their list
    line = work.__code__.co_firstlineno + 2
    increment = {r.lineno: r.increment for r in prof.records()}[line]
    strings = sum(sys.getsizeof(s) for s in kept)
    assert strings <= increment <= strings + sys.getsizeof(kept) + 256
    assert not _memxx.hook_stats()["installed"]


def test_the_floor_event_callback_takes_anything_and_returns_none():
    assert _memxx.floor_event() is None
    assert _memxx.floor_event(1, 2, 3) is None
    with pytest.raises(TypeError):
        _memxx.floor_event(key=1)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="sys.monitoring is 3.12+")
def test_the_floor_event_callback_leaves_the_program_unchanged():
    mon = sys.monitoring
    tool = 5

    def loop(n):
        total = 0
        for i in range(n):
            if i % 3:
                total += i
        return total

    mon.use_tool_id(tool, "floor test")
    try:
        for kind in (mon.events.LINE, mon.events.BRANCH, mon.events.JUMP):
            mon.register_callback(tool, kind, _memxx.floor_event)
        mon.set_local_events(tool, loop.__code__,
                             mon.events.LINE | mon.events.BRANCH | mon.events.JUMP)
        assert loop(100) == sum(i for i in range(100) if i % 3)
    finally:
        mon.set_local_events(tool, loop.__code__, 0)
        mon.free_tool_id(tool)


def test_the_floor_trace_exists_where_the_events_come_from_a_trace_function():
    on = _memxx.set_floor_trace(True)
    try:
        assert on == (sys.version_info < (3, 12))
    finally:
        _memxx.set_floor_trace(False)

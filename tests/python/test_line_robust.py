"""Threads in every allocator domain, stacking with tracemalloc and coverage.py, sys.monitoring
tool ids taken by other tools, and the allocators restored."""

import bz2
import lzma
import os
import sys
import threading
import tracemalloc

import pytest

import _memxx
from _profiled import profiled


def seed():
    a = [1] * (10 ** 6)
    b = [2] * (2 * 10 ** 7)
    del b
    return a


def assert_seed_exact(lines):
    assert 8_000_000 <= lines[1].increment <= 8_000_056
    assert 160_000_000 <= lines[2].increment <= 160_000_056
    assert -160_000_056 <= lines[3].increment <= -160_000_000


def test_eight_compressing_threads_while_profiling():
    """lzma and bz2 allocate through RAW without the GIL: no crash, no deadlock, exact lines."""
    payload = os.urandom(1 << 16) * 16
    stop = threading.Event()
    rounds = [0] * 8

    def compress(i):
        codec = lzma if i % 2 else bz2
        while not stop.is_set():
            assert codec.decompress(codec.compress(payload)) == payload
            rounds[i] += 1

    threads = [threading.Thread(target=compress, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    try:
        for _ in range(3):
            lines, _ = profiled(seed)
            assert_seed_exact(lines)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert all(n > 0 for n in rounds)
    assert _memxx.hook_stats()["installed"] is False


def test_tracemalloc_started_before():
    tracemalloc.start()
    try:
        lines, _a = profiled(seed)
        assert_seed_exact(lines)
        before = tracemalloc.get_traced_memory()[0]
        block = bytearray(10**6)
        assert tracemalloc.get_traced_memory()[0] - before >= 10**6
        del block
    finally:
        tracemalloc.stop()
    assert _memxx.hook_stats()["installed"] is False


def test_tracemalloc_started_inside_and_stopped_after():
    seen = {}

    def starts_tracemalloc():
        tracemalloc.start()
        start = tracemalloc.get_traced_memory()[0]
        data = bytearray(5 * 10**6)
        seen["traced"] = tracemalloc.get_traced_memory()[0] - start
        return data

    lines, data = profiled(starts_tracemalloc)
    try:
        assert seen["traced"] >= 5 * 10**6
        # tracemalloc's own tables now come through our RAW hook too: a few bytes more.
        assert 0 <= lines[3].increment - sys.getsizeof(data) <= 1024
        # tracemalloc sits on top of our hook: we stay in its chain, passing through.
        before = tracemalloc.get_traced_memory()[0]
        more = bytearray(10**6)
        assert tracemalloc.get_traced_memory()[0] - before >= 10**6
        del more
    finally:
        tracemalloc.stop()
    lines, _ = profiled(seed)
    assert_seed_exact(lines)
    assert _memxx.hook_stats()["installed"] is False


def test_profiled_exception_passes_through_and_lines_that_ran_are_kept():
    class Boom(Exception):
        pass

    error = Boom("on line 2")

    def fails():
        kept = bytearray(10**6)  # noqa: F841 - alive until the exception leaves the frame
        raise error

    from memory_profilerxx import LineProfiler

    prof = LineProfiler()
    wrapped = prof(fails)
    try:
        wrapped()
    except Boom as caught:
        assert caught is error
    else:
        raise AssertionError("the exception was swallowed")
    lines = {r.lineno - fails.__code__.co_firstlineno: r for r in prof.records()}
    assert lines[1].increment == sys.getsizeof(bytearray(10**6))
    assert lines[2].occurrences == 1
    assert _memxx.profiled_depth() == 0
    assert _memxx.hook_stats()["installed"] is False


def test_generator_callee_and_c_callbacks_charge_the_calling_line():
    def gen(n):
        for _ in range(n):
            yield bytearray(1000)

    def consumer():
        items = list(gen(100))
        ordered = sorted(items, key=len)
        return ordered

    lines, _items = profiled(consumer)
    one = sys.getsizeof(bytearray(1000))
    assert 100 * one <= lines[1].increment <= 100 * one + 2048
    assert lines[1].occurrences == 1


# --- other tools on the same interpreter hooks: coverage.py, sys.monitoring's tool ids ----------

COVERAGE_CORES = ["ctrace"] + (["sysmon"] if sys.version_info >= (3, 12) else [])


@pytest.mark.parametrize("core", COVERAGE_CORES)
def test_coverage_running_around_the_profiled_call(core, monkeypatch):
    """coverage.py measures while we profile (its C tracer, or on 3.12+ sys.monitoring's
    COVERAGE_ID): our lines are exact and coverage still sees every line of the function."""
    import coverage

    monkeypatch.setenv("COVERAGE_CORE", core)
    cov = coverage.Coverage(data_file=None)
    cov.start()
    try:
        if core == "sysmon":
            assert sys.monitoring.get_tool(sys.monitoring.COVERAGE_ID) is not None
        lines, _ = profiled(seed)
    finally:
        cov.stop()
    assert_seed_exact(lines)
    first = seed.__code__.co_firstlineno
    assert {first + 1, first + 2, first + 3, first + 4} <= set(cov.get_data().lines(__file__))
    assert _memxx.hook_stats()["installed"] is False


def _our_tool_id():
    mon = sys.monitoring
    return next((i for i in range(6) if mon.get_tool(i) == "memory_profilerxx"), None)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="sys.monitoring is 3.12+")
def test_our_tool_id_taken_by_another_tool_profiles_on_a_free_one():
    mon = sys.monitoring
    profiled(seed)
    ours = _our_tool_id()
    assert ours is not None
    mon.free_tool_id(ours)
    mon.use_tool_id(ours, "another profiler")
    try:
        lines, _ = profiled(seed)
        assert_seed_exact(lines)
        assert mon.get_tool(ours) == "another profiler"
        assert _our_tool_id() not in (None, ours)
    finally:
        mon.free_tool_id(ours)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="sys.monitoring is 3.12+")
def test_every_tool_id_taken_raises_one_error_naming_the_tools():
    mon = sys.monitoring
    profiled(seed)
    mon.free_tool_id(_our_tool_id())
    taken = [i for i in range(2, 6) if mon.get_tool(i) is None]
    for i in taken:
        mon.use_tool_id(i, f"tool{i}")
    ran = []
    try:
        with pytest.raises(RuntimeError) as error:
            profiled(lambda: ran.append(1))
        assert not ran
        message = str(error.value)
        assert "\n" not in message
        assert "no sys.monitoring tool id is free" in message
        for i in range(2, 6):
            assert f"{i}: {mon.get_tool(i)!r}" in message
        assert _memxx.hook_stats()["installed"] is False
    finally:
        for i in taken:
            mon.free_tool_id(i)
    lines, _ = profiled(seed)
    assert_seed_exact(lines)

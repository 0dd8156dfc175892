"""What a profiled frame's teardown frees is charged to the line that left the frame (issue 16),
or, when the function falls off its end, to its header row (issue 25).

CPython drops a function's locals after the function's last line event, while it tears the
frame down. These tests check that the release shows on the line that left the frame and that a
call's increments add up to the bytes its thread holds afterwards: tracemalloc's net change for
the same call, in a fresh process.
"""

import asyncio
import gc
import io
import os
import subprocess
import sys
import textwrap
import threading
import tracemalloc

import pytest
from _profiled import lines_of, profiled
from _teardown_workloads import WORKLOADS
from memory_profilerxx import LineProfiler, profile

MiB = 2**20
BIG = 10**7  # [0] * BIG: 80,000,000 bytes of items
ITEMS = 8 * BIG
LIST_HEADER = sys.getsizeof([])  # may come from CPython's free list: no allocator call at all


def total(lines):
    return sum(r.increment for r in lines.values())


def returns_a_count():
    big = [0] * BIG
    return len(big)


def test_the_issue_example_releases_on_the_return_line():
    lines, n = profiled(returns_a_count)
    kept = sys.getsizeof(n)  # the int it returns
    assert ITEMS <= lines[1].increment <= ITEMS + LIST_HEADER
    # The list goes when the frame is torn down, after the return line's own event.
    assert -ITEMS - LIST_HEADER + kept <= lines[2].increment <= -ITEMS + kept
    # 3.14+ keeps a free list of ints: the returned int may reuse one (no allocator call).
    counted_int = kept if sys.version_info < (3, 14) else 0
    assert 0 <= lines[2].memory - lines[0].memory - counted_int <= LIST_HEADER + kept - counted_int
    assert abs(total(lines) - kept) <= LIST_HEADER


def test_the_issue_example_report_shows_minus_76_3_mib_and_the_entry_memory():
    out = io.StringIO()
    profile(stream=out)(returns_a_count)()
    rows = {line.split()[-1]: line.split() for line in out.getvalue().splitlines()
            if line.strip()[:1].isdigit()}
    entry, kept, released = rows["returns_a_count():"], rows["BIG"], rows["len(big)"]
    assert kept[3] == "76.3" and released[3] == "-76.3"
    # One display step (0.1 MiB) apart at most: the 28 bytes kept can round across a boundary.
    assert abs(float(released[1]) - float(entry[1])) <= 0.1 + 1e-9


def falls_off_its_end():
    scratch = [0] * 10**6
    count = len(scratch)  # noqa: F841 - dropped with scratch as the frame is torn down


def test_falling_off_the_end_releases_on_the_header_row():
    lines, _ = profiled(falls_off_its_end)
    assert 8_000_000 <= lines[1].increment <= 8_000_000 + LIST_HEADER
    # The last line keeps what it did itself: the int (3.14+ may take it from its free list).
    count = lines[2].increment
    assert count in ({sys.getsizeof(10**6)} if sys.version_info < (3, 14)
                     else {0, sys.getsizeof(10**6)})
    assert -8_000_000 - LIST_HEADER - count <= lines[0].increment <= -8_000_000 - count
    # The header row still shows the memory at entry, and one occurrence.
    assert lines[0].occurrences == 1
    assert lines[0].memory == lines[1].memory - lines[1].increment
    assert abs(total(lines)) <= LIST_HEADER


def use_some_memory_and_fall_off():
    use_some_memory = [1] * (10 ** 6)  # noqa: F841


def test_a_one_line_function_shows_its_list_on_its_line():
    """memory_profiler's test_increment_display.test_normal_incr, read from our records."""
    lines, _ = profiled(use_some_memory_and_fall_off)
    assert 8_000_000 <= lines[1].increment <= 8_000_000 + LIST_HEADER
    assert lines[1].memory > lines[0].memory
    assert -8_000_000 - LIST_HEADER <= lines[0].increment <= -8_000_000


def returns_early_on_one_line(flag):
    scratch = [0] * 10**6
    if flag: return len(scratch)  # noqa: E701


def returns_bare():
    scratch = [0] * 10**6  # noqa: F841
    return


def loops_to_its_end():
    for _ in range(3):
        scratch = [0] * 10**6  # noqa: F841


@pytest.mark.parametrize("func, args, release_line", [
    (returns_early_on_one_line, (True,), 2),   # the explicit return ran: its line
    (returns_early_on_one_line, (False,), 0),  # same line, but fell off the end: the header
    (returns_bare, (), 2),                      # a bare `return` is explicit
    (loops_to_its_end, (), 0),
])
def test_explicit_returns_keep_the_teardown_and_falling_off_gives_it_to_the_header(
        func, args, release_line):
    lines, _ = profiled(func, *args)
    assert -8_000_000 - 2 * LIST_HEADER <= lines[release_line].increment <= -8_000_000 + 64
    assert abs(total(lines) - (28 if args == (True,) else 0)) <= 2 * LIST_HEADER
    if func is loops_to_its_end:
        assert lines[1].occurrences == 4  # the for line: no occurrence added for the teardown


def test_a_raise_keeps_the_frame_alive_until_the_exception_dies():
    """CPython's own behaviour: the traceback holds the raising frame, hence its locals."""
    error = ValueError("after building a list")

    def fails():
        big = [0] * BIG  # noqa: F841 - held by the traceback's frame
        raise error

    prof = LineProfiler()
    tracemalloc.start()
    try:
        try:
            prof(fails)()
        except ValueError as caught:
            assert caught is error  # passes through unchanged
            tb = caught.__traceback__
            while tb.tb_next is not None:
                tb = tb.tb_next
            assert tb.tb_frame.f_code is fails.__code__
            assert len(tb.tb_frame.f_locals["big"]) == BIG
            del tb
            held = tracemalloc.get_traced_memory()[0]
        error.__traceback__ = None
        released = held - tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert released >= ITEMS  # only here, in the caller, once the exception is gone
    lines = lines_of(prof, fails)
    # The raising line gets the traceback (and, 3.12+, the frame objects it needs), not the list:
    # the list is still held when the call ends, and the call's lines say so.
    assert 0 <= lines[2].increment <= 4096
    assert ITEMS <= total(lines) <= ITEMS + LIST_HEADER + 4096


def catches_its_own_error():
    try:
        big = [0] * BIG  # noqa: F841
        raise ValueError("inside")
    except ValueError:
        pass
    return 1


def test_an_error_caught_inside_the_call_releases_at_the_return():
    lines, _ = profiled(catches_its_own_error)
    assert -ITEMS - 4096 <= lines[6].increment <= -ITEMS + 4096
    assert abs(total(lines)) <= 4096


def _raises_with_a_list():
    big = [0] * BIG  # noqa: F841
    raise ValueError("in the callee")


def handles_a_callee_error():
    try:
        _raises_with_a_list()
    except ValueError:
        status = "failed"
    return status


def test_a_callee_error_releases_where_the_caller_drops_the_exception():
    lines, _ = profiled(handles_a_callee_error)
    assert ITEMS <= lines[2].increment <= ITEMS + 4096
    assert -ITEMS - 4096 <= lines[4].increment <= -ITEMS  # the end of the except block
    assert abs(total(lines)) <= 4096


# --- nested and recursive profiled calls: each teardown goes to its own frame's line -----------

def builds_and_returns_a_small_list():
    scratch = [0] * BIG  # noqa: F841
    return [1] * 10


def calls_it_in_an_expression():
    x = len(builds_and_returns_a_small_list()) + len([0] * 10**6)
    return x


def test_a_callee_teardown_is_the_callees_not_the_rest_of_the_calling_line():
    prof = LineProfiler()
    prof.add_function(builds_and_returns_a_small_list)
    prof(calls_it_in_an_expression)()
    callee = lines_of(prof, builds_and_returns_a_small_list)
    caller = lines_of(prof, calls_it_in_an_expression)
    # The callee's return line: its scratch list, not the caller's [0] * 10**6 after it.
    assert -ITEMS - LIST_HEADER - 256 <= callee[2].increment <= -ITEMS + 256
    assert abs(total(callee)) <= 256  # it kept a 10-item list, which the caller drops
    assert abs(caller[1].increment) <= 256
    assert abs(total(caller)) <= 256


def _between():
    kept = builds_and_returns_a_small_list()
    extra = [0] * 10**6  # noqa: F841 - freed in this unprofiled frame's teardown
    return kept


def calls_through_an_unprofiled_function():
    kept = _between()
    return len(kept)


def test_an_unprofiled_frame_between_two_profiled_ones_charges_its_caller():
    prof = LineProfiler()
    prof.add_function(builds_and_returns_a_small_list)
    prof(calls_through_an_unprofiled_function)()
    callee = lines_of(prof, builds_and_returns_a_small_list)
    caller = lines_of(prof, calls_through_an_unprofiled_function)
    assert -ITEMS - LIST_HEADER - 256 <= callee[2].increment <= -ITEMS + 256
    kept = sys.getsizeof([1] * 10)
    # _between's `extra` comes and goes on the caller's line; the 10-item list stays.
    assert abs(caller[1].increment - kept) <= LIST_HEADER + 256
    assert caller[1].peak - caller[0].memory >= ITEMS


def recurse(n):
    scratch = [0] * 10**5  # noqa: F841 - each level's, freed as that level returns
    if n == 0:
        return [n]
    return recurse(n - 1) + [n]


def test_recursion_each_level_releases_on_its_own_return_line_counted_once():
    lines, result = profiled(recurse, 5)
    one = 800_000
    assert 6 * one <= lines[1].increment <= 6 * (one + LIST_HEADER)
    assert -one - 256 <= lines[3].increment <= -one + 256            # the deepest level
    assert -5 * one - 2048 <= lines[4].increment <= -5 * one + 2048  # the 5 others
    # What the call keeps: the 6-item list it returns (items; the header may be a free one).
    assert abs(total(lines) - sys.getsizeof(result)) <= LIST_HEADER + 64


# --- finalisers ---------------------------------------------------------------------------------

_keep_from_finaliser = []


class _Finalised:
    def __del__(self):
        _keep_from_finaliser.append(bytearray(100_000))


def drops_an_object_with_a_finaliser():
    obj = _Finalised()  # noqa: F841
    return 1


def test_a_finalisers_allocation_during_the_teardown_counts_for_the_return_line():
    _keep_from_finaliser.clear()
    lines, _ = profiled(drops_an_object_with_a_finaliser)
    kept = sys.getsizeof(_keep_from_finaliser[0])
    assert kept - 1024 <= lines[2].increment <= kept
    assert abs(total(lines) - kept) <= 256


# --- generators and coroutines ------------------------------------------------------------------

def yields_twice():
    big = [0] * BIG  # noqa: F841
    yield 1
    yield 2


@pytest.mark.parametrize("how", ["close", "del", "break", "exhaust"])
def test_a_generator_releases_where_it_is_closed_or_finishes(how):
    prof = LineProfiler()
    gen = prof(yields_twice)()
    if how == "close":
        next(gen)
        gen.close()
    elif how == "del":
        next(gen)
        del gen
        gc.collect()
    elif how == "break":
        for _ in gen:
            break
        del gen
    else:
        assert list(gen) == [1, 2]
    lines = lines_of(prof, yields_twice)
    line = 0 if how == "exhaust" else 2  # its header when it fell off its end, or its yield
    assert -ITEMS - LIST_HEADER <= lines[line].increment <= -ITEMS
    assert abs(total(lines)) <= LIST_HEADER


def closes_in_finally():
    big = [0] * BIG  # noqa: F841
    try:
        yield 1
    finally:
        note = "closed"  # noqa: F841


def test_a_generator_closed_inside_try_releases_on_its_lines():
    prof = LineProfiler()
    gen = prof(closes_in_finally)()
    next(gen)
    gen.close()
    lines = lines_of(prof, closes_in_finally)
    assert lines[5].occurrences == 1
    # 3.11 charges the release to the finally block's last line (the frame object holding the
    # locals dies in its teardown), 3.12+ to the yield it waited at (gen.close() drops them).
    assert -ITEMS - LIST_HEADER - 512 <= lines[3].increment + lines[5].increment <= -ITEMS + 512
    assert abs(total(lines)) <= LIST_HEADER + 512


async def returns_after_an_await():
    big = [0] * BIG
    await asyncio.sleep(0)
    return len(big)


async def cleans_up_when_cancelled():
    big = [0] * BIG
    try:
        await asyncio.sleep(10)
    finally:
        del big


async def cancelled_without_cleanup():
    big = [0] * BIG  # noqa: F841
    await asyncio.sleep(10)


def _cancel(coroutine):
    async def main():
        task = asyncio.create_task(coroutine)
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    asyncio.run(main())


def test_a_coroutine_releases_at_its_return_and_when_cancelled():
    prof = LineProfiler()
    asyncio.run(prof(returns_after_an_await)())
    _cancel(prof(cleans_up_when_cancelled)())
    returned = lines_of(prof, returns_after_an_await)
    assert -ITEMS - LIST_HEADER <= returned[3].increment <= -ITEMS + 64
    cleaned = lines_of(prof, cleans_up_when_cancelled)
    # The list was built in the coroutine's first step and is freed in the step the
    # cancellation runs: the blocks of one step stay known to the next.
    assert -ITEMS - 4096 <= cleaned[5].increment <= -ITEMS + 4096
    assert abs(total(cleaned)) <= 4096


def test_a_cancelled_coroutine_without_cleanup_is_kept_by_its_cancellation():
    """The CancelledError's traceback holds the frame: nothing is released within the call."""
    prof = LineProfiler()
    _cancel(prof(cancelled_without_cleanup)())
    lines = lines_of(prof, cancelled_without_cleanup)
    assert abs(lines[2].increment) <= 4096
    assert ITEMS <= total(lines) <= ITEMS + 4096


# --- threads ------------------------------------------------------------------------------------

def test_each_thread_releases_on_its_own_return_line():
    start = threading.Barrier(4)

    def held_while_others_run():
        big = [0] * BIG  # noqa: F841
        start.wait()
        return 1

    prof = LineProfiler()
    wrapped = prof(held_while_others_run)
    threads = [threading.Thread(target=wrapped) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = lines_of(prof, held_while_others_run)
    assert lines[3].occurrences == 4
    assert -4 * (ITEMS + LIST_HEADER) - 512 <= lines[3].increment <= -4 * ITEMS
    assert abs(total(lines)) <= 4096  # what the barrier's first use leaves (3.11: line tables)


# --- the invariant, against tracemalloc, on standard-library workloads -------------------------

_MEASURE = textwrap.dedent("""
    import sys, tracemalloc
    from _teardown_workloads import WORKLOADS
    func = WORKLOADS[sys.argv[1]]
    func()  # imports and caches, in both processes
    if sys.argv[2] == "tracemalloc":
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        kept = func()
        print(tracemalloc.get_traced_memory()[0] - before)
    else:
        from memory_profilerxx import LineProfiler
        LineProfiler()(func)()  # what profiling makes once per code object (3.11 line tables)
        prof = LineProfiler()
        kept = prof(func)()
        print(sum(r.increment for r in prof.records()))
""")


def _measure(name, how):
    env = dict(os.environ)
    here = os.path.dirname(os.path.abspath(__file__))
    env["PYTHONPATH"] = os.pathsep.join([here, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    done = subprocess.run([sys.executable, "-c", _MEASURE, name, how], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout.split()[-1])


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_a_calls_increments_add_up_to_tracemallocs_net_change(name):
    truth = _measure(name, "tracemalloc")
    ours = _measure(name, "profile")
    # Free-list reuse is invisible to both, and their free lists differ a little.
    assert abs(ours - truth) <= max(0.005 * abs(truth), 4096), (ours, truth)

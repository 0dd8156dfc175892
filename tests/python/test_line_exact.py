"""The figures of the line report, checked against sizes computed independently."""

import gc
import importlib
import queue
import sys
import threading
import time

import _memxx
import pytest
from _profiled import lines_of, profiled
from memory_profilerxx import LineProfiler

MiB = 2**20


def seed():
    a = [1] * (10 ** 6)
    b = [2] * (2 * 10 ** 7)
    del b
    return a


def test_seed_example_lines_are_exact():
    lines, a = profiled(seed)
    # A list header may come from the free list (no allocator call): up to 56 B less.
    assert 8_000_000 <= lines[1].increment <= 8_000_056
    assert 160_000_000 <= lines[2].increment <= 160_000_056
    assert -160_000_056 <= lines[3].increment <= -160_000_000
    assert [lines[i].occurrences for i in range(5)] == [1, 1, 1, 1, 1]
    # What the function keeps (the list it returns) is what its lines add up to.
    total = sum(r.increment for r in lines.values())
    assert abs(total - sys.getsizeof(a)) <= 64
    # Memory after a line is the memory before it plus its increment.
    assert lines[2].memory == lines[1].memory + lines[2].increment
    assert lines[3].peak >= lines[2].memory


def comprehension(n):
    total = 0
    for i in range(5):
        L = [j ^ (j >> i) for j in range(n)]
        total += sum(L)
        del L
    return total


def comprehension_truth(n):
    """Bytes the `L = [...]` line keeps over its 5 runs, measured by tracemalloc."""
    import tracemalloc

    total = 0
    tracemalloc.start()
    try:
        for i in range(5):
            before = tracemalloc.get_traced_memory()[0]
            L = [j ^ (j >> i) for j in range(n)]
            total += tracemalloc.get_traced_memory()[0] - before
            del L
    finally:
        tracemalloc.stop()
    return total


def test_comprehension_lines_within_one_mib_of_truth():
    n = 200_000
    gc.collect()
    lines, _ = profiled(comprehension, n)
    truth = comprehension_truth(n)
    assert abs(lines[3].increment - truth) <= MiB
    assert abs(lines[5].increment + truth) <= MiB
    for offset in (1, 2, 4, 6):
        assert abs(lines[offset].increment) <= MiB, offset
    assert lines[1].occurrences == 1           # total = 0
    assert lines[2].occurrences == 6           # for: 5 iterations and the exhausted check
    assert lines[3].occurrences == 5
    assert lines[4].occurrences == 5
    assert lines[5].occurrences == 5
    assert lines[6].occurrences == 1


def build_and_free(n):
    big = [0] * n
    del big


def calls_a_temporary():
    build_and_free(25 * 10**6)  # 200,000,000 bytes, freed before the line ends
    return 1


def test_transient_peak_in_callee_shows_in_peak_not_increment():
    lines, _ = profiled(calls_a_temporary)
    line = lines[1]
    assert abs(line.increment) < MiB
    memory_before = lines[0].memory
    assert line.peak - memory_before >= 190 * MiB
    assert line.peak - memory_before <= 200_000_000 + MiB


def test_other_threads_allocations_are_not_charged():
    started = threading.Event()
    done = threading.Event()
    held = []

    def other():
        started.wait()
        held.append(bytearray(300 * 10**6))
        done.set()

    def sleeper():
        started.set()
        done.wait(10)
        time.sleep(0.05)
        return 1

    t = threading.Thread(target=other)
    t.start()
    lines, _ = profiled(sleeper)
    t.join()
    assert held and len(held[0]) == 300 * 10**6
    for record in lines.values():
        assert abs(record.increment) < MiB
        assert record.peak - lines[0].memory < MiB


def test_a_free_on_another_profiled_thread_is_charged_to_that_threads_line():
    # Young blocks are held in a cache in front of the block table: a block freed by another
    # thread than the one that made it must still be found there, or in the table.
    handed = queue.Queue()
    count = 3000

    def make():
        objs = [bytearray(100) for _ in range(count)]
        handed.put(objs)
        del objs
        return 0

    def drop():
        objs = handed.get(timeout=30)
        objs.clear()
        return 0

    prof_b = LineProfiler()
    t = threading.Thread(target=prof_b(drop))
    t.start()
    lines_a, _ = profiled(make)
    t.join()
    lines_b = lines_of(prof_b, drop)
    one = sys.getsizeof(bytearray(100))  # two blocks: the object and its 101-byte buffer
    items = count * 8
    assert count * one <= lines_a[1].increment <= count * one + items + 4096
    assert -(count * one + items + 4096) <= lines_b[2].increment <= -count * one


def _subinterpreters():
    # Every supported interpreter has one: _interpreters (3.13) or _xxsubinterpreters.
    for name in ("_interpreters", "_xxsubinterpreters"):
        try:
            return importlib.import_module(name)
        except ImportError:
            pass
    raise AssertionError("no subinterpreter module in this interpreter")


def test_blocks_freed_while_a_subinterpreter_exists_are_charged():
    # While the main interpreter is the only one, its GIL alone guards the young-block cache
    # and the MEM/OBJ table; while another exists (it may have a GIL of its own) the table lock
    # guards them too. Blocks made before it exists, freed while it does, and made and freed
    # after it is gone must all be found.
    interpreters = _subinterpreters()
    count = 3000

    def work():
        objs = [bytearray(100) for _ in range(count)]
        interp = interpreters.create()
        objs.clear()
        interpreters.destroy(interp)
        more = [bytearray(100) for _ in range(count)]
        more.clear()
        return 0

    lines, _ = profiled(work)
    one = sys.getsizeof(bytearray(100))  # two blocks: the object and its 101-byte buffer
    items = count * 8 + 4096
    for made, freed in ((1, 3), (5, 6)):
        assert count * one <= lines[made].increment <= count * one + items, lines[made]
        assert -(count * one + items) <= lines[freed].increment <= -count * one, lines[freed]


def test_lines_past_256_are_not_charged_the_interpreters_event_ints():
    # 3.12+ passes each event's line number or offset as an int, allocated for the call when
    # it is past 256: that int is the interpreter's, not the program's.
    source = "def still(n):\n    a = n\n    b = a\n    return b\n"
    namespace = {}
    exec(compile("\n" * 400 + source, "padded.py", "exec"), namespace)
    still = namespace["still"]
    prof = LineProfiler()
    wrapped = prof(still)
    for _ in range(3):
        wrapped(1000)
    lines = lines_of(prof, still)
    assert sorted(lines) == [0, 1, 2, 3]
    for record in lines.values():
        assert record.occurrences == 3
        assert record.increment == 0, record
    # Within one call (one starting memory) no line rises above where the call started.
    once = LineProfiler()
    once(still)(1000)
    lines = lines_of(once, still)
    for record in lines.values():
        assert record.peak == record.memory == lines[0].memory, record


def test_numpy_buffers_are_charged_to_their_line():
    np = pytest.importorskip("numpy")

    def make():
        x = np.ones(10**7)
        return x

    lines, x = profiled(make)
    assert x.nbytes == 80_000_000
    assert 80_000_000 <= lines[1].increment <= 80_000_000 + 4096
    assert f"{lines[1].increment / MiB:.1f}" == "76.3"


def recursive(n):
    if n == 0:
        return []
    acc = recursive(n - 1)
    acc.append(bytearray(100_000))
    return acc


def test_recursion_counts_each_allocation_once():
    prof = LineProfiler()
    wrapped = prof(recursive)
    acc = wrapped(5)
    lines = lines_of(prof, recursive)
    assert lines[1].occurrences == 6      # if n == 0, once per level
    assert lines[4].occurrences == 5
    one = sys.getsizeof(bytearray(100_000))
    assert 5 * one <= lines[4].increment <= 5 * one + 200  # plus the list's growth
    # The recursive call's line does not count again what deeper levels counted.
    assert abs(lines[3].increment) <= 200
    assert abs(sum(r.increment for r in lines.values()) - 5 * one - sys.getsizeof(acc)) <= 200


def inner():
    data = bytearray(10 * 10**6)
    return data


def outer():
    kept = inner()
    scratch = bytearray(5 * 10**6)
    del scratch
    return kept


def traced_frame_bytes(func):
    """3.11's C trace function makes the interpreter create a frame object for each traced call
    (3.12+ make none): its size for a call of ``func``."""
    if sys.version_info >= (3, 12):
        return 0
    sizes = []

    def tracer(frame, event, arg):
        if event == "call" and frame.f_code is func.__code__:
            sizes.append(sys.getsizeof(frame))

    sys.settrace(tracer)
    try:
        func()
    finally:
        sys.settrace(None)
    return sizes[0]


def test_nested_profiled_functions_each_report_their_lines():
    prof = LineProfiler()
    prof.add_function(inner)
    wrapped = prof(outer)
    wrapped()
    in_lines = lines_of(prof, inner)
    out_lines = lines_of(prof, outer)
    size = sys.getsizeof(bytearray(10 * 10**6))
    assert in_lines[1].increment == size
    # The call keeps what it returns. On 3.11 its frame object is the call's too: made as it
    # starts (its first line), freed by its teardown (its return line).
    frame_object = traced_frame_bytes(inner)
    assert in_lines[0].increment == frame_object
    assert in_lines[2].increment == -frame_object
    # The caller's line shows what the call left behind, like an RSS difference would.
    assert abs(out_lines[1].increment - size) <= 256
    scratch = sys.getsizeof(bytearray(5 * 10**6))
    assert out_lines[2].increment == scratch
    assert out_lines[3].increment == -scratch


def test_two_decorated_functions_print_two_reports():
    import io

    from memory_profilerxx import profile

    out_inner, out_outer = io.StringIO(), io.StringIO()
    f_inner = profile(stream=out_inner)(inner)

    def caller():
        kept = f_inner()
        return kept

    f_outer = profile(stream=out_outer)(caller)
    f_outer()
    assert "data = bytearray(10 * 10**6)" in out_inner.getvalue()
    assert "9.5 MiB" in out_inner.getvalue()
    # The caller's line holds the callee's 9.5 MiB plus the callee's report, kept in out_inner.
    row = next(line for line in out_outer.getvalue().splitlines() if "kept = f_inner()" in line)
    increment = float(row.split()[3])
    assert 9.5 <= increment <= 9.5 + len(out_inner.getvalue()) * 4 / MiB + 0.1


def test_live_block_table_costs_at_most_24_bytes_per_block():
    seen = {}

    def many_blocks():
        keep = [object() for _ in range(300_000)]
        seen.update(_memxx.hook_stats())
        return keep

    profiled(many_blocks)
    assert seen["live_blocks"] >= 300_000
    assert seen["table_bytes"] / seen["live_blocks"] <= 24

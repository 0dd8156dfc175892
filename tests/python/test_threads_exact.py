"""Other threads' memory on the profiled line that caused it (threads="all", the default), and
only there: threads it starts, pool workers running work it submits, native threads while it
runs, and frees on any thread of blocks it made. Bystander threads add nothing. The truth is the
bytes each test makes; threads="self" gives the profiled thread's own figures, as before.
"""

import asyncio
import ctypes
import gc
import queue
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import _memxx
import pytest
from _profiled import lines_of
from memory_profilerxx import LineProfiler, profile
from test_pytest_plugin import failure_text
from test_pytest_plugin import run as run_pytest

pytest_plugins = ["pytester"]

try:  # imported before any pytester run, whose module snapshot would drop them in between
    import numpy
    import pandas
    import pyarrow
    import pyarrow.csv
except ImportError:  # the native-pool tests skip
    numpy = pandas = pyarrow = None

MiB = 2**20
SLACK = 2 * MiB  # the tolerance the issue gives (5 % or 2 MiB, whichever is larger)


def near(value, truth, slack=None):
    return abs(value - truth) <= (slack if slack is not None else max(SLACK, abs(truth) // 20))


def run(func, *args, threads="all"):
    prof = LineProfiler(threads=threads)
    result = prof(func)(*args)
    return lines_of(prof, func), result


def one_mib(_):
    return bytearray(MiB)


def pool_map(pool):
    held = list(pool.map(one_mib, range(40)))
    return held


def pool_submit(pool):
    futures = [pool.submit(one_mib, i) for i in range(40)]
    held = [f.result() for f in futures]
    return held


@pytest.mark.parametrize("work", [pool_map, pool_submit])
def test_pool_work_a_line_submits_counts_for_that_line(work):
    with ThreadPoolExecutor(4) as pool:
        pool.submit(int).result()  # the workers exist before profiling starts
        lines, held = run(work, pool)
        assert len(held) == 40
        assert near(lines[1].increment, 40 * MiB)
        assert near(lines[1].threads_increment, 40 * MiB)
        own, held = run(work, pool, threads="self")
        assert abs(own[1].increment) < MiB  # the old figure: the workers' memory is not its own


def produce(q):
    for _ in range(20):
        q.put(bytearray(5 * MiB))
    q.join()
    return 0


@pytest.mark.parametrize("threads, kept", [("all", 0), ("self", 100 * MiB)])
def test_buffers_a_consumer_thread_frees_are_freed_on_the_producers_lines(threads, kept):
    q = queue.Queue()

    def consume():
        while True:
            item = q.get()
            if item is None:
                return
            # put() holds the item until it returns: freed here only once the producer let go
            # (else the producer's line frees it, rightly as its own: 1 run in about 10).
            while sys.getrefcount(item) > 2:
                time.sleep(0.0001)
            del item
            q.task_done()

    consumer = threading.Thread(target=consume)
    consumer.start()
    try:
        lines, _ = run(produce, q, threads=threads)
    finally:
        q.put(None)
        consumer.join()
    total = sum(r.increment for r in lines.values())
    assert near(total, kept, SLACK)
    if threads == "all":
        freed_elsewhere = sum(r.threads_increment for r in lines.values())
        assert near(freed_elsewhere, -100 * MiB, SLACK)


def fill(held, count):
    for _ in range(count):
        held.append(bytearray(MiB))


def starts_a_thread(held):
    worker = threading.Thread(target=fill, args=(held, 30)); worker.start(); worker.join()  # noqa: E702
    return len(held)


def test_a_thread_the_profiled_code_starts_counts_for_the_starting_line():
    held = []
    lines, _ = run(starts_a_thread, held)
    assert len(held) == 30
    assert near(lines[1].increment, 30 * MiB)
    assert near(lines[1].threads_increment, 30 * MiB)
    held.clear()
    own, _ = run(starts_a_thread, held, threads="self")
    assert abs(own[1].increment) < MiB


async def off_the_loop():
    first = await asyncio.to_thread(bytearray, 12 * MiB)
    second = await asyncio.get_running_loop().run_in_executor(None, bytearray, 8 * MiB)
    return first, second


def runs_a_loop():
    held = asyncio.run(off_the_loop())
    return held


def test_asyncio_to_thread_and_run_in_executor_count_for_the_awaiting_line():
    lines, held = run(runs_a_loop)
    assert len(held[0]) + len(held[1]) == 20 * MiB
    assert near(lines[1].increment, 20 * MiB)
    assert near(lines[1].threads_increment, 20 * MiB)


# Six bystanders: started before profiling, each allocating and freeing its own memory all the
# time (one through a thread pool of its own). None of it may reach the profiled line.
class Storm:
    def __init__(self):
        self.stop = threading.Event()
        self.rounds = [0] * 6
        self.threads = [threading.Thread(target=self.churn, args=(i,)) for i in range(5)]
        self.threads.append(threading.Thread(target=self.pool_churn, args=(5,)))

    def churn(self, index):
        kept = []
        while not self.stop.is_set():
            kept.append(bytearray(64 * 1024))
            kept.append([index] * 1000)
            if len(kept) > 64:
                kept.clear()
                time.sleep(0.001)  # lets the pool storm have the GIL now and then
            self.rounds[index] += 1

    def pool_churn(self, index):
        with ThreadPoolExecutor(2) as pool:
            while not self.stop.is_set():
                list(pool.map(bytearray, [256 * 1024] * 4))
                self.rounds[index] += 1

    def __enter__(self):
        for t in self.threads:
            t.start()
        while min(self.rounds) < 3:
            time.sleep(0.005)
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()


def during_a_storm():
    block = bytearray(10 * MiB)
    time.sleep(0.3)
    del block
    time.sleep(0.3)
    return 0


@pytest.mark.parametrize("threads", ["all", "self"])
def test_bystander_threads_add_nothing(threads):
    with Storm() as storm:
        before = list(storm.rounds)
        lines, _ = run(during_a_storm, threads=threads)
        after = list(storm.rounds)
    assert all(b > a for a, b in zip(before, after)), (before, after)  # they stormed meanwhile
    assert 10 * MiB <= lines[1].increment <= 10 * MiB + 4096
    assert -(10 * MiB + 4096) <= lines[3].increment <= -10 * MiB
    for line in (2, 4, 5):
        assert abs(lines[line].increment) <= 4096
    assert [r.threads_increment for r in lines.values()] == [0] * len(lines)


def test_profile_decorator_takes_threads_and_rejects_other_values():
    with pytest.raises(ValueError, match="threads must be 'all' or 'self'"):
        profile(pool_map, threads="some")
    with pytest.raises(ValueError, match="threads must be 'all' or 'self'"):
        LineProfiler(threads=True)
    assert LineProfiler().threads == "all"
    assert LineProfiler(threads="self").threads == "self"


def test_pytest_budgets_count_pool_work_unless_current_thread_only(pytester):
    # pytest-memray's current_thread_only=False (its default) counts every thread's memory.
    pytester.makepyfile(test_pool_budget="""
        from concurrent.futures import ThreadPoolExecutor
        import pytest

        POOL = ThreadPoolExecutor(2)

        @pytest.mark.limit_memory("2 MiB")
        def test_all_threads():
            held = POOL.submit(bytearray, 3 * 2**20).result()

        @pytest.mark.limit_memory("2 MiB", current_thread_only=True)
        def test_own_thread():
            held = POOL.submit(bytearray, 3 * 2**20).result()
    """)
    result = run_pytest(pytester)
    result.assert_outcomes(passed=1, failed=1)
    assert "test_all_threads used 3.0 MiB at its peak (limit 2.0 MiB)" in failure_text(
        result, "test_all_threads")


def test_pytest_limit_leaks_passes_a_test_that_hands_its_buffers_to_a_consumer(pytester):
    # consume() is not nested in the test: a profiled function's nested functions are profiled
    # too, and a thread that ends in one leaves its ledger open (a tracer bug, reported).
    pytester.makepyfile(test_handed="""
        import queue, threading
        import pytest

        def consume(q):
            while (item := q.get()) is not None:
                del item
                q.task_done()

        @pytest.mark.limit_leaks("1 MiB")
        def test_handed_over():
            q = queue.Queue()
            consumer = threading.Thread(target=consume, args=(q,))
            consumer.start()
            for _ in range(20):
                q.put(bytearray(5 * 2**20))
            q.join()
            q.put(None)
            consumer.join()
    """)
    run_pytest(pytester).assert_outcomes(passed=1)


# Native pools: arrow's CSV reader and pandas' read_csv build their columns on threads with no
# Python thread state. Arrow's default pool is its own mimalloc (memory it maps itself, counted
# by pages: not this file's subject), so these tests give arrow the system allocator's pool.
@pytest.fixture(scope="module")
def csv_file(tmp_path_factory):
    if numpy is None or pandas is None:
        pytest.skip("numpy, pandas and pyarrow are needed (scripts/install-deps.sh)")
    np = numpy
    path = tmp_path_factory.mktemp("csv") / "rows.csv"
    rng = np.random.default_rng(1)
    n = 1_000_000
    a, b, c = rng.integers(0, 10**9, n), rng.random(n), rng.integers(0, 100, n)
    with open(path, "w") as out:
        out.write("a,b,name,c\n")
        out.writelines(f"{a[i]},{b[i]:.6f},name_{a[i] % 100000}_{i},{c[i]}\n" for i in range(n))
    return str(path)


@pytest.fixture()
def system_pool():
    pa = pyarrow
    previous = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    yield pa
    pa.set_memory_pool(previous)


def arrow_read(path):
    table = pyarrow.csv.read_csv(path)
    return table


def test_arrow_csv_reader_threads_count_for_the_line(csv_file, system_pool):
    pa = system_pool
    arrow_read(csv_file)  # warm: arrow's lazily made singletons are not this line's
    gc.collect()  # the warm table sits in a reference cycle now and then
    before = pa.total_allocated_bytes()
    lines, table = run(arrow_read, csv_file)
    truth = pa.total_allocated_bytes() - before  # arrow's own count of what the table holds
    assert truth >= 40 * MiB
    assert near(lines[1].increment, truth)
    assert near(lines[1].threads_increment, truth)
    assert near(lines[1].native_increment, truth)
    del table
    own, table = run(arrow_read, csv_file, threads="self")
    assert abs(own[1].increment) < MiB  # the old figure: arrow's threads were invisible


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
                .split()]


def malloc_in_use():
    """glibc's own count of the bytes its malloc has handed out and not taken back."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    info = libc.mallinfo2()
    return info.uordblks + info.hblkhd


def pandas_read(path):
    frame = pandas.read_csv(path)
    return frame


def test_pandas_read_csv_with_arrow_strings_counts_its_worker_threads(csv_file, system_pool):
    pd = pandas
    pandas_read(csv_file)
    gc.collect()
    before = malloc_in_use()
    lines, frame = run(pandas_read, csv_file)
    truth = malloc_in_use() - before
    assert pd.api.types.is_string_dtype(frame["name"])
    # What the frame reports it holds, and glibc's count of what the call kept (the frame plus
    # what pandas and arrow keep beside it: builders' spare capacity, caches).
    assert lines[1].increment >= frame.memory_usage(deep=True).sum() - SLACK
    assert near(lines[1].increment, truth)
    assert lines[1].threads_increment >= 20 * MiB
    own, frame = run(pandas_read, csv_file, threads="self")
    assert own[1].increment < truth / 2  # the old figure: the string columns were missing


def alloc_then_free_through_ctypes(ext, free, size, count):
    for _ in range(count):
        address = ext.alloc("malloc", size)
        free(address)
    return 0


def test_a_block_freed_through_ctypes_is_freed_on_the_line():
    import _native

    ext = _native.module()
    libc = ctypes.CDLL("libc.so.6")
    free = libc.free  # looked up before profiling: the address of libc's free itself
    free.argtypes = [ctypes.c_void_p]
    size = 3 * MiB + 4096
    lines, _ = run(alloc_then_free_through_ctypes, ext, free, size, 20)
    assert lines[2].native_increment == 20 * size
    assert lines[3].native_increment == -20 * size  # no phantom growing by 3 MiB a round


# A thread that runs profiled code and ends: its ledger (held open for the teardown of its last
# profiled frame, which no later event settles) closes when the thread ends, so the profiling
# session closes with the profiled call and a later one measures as before.
def starts_a_thread_running_a_nested_function():
    def nested():
        block = bytearray(MiB)
        return len(block)

    thread = threading.Thread(target=nested)
    thread.start()
    thread.join()
    return 0


def a_profiled_function(fail=False):
    block = bytearray(MiB)
    if fail:
        raise ValueError(len(block))
    return len(block)


def starts_a_thread_running_a_profiled_function(fail):
    thread = threading.Thread(target=a_profiled_function, args=(fail,))
    thread.start()
    thread.join()
    return 0


def assert_thread_counted_its_line(lines):
    if sys.version_info >= (3, 12):
        assert near(lines[1].increment, MiB, 4096)  # the thread's own line, counted there
    else:  # 3.11 traces a thread only while it runs a profiled call, which this one does not
        assert 1 not in lines


def ten_mib():
    block = bytearray(10 * MiB)
    return len(block)


@pytest.mark.parametrize("threads", ["all", "self"])
@pytest.mark.parametrize("case", ["nested", "profiled", "raising"])
def test_a_thread_that_ends_inside_profiled_code_leaves_the_session_closed(case, threads,
                                                                           monkeypatch):
    raised = []
    monkeypatch.setattr(threading, "excepthook", lambda args: raised.append(args.exc_type))
    prof = LineProfiler(threads=threads)
    if case == "nested":
        prof(starts_a_thread_running_a_nested_function)()
    else:
        prof.add_function(a_profiled_function)
        prof(starts_a_thread_running_a_profiled_function)(case == "raising")
        assert_thread_counted_its_line(lines_of(prof, a_profiled_function))
    assert raised == ([ValueError] if case == "raising" else [])
    assert _memxx.profiled_depth() == 0
    assert _memxx.hook_stats()["active"] is False
    lines, made = run(ten_mib)
    assert made == 10 * MiB
    assert 10 * MiB <= lines[1].increment <= 10 * MiB + 4096
    assert -(10 * MiB + 4096) <= lines[2].increment + lines[0].increment <= -10 * MiB


def submits_a_profiled_function(pool):
    return pool.submit(a_profiled_function).result()


def test_a_pool_worker_that_ran_profiled_code_leaves_the_session_closed():
    # The worker lives on after its work item: its ledger closes where it takes the next one.
    with ThreadPoolExecutor(1) as pool:
        prof = LineProfiler(threads="all")
        prof.add_function(a_profiled_function)
        assert prof(submits_a_profiled_function)(pool) == MiB
        assert_thread_counted_its_line(lines_of(prof, a_profiled_function))
        assert _memxx.hook_stats()["active"] is False
        lines, made = run(ten_mib)
        assert made == 10 * MiB
        assert 10 * MiB <= lines[1].increment <= 10 * MiB + 4096

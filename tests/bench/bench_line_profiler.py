"""Line profiler overhead: memory_profilerxx against memory_profiler, tracemalloc, memray and
the floors, in one process. Prints medians and ratios.

The floors are what any exact line profiler pays before doing work of its own: the
interpreter's line events sent to a C function that returns at once, and (the "+alloc" rows)
an indirect call on every allocation and free; on 3.12+ also the BRANCH and JUMP events a
count per basic block would use instead of LINE.

Workloads: a line-heavy loop; bulk allocations inside C loops (seven lines); and a Python loop
that allocates a few objects per iteration (a 4 KiB bytearray, a small list, a str, a dict), the
shape users profile; and work handed to a ThreadPoolExecutor, which ours charges to the line. Every mode of a workload runs once to warm up, then the modes take turns
round by round; each figure is the mode's median (a mode timed cold, on a fresh heap, would
flatter whatever it is compared with).

Run: python tests/bench/bench_line_profiler.py [--quick]
"""

from __future__ import annotations

import functools
import gc
import operator
import statistics
import subprocess
import sys
import time
import tracemalloc
import types

import _memxx
from memory_profilerxx import LineProfiler

QUICK = "--quick" in sys.argv
REPS = 3 if QUICK else 5
N_LINE = 80_000 if QUICK else 250_000   # loop_work: about 4 line events per iteration
N_ALLOC = 300_000 if QUICK else 1_000_000


def loop_work(n):
    lst = []
    d = {}
    for i in range(n):
        lst.append(i)
        d[i] = str(i)
        if i % 3 == 0:
            lst.append([i])
    return len(lst) + len(d)


def alloc_work(n):
    strings = list(map(str, range(n)))
    table = dict.fromkeys(strings, ())
    nested = list(map(list, zip(strings)))
    block = [0] * (5 * n)
    pairs = sorted(zip(strings, strings), reverse=True)
    del table, block, nested
    return len(pairs)


def python_alloc_loop(n):
    kept = []
    for i in range(n):
        block = bytearray(4096)
        pair = [i, i + 1]
        name = str(i)
        row = {"i": i}
        if i % 8 == 0:
            kept.append((block, pair, name, row))
    return len(kept)


def pool_alloc_work(pool, n):
    """Work handed to a thread pool: n 16 KiB buffers built on the workers, kept, then dropped."""
    held = list(pool.map(bytearray, [16384] * n, chunksize=64))
    total = sum(map(len, held))
    del held
    return total


def calls_unprofiled(n):
    total = loop_work(n)
    return total


def line_events(func, *args):
    count = 0

    def tracer(frame, event, arg):
        nonlocal count
        if frame.f_code is func.__code__ and event == "line":
            count += 1
        return tracer

    sys.settrace(tracer)
    try:
        func(*args)
    finally:
        sys.settrace(None)
    return count


def interleaved(modes, args, rounds=REPS):
    """{name: median seconds} of each mode's callable on ``args``: warmed once, then in turns.

    Each run starts from a collected heap: otherwise the collector's full passes over the heap
    (tens of ms once memory_profiler and memray are imported) fall on whichever mode's turn
    comes when its thresholds are reached, the same mode round after round."""
    for run in modes.values():
        run(*args)
    times = {name: [] for name in modes}
    for _ in range(rounds):
        for name, run in modes.items():
            gc.collect()
            t = time.perf_counter()
            run(*args)
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(values) for name, values in times.items()}


def under_python_trace(func):
    def tracer(frame, event, arg):
        return tracer

    def run(*args):
        sys.settrace(tracer)
        try:
            return func(*args)
        finally:
            sys.settrace(None)
    return run


def under_memray(func, python_allocators):
    """memray's Tracker; with ``python_allocators`` it sees every PyMem allocation as we do,
    without it only what reaches the system allocator (pymalloc's arenas, large blocks)."""
    import os
    import tempfile

    import memray

    folder = tempfile.mkdtemp(prefix="memxx-bench-memray-")
    runs = iter(range(10**6))

    def run(*args):
        path = os.path.join(folder, f"{next(runs)}.bin")
        try:
            with memray.Tracker(path, trace_python_allocators=python_allocators):
                return func(*args)
        finally:
            os.unlink(path)
    return run


def peer_modes(func):
    """The peers installed here, beside ours: tracemalloc always, memray where installed."""
    modes = {"tracemalloc": under_tracemalloc(func)}
    try:
        import memray  # noqa: F401
    except ImportError:
        print("  (memray is not installed: its row is left out)")
    else:
        modes["memray (PyMem too)"] = under_memray(func, True)
        modes["memray (malloc only)"] = under_memray(func, False)
    return modes


def print_rows(figures, base_name="plain"):
    base = figures[base_name]
    for name, seconds in figures.items():
        print(f"  {name:20s}{seconds * 1e3:9.1f} ms   {seconds / base:5.2f}x")


def in_thread(func, profiled):
    """Runs func on a new thread, not profiled, while the main thread waits for it: inside a
    profiled call (the allocator hook is then on for every thread) or not."""
    import threading

    def wait(thread):
        thread.join()

    waiting = under_xx(wait) if profiled else wait

    def run(*args):
        thread = threading.Thread(target=func, args=args)
        thread.start()
        waiting(thread)
    return run


def under_xx(func, threads="all"):
    prof = LineProfiler(threads=threads)
    return prof(func)


def under_floor(func, allocator=False, blocks=False):
    """The interpreter's own cost of the events a line profiler needs, sent to a C function that
    does nothing: a C trace function (3.11) or LINE events on this code (3.12+); with ``blocks``
    (3.12+) the BRANCH and JUMP events a count per basic block would need instead. With
    ``allocator`` the PyMem domains also get functions that only pass each call on: together,
    the floor of any profiler that sees every line (or block) and every allocation."""
    def events_floor(*args):
        if _memxx.set_floor_trace(True):
            try:
                return func(*args)
            finally:
                _memxx.set_floor_trace(False)
        mon = sys.monitoring
        tool = 5
        kinds = [mon.events.BRANCH, mon.events.JUMP] if blocks else [mon.events.LINE]
        mon.use_tool_id(tool, "floor")
        for kind in kinds:
            mon.register_callback(tool, kind, _memxx.floor_event)
        mon.set_local_events(tool, func.__code__, functools.reduce(operator.or_, kinds))
        try:
            return func(*args)
        finally:
            mon.set_local_events(tool, func.__code__, 0)
            for kind in kinds:
                mon.register_callback(tool, kind, None)
            mon.free_tool_id(tool)

    return under_pass_through(events_floor) if allocator else events_floor


def under_pass_through(func):
    """``func`` with PyMem functions that only pass each call on: the least any hook costs."""
    def run(*args):
        if not _memxx.set_floor_allocator(True):
            raise RuntimeError("the pass-through allocator could not be installed")
        try:
            return func(*args)
        finally:
            _memxx.set_floor_allocator(False)
    return run


def floor_modes(func):
    """The floors of any exact line-and-allocation profiler on ``func``: its line events, or
    (3.12+) the fewer events of a count per basic block, plus a hook on every allocation."""
    modes = {"floor: lines+alloc": under_floor(func, allocator=True)}
    if sys.version_info >= (3, 12):
        modes["floor: blocks+alloc"] = under_floor(func, allocator=True, blocks=True)
    return modes


def print_floors(figures):
    ours = figures["memory_profilerxx"]
    for name in ("floor: lines+alloc", "floor: blocks+alloc"):
        if name in figures:
            print(f"  memory_profilerxx ÷ {name}: {ours / figures[name]:.2f}x")


def under_tracemalloc(func):
    def run(*args):
        tracemalloc.start()
        try:
            return func(*args)
        finally:
            tracemalloc.stop()
    return run


def under_memory_profiler(func):
    import io

    import memory_profiler

    def run(*args):
        return memory_profiler.profile(func, stream=io.StringIO())(*args)
    return run


def import_time(module):
    code = f"import time; t=time.perf_counter(); import {module}; print(time.perf_counter()-t)"
    runs = [float(subprocess.run([sys.executable, "-c", code], capture_output=True,
                                 text=True, check=False).stdout or "nan") for _ in range(REPS)]
    return statistics.median(runs)


def main():
    print(f"Python {sys.version.split()[0]}; {REPS} interleaved rounds after a warm-up, medians")
    events = line_events(loop_work, N_LINE)
    line = interleaved({
        "plain": loop_work,
        "empty C trace floor": under_floor(loop_work),
        **floor_modes(loop_work),
        "memory_profilerxx": under_xx(loop_work),
        "empty Python trace": under_python_trace(loop_work),
        **peer_modes(loop_work),
    }, (N_LINE,))
    print(f"\nline-heavy loop_work({N_LINE}): {events:,} line events")
    print_rows(line)
    print(f"  memory_profilerxx ÷ floor: {line['memory_profilerxx'] / line['empty C trace floor']:.2f}x")
    print_floors(line)
    small = N_LINE // 50
    few = interleaved({"plain": loop_work, "memory_profilerxx": under_xx(loop_work),
                       "memory_profiler": under_memory_profiler(loop_work)}, (small,), rounds=1)
    print(f"  memory_profiler (n={small}): {few['memory_profiler'] * 1e3:.1f} ms vs ours "
          f"{few['memory_profilerxx'] * 1e3:.2f} ms: "
          f"{few['memory_profiler'] / few['memory_profilerxx']:,.0f}x slower than ours")

    bulk = interleaved({
        "plain": alloc_work,
        "memory_profilerxx": under_xx(alloc_work),
        **peer_modes(alloc_work),
    }, (N_ALLOC,))
    print(f"\nbulk allocations alloc_work({N_ALLOC}): 7 lines, about {N_ALLOC * 6:,}"
          " allocations and frees in C loops")
    print_rows(bulk)

    n_loop = N_ALLOC // 5
    loop = interleaved({
        "plain": python_alloc_loop,
        **floor_modes(python_alloc_loop),
        "memory_profilerxx": under_xx(python_alloc_loop),
        "empty Python trace": under_python_trace(python_alloc_loop),
        **peer_modes(python_alloc_loop),
    }, (n_loop,))
    print(f"\nPython allocation loop python_alloc_loop({n_loop}): 4 objects per iteration")
    print_rows(loop)
    print_floors(loop)
    mp_n = n_loop // 100
    slow = interleaved({"memory_profilerxx": under_xx(python_alloc_loop),
                        "memory_profiler": under_memory_profiler(python_alloc_loop)},
                       (mp_n,), rounds=1)
    print(f"  memory_profiler (n={mp_n}): "
          f"{slow['memory_profiler'] / slow['memory_profilerxx']:,.0f}x slower than ours")

    from concurrent.futures import ThreadPoolExecutor

    n_pool = N_ALLOC // 100
    with ThreadPoolExecutor(2) as pool:
        pooled = interleaved({
            "plain": pool_alloc_work,
            "memory_profilerxx": under_xx(pool_alloc_work),
            "threads='self'": under_xx(pool_alloc_work, threads="self"),
            **peer_modes(pool_alloc_work),
        }, (pool, n_pool))
    print(f"\nthread-pool work pool_alloc_work({n_pool}): the workers' buffers counted for the "
          "line (threads='self': not counted)")
    print_rows(pooled)

    after = interleaved({"plain": loop_work, "unprofiled callee": under_xx(calls_unprofiled)},
                        (N_LINE,))
    print(f"\nunprofiled callee (profiled caller runs loop_work): "
          f"{after['unprofiled callee'] / after['plain']:5.2f}x plain")
    # The same function, and a copy whose code object was never profiled, in turns.
    never_profiled = types.FunctionType(loop_work.__code__.replace(), loop_work.__globals__)
    under_xx(loop_work)(1000)
    returned = interleaved({"never profiled": never_profiled, "after return": loop_work},
                           (N_LINE,))
    print(f"code after the profiled function returned: "
          f"{returned['after return'] / returned['never profiled']:5.2f}x a never-profiled copy")

    threads = interleaved({"nothing profiled": in_thread(python_alloc_loop, profiled=False),
                           "floor": under_pass_through(in_thread(python_alloc_loop, False)),
                           "main thread profiled": in_thread(python_alloc_loop, profiled=True)},
                          (n_loop,))
    alone = threads["nothing profiled"]
    print(f"unprofiled thread (Python allocation loop) while the main thread runs a profiled "
          f"call: {threads['main thread profiled'] / alone:5.2f}x (pass-through PyMem functions "
          f"alone: {threads['floor'] / alone:4.2f}x)")

    ours, theirs = import_time("memory_profilerxx"), import_time("memory_profiler")
    print(f"\nimport memory_profilerxx {ours * 1e3:.1f} ms; import memory_profiler "
          f"{theirs * 1e3:.1f} ms ({theirs / ours:.0f}x)")


if __name__ == "__main__":
    main()

"""Line profiler overhead: memory_profilerxx against memory_profiler, tracemalloc and the
interpreter's own tracing floor, in one process. Prints medians and ratios.

Run: python tests/bench/bench_line_profiler.py [--quick]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
import tracemalloc

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


def median_time(func, *args, reps=REPS):
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        func(*args)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def under_xx(func):
    prof = LineProfiler()
    return prof(func)


def under_floor(func):
    def run(*args):
        if _memxx.set_floor_trace(True):
            try:
                return func(*args)
            finally:
                _memxx.set_floor_trace(False)
        # 3.12+: LINE events on this code only, to a C callable that does nothing.
        mon = sys.monitoring
        tool = 5
        mon.use_tool_id(tool, "floor")
        mon.register_callback(tool, mon.events.LINE, slice)
        mon.set_local_events(tool, func.__code__, mon.events.LINE)
        try:
            return func(*args)
        finally:
            mon.set_local_events(tool, func.__code__, 0)
            mon.register_callback(tool, mon.events.LINE, None)
            mon.free_tool_id(tool)
    return run


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
    print(f"Python {sys.version.split()[0]}; medians of {REPS} runs")
    events = line_events(loop_work, N_LINE)
    plain = median_time(loop_work, N_LINE)
    floor = median_time(under_floor(loop_work), N_LINE)
    xx = median_time(under_xx(loop_work), N_LINE)
    tm = median_time(under_tracemalloc(loop_work), N_LINE)
    small = N_LINE // 50
    mp_small = median_time(under_memory_profiler(loop_work), small, reps=1)
    plain_small = median_time(loop_work, small)
    xx_small = median_time(under_xx(loop_work), small)
    print(f"\nline-heavy loop_work({N_LINE}): {events:,} line events")
    print(f"  plain               {plain * 1e3:9.1f} ms   1.00x")
    print(f"  empty C trace floor {floor * 1e3:9.1f} ms   {floor / plain:5.2f}x")
    print(f"  memory_profilerxx   {xx * 1e3:9.1f} ms   {xx / plain:5.2f}x plain, "
          f"{xx / floor:4.2f}x floor")
    print(f"  tracemalloc         {tm * 1e3:9.1f} ms   {tm / plain:5.2f}x")
    print(f"  memory_profiler     (n={small}) {mp_small * 1e3:9.1f} ms vs ours "
          f"{xx_small * 1e3:.2f} ms: {mp_small / xx_small:,.0f}x slower than ours "
          f"({mp_small / plain_small:,.0f}x plain)")

    plain_a = median_time(alloc_work, N_ALLOC)
    xx_a = median_time(under_xx(alloc_work), N_ALLOC)
    tm_a = median_time(under_tracemalloc(alloc_work), N_ALLOC)
    mp_a = median_time(under_memory_profiler(alloc_work), N_ALLOC, reps=1)
    print(f"\nallocation-heavy alloc_work({N_ALLOC}): 7 lines, about {N_ALLOC * 6:,} allocations and frees")
    print(f"  plain               {plain_a * 1e3:9.1f} ms   1.00x")
    print(f"  memory_profilerxx   {xx_a * 1e3:9.1f} ms   {xx_a / plain_a:5.2f}x")
    print(f"  tracemalloc         {tm_a * 1e3:9.1f} ms   {tm_a / plain_a:5.2f}x")
    print(f"  memory_profiler     {mp_a * 1e3:9.1f} ms   {mp_a / plain_a:5.2f}x")

    callee = median_time(under_xx(calls_unprofiled), N_LINE)
    print(f"\nunprofiled callee (profiled caller runs loop_work): {callee / plain:5.2f}x plain")
    under_xx(loop_work)(1000)
    after = median_time(loop_work, N_LINE)
    print(f"code after the profiled function returned: {after / plain:5.2f}x plain")

    ours, theirs = import_time("memory_profilerxx"), import_time("memory_profiler")
    print(f"\nimport memory_profilerxx {ours * 1e3:.1f} ms; import memory_profiler "
          f"{theirs * 1e3:.1f} ms ({theirs / ours:.0f}x)")


if __name__ == "__main__":
    main()

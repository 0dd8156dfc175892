"""Native memory: the cost of counting what C code allocates with malloc, against memray, in one
process. Prints medians and ratios.

Workloads: a native-allocation-heavy function (1 M malloc/free pairs of mixed sizes in the test
extension, tests/python/native/memxx_native_ext.cpp), the allocation-heavy Python function of
bench_line_profiler.py, and a pyarrow + polars function (sort, take, a derived polars column:
their embedded allocators fill reserved mappings, counted by pages), where those are installed. Modes: plain; under memory_profilerxx's profile (native counted); under
profile(native=False); under memray's Tracker (which redirects malloc the same way) and
tracemalloc, where installed. Every mode runs once to warm up, then the modes take turns round
by round; the figure is each mode's median.

Run: python tests/bench/bench_native.py [--quick]
"""

from __future__ import annotations

import gc
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
sys.path.insert(0, HERE)

import _memxx  # noqa: E402
import _native  # noqa: E402
from bench_line_profiler import alloc_work, under_tracemalloc  # noqa: E402
from memory_profilerxx import LineProfiler  # noqa: E402

QUICK = "--quick" in sys.argv
ROUNDS = 3 if QUICK else 7
PAIRS = 300_000 if QUICK else 1_000_000
N_ALLOC = 300_000 if QUICK else 1_000_000
N_FRAME = 2_000_000 if QUICK else 5_000_000

ext = _native.module()


def native_work(pairs):
    total = ext.churn(pairs)
    return total


def arrow_polars_work(n):
    import numpy as np
    import polars as pl
    import pyarrow as pa
    import pyarrow.compute as pc

    column = pa.array(np.arange(n, dtype=np.int64)[::-1])
    ordered = pc.take(column, pc.sort_indices(column))
    frame = pl.DataFrame({"a": np.arange(n)})
    derived = frame.select(pl.col("a") * 3, (pl.col("a") + 1).alias("b")).sort("b")
    return len(ordered) + derived.height


def plain(func):
    return func


def profiled(native):
    def wrap(func):
        return LineProfiler(native=native)(func)
    return wrap


def under_memray(func):
    import memray

    folder = tempfile.mkdtemp(prefix="memxx-bench-memray-")
    runs = iter(range(10**6))

    def run(*args):
        path = os.path.join(folder, f"run{next(runs)}.bin")
        with memray.Tracker(destination=memray.FileDestination(path, overwrite=True),
                            native_traces=False):
            result = func(*args)
        os.unlink(path)
        return result
    return run


def interleaved(func, arg, modes):
    """{mode name: median seconds}: one warm-up run per mode, then ROUNDS rounds in turn, each
    run from a collected heap (the collector's full passes would otherwise land on one mode)."""
    wrapped = {name: make(func) for name, make in modes.items()}
    times = {name: [] for name in modes}
    for name, run in wrapped.items():
        run(arg)
    for _ in range(ROUNDS):
        for name, run in wrapped.items():
            gc.collect()
            start = time.perf_counter()
            run(arg)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def report(title, medians):
    base = medians["plain"]
    print(f"\n{title}")
    for name, seconds in medians.items():
        print(f"  {name:28s} {seconds * 1e3:9.1f} ms   {seconds / base:5.2f}x plain")


def main():
    modes = {"plain": plain, "profile (native)": profiled(True),
             "profile(native=False)": profiled(False)}
    try:
        import memray  # noqa: F401

        modes["memray Tracker"] = under_memray
    except ImportError:
        print("memray not installed: its rows are left out")
    print(f"Python {sys.version.split()[0]}; medians of {ROUNDS} interleaved rounds, "
          "each mode warmed up once")

    # The patching pass, with the test suite's libraries loaded (where installed): the first
    # session reads each object's relocations, later ones only rewrite the slots.
    for name in ("numpy", "sqlite3", "PIL.Image"):
        try:
            __import__(name)
        except ImportError:
            pass
    LineProfiler()(native_work)(10)
    first_pass = _memxx.hook_stats()["native_patch_seconds"]
    passes = []
    for _ in range(ROUNDS):
        LineProfiler()(native_work)(10)
        passes.append(_memxx.hook_stats()["native_patch_seconds"])

    native = interleaved(native_work, PAIRS, modes)
    report(f"native-heavy native_work({PAIRS:,}): {PAIRS:,} malloc/free pairs in C", native)
    # native=False does the same work as plain here (no native counting): their ratio is the
    # run-to-run noise of glibc's heap, which depends on what the previous mode left in it.
    print(f"  noise: profile(native=False) / plain = "
          f"{native['profile(native=False)'] / native['plain']:.2f}x")
    if "memray Tracker" in native:
        print(f"  memray / profile (native): "
              f"{native['memray Tracker'] / native['profile (native)']:.2f}x")

    python_modes = dict(modes, tracemalloc=under_tracemalloc)
    python = interleaved(alloc_work, N_ALLOC, python_modes)
    report(f"allocation-heavy Python alloc_work({N_ALLOC:,})", python)

    try:
        import polars  # noqa: F401
        import pyarrow  # noqa: F401
    except ImportError:
        print("\npyarrow or polars not installed: their row is left out")
    else:
        frames = interleaved(arrow_polars_work, N_FRAME, modes)
        report(f"pyarrow + polars arrow_polars_work({N_FRAME:,})", frames)

    stats = _memxx.hook_stats()
    print(f"\npatching pass: first {first_pass * 1e3:.2f} ms (reads each object's relocations), "
          f"then {statistics.median(passes) * 1e3:.2f} ms median per profiling session "
          f"({stats['native_objects']} objects, {stats['native_slots']} slots); "
          f"slots still redirected after profiling: {stats['native_slots_now']}")


if __name__ == "__main__":
    main()

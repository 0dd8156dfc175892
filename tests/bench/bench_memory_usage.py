"""memory_usage() on a callable and %memit: memory_profilerxx against memory_profiler, in one
process, on the same workloads. Prints wall time (median), how many times the callable ran, and
the error of the reported peak against the bytes the workload is known to hold at its peak.

Run: python tests/bench/bench_memory_usage.py [--quick]
"""

from __future__ import annotations

import contextlib
import io
import statistics
import sys
import time

import memory_profiler
import memory_profilerxx

QUICK = "--quick" in sys.argv
REPS = 3 if QUICK else 5
MiB = 2**20
RUNS: list[int] = []


def seed():
    RUNS.append(1)
    a = [1] * (10 ** 6)
    b = [2] * (2 * 10 ** 7)
    del b
    return a


def transient():
    """A 200 MB temporary that lives a few milliseconds."""
    RUNS.append(1)
    block = bytearray(200 * MiB)
    del block


def tiny():
    """5 ms of work holding 8 MB: memory_profiler's re-run case."""
    RUNS.append(1)
    kept = [0] * 10**6
    time.sleep(0.005)
    return len(kept)


# The bytes each workload holds at its peak, above what it started with.
TRUTH_MIB = {seed: (8_000_056 + 160_000_056) / MiB, transient: (200 * MiB + 57) / MiB,
             tiny: 8_000_056 / MiB}


def measure(module, func, interval: float) -> tuple[float, int, float]:
    """(seconds, runs of func, reported increment in MiB) of one max_usage call."""
    baseline = module.memory_usage(-1)[0]
    RUNS.clear()
    start = time.perf_counter()
    peak = module.memory_usage(func, interval=interval, max_usage=True)
    seconds = time.perf_counter() - start
    return seconds, len(RUNS), peak - baseline


def bench_memory_usage() -> None:
    print("memory_usage(f, max_usage=True): median of", REPS, "runs")
    print(f"{'workload':<10} {'interval':>8} | {'tool':<18} {'time s':>8} {'runs of f':>9} "
          f"{'increment MiB':>13} {'error MiB':>9} | {'time ratio':>10}")
    for func in (seed, transient, tiny):
        for interval in (0.1, 0.01):
            rows = {}
            for name, module in (("memory_profiler", memory_profiler),
                                 ("memory_profilerxx", memory_profilerxx)):
                results = [measure(module, func, interval) for _ in range(REPS)]
                seconds = statistics.median(r[0] for r in results)
                runs = max(r[1] for r in results)
                increment = statistics.median(r[2] for r in results)
                rows[name] = (seconds, runs, increment)
            theirs, ours = rows["memory_profiler"], rows["memory_profilerxx"]
            for name, (seconds, runs, increment) in rows.items():
                ratio = f"{theirs[0] / ours[0]:>9.1f}x" if name == "memory_profilerxx" else ""
                print(f"{func.__name__:<10} {interval:>8} | {name:<18} {seconds:>8.3f} {runs:>9} "
                      f"{increment:>13.2f} {increment - TRUTH_MIB[func]:>+9.2f} | {ratio:>10}")


def bench_memit() -> None:
    from IPython.testing.globalipapp import start_ipython

    ip = start_ipython()
    ip.user_ns.update(seed=seed, transient=transient, tiny=tiny)
    from memory_profiler import MemoryProfilerMagics as TheirMagics
    from memory_profilerxx._magics import MemoryProfilerMagics as OurMagics

    print("\n%memit <workload>: median of", REPS, "runs")
    print(f"{'workload':<10} | {'tool':<18} {'time s':>8} {'runs of f':>9} {'increment MiB':>13} "
          f"{'error MiB':>9} | {'time ratio':>10}")
    for func in (seed, transient, tiny):
        rows = {}
        for name, magics in (("memory_profiler", TheirMagics(shell=ip)),
                             ("memory_profilerxx", OurMagics(shell=ip))):
            results = []
            for _ in range(REPS):
                RUNS.clear()
                out = io.StringIO()
                start = time.perf_counter()
                with contextlib.redirect_stdout(out):
                    magics.memit(f"{func.__name__}()")
                seconds = time.perf_counter() - start
                increment = float(out.getvalue().split("increment:")[1].split()[0])
                results.append((seconds, len(RUNS), increment))
            rows[name] = (statistics.median(r[0] for r in results), max(r[1] for r in results),
                          statistics.median(r[2] for r in results))
        theirs, ours = rows["memory_profiler"], rows["memory_profilerxx"]
        for name, (seconds, runs, increment) in rows.items():
            ratio = f"{theirs[0] / ours[0]:>9.1f}x" if name == "memory_profilerxx" else ""
            print(f"{func.__name__:<10} | {name:<18} {seconds:>8.3f} {runs:>9} {increment:>13.2f} "
                  f"{increment - TRUTH_MIB[func]:>+9.2f} | {ratio:>10}")


if __name__ == "__main__":
    print(f"Python {sys.version.split()[0]}")
    bench_memory_usage()
    try:
        bench_memit()
    except ImportError as error:  # memory_profiler's magics need distutils (gone in 3.12)
        print(f"\n%memit: memory_profiler's magics cannot load here: {error}")

"""Benchmark: the same ~2 s workload under nothing, memory_profiler's ``mprof run`` and
``mprofxx run``, at the default interval and at ``-T 0.01``.

Per mode (median of interleaved repetitions):
  in-script  time the workload measures inside itself (slowdown of the program)
  wall       time from starting the command to its exit
  recorder   CPU seconds of everything but the workload (recorder process, its imports, sampler)
  jitter     |period - interval| of consecutive MEM samples in the .dat: median and max, ms
             (the .dat holds times to 0.1 ms, so 0.00 means under 0.05 ms)

Run: PYTHONPATH=python:build/mprof/python python3 tests/bench/bench_mprof.py [repetitions]
"""

from __future__ import annotations

import itertools
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

WORKLOAD = textwrap.dedent("""
    import time

    def loop_work(n):
        lst, d = [], {}
        for i in range(n):
            lst.append(i)
            d[i] = str(i)
            if i % 3 == 0:
                lst.append([i])
        return len(lst)

    def big_alloc():
        a = [0] * 5_000_000
        b = [1] * 10_000_000
        c = list(range(1_000_000))
        del a, b, c

    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(3):
        big_alloc()
    for _ in range(LOOPS):
        loop_work(40000)
    print("INSCRIPT %.6f %.6f" % (time.perf_counter() - t0, time.process_time() - c0))
""")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(command: list[str], cwd: str) -> dict[str, float]:
    cpu0 = children_cpu()
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    cpu = children_cpu() - cpu0
    if result.returncode != 0:
        raise RuntimeError("{} failed: {}".format(" ".join(command), result.stderr[-2000:]))
    line = next(x for x in result.stdout.splitlines() if x.startswith("INSCRIPT"))
    inscript, script_cpu = (float(v) for v in line.split()[1:])
    return {"wall": wall, "inscript": inscript, "recorder_cpu": max(0.0, cpu - script_cpu)}


def jitter_ms(dat: str, interval: float) -> tuple[float, float]:
    with open(dat) as lines:
        times = [float(line.split()[2]) for line in lines if line.startswith("MEM ")]
    errors = [abs((b - a) - interval) * 1000 for a, b in itertools.pairwise(times)]
    return (statistics.median(errors), max(errors)) if errors else (float("nan"), float("nan"))


def calibrate_loops(cwd: str) -> int:
    """LOOPS so that the plain workload takes about 2 s here."""
    script = os.path.join(cwd, "workload.py")
    with open(script, "w") as out:
        out.write(WORKLOAD.replace("LOOPS", "40"))
    seconds = min(run_once([sys.executable, script], cwd)["inscript"] for _ in range(2))
    return max(20, int(40 * 2.0 / seconds))


def main() -> None:
    repetitions = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    cwd = tempfile.mkdtemp(prefix="bench_mprof_")
    loops = calibrate_loops(cwd)
    with open(os.path.join(cwd, "workload.py"), "w") as out:
        out.write(WORKLOAD.replace("LOOPS", str(loops)))
    py = sys.executable
    modes = {
        "plain": ([py, "workload.py"], None, None),
        "mprof -T 0.1": ([py, "-m", "mprof", "run", "-o", "m1.dat", "workload.py"], "m1.dat", 0.1),
        "mprof -T 0.01": (
            [py, "-m", "mprof", "run", "-T", "0.01", "-o", "m2.dat", "workload.py"],
            "m2.dat",
            0.01,
        ),
        "mprofxx -T 0.1": (
            [py, "-m", "mprofxx", "run", "-o", "x1.dat", "workload.py"],
            "x1.dat",
            0.1,
        ),
        "mprofxx -T 0.01": (
            [py, "-m", "mprofxx", "run", "-T", "0.01", "-o", "x2.dat", "workload.py"],
            "x2.dat",
            0.01,
        ),
    }
    results: dict[str, list[dict[str, float]]] = {name: [] for name in modes}
    for _ in range(repetitions):
        for name, (command, dat, interval) in modes.items():
            if dat and os.path.exists(os.path.join(cwd, dat)):
                os.remove(os.path.join(cwd, dat))  # mprof appends to an existing file
            sample = run_once(command, cwd)
            if dat:
                sample["jitter_median"], sample["jitter_max"] = jitter_ms(
                    os.path.join(cwd, dat), interval
                )
            results[name].append(sample)

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    base_in, base_wall = median("plain", "inscript"), median("plain", "wall")
    print(
        f"workload: loop_work(40000) x {loops} + big_alloc x 3; "
        f"{repetitions} interleaved repetitions, medians"
    )
    header = (
        "mode",
        "in-script",
        "ratio",
        "wall",
        "ratio",
        "wall +s",
        "recorder CPU s",
        "jitter ms",
    )
    print("{:<16} {:>10} {:>8} {:>9} {:>8} {:>11} {:>14} {:>13}".format(*header))
    for name in modes:
        inscript, wall = median(name, "inscript"), median(name, "wall")
        jitter = "-"
        if name != "plain":
            worst = max(r["jitter_max"] for r in results[name])
            jitter = f"{median(name, 'jitter_median'):.2f} / {worst:.2f}"
        print(
            f"{name:<16} {inscript:9.3f}s {inscript / base_in:7.3f}x {wall:8.3f}s "
            f"{wall / base_wall:7.3f}x {wall - base_wall:+10.3f}s "
            f"{median(name, 'recorder_cpu'):14.3f} {jitter:>13}"
        )
    for t in ("0.1", "0.01"):
        ours, theirs = "mprofxx -T " + t, "mprof -T " + t
        in_ratio = median(ours, "inscript") / median(theirs, "inscript")
        wall_ratio = median(ours, "wall") / median(theirs, "wall")
        cpu_ratio = median(ours, "recorder_cpu") / max(1e-9, median(theirs, "recorder_cpu"))
        print(
            f"at -T {t:<4} mprofxx/mprof: in-script {in_ratio:.3f}x, wall {wall_ratio:.3f}x, "
            f"recorder CPU {cpu_ratio:.3f}x"
        )
    print(f"(files in {cwd})")


if __name__ == "__main__":
    main()

"""Peak attribution: the cost of ``mprofxx run --peak`` against memray run and tracemalloc(25).

Workloads: an allocation-heavy function (rows of dicts, strings and lists, the shape of a
parser's output) and a call-heavy one (deep recursion building small objects); then two real
programs timed whole, start to exit (the table's write included): ``import sklearn, pandas,
scipy`` and a pandas + scikit-learn job (examples/etl_pandas_sklearn.py), with the sizes of the
files each tool leaves (the peak file, the flame graph's HTML, memray's capture). Each mode is a
real process running the workload the way a user would record it: plain ``python``,
``mprofxx run --peak``, ``memray run`` (default and ``--native``) and ``tracemalloc.start(25)``.
Inside each process the workload runs once to warm up and then three times timed (its median is
the process's figure); the modes take turns round by round, and the figure is each mode's median
over the rounds. Also printed: the peak table's own memory per live block.

Run: python tests/bench/bench_peak.py [--quick] [--no-real]
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

QUICK = "--quick" in sys.argv
ROUNDS = 3 if QUICK else 5

WORKLOAD = textwrap.dedent("""
    import json, statistics, sys, time

    def alloc_heavy(n=200_000):
        rows = []
        for i in range(n):
            rows.append({"id": i, "name": str(i), "tags": [i, i + 1]})
        return len(rows)

    def deep(n):
        if n == 0:
            return []
        kept = deep(n - 1)
        kept.append((n, str(n)))
        return kept

    def call_heavy():
        return sum(len(deep(400)) for _ in range(300))

    sys.setrecursionlimit(5000)
    work = {"alloc": alloc_heavy, "calls": call_heavy}[sys.argv[1]]
    if len(sys.argv) > 2:
        import tracemalloc
        tracemalloc.start(25)
    work()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    print("SECONDS", statistics.median(times))
""")


def modes(folder: str) -> dict[str, list[str]]:
    python = sys.executable
    found = {
        "plain": [python, "workload.py"],
        "mprofxx run --peak": [python, "-m", "mprofxx", "run", "--peak", "-o", "x.dat",
                               "workload.py"],
        "tracemalloc(25)": [python, "workload.py", "tracemalloc"],
    }
    try:
        import memray  # noqa: F401
    except ImportError:
        print("memray is not installed: its rows are left out")
    else:
        found["memray run"] = [python, "-m", "memray", "run", "-f", "-q", "-o", "m.bin",
                               "workload.py"]
        found["memray run --native"] = [python, "-m", "memray", "run", "--native", "-f", "-q",
                                        "-o", "m.bin", "workload.py"]
        # memray's default sees only what reaches malloc (pymalloc's arenas, large blocks); this
        # is the mode that sees every object, as --peak does.
        found["memray --trace-python-allocators"] = [
            python, "-m", "memray", "run", "--trace-python-allocators", "-f", "-q", "-o", "m.bin",
            "workload.py"]
    return found


def run(command: list[str], workload: str, folder: str) -> float:
    # The workload's name goes after the script, for every runner.
    at = command.index("workload.py") + 1
    argv = command[:at] + [workload] + command[at:]
    done = subprocess.run(argv, cwd=folder, capture_output=True, text=True, check=True,
                          timeout=900)
    for line in done.stdout.splitlines():
        if line.startswith("SECONDS "):
            return float(line.split()[1])
    raise RuntimeError(f"no timing from {argv}: {done.stdout} {done.stderr}")


def table_memory(folder: str) -> str:
    with open(os.path.join(folder, "x.peak.json"), encoding="utf-8") as source:
        process = json.load(source)["processes"][0]
    per_block = process["peak_block_table_bytes"] / max(process["peak_live_blocks"], 1)
    return (f"peak table at the peak: {process['peak_live_blocks']:,} live blocks,"
            f" {per_block:.1f} B each; stack table {process['stack_table_bytes'] / 2**20:.1f} MiB")


REAL_PROGRAMS = {
    "import sklearn, pandas, scipy": "import sklearn, pandas, scipy\n",
    "pandas + scikit-learn job": None,  # examples/etl_pandas_sklearn.py
}


def real_modes() -> dict[str, list[str]]:
    python = sys.executable
    found = {
        "plain": [python, "program.py"],
        "mprofxx run --peak": [python, "-m", "mprofxx", "run", "--peak", "-o", "x.dat",
                               "program.py"],
    }
    try:
        import memray  # noqa: F401
    except ImportError:
        return found
    found["memray run"] = [python, "-m", "memray", "run", "-f", "-q", "-o", "m.bin",
                           "program.py"]
    found["memray --trace-python-allocators"] = [
        python, "-m", "memray", "run", "--trace-python-allocators", "-f", "-q", "-o", "t.bin",
        "program.py"]
    return found


def wall_seconds(command: list[str], folder: str) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=folder, capture_output=True, text=True, check=True, timeout=900)
    return time.perf_counter() - start


def file_sizes(folder: str) -> str:
    subprocess.run([sys.executable, "-m", "mprofxx", "flame", "-o", "f.html", "x.dat"],
                   cwd=folder, capture_output=True, check=True, timeout=300)
    sizes = {name: os.path.getsize(os.path.join(folder, name))
             for name in ("x.peak.json", "f.html", "m.bin", "t.bin")
             if os.path.exists(os.path.join(folder, name))}
    return "files: " + ", ".join(f"{name} {size / 1e6:.2f} MB" for name, size in sizes.items())


def real_programs(folder: str) -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    chosen = real_modes()
    for title, code in REAL_PROGRAMS.items():
        if code is None:
            source = os.path.join(here, "..", "..", "examples", "etl_pandas_sklearn.py")
            with open(source, encoding="utf-8") as original:
                code = original.read()
        with open(os.path.join(folder, "program.py"), "w", encoding="utf-8") as out:
            out.write(code)
        subprocess.run(chosen["plain"], cwd=folder, capture_output=True, check=True)  # warm
        times: dict[str, list[float]] = {mode: [] for mode in chosen}
        for _ in range(ROUNDS):
            for mode, command in chosen.items():
                times[mode].append(wall_seconds(command, folder))
        base = statistics.median(times["plain"])
        print(f"\n{title} (whole process): plain {base * 1000:.0f} ms")
        for mode, values in times.items():
            median = statistics.median(values)
            print(f"  {mode:34s} {median * 1000:8.0f} ms  {median / base:5.2f}x plain")
        print("  " + table_memory(folder))
        print("  " + file_sizes(folder))


def main() -> None:
    folder = tempfile.mkdtemp(prefix="memxx-bench-peak-")
    try:
        with open(os.path.join(folder, "workload.py"), "w", encoding="utf-8") as out:
            out.write(WORKLOAD)
        chosen = modes(folder)
        print(f"Python {sys.version.split()[0]}, {ROUNDS} rounds, medians")
        for workload in ("alloc", "calls"):
            times: dict[str, list[float]] = {mode: [] for mode in chosen}
            for _ in range(ROUNDS):
                for mode, command in chosen.items():
                    times[mode].append(run(command, workload, folder))
            base = statistics.median(times["plain"])
            ours = statistics.median(times["mprofxx run --peak"])
            print(f"\n{workload}-heavy: plain {base * 1000:.0f} ms")
            for mode, values in times.items():
                median = statistics.median(values)
                print(f"  {mode:34s} {median * 1000:8.0f} ms  {median / base:5.2f}x plain"
                      f"  {median / ours:5.2f}x ours")
            print("  " + table_memory(folder))
        if "--no-real" not in sys.argv:
            real_programs(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

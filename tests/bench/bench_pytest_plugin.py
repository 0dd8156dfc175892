"""The pytest plugin's cost on a real third-party suite: toolz's own tests (shipped in the package).

Four modes, each a fresh ``python -m pytest`` process: plain (neither plugin), the plugin loaded
and unused, ``--memxx`` (every test measured), and pytest-memray's ``--memray`` (when it is
installed). Every mode is warmed up once, then the modes are interleaved round by round; the
figures are medians of the session's CPU time (user + system, from getrusage: steadier than wall
time on a shared machine), with wall time beside. Targets: loaded and unused <= 1.02x plain; ``--memxx`` faster than ``--memray``.

toolz's tests are plain pytest functions, which pytest-memray measures too (it skips
unittest.TestCase tests, which ``--memxx`` measures).

Run: python tests/bench/bench_pytest_plugin.py [--rounds N]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORK = tempfile.mkdtemp(prefix="bench-pytest-plugin-")  # no conftest or ini file of ours
BASE = ("-q", "-p", "no:cacheprovider", "-x", "-W", "ignore")
PLUGIN = "memory_profilerxx.pytest_plugin"
MODES = {
    "plain": ("-p", "no:memray", "-p", f"no:{PLUGIN}"),
    "loaded, unused": ("-p", "no:memray", "-p", PLUGIN),
    "--memxx": ("-p", "no:memray", "-p", PLUGIN, "--memxx"),
    "--memray": ("-p", f"no:{PLUGIN}", "--memray"),
}


def suite_folder() -> str:
    """The tests/ folder of the installed toolz (scripts/install-deps.sh installs it)."""
    import toolz

    return os.path.join(os.path.dirname(toolz.__file__), "tests")


def cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(tests: str, mode: tuple[str, ...]) -> tuple[float, float, str]:
    """(CPU seconds, wall seconds, last line of pytest's output) of one session."""
    cpu = cpu_of_children()
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", *BASE, *mode, tests],
                          cwd=WORK, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    cpu = cpu_of_children() - cpu
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0:
        raise SystemExit(f"pytest {' '.join(mode)} failed ({done.returncode}): "
                         + (lines[-1] if lines else done.stderr.strip()[-300:]))
    return cpu, seconds, lines[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    modes = dict(MODES)
    if importlib.util.find_spec("pytest_memray") is None:
        del modes["--memray"]
        print("pytest-memray is not installed: no --memray column")
    tests = suite_folder()
    print(f"suite: {tests} on Python {sys.version.split()[0]}, {args.rounds} rounds")
    for name, mode in modes.items():
        outcome = run(tests, mode)[2]
        print(f"  warm-up {name:>15}: {outcome}")
    cpu: dict[str, list[float]] = {name: [] for name in modes}
    wall: dict[str, list[float]] = {name: [] for name in modes}
    for _ in range(args.rounds):
        for name, mode in modes.items():
            seconds, elapsed, _ = run(tests, mode)
            cpu[name].append(seconds)
            wall[name].append(elapsed)
    med = {name: statistics.median(values) for name, values in cpu.items()}
    med_wall = {name: statistics.median(values) for name, values in wall.items()}
    print(f"{'mode':>15} {'CPU s':>7} {'x plain':>8} {'wall s':>7} {'x plain':>8}")
    for name in modes:
        print(f"{name:>15} {med[name]:7.3f} {med[name] / med['plain']:8.3f} "
              f"{med_wall[name]:7.3f} {med_wall[name] / med_wall['plain']:8.3f}")
    if "--memray" in cpu:
        print(f"--memxx / --memray: {med['--memxx'] / med['--memray']:.3f} CPU, "
              f"{med_wall['--memxx'] / med_wall['--memray']:.3f} wall")


if __name__ == "__main__":
    main()

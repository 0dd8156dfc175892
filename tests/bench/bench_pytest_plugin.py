"""The pytest plugin's cost on a real third-party suite: toolz's own tests (shipped in the package).

Four modes, each a fresh ``python -m pytest`` process: plain (neither plugin), the plugin loaded
and unused, ``--memxx`` (every test measured), and pytest-memray's ``--memray`` (when it is
installed). Every mode is warmed up once, then the modes are interleaved round by round; wall
times are medians. Targets: loaded and unused <= 1.02x plain; ``--memxx`` faster than ``--memray``.

toolz's tests are plain pytest functions, which pytest-memray measures too (it skips
unittest.TestCase tests, which ``--memxx`` measures).

Run: python tests/bench/bench_pytest_plugin.py [--rounds N]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
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


def run(tests: str, mode: tuple[str, ...]) -> tuple[float, str]:
    """(wall seconds, last line of pytest's output) of one session."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", *BASE, *mode, tests],
                          cwd=WORK, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0:
        raise SystemExit(f"pytest {' '.join(mode)} failed ({done.returncode}): "
                         + (lines[-1] if lines else done.stderr.strip()[-300:]))
    return seconds, lines[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    modes = dict(MODES)
    if importlib.util.find_spec("pytest_memray") is None:
        del modes["--memray"]
        print("pytest-memray is not installed: no --memray column")
    tests = suite_folder()
    print(f"suite: {tests} on Python {sys.version.split()[0]}, {args.rounds} rounds")
    for name, mode in modes.items():
        _, outcome = run(tests, mode)
        print(f"  warm-up {name:>15}: {outcome}")
    times: dict[str, list[float]] = {name: [] for name in modes}
    for _ in range(args.rounds):
        for name, mode in modes.items():
            times[name].append(run(tests, mode)[0])
    plain = statistics.median(times["plain"])
    print(f"{'mode':>15} {'median s':>9} {'min s':>7} {'x plain':>8}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:>15} {median:9.3f} {min(values):7.3f} {median / plain:8.3f}")
    if "--memray" in times:
        ratio = statistics.median(times["--memxx"]) / statistics.median(times["--memray"])
        print(f"--memxx / --memray: {ratio:.3f}")


if __name__ == "__main__":
    main()

"""The line-heavy loop's cost in instructions, under callgrind: plain, the floor, ours, per loop
iteration, for each interpreter given. Instruction counts do not depend on the machine's load,
so small differences between interpreters (3.13 against 3.14 and 3.15) can be told apart.

Each mode runs bench_line_profiler.loop_work at two sizes in a fresh interpreter under
`valgrind --tool=callgrind`; the difference of the two totals over the difference of the sizes
is the cost of one iteration (start-up, imports and the warm-up cancel out). The floor is
bench_line_profiler's "floor: lines+alloc": the line events sent to a C function that returns at
once, and a pass-through call on every allocation.

The live-block table doubles as the loop's objects accumulate, and an erase costs more in a fuller
table: the two sizes span more than one doubling, so that each interpreter is measured over the
same range of loads (a window inside one doubling flatters whichever version sits lower in it).

Run: python tests/bench/bench_line_instructions.py [--sizes SMALL,LARGE] [PYTHON ...]
(default: this interpreter)
Needs valgrind (scripts/install-deps.sh installs it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SMALL, LARGE = 20_000, 200_000

CHILD = """
import sys
sys.path.insert(0, {here!r})
from bench_line_profiler import loop_work, under_floor, under_xx
mode, n = sys.argv[1], int(sys.argv[2])
run = {{"plain": loop_work, "floor": under_floor(loop_work, allocator=True),
        "ours": under_xx(loop_work)}}[mode]
run(1000)
run(n)
"""


def instructions(python: str, mode: str, n: int, folder: str) -> int:
    out = os.path.join(folder, f"callgrind.{mode}.{n}")
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", python, "-c",
         CHILD.format(here=HERE), mode, str(n)],
        capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{python} {mode}: {done.stderr.strip().splitlines()[-1:]}")
    with open(out) as profile:
        for line in profile:
            if line.startswith("summary:"):
                return int(line.split()[1])
    raise RuntimeError(f"{out}: no summary line")


def per_iteration(python: str, small: int, large: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        return {mode: (instructions(python, mode, large, folder) -
                       instructions(python, mode, small, folder)) / (large - small)
                for mode in ("plain", "floor", "ours")}


def main() -> int:
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (scripts/install-deps.sh installs it)", file=sys.stderr)
        return 1
    args = sys.argv[1:]
    small, large = SMALL, LARGE
    if args[:1] == ["--sizes"] and len(args) >= 2:
        small, large = (int(size) for size in args[1].split(","))
        args = args[2:]
    pythons = args or [sys.executable]
    print("loop_work: instructions per iteration under callgrind "
          f"(sizes {small:,} and {large:,}, start-up cancelled)")
    print(f"  {'interpreter':44s} {'plain':>7s} {'floor':>7s} {'ours':>7s} "
          f"{'ours-floor':>10s} {'ours/floor':>10s}")
    for python in pythons:
        version = subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        cost = per_iteration(python, small, large)
        print(f"  {python + ' ' + version:44s} {cost['plain']:7.0f} {cost['floor']:7.0f} "
              f"{cost['ours']:7.0f} {cost['ours'] - cost['floor']:10.0f} "
              f"{cost['ours'] / cost['floor']:9.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Attaching to a running program: ``mprofxx attach --peak`` beside ``memray attach``.

Usage: python tests/bench/bench_attach.py [ROUNDS]   (default 3)

Each round starts a fresh target (this interpreter) that does allocation-heavy work (dicts,
lists, strings; a 64 KiB block kept every 10 ms) and logs its work units per 0.25 s. Per tool,
interleaved round by round: the target runs 3 s alone, the tool attaches for 4 s, then 3 s more
after the tool detached. Printed, medians over the rounds:

- time to first sample: from starting the tool's command to the moment recording began inside
  the target (ours: the table's start_time; memray: its capture file appears);
- slowdown while attached: work rate before / work rate from 1 s after recording began to its
  end (4 s after it began);
- longest stop: the longest time the target made no progress (a debugger holding it);
- rate after detach / rate before (1.00 = back to full speed).

memray is run as ``memray attach --method lldb`` (gdb cannot call functions on this CPU; 3.14+:
``--method sys.remote_exec``, as ours) and with
``--trace-python-allocators`` (it then sees what our recorder sees). The benchmark prints; it
asserts nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKLOAD = r"""
import os, sys, time
folder = sys.argv[1]
log = open(os.path.join(folder, "rate.log"), "w", buffering=1)
open(os.path.join(folder, "ready"), "w").close()
held = []
window = time.time() + 0.25
units = 0
last_block = 0.0
while True:
    for i in range(200):
        d = {"a": [i, str(i)], "b": (i, i + 1)}
    units += 1
    now = time.time()
    if now - last_block >= 0.01:
        held.append(bytes(65536))
        last_block = now
        if len(held) > 2000:
            del held[:1000]
    if now >= window:
        log.write(f"{now:.6f} {units}\n")
        units = 0
        window = now + 0.25
"""

ALONE, ATTACHED, AFTER = 3.0, 4.0, 3.0


def rate(log: Path, start: float, end: float) -> float:
    rows = [line.split() for line in log.read_text().splitlines()]
    units = [int(n) for t, n in rows if start < float(t) <= end]
    return sum(units) / (end - start)


def longest_pause(log: Path, start: float, end: float) -> float:
    """The longest time the target logged nothing, less its 0.25 s window (a debugger held it)."""
    times = [float(line.split()[0]) for line in log.read_text().splitlines()]
    inside = [t for t in times if start <= t <= end]
    gaps = [b - a for a, b in zip(inside, inside[1:])]
    return max(0.0, max(gaps, default=0.0) - 0.25)


def one_round(tool: list[str], folder: Path, first_sample) -> dict[str, float]:
    (folder / "w.py").write_text(WORKLOAD)
    target = subprocess.Popen([sys.executable, str(folder / "w.py"), str(folder)])
    try:
        while not (folder / "ready").exists():
            time.sleep(0.01)
        time.sleep(ALONE)
        launched = time.time()
        command = [part.replace("PID", str(target.pid)) for part in tool]
        tool_process = subprocess.Popen(command, cwd=folder, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        appeared = None
        while tool_process.poll() is None:
            if appeared is None and (folder / "m.bin").exists():
                appeared = time.time()  # memray's capture file: tracking began in the target
            time.sleep(0.01)
        ended = time.time()
        _, errors = tool_process.communicate()
        if tool_process.returncode != 0:
            raise RuntimeError(f"{command[:3]} failed: {errors.strip()[-300:]}")
        started = first_sample(folder) if appeared is None else appeared
        # memray attach returns at once and tracks for --duration in the background; ours
        # returns when it has stopped: the recording is [started, started + ATTACHED] for both.
        detached = max(ended, started + ATTACHED)
        time.sleep(max(0.0, detached + 0.5 + AFTER - time.time()))
        log = folder / "rate.log"
        before = rate(log, launched - ALONE + 0.25, launched)
        during = rate(log, started + 1.0, started + ATTACHED - 0.25)
        after = rate(log, detached + 0.5, time.time())
        if not before or not during or not after:
            raise RuntimeError("the target logged nothing in a window (a starved machine?)")
        return {"first": started - launched, "slowdown": before / during, "after": after / before,
                "pause": longest_pause(log, launched, detached + 0.5)}
    finally:
        target.kill()
        target.wait()


def ours_started(folder: Path) -> float:
    document = json.loads((folder / "a.peak.json").read_text())
    return float(document["processes"][0]["start_time"])


def memray_started(folder: Path) -> float:
    raise RuntimeError("memray's capture file never appeared while it ran")


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    tools = {
        "mprofxx attach --peak": ([sys.executable, "-m", "mprofxx", "attach", "--peak", "-t",
                                   str(ATTACHED), "-o", "a.dat", "PID"], ours_started),
    }
    if shutil.which("memray") or _has_memray():
        method = "sys.remote_exec" if sys.version_info >= (3, 14) else "lldb"
        memray = [sys.executable, "-m", "memray", "attach", "--method", method, "-o", "m.bin",
                  "--duration", str(int(ATTACHED))]
        tools["memray attach"] = (memray + ["PID"], memray_started)
        tools["memray attach --trace-python-allocators"] = (
            memray + ["--trace-python-allocators", "PID"], memray_started)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in tools}
    for _ in range(rounds):
        for name, (command, first_sample) in tools.items():
            with tempfile.TemporaryDirectory() as folder:
                try:
                    results[name].append(one_round(command, Path(folder), first_sample))
                except RuntimeError as error:
                    print(f"{name}: {error}")
    print(f"Python {sys.version.split()[0]}, {rounds} rounds, medians")
    print(f"{'tool':44} {'first sample':>13} {'longest stop':>13} {'slowdown':>9}"
          f" {'after/before':>13}")
    for name, rows in results.items():
        if not rows:
            continue
        first = statistics.median(r["first"] for r in rows)
        pause = statistics.median(r["pause"] for r in rows)
        slow = statistics.median(r["slowdown"] for r in rows)
        after = statistics.median(r["after"] for r in rows)
        print(f"{name:44} {first:12.2f}s {pause:12.2f}s {slow:8.2f}x {after:13.2f}")


def _has_memray() -> bool:
    try:
        import memray  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()

"""The Mem usage column against what the kernel reports for the same process (issue 25, part 6).

Mem usage is the process RSS when the profiled call started plus the bytes the call's thread
allocated minus those it freed since; Peak is the highest such figure while a line ran. Each
program runs in a fresh process and keeps what it builds; the highest figure the table shows
must be within 10 % of the kernel's maximum RSS of that process (``VmHWM`` in
``/proc/self/status``: ``ru_maxrss`` would carry pytest's own high-water mark over the child's
``execve``), and the last line's Mem usage within 10 % of
the RSS right after the call.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))

_MEASURE = r"""
import sys
from memory_profilerxx import LineProfiler
{setup}
prof = LineProfiler()
kept = prof(job)()
import _memxx
rss_after = _memxx.rss_bytes()
records = prof.records()
highest = max(max(r.memory, r.peak) for r in records)
start = min(r.memory - r.increment for r in records)
last = max(records, key=lambda r: r.lineno).memory
with open("/proc/self/status") as status:
    maxrss = next(int(row.split()[1]) for row in status if row.startswith("VmHWM:")) * 1024
print(highest, start, maxrss, last, rss_after)
"""

_OURS = """
import numpy as np

def job():
    rows = [(i, str(i), float(i)) for i in range(300_000)]
    index = {key: value for _, key, value in rows}
    blob = bytearray(120 * 2**20)
    grid = np.arange(15_000_000, dtype=np.float64)
    squares = grid * grid
    return rows, index, blob, grid, squares
"""

_PANDAS_SKLEARN = """
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

def job():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(400_000, 30)), columns=[f"f{i}" for i in range(30)])
    frame["label"] = (frame["f0"] + frame["f1"] > 0).astype(int)
    features = frame.drop(columns=["label"]).to_numpy()
    model = LogisticRegression(max_iter=50).fit(features[:20_000], frame["label"][:20_000])
    predicted = model.predict_proba(features)
    return frame, features, model, predicted
"""


def _measure(setup: str) -> tuple[int, ...]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([HERE, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    done = subprocess.run([sys.executable, "-c", _MEASURE.format(setup=textwrap.dedent(setup))],
                          env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return tuple(int(x) for x in done.stdout.split()[-5:])


def test_a_program_we_wrote_reads_within_10_percent_of_the_kernels_max_rss():
    highest, start, maxrss, last, rss_after = _measure(_OURS)
    assert highest - start > 400 * 2**20  # what it builds dominates what it starts from
    assert abs(highest - maxrss) <= 0.10 * maxrss, (highest / 2**20, maxrss / 2**20)
    assert abs(last - rss_after) <= 0.10 * rss_after, (last / 2**20, rss_after / 2**20)


def test_a_pandas_and_scikit_learn_job_reads_within_10_percent_of_the_kernels_max_rss():
    pytest.importorskip("pandas")
    pytest.importorskip("sklearn")
    highest, start, maxrss, last, rss_after = _measure(_PANDAS_SKLEARN)
    assert highest - start > 150 * 2**20
    assert abs(highest - maxrss) <= 0.10 * maxrss, (highest / 2**20, maxrss / 2**20)
    assert abs(last - rss_after) <= 0.10 * rss_after, (last / 2**20, rss_after / 2**20)


def test_the_same_job_without_native_memory_reads_within_10_percent_of_the_rss():
    """The PyMem and numpy part of the same job: the Mem usage formula itself holds."""
    pytest.importorskip("pandas")
    pytest.importorskip("sklearn")
    setup = _PANDAS_SKLEARN + "\nLineProfiler = __import__('functools').partial(LineProfiler, " \
                              "native=False)\n"
    highest, start, maxrss, last, rss_after = _measure(setup)
    assert highest - start > 150 * 2**20
    assert abs(highest - maxrss) <= 0.10 * maxrss, (highest / 2**20, maxrss / 2**20)
    assert abs(last - rss_after) <= 0.10 * rss_after, (last / 2**20, rss_after / 2**20)

"""memory_usage() and the backends: memory_profiler's API, a callable run once, exact peaks."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import tracemalloc

import pytest
from memory_profilerxx import _get_memory, choose_backend, memory_usage

MiB = 2**20


def hold_temporary(megabytes: int) -> int:
    block = bytearray(megabytes * MiB)  # zero-filled: every page touched
    size = len(block)
    del block
    return size


@pytest.mark.parametrize("interval", [0.1, 0.01])
def test_a_callable_runs_exactly_once(interval):
    """memory_profiler runs a short callable 2-3 times ("too few samples"); we never do."""
    calls = []
    memory_usage((calls.append, (1,)), interval=interval)
    memory_usage(lambda: calls.append(2), interval=interval, max_usage=True)
    assert calls == [1, 2]


def test_max_usage_is_the_true_peak_of_a_short_temporary():
    """A 200 MB temporary that lives a few ms: >= 199 MiB above the baseline at interval 0.1."""
    baseline = memory_usage()[0]
    peak = memory_usage((hold_temporary, (200,)), interval=0.1, max_usage=True)
    assert isinstance(peak, float)
    assert 199 <= peak - baseline < 205


def test_the_hook_peak_counts_allocations_the_kernel_cannot_see():
    """bytes(n) comes from calloc: fresh zero pages, allocated but not resident yet."""
    def untouched():
        return len(bytes(100 * MiB))

    baseline = memory_usage()[0]
    samples = memory_usage(untouched, interval=0.01)
    peak = memory_usage(untouched, max_usage=True)
    assert max(samples) - baseline < 10  # the resident set hardly moved
    assert 100 <= peak - baseline < 101


def test_arguments_retval_and_return_types():
    def combine(x, y=0, *, a):
        return x + y + a

    usage, value = memory_usage((combine, (1,), {"y": 2, "a": 3}), retval=True)
    assert value == 6 and isinstance(usage, list) and all(isinstance(m, float) for m in usage)
    assert usage[0] > 1  # MiB of a live interpreter
    stamped = memory_usage((combine, (1, 2), {"a": 0}), timestamps=True)
    assert all(isinstance(m, float) and t > 1e9 for m, t in stamped)
    peak, value = memory_usage((combine, (1, 2), {"a": 0}), max_usage=True, retval=True)
    assert isinstance(peak, float) and value == 3


def test_the_callable_exception_propagates_and_nothing_is_left_running():
    def fails():
        raise KeyError("from the callable")

    with pytest.raises(KeyError, match="from the callable"):
        memory_usage(fails, interval=0.01)
    assert memory_usage(lambda: None, max_usage=True) > 0  # the machinery still works


def test_this_process_once_or_for_a_timeout():
    assert len(memory_usage()) == 1
    assert len(memory_usage(os.getpid())) == 1
    samples = memory_usage(-1, interval=0.05, timeout=0.5)
    assert len(samples) == 10


def test_a_popen_is_sampled_until_it_exits():
    child = subprocess.Popen([sys.executable, "-c",
                              "import time; b = bytearray(60 * 2**20); time.sleep(0.6)"])
    samples = memory_usage(child, interval=0.05)
    assert child.poll() is not None
    assert max(samples) >= 60
    assert len(samples) >= 5


def in_clean_process(code: str) -> str:
    """Runs ``code`` in a fresh interpreter: no children left by other tests (multiprocessing's
    resource tracker, for one) in the process tree it measures."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_include_children_counts_children_and_not_the_sampler():
    """memory_profiler's sampler is a forked process that include_children counts (+40 MiB)."""
    out = in_clean_process("""
        import subprocess, sys
        from memory_profilerxx import memory_usage

        alone = memory_usage(lambda: None, max_usage=True)
        with_children = memory_usage(lambda: None, max_usage=True, include_children=True)

        def run_child():
            subprocess.run([sys.executable, "-c",
                            "import time; b = bytearray(80 * 2**20); time.sleep(0.5)"],
                           check=True)

        peak = memory_usage(run_child, interval=0.05, include_children=True, max_usage=True)
        print(with_children - alone, peak - alone)
    """)
    sampler_extra, child_peak = map(float, out.split())
    assert abs(sampler_extra) < 1
    assert child_peak >= 80


def test_multiprocess_gives_main_then_each_child():
    out = in_clean_process("""
        import os, subprocess, sys
        from memory_profilerxx import _get_child_memory, memory_usage

        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
        rows = memory_usage(-1, interval=0.1, timeout=0.3, multiprocess=True)
        print(len(rows), *(len(row) for row in rows))
        print(all(row[0] > row[1] > 0 for row in rows))
        print([i for i, _mem in _get_child_memory(os.getpid())])
        child.wait()
    """)
    assert out.split("\n")[:3] == ["3 2 2 2", "True", "[0]"]


def test_stream_gets_mem_lines_and_the_call_returns_none():
    out = io.StringIO()
    assert memory_usage(-1, interval=0.05, timeout=0.2, stream=out) is None
    lines = out.getvalue().splitlines()
    assert len(lines) == 4
    for line in lines:
        tag, mib, when = line.split()
        assert tag == "MEM" and len(mib.split(".")[1]) == 6 and len(when.split(".")[1]) == 4


def test_bad_input_gives_one_clear_error():
    with pytest.raises(ProcessLookupError, match="no process with PID 99999999"):
        memory_usage(99999999)
    with pytest.raises(ValueError, match="proc must be"):
        memory_usage("1+1")
    with pytest.raises(ValueError, match="interval must be > 0"):
        memory_usage(-1, interval=0)
    with pytest.raises(ValueError, match=r"\(f,\), \(f, args\) or \(f, args, kwargs\)"):
        memory_usage((print, (), {}, "extra"))
    with pytest.raises(ValueError, match="unknown backend 'bogus'"):
        memory_usage(backend="bogus")


def test_choose_backend_as_memory_profiler():
    assert choose_backend() == "hook"
    for name in ("psutil", "psutil_pss", "psutil_uss", "posix", "tracemalloc", "hook"):
        assert choose_backend(name) == name


def test_backends_read_proc_and_agree_with_each_other():
    def status_kib(field):
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise AssertionError(field)

    rss = _get_memory(-1, "psutil")
    assert abs(rss - status_kib("VmRSS") / 1024) < 1
    assert _get_memory(-1, "posix") == pytest.approx(rss, abs=1)
    uss, pss = _get_memory(-1, "psutil_uss"), _get_memory(-1, "psutil_pss")
    assert 0 < uss <= pss <= rss + 0.01
    mem, when = _get_memory(-1, "psutil", timestamps=True)
    assert mem > 0 and when > 1e9


def test_tracemalloc_backend_measures_traced_bytes_exactly():
    was_tracing = tracemalloc.is_tracing()
    peak = memory_usage((hold_temporary, (30,)), backend="tracemalloc", max_usage=True)
    start = memory_usage(backend="tracemalloc")[0]
    assert tracemalloc.is_tracing() == was_tracing  # started and stopped around the call
    assert abs((peak - start) - 30) < 0.01


def test_uss_and_pss_backends_sample_a_callable():
    for backend in ("psutil_uss", "psutil_pss"):
        baseline = memory_usage(backend=backend)[0]
        peak = memory_usage((hold_temporary, (100,)), backend=backend, max_usage=True)
        assert 99 <= peak - baseline < 106

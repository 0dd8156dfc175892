"""memory_usage(), the backends and _get_memory: memory_profiler's sampling API, exact peaks.

Samples come from a C++ thread (no GIL, absolute deadlines) reading /proc; the peak of a
callable comes from the allocation hook's high-water mark and the kernel's (VmHWM restarted
before the call), so it does not depend on the sampling interval. A callable runs exactly once.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

import _memxx
from _memxx import MIB

from memory_profilerxx._report import memit_line


# memory_profiler's names, in its order of preference, with "hook" (exact) in front.
BACKENDS = ("hook", "psutil", "psutil_pss", "psutil_uss", "posix", "tracemalloc")
_METRIC = {"hook": "rss", "psutil": "rss", "posix": "rss", "psutil_pss": "pss",
           "psutil_uss": "uss"}

has_tracemalloc = True


def choose_backend(new_backend: str | None = None) -> str:
    """The backend used for ``new_backend`` (None: the default, ``"hook"``).

    As memory_profiler's: the requested backend is tried first, then the others in order;
    every backend reads /proc, so none needs psutil. ``"psutil"`` and ``"posix"`` read the
    resident set, ``"psutil_pss"`` / ``"psutil_uss"`` the proportional / unique set,
    ``"tracemalloc"`` the bytes tracemalloc traces, and ``"hook"`` the resident set with the
    allocation hook's exact peak.

    >>> choose_backend(), choose_backend("psutil_uss")
    ('hook', 'psutil_uss')
    """
    if new_backend is None:
        return BACKENDS[0]
    if new_backend not in BACKENDS:
        raise ValueError(f"unknown backend {new_backend!r}; choose one of {', '.join(BACKENDS)}")
    return new_backend


def _metric(backend: str) -> str:
    return _METRIC.get(backend, "rss")


def _check_pid(pid: int) -> int:
    if pid == -1:
        return os.getpid()
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        raise ValueError(f"memory_usage: a PID must be a positive int or -1, not {pid!r}")
    if not os.path.exists(f"/proc/{pid}"):
        raise ProcessLookupError(f"memory_usage: no process with PID {pid}")
    return pid


def _first_samples(series: Any, pid: int, backend: str) -> list[Any]:
    samples: list[Any] = series.samples()
    if samples:
        return samples
    if not os.path.exists(f"/proc/{pid}"):
        raise ProcessLookupError(f"memory_usage: PID {pid} has exited")
    raise PermissionError(f"memory_usage: cannot read the {_metric(backend).upper()} of PID {pid}"
                          " (permission denied)")


def _series(pid: int, interval: float, backend: str, include_children: bool,
            multiprocess: bool, max_samples: int = 0) -> Any:
    if not interval > 0:
        raise ValueError(f"memory_usage: interval must be > 0, not {interval!r}")
    return _memxx.UsageSeries(pid, interval, include_children, multiprocess, _metric(backend),
                              max_samples)


def _tracemalloc_mib() -> float:
    import tracemalloc

    return tracemalloc.get_traced_memory()[0] / MIB


def _get_memory(pid: int, backend: str, timestamps: bool = False,
                include_children: bool = False, filename: str | None = None) -> Any:
    """One reading of ``pid``'s memory in MiB (``(MiB, time)`` with ``timestamps``).

    >>> _get_memory(-1, "psutil") > 1
    True
    """
    backend = choose_backend(backend)
    if backend == "tracemalloc":
        if pid not in (-1, os.getpid()):
            raise ValueError("the tracemalloc backend measures only this process")
        mem = _tracemalloc_mib()
    elif pid in (-1, os.getpid()) and _metric(backend) == "rss" and not include_children:
        mem = _memxx.rss_bytes() / MIB
    else:
        pid = _check_pid(pid)
        series = _series(pid, 1.0, backend, include_children, False, 1)
        series.start()
        mem = _first_samples(series, pid, backend)[0][2] / MIB
    return (mem, time.time()) if timestamps else mem


def _get_child_memory(process: Any, meminfo_attr: Any = None,
                      memory_metric: int = 0) -> list[tuple[int, float]]:
    """``[(index, MiB), ...]`` for each live descendant of ``process`` (a PID or a Popen)."""
    pid = getattr(process, "pid", process)
    series = _series(_check_pid(pid), 1.0, "psutil", False, True, 1)
    series.start()
    samples = series.samples()
    children = samples[0][3] if samples else []
    return [(index, mem / MIB) for index, (_pid, mem) in enumerate(children)]


def _shape(samples: list[Any], timestamps: bool, multiprocess: bool) -> list[Any]:
    """The samples as memory_profiler returns them: MiB, ``(MiB, t)`` or ``[main, kids...]``."""
    out = []
    for when, _own, total, children in samples:
        mem: Any = total / MIB
        if timestamps:
            mem = (mem, when)
        if multiprocess:
            mem = [mem] + [child / MIB for _pid, child in children]
        out.append(mem)
    return out


def _write_stream(stream: Any, samples: list[Any], multiprocess: bool) -> None:
    for index, (when, _own, total, children) in enumerate(samples, 1):
        stream.write(_memxx.format_mem_line(total / MIB, when))
        if multiprocess:
            for child_index, (_pid, child) in enumerate(children):
                stream.write(_memxx.format_child_line(str(child_index), child / MIB, when))
        if index % 50 == 0:
            stream.flush()
    stream.flush()


def _unpack(proc: Any) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
    if callable(proc):
        return proc, (), {}
    if not 1 <= len(proc) <= 3:
        raise ValueError("memory_usage: proc must be (f,), (f, args) or (f, args, kwargs), "
                         f"not a {type(proc).__name__} of {len(proc)} items")
    f, args, kwargs = (*proc, (), {})[:3]
    if not callable(f):
        raise ValueError(f"memory_usage: {f!r} is not callable")  # noqa: TRY004 - memory_profiler's error
    return f, tuple(args), dict(kwargs)


# Growth the kernel sees beyond what the hook counted (threads the call starts, C libraries that
# call malloc directly, child processes) replaces the hook's figure when it is larger than this;
# below it, it is the allocator's and the kernel's own noise.
_OUTSIDE_HOOK_SLACK = MIB


class PeakReading:
    """One run of a callable: the samples, where it started and how far above that it went."""

    __slots__ = ("increment_mib", "returned", "samples", "start_mib")

    def __init__(self, samples: list[Any], start_mib: float, increment_mib: float,
                 returned: Any) -> None:
        self.samples, self.start_mib = samples, start_mib
        self.increment_mib, self.returned = increment_mib, returned

    @property
    def peak_mib(self) -> float:
        return self.start_mib + self.increment_mib


def _call_tracemalloc(f: Callable[..., Any], args: tuple[Any, ...],
                      kwargs: dict[str, Any]) -> PeakReading:
    """Runs f once with tracemalloc on; memory is the bytes tracemalloc traces."""
    import tracemalloc

    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = (time.time(), tracemalloc.get_traced_memory()[0])
        returned = f(*args, **kwargs)
        current, peak = tracemalloc.get_traced_memory()
        after = (time.time(), current)
    finally:
        if started:
            tracemalloc.stop()
    samples: list[Any] = [(when, mem, mem, []) for when, mem in (before, after)]
    return PeakReading(samples, before[1] / MIB, (peak - before[1]) / MIB, returned)


def call_with_peak(f: Callable[..., Any], args: tuple[Any, ...] = (),
                   kwargs: dict[str, Any] | None = None,
                   interval: float = 0.1, backend: str = "hook", include_children: bool = False,
                   multiprocess: bool = False) -> PeakReading:
    """Runs ``f(*args, **kwargs)`` once and measures how far its memory rose, whatever the interval.

    The increment is the most bytes the calling thread held at once during the call, counted by
    the allocation hook (exact, even for a peak that lasted a microsecond). Growth the hook cannot
    see (threads started by f, C code calling malloc directly, children) comes from the kernel's
    resident-set high-water mark, restarted before the call, and from the samples; it is used
    when it exceeds the hook's figure by more than 1 MiB. f's exception propagates.

    >>> reading = call_with_peak(lambda: len(bytearray(50 * 2**20)))
    >>> reading.returned, round(reading.increment_mib)
    (52428800, 50)
    """
    kwargs = kwargs or {}
    backend = choose_backend(backend)
    if backend == "tracemalloc":
        return _call_tracemalloc(f, args, kwargs)
    series = _series(os.getpid(), interval, backend, include_children, multiprocess)
    kernel_peak = _metric(backend) == "rss" and _memxx.restart_peak_rss()
    series.start()
    start_own = _memxx.rss_bytes()
    from memory_profilerxx._thread_causes import install

    install()  # threads the callable starts, pool work it submits: its memory too
    mark = _memxx.watch_thread_begin()
    try:
        returned = f(*args, **kwargs)
    finally:
        hook_peak = _memxx.watch_thread_end(mark)
        series.stop()
    samples = series.samples()
    start = samples[0][2] if samples else start_own
    outside = max((total for _when, _own, total, _children in samples), default=start)
    if kernel_peak:
        # The kernel's mark is this process alone: add the children's part of the first sample.
        children = (samples[0][2] - samples[0][1]) if samples else 0
        outside = max(outside, _memxx.peak_rss_bytes() + children)
    increment = hook_peak
    if outside - start > hook_peak + _OUTSIDE_HOOK_SLACK:
        increment = outside - start
    return PeakReading(samples, start / MIB, max(increment, 0) / MIB, returned)


def memory_usage(proc: Any = -1, interval: float = .1, timeout: float | None = None,
                 timestamps: bool = False, include_children: bool = False,
                 multiprocess: bool = False, max_usage: bool = False, retval: bool = False,
                 stream: Any = None, backend: str | None = None,
                 max_iterations: int | None = None) -> Any:
    """Memory of a process over time, or of this process while a function runs (MiB).

    As memory_profiler's ``memory_usage``: ``proc`` is -1 (this process), a PID, a
    ``subprocess.Popen``, a callable or ``(f, args, kwargs)``. A callable runs exactly once
    (``max_iterations`` is accepted and has nothing left to limit), and ``max_usage=True``
    returns its true peak whatever the ``interval``. A PID is sampled once, or for ``timeout``
    seconds; a Popen until it exits. ``include_children`` adds the descendants (the sampler is
    a thread, never counted), ``multiprocess`` gives ``[main, child, ...]`` per sample,
    ``timestamps`` gives ``(MiB, time)`` pairs, ``retval`` returns ``(usage, f's result)``,
    ``stream`` receives ``MEM``/``CHLD`` lines and the call returns None.

    >>> peak = memory_usage((bytearray, (100 * 2**20,)), max_usage=True)
    >>> peak - memory_usage()[0] >= 99
    True
    """
    backend = choose_backend(backend)
    if stream is not None:
        timestamps = True
    returned = None
    if callable(proc) or isinstance(proc, (list, tuple)):
        f, args, kwargs = _unpack(proc)
        reading = call_with_peak(f, args, kwargs, interval, backend, include_children,
                                 multiprocess)
        samples, peak, returned = reading.samples, reading.peak_mib, reading.returned
    elif _is_popen(proc):
        samples = _sample_process(proc.pid, interval, timeout, backend, include_children,
                                  multiprocess, until_exit=True)
        peak = max((s[2] for s in samples), default=0) / MIB
    elif isinstance(proc, int) and not isinstance(proc, bool):
        if backend == "tracemalloc":
            samples = [(time.time(), 0, int(_tracemalloc_mib() * MIB), [])]
        else:
            samples = _sample_process(_check_pid(proc), interval, timeout, backend,
                                      include_children, multiprocess, until_exit=False)
        peak = max((s[2] for s in samples), default=0) / MIB
    else:
        raise ValueError("memory_usage: proc must be -1, a PID, a subprocess.Popen, a callable "
                         f"or (f, args, kwargs), not {type(proc).__name__}")

    if stream is not None:
        _write_stream(stream, samples, multiprocess)
        return None
    result: Any = peak if max_usage else _shape(samples, timestamps, multiprocess)
    return (result, returned) if retval else result


def _is_popen(proc: Any) -> bool:
    # Without subprocess imported there is no Popen: not importing it saves 3 ms at import.
    subprocess = sys.modules.get("subprocess")
    return subprocess is not None and isinstance(proc, subprocess.Popen)


def _sample_process(pid: int, interval: float, timeout: float | None, backend: str,
                    include_children: bool, multiprocess: bool, until_exit: bool) -> list[Any]:
    if timeout is not None:
        count = max(1, round(timeout / interval))
    else:
        count = 0 if until_exit else 1
    series = _series(pid, interval, backend, include_children, multiprocess, count)
    # The timeout is a wall-clock promise: an interval shorter than a sample takes (1e-6 s)
    # gives fewer samples, not a longer wait.
    deadline = None if timeout is None else time.monotonic() + timeout + min(interval, 0.1)
    series.start()
    try:
        while series.running:  # polled, so that Ctrl-C is not held up until the end
            if deadline is not None and time.monotonic() >= deadline:
                break
            time.sleep(min(interval, 0.05))
    finally:
        series.stop()
    return _first_samples(series, pid, backend)


class MemitResult:
    """What ``%memit -o`` returns: the peak of each run (MiB) and the baseline before them.

    >>> r = MemitResult([120.5, 121.0], 20.25, 2, None, 0.1, False)
    >>> str(r)
    'peak memory: 121.00 MiB, increment: 100.75 MiB'
    """

    def __init__(self, mem_usage: list[float], baseline: float, repeat: int,
                 timeout: float | None, interval: float, include_children: bool) -> None:
        self.mem_usage = mem_usage
        self.baseline = baseline
        self.repeat = repeat
        self.timeout = timeout
        self.interval = interval
        self.include_children = include_children

    def __str__(self) -> str:
        return memit_line(max(self.mem_usage), self.baseline)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(f"<MemitResult : {self}>")

"""FUNC spans: the calls of profiled functions, appended to the .dat of an ``mprofxx run``.

``mprofxx run`` sets ``MPROFXX_DAT`` to the path of the file it records for the program it
starts. While that is set, each :func:`function_span` appends one line when it ends::

    FUNC <module.qualname> <MiB at start> <t start> <MiB at end> <t end> <nesting level>

flushed at once (a crash loses no finished span) through a descriptor opened with ``O_APPEND``,
so the lines interleave with the sampler's MEM lines only at line boundaries. Outside a run,
every span is a no-op costing one environment lookup.

This module is pure Python on purpose: the profiled program imports it, and it must not add
the extension's import time or memory to what is being measured.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Self

from _memxx import MIB, format_function_line, open_output
from _memxx_shared.names import utf8_text

ENV_VAR = "MPROFXX_DAT"

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
_levels = threading.local()
_open_lock = threading.Lock()
_files: dict[str, Any] = {"pid": None, "path": None, "dat": None, "statm": None}


def enabled() -> bool:
    """Return True when spans are being recorded (inside ``mprofxx run``).

    >>> import os; os.environ.pop("MPROFXX_DAT", None) and None; enabled()
    False
    """
    return bool(os.environ.get(ENV_VAR))


def _descriptors(path: str) -> tuple[int, int]:
    # Reopen after a fork: /proc/self/statm was resolved to the parent's pid when opened.
    pid = os.getpid()
    if _files["pid"] != pid or _files["path"] != path:
        with _open_lock:
            if _files["pid"] != pid or _files["path"] != path:
                dat = open_output(path, append=True)
                statm = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
                _files.update(pid=pid, path=path, dat=dat, statm=statm)
    return _files["dat"], _files["statm"]


def _refused(reason: str) -> None:
    """Say once that FUNC spans cannot be recorded; the program itself goes on untouched."""
    if not _files.get("refused"):
        _files["refused"] = True
        print(f"mprofxx: FUNC spans not recorded: {reason}", file=sys.stderr)


def _rss_mib(statm: int) -> float:
    fields = os.pread(statm, 128, 0).split()
    return int(fields[1]) * _PAGE_SIZE / MIB


class function_span:
    """Record one FUNC span for ``name`` around a block, when inside ``mprofxx run``.

    >>> with function_span("mymodule.load_data"):
    ...     data = [0] * 1000
    """

    __slots__ = ("_dat", "_level", "_mem", "_name", "_path", "_statm", "_time")

    def __init__(self, name: str) -> None:
        # A name from a non-UTF-8 file name (os.fsdecode) is written with its bytes as \xNN.
        self._name = utf8_text("_".join(str(name).split())) or "<anonymous>"
        self._path = os.environ.get(ENV_VAR)

    def __enter__(self) -> Self:
        if not self._path:
            return self
        try:
            self._dat, self._statm = _descriptors(self._path)
        except (OSError, ValueError) as error:  # ValueError: OutputFileError (a link planted)
            _refused(str(error))
            self._path = None
            return self
        self._level = getattr(_levels, "depth", 0)
        _levels.depth = self._level + 1
        self._mem = _rss_mib(self._statm)
        self._time = time.time()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._path:
            return
        end_time = time.time()
        end_mem = _rss_mib(self._statm)
        _levels.depth = self._level
        line = format_function_line(
            self._name, self._mem, self._time, end_mem, end_time, self._level
        )
        data = line.encode("utf-8", "replace")
        try:
            written = os.write(self._dat, data)
            if written < len(data):
                # A full disk took part of the line: cut it off, keeping the file readable.
                os.ftruncate(self._dat, os.fstat(self._dat).st_size - written)
        except OSError:
            pass


def function_name(func: Callable[..., Any]) -> str:
    """Return the FUNC name of a function: ``<module>.<qualname>``.

    >>> function_name(function_name)
    '_memxx_shared.spans.function_name'
    """
    module = getattr(func, "__module__", None) or ""
    if module == "__mp_main__":  # the script, re-imported in a spawned worker
        module = "__main__"
    return "{}.{}".format(module, getattr(func, "__qualname__", getattr(func, "__name__", "?")))


def span_wrapper(func: Callable[..., Any]) -> Callable[..., Any]:
    """Return ``func`` wrapped so each call records a span (generators and coroutines too).

    >>> def load(): return 42
    >>> span_wrapper(load)()
    42
    """
    name = function_name(func)
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def coroutine_wrapper(*args: Any, **kwargs: Any) -> Any:
            with function_span(name):
                return await func(*args, **kwargs)

        return coroutine_wrapper
    if inspect.isgeneratorfunction(func):

        @functools.wraps(func)
        def generator_wrapper(*args: Any, **kwargs: Any) -> Any:
            with function_span(name):
                return (yield from func(*args, **kwargs))

        return generator_wrapper

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with function_span(name):
            return func(*args, **kwargs)

    return wrapper


class TimestampProfile:
    """The ``profile`` builtin inside ``mprofxx run``: records FUNC spans, prints nothing.

    Usable as ``@profile``, ``@profile(precision=2)`` (arguments are accepted and ignored, as
    memory_profiler's timestamp mode does) and ``with profile.timestamp("block"):``.

    >>> profile = TimestampProfile()
    >>> @profile
    ... def work(): return 1
    >>> work()
    1
    """

    def __call__(self, func: Callable[..., Any] | None = None, **_: Any) -> Any:
        if func is None:
            return span_wrapper
        return span_wrapper(func)

    def timestamp(self, name: str = "<block>") -> function_span:
        """Return a context manager recording the block as ``FUNC .<name>``."""
        return function_span("." + name)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def enable_by_count(self) -> None:
        """Accepted for memory_profiler compatibility; spans need no switching on."""

    def disable_by_count(self) -> None:
        """Accepted for memory_profiler compatibility."""

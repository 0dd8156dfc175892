"""TimeStamper and LogFile: memory_profiler's ``--timestamp`` profiler and logging adapter."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import _memxx

from _memxx_shared.names import utf8_text

from memory_profilerxx._memory_usage import _get_memory, choose_backend


class TimeStamper:
    """Records memory and time at the start and end of each call of the functions it wraps.

    What ``python -m memory_profilerxx --timestamp`` installs as ``profile``; ``show_results``
    writes one ``FUNC <module.name> <MiB> <t> <MiB> <t> <level>`` line per call, the lines
    ``mprof``'s .dat files hold.

    >>> import io
    >>> stamper = TimeStamper("psutil")
    >>> @stamper
    ... def work():
    ...     return [0] * 1000
    >>> _ = work()
    >>> out = io.StringIO(); stamper.show_results(out)
    >>> out.getvalue().split()[:2]
    ['FUNC', 'memory_profilerxx._timestamper.work']
    """

    def __init__(self, backend: str | None = None, include_children: bool = False) -> None:
        self.functions: dict[Callable[..., Any], list[list[tuple[float, float]]]] = {}
        self.stack: dict[Callable[..., Any], list[int]] = {}
        self.backend = choose_backend(backend)
        self.include_children = include_children
        self.current_stack_level = -1

    def __call__(self, func: Callable[..., Any] | None = None,
                 precision: int | None = None) -> Callable[..., Any]:
        if func is None:
            return functools.partial(self.__call__, precision=precision)
        if not callable(func):
            raise ValueError("Value must be callable")  # noqa: TRY004 - as memory_profiler
        self.add_function(func)
        return functools.wraps(func)(self.wrap_function(func))

    def _reading(self) -> tuple[float, float]:
        reading: tuple[float, float] = _get_memory(os.getpid(), self.backend, timestamps=True,
                                                   include_children=self.include_children)
        return reading

    def add_function(self, func: Callable[..., Any]) -> None:
        if func not in self.functions:
            self.functions[func] = []
            self.stack[func] = []

    def wrap_function(self, func: Callable[..., Any]) -> Callable[..., Any]:
        def stamped(*args: Any, **kwargs: Any) -> Any:
            readings = [self._reading()]
            self.functions[func].append(readings)
            try:
                with self.call_on_stack(func, *args, **kwargs) as result:
                    return result
            finally:
                readings.append(self._reading())

        return stamped

    @contextmanager
    def call_on_stack(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Iterator[Any]:
        self.current_stack_level += 1
        self.stack[func].append(self.current_stack_level)
        try:
            yield func(*args, **kwargs)
        finally:
            self.current_stack_level -= 1

    @contextmanager
    def timestamp(self, name: str = "<block>") -> Iterator[None]:
        """Stamps a block of code; it is reported as the function ``.<name>``."""

        def block() -> None:
            """A stand-in function for the block."""

        block.__module__ = ""
        block.__name__ = name
        self.add_function(block)
        readings = [self._reading()]
        self.functions[block].append(readings)
        self.current_stack_level += 1
        self.stack[block].append(self.current_stack_level)
        try:
            yield
        finally:
            self.current_stack_level -= 1
            readings.append(self._reading())

    def show_results(self, stream: Any = None) -> None:
        stream = stream if stream is not None else sys.stdout
        for func, calls in self.functions.items():
            name = utf8_text(f"{func.__module__}.{func.__name__}")
            for readings, level in zip(calls, self.stack[func]):
                if len(readings) < 2:
                    continue
                (mem0, t0), (mem1, t1) = readings[0], readings[1]
                stream.write(_memxx.format_function_line(name, mem0, t0, mem1, t1, level))


class LogFile:
    """A file-like object that sends what is written to it to ``logging.getLogger(name)``.

    With ``reportIncrementFlag=True`` only report lines whose increment is above zero (and the
    ``Filename:`` and header lines) are logged, as in memory_profiler.

    >>> import logging, memory_profilerxx
    >>> log = LogFile("memory_profile_log")
    >>> log.write("Filename: x.py")
    """

    def __init__(self, name: str | None = None, reportIncrementFlag: bool = False) -> None:
        import logging

        self.logger = logging.getLogger(name)
        self.reportIncrementFlag = reportIncrementFlag

    def write(self, msg: str, level: int = 20) -> None:  # 20: logging.INFO
        wanted = (not self.reportIncrementFlag or "Filename:" in msg or "Line Contents" in msg
                  or _positive_increment(msg))
        if wanted:
            self.logger.log(level, msg)

    def flush(self) -> None:
        for handler in self.logger.handlers:
            handler.flush()


def _positive_increment(line: str) -> bool:
    parts = line.split("MiB")
    try:
        return len(parts) > 1 and float(parts[1].strip()) > 0
    except ValueError:
        return False

"""Helpers for the line-profiler tests: run a function under a LineProfiler, index its lines."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from memory_profilerxx import LineProfiler, LineRecord


def profiled(func: Callable, *args: Any, **kwargs: Any) -> tuple[dict[int, LineRecord], Any]:
    """Runs func once under a fresh LineProfiler; returns ({line offset: record}, result).

    The offset counts from the function's first line (the `def`, or its first decorator).
    """
    prof = LineProfiler()
    result = prof(func)(*args, **kwargs)
    return lines_of(prof, func), result


def lines_of(prof: LineProfiler, func: Callable) -> dict[int, LineRecord]:
    first = func.__code__.co_firstlineno
    return {r.lineno - first: r for r in prof.records()
            if r.function == func.__code__.co_qualname}

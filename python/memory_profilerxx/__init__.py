"""memory_profilerxx: exact line-by-line memory profiling, a drop-in for memory_profiler.

>>> from memory_profilerxx import profile, memory_usage
>>> @profile
... def my_func():
...     a = [1] * (10 ** 6)
...     return a
>>> _ = my_func()  # doctest: +SKIP
>>> memory_usage((bytearray, (50 * 2**20,)), max_usage=True) > 50
True
"""

from typing import Any

from _memxx import MIB

from _memxx_shared.peak_file import PeakTable

from memory_profilerxx._line_profiler import CodeMap, LineProfiler, LineRecord, profile
from memory_profilerxx._memory_usage import (
    MemitResult,
    _get_child_memory,
    _get_memory,
    choose_backend,
    has_tracemalloc,
    memory_usage,
)
from memory_profilerxx._peak import peak_report
from memory_profilerxx._report import report_html, show_results
from memory_profilerxx._timestamper import LogFile, TimeStamper

__version__ = "0.1.0"

_TWO_20 = float(MIB)  # memory_profiler's name for the MiB

__all__ = ["_TWO_20", "CodeMap", "LineProfiler", "LineRecord", "LogFile", "MemitResult",
           "MemoryProfilerMagics", "TimeStamper", "__version__", "_get_child_memory",
           "_get_memory", "choose_backend", "has_tracemalloc", "load_ipython_extension",
           "memory_usage", "PeakTable", "peak_report", "profile", "report_html", "show_results"]


def load_ipython_extension(ip: Any) -> None:
    """``%load_ext memory_profilerxx``: registers ``%memit``, ``%mprun`` and ``%peak``."""
    from memory_profilerxx._magics import load_ipython_extension as load

    load(ip)


def __getattr__(name: str) -> Any:
    # IPython is imported only when its magics are asked for.
    if name == "MemoryProfilerMagics":
        from memory_profilerxx._magics import MemoryProfilerMagics

        return MemoryProfilerMagics
    raise AttributeError(f"module 'memory_profilerxx' has no attribute {name!r}")

"""memory_profilerxx: exact line-by-line memory profiling, a drop-in for memory_profiler.

>>> from memory_profilerxx import profile
>>> @profile
... def my_func():
...     a = [1] * (10 ** 6)
...     return a
>>> _ = my_func()  # doctest: +SKIP   (prints the line table)
"""

from memory_profilerxx._line_profiler import CodeMap, LineProfiler, LineRecord, profile
from memory_profilerxx._report import show_results

__version__ = "0.1.0"

__all__ = ["CodeMap", "LineProfiler", "LineRecord", "__version__", "profile", "show_results"]

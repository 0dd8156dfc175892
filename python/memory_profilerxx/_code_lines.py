"""The lines of a profiled function: its last line run, its source block as reports show it.

Here, not in ``_line_profiler``, because both the profiler and the report (``_report``) need
them, and the profiler imports the report.

>>> def two_lines():
...     x = 1
...     return x
>>> function_lines(two_lines.__code__)
range(1, 4)
"""

from __future__ import annotations

from types import CodeType


def last_line(code: CodeType) -> int:
    """The highest line number the code of a function has an instruction on."""
    return max((line for _, _, line in code.co_lines() if line is not None),
               default=code.co_firstlineno)


def function_lines(code: CodeType) -> range:
    """Line numbers of a function's source block, decorators included (as memory_profiler)."""
    import inspect
    import linecache

    lines = linecache.getlines(code.co_filename)
    first = code.co_firstlineno
    if not lines or first > len(lines):
        return range(first, last_line(code) + 1)
    block = inspect.getblock(lines[first - 1:])
    return range(first, first + len(block))

"""The text report: memory_profiler's line table, with or without the Peak column."""

from __future__ import annotations

import linecache
import os
import sys
from typing import Any

LAYOUTS = ("peak", "classic")

_CLASSIC_TEMPLATE = "{0:>6} {1:>12} {2:>12}  {3:>10}   {4:<}"
_PEAK_TEMPLATE = "{0:>6} {1:>12} {2:>12} {3:>12}  {4:>10}   {5:<}"
_MIB = 2.0**20


LAYOUT_ENV = "MEMORY_PROFILERXX_LAYOUT"


def default_layout() -> str:
    """The layout used when none is given: ``$MEMORY_PROFILERXX_LAYOUT`` or ``"peak"``.

    ``MEMORY_PROFILERXX_LAYOUT=classic`` is the compatibility switch: every report is then
    memory_profiler's table byte for byte, for code that parses it.
    """
    return os.environ.get(LAYOUT_ENV) or "peak"


def check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError("layout must be one of {}, not {!r}".format(", ".join(LAYOUTS), layout))


def _source_line(all_lines: list[str], lineno: int) -> str:
    text = all_lines[lineno - 1] if 0 < lineno <= len(all_lines) else "\n"
    return text if text.endswith("\n") else text + "\n"


def show_results(prof: Any, stream: Any = None, precision: int = 1,
                 layout: str | None = None) -> None:
    """Writes the line-by-line report of a LineProfiler to ``stream`` (default stdout).

    ``layout="peak"`` (default): memory_profiler's columns with ``Peak`` after ``Increment``;
    ``layout="classic"``: memory_profiler's table byte for byte. None: ``default_layout()``.

    >>> from memory_profilerxx import LineProfiler
    >>> import io
    >>> prof = LineProfiler()
    >>> f = prof(lambda: [0] * 100)
    >>> _ = f()
    >>> out = io.StringIO()
    >>> show_results(prof, stream=out, layout="classic")
    >>> out.getvalue().splitlines()[2].split()
    ['Line', '#', 'Mem', 'usage', 'Increment', 'Occurrences', 'Line', 'Contents']
    """
    layout = layout or default_layout()
    check_layout(layout)
    if stream is None:
        stream = sys.stdout
    cell = "{0:" + f"{precision + 4}.{precision}f" + "} MiB"
    peak_layout = layout == "peak"
    if peak_layout:
        header = _PEAK_TEMPLATE.format("Line #", "Mem usage", "Increment", "Peak", "Occurrences",
                                       "Line Contents")
    else:
        header = _CLASSIC_TEMPLATE.format("Line #", "Mem usage", "Increment", "Occurrences",
                                          "Line Contents")
    from memory_profilerxx._line_profiler import function_lines

    for code, rows in prof._results():
        if not rows:
            continue
        measured = {row[0]: row for row in rows}
        filename = code.co_filename
        stream.write("Filename: " + filename + "\n\n")
        stream.write(header + "\n")
        stream.write("=" * len(header) + "\n")
        all_lines = linecache.getlines(filename)
        for lineno in function_lines(code):
            source = _source_line(all_lines, lineno)
            row = measured.get(lineno)
            if row is None:
                blanks = ("", "", "", "") if peak_layout else ("", "", "")
                template = _PEAK_TEMPLATE if peak_layout else _CLASSIC_TEMPLATE
                stream.write(template.format(lineno, *blanks, source))
                continue
            _, occurrences, increment, peak, memory = row[:5]
            mem = cell.format(memory / _MIB)
            inc = cell.format(increment / _MIB)
            if peak_layout:
                stream.write(_PEAK_TEMPLATE.format(lineno, mem, inc, cell.format(peak / _MIB),
                                                   occurrences, source))
            else:
                stream.write(_CLASSIC_TEMPLATE.format(lineno, mem, inc, occurrences, source))
        stream.write("\n\n")

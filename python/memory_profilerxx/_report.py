"""memory_profilerxx's output formats, all here: the line table (with or without the Peak
column), its HTML twin for notebooks, the JSON of the line records, and %memit's line.
(The FUNC/MEM/CHLD lines are mprof's .dat format: ``_memxx.format_*_line``.)"""

from __future__ import annotations

import io
import json
import linecache
import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from _memxx import MIB

from memory_profilerxx._code_lines import function_lines

LAYOUTS = ("peak", "classic")

_CLASSIC_TEMPLATE = "{0:>6} {1:>12} {2:>12}  {3:>10}   {4:<}"
_PEAK_TEMPLATE = "{0:>6} {1:>12} {2:>12} {3:>12}  {4:>10}   {5:<}"


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
        from _memxx_shared.notebook import in_kernel, show

        if in_kernel():  # a notebook: the cell's output, as text and as an HTML table
            text = io.StringIO()
            _write_text(prof, text, precision, layout)
            show(text.getvalue(), report_html(prof, precision, layout))
            return
        stream = sys.stdout
    _write_text(prof, stream, precision, layout)


def _functions(prof: Any) -> Iterator[tuple[str, list[tuple[int, str, tuple[Any, ...] | None]]]]:
    """(filename, [(lineno, source line, measured row or None), ...]) per profiled function."""
    for code, rows in prof._results():
        if not rows:
            continue
        measured = {row[0]: row for row in rows}
        all_lines = linecache.getlines(code.co_filename)
        yield code.co_filename, [(lineno, _source_line(all_lines, lineno), measured.get(lineno))
                                 for lineno in function_lines(code)]


def _write_text(prof: Any, stream: Any, precision: int, layout: str) -> None:
    cell = "{0:" + f"{precision + 4}.{precision}f" + "} MiB"
    peak_layout = layout == "peak"
    if peak_layout:
        header = _PEAK_TEMPLATE.format("Line #", "Mem usage", "Increment", "Peak", "Occurrences",
                                       "Line Contents")
    else:
        header = _CLASSIC_TEMPLATE.format("Line #", "Mem usage", "Increment", "Occurrences",
                                          "Line Contents")
    for filename, lines in _functions(prof):
        stream.write("Filename: " + filename + "\n\n")
        stream.write(header + "\n")
        stream.write("=" * len(header) + "\n")
        for lineno, source, row in lines:
            if row is None:
                blanks = ("", "", "", "") if peak_layout else ("", "", "")
                template = _PEAK_TEMPLATE if peak_layout else _CLASSIC_TEMPLATE
                stream.write(template.format(lineno, *blanks, source))
                continue
            _, occurrences, increment, peak, memory = row[:5]
            mem = cell.format(memory / MIB)
            inc = cell.format(increment / MIB)
            if peak_layout:
                stream.write(_PEAK_TEMPLATE.format(lineno, mem, inc, cell.format(peak / MIB),
                                                   occurrences, source))
            else:
                stream.write(_CLASSIC_TEMPLATE.format(lineno, mem, inc, occurrences, source))
        stream.write("\n\n")


def report_html(prof: Any, precision: int = 1, layout: str | None = None) -> str:
    """The line table as HTML: the text report's columns, Increment and Peak shaded by size.

    Each function is a ``<table class="memxx-lines">``; a measured cell's bar is its share of
    the largest figure in that column (an increment's absolute value; a peak above the
    function's starting memory), so the heaviest lines stand out.

    >>> from memory_profilerxx import LineProfiler
    >>> prof = LineProfiler()
    >>> _ = prof(lambda: [0] * 10**5)()
    >>> '<th>Increment</th>' in report_html(prof)
    True
    """
    import html

    layout = layout or default_layout()
    check_layout(layout)
    peak_layout = layout == "peak"
    columns = ["Line #", "Mem usage", "Increment"] + (["Peak"] if peak_layout else [])
    columns += ["Occurrences", "Line Contents"]
    parts = ['<div class="memxx-report">',
             "<style>.memxx-lines td, .memxx-lines th {padding: 1px 8px; text-align: right}"
             "</style>"]
    for filename, lines in _functions(prof):
        measured = [row for _, _, row in lines if row is not None]
        start = min(row[4] - row[2] for row in measured)  # memory before the first line
        top_increment = max(abs(row[2]) for row in measured) or 1
        top_peak = max(row[3] - start for row in measured) or 1
        parts.append(f"<p><b>Filename:</b> <code>{html.escape(filename)}</code></p>")
        parts.append('<table class="memxx-lines" style="font-family:monospace">')
        parts.append("<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in columns) + "</tr>")
        for lineno, source, row in lines:
            code = f'<td style="text-align:left;white-space:pre">{html.escape(source.rstrip())}</td>'
            if row is None:
                parts.append(f"<tr><td>{lineno}</td>" + "<td></td>" * (len(columns) - 2) + code
                             + "</tr>")
                continue
            _, occurrences, increment, peak, memory = row[:5]
            cells = [f"<td>{lineno}</td>", f"<td>{memory / MIB:.{precision}f} MiB</td>",
                     _bar_cell(f"{increment / MIB:.{precision}f} MiB", abs(increment) / top_increment,
                               "#f4a261" if increment > 0 else "#8ecae6")]
            if peak_layout:
                cells.append(_bar_cell(f"{peak / MIB:.{precision}f} MiB",
                                       max(peak - start, 0) / top_peak, "#e76f51"))
            cells.append(f"<td>{occurrences}</td>")
            parts.append("<tr>" + "".join(cells) + code + "</tr>")
        parts.append("</table>")
    parts.append("</div>")
    return "\n".join(parts)


def _bar_cell(text: str, share: float, colour: str) -> str:
    percent = round(min(max(share, 0.0), 1.0) * 100, 1)
    return (f'<td style="text-align:right;background:linear-gradient(to right, {colour} '
            f'{percent}%, transparent {percent}%)" data-share="{percent}">{text}</td>')


def records_json(records: Iterable[Any], indent: int = 2) -> str:
    """Return the line records as JSON text: ``{"format", "version", "unit": "bytes", "lines"}``.

    Keys are sorted; a negative ``indent`` gives the compact form.

    >>> print(records_json([], indent=-1))
    {"format":"memory_profilerxx-lines","lines":[],"unit":"bytes","version":2}
    """
    fields = ("filename", "function", "lineno", "source", "occurrences", "increment", "peak",
              "memory", "native_increment", "native_peak", "threads_increment")
    document = {"format": "memory_profilerxx-lines", "version": 2, "unit": "bytes",
                "lines": [{name: getattr(r, name) for name in fields} for r in records]}
    if indent < 0:
        return json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return json.dumps(document, indent=indent, sort_keys=True, ensure_ascii=False)


def memit_line(peak: float, baseline: float) -> str:
    """Return %memit's result line for a peak and the baseline before it, both in MiB.

    >>> memit_line(121.0, 20.25)
    'peak memory: 121.00 MiB, increment: 100.75 MiB'
    """
    return f"peak memory: {peak:.02f} MiB, increment: {peak - baseline:.02f} MiB"


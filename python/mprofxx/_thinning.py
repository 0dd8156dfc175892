"""What a plot draws of a long recording: no more than its width in pixels can show.

A picture has a few thousand columns; a recording may hold millions of samples and tens of
thousands of function spans. Samples are cut to the first, lowest, highest and last of each
column (the line's envelope, its peaks and dips, stays exact); consecutive calls of a function
closer than a column merge into one span. Drawing then costs in proportion to the picture, not
to the file.

>>> thin_samples([0.0, 0.1, 0.2, 0.3], [1.0, 5.0, 2.0, 3.0], columns=1)
([0.0, 0.1, 0.2, 0.3], [1.0, 5.0, 2.0, 3.0])
>>> merge_spans([("f", 1.0, 0.0, 2.0, 0.1, 0), ("f", 2.0, 0.1005, 3.0, 0.2, 0)], pixel=0.01)
[('f', 1.0, 0.0, 3.0, 0.2, 0, 2)]
"""

from __future__ import annotations

from typing import Any

#: Columns a plot is cut to: more than the ~820 pixels of the default figure's axes, so that
#: thinning is invisible, and few enough that drawing takes well under a second.
COLUMNS = 2000

Span = tuple[str, float, float, float, float, int]  # name, MiB, start, MiB, end, level
MergedSpan = tuple[str, float, float, float, float, int, int]  # ... and the calls merged


def thin_samples(xs: Any, ys: Any, columns: int = COLUMNS,
                 window: tuple[float, float] | None = None) -> tuple[Any, Any]:
    """The samples kept to draw ``(xs, ys)`` (lists or arrays) on ``columns`` columns (all of
    them when few enough).

    Per column, in time order: the first, the lowest, the highest and the last sample.
    ``window`` (seconds) sets the columns' span when the plot shows only part of the time.
    """
    if len(xs) <= 4 * columns:
        return xs, ys
    import numpy as np

    x = np.asarray(xs, dtype=float)
    y = np.asarray(ys, dtype=float)
    low, high = window if window else (float(x.min()), float(x.max()))
    width = (high - low) / columns or 1.0
    column = np.floor((x - low) / width)
    by_time = np.lexsort((np.arange(len(x)), column))  # stable: time order in a column
    by_value = np.lexsort((y, column))  # lowest first in each column
    sorted_columns = column[by_time]
    starts = np.flatnonzero(np.r_[True, sorted_columns[1:] != sorted_columns[:-1]])
    ends = np.r_[starts[1:], len(x)] - 1
    keep = np.unique(np.concatenate(
        [by_time[starts], by_time[ends], by_value[starts], by_value[ends]]))
    return x[keep].tolist(), y[keep].tolist()


def merge_spans(spans: list[Span] | list[Any], pixel: float) -> list[MergedSpan]:
    """Spans of the same function and level, less than ``pixel`` seconds apart, merged.

    A merged span runs from the first call's start (and memory) to the last call's end (and
    memory); its last field counts the calls in it.
    """
    merged: list[MergedSpan] = []
    last: dict[tuple[str, int], int] = {}
    for name, mem0, t0, mem1, t1, level in sorted(spans, key=lambda s: (s[2], s[4])):
        at = last.get((name, level))
        if at is not None:
            prior = merged[at]
            if t0 - prior[4] < pixel:
                merged[at] = (name, prior[1], prior[2], mem1, max(t1, prior[4]), level,
                              prior[6] + 1)
                continue
        last[(name, level)] = len(merged)
        merged.append((name, mem0, t0, mem1, t1, level, 1))
    return merged

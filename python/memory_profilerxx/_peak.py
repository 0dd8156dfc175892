"""``peak_report``: record what holds the memory at the peak of a block of code.

It starts and stops the peak recorder (``_memxx.peak_start``/``peak_stop``) around the block;
the table it keeps and its file format are :mod:`_memxx_shared.peak_file`'s.

>>> with peak_report() as peak:
...     held = [bytearray(1000) for _ in range(1000)]
>>> peak.table.peak_bytes >= 1000 * 1000
True
"""

from __future__ import annotations

import time
from typing import Any, Literal

import _memxx

from _memxx_shared.peak_capture import capture
from _memxx_shared.peak_file import PeakTable


class peak_report:  # noqa: N801 - a function-like context manager, as memray's Tracker is used
    """Record what holds the memory at the peak of a block of code; the table is ``.table``.

    Every allocation made inside the block (Python objects, numpy, native malloc and mmap, on
    every thread) is tagged with the Python stack that made it; on leaving the block ``.table``
    holds the bytes per line and per stack live at the block's highest moment.

    >>> with peak_report() as peak:
    ...     block = bytearray(10 * 2**20)
    ...     del block
    >>> peak.table.peak_bytes >= 10 * 2**20
    True
    >>> peak.table.lines()[0].bytes >= 10 * 2**20
    True
    """

    def __init__(self, native: bool = True) -> None:
        self.native = native
        self.table: PeakTable | None = None
        self._start = 0.0

    def __enter__(self) -> peak_report:
        self._start = time.time()  # before: the float would be one of the block's objects
        _memxx.peak_start(self.native)
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        try:
            self.table = capture(start_time=self._start, with_kept=True)
        finally:
            _memxx.peak_stop()
        return False

    def __str__(self) -> str:
        return "(still recording)" if self.table is None else str(self.table)

    def __repr__(self) -> str:
        return f"<peak_report {self.table!r}>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

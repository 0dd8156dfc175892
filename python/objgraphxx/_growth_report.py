"""What grew between two moments, the lines that made it, and why the newest of it is alive.

``mprofxx attach --growth`` runs a :class:`growth_report` inside the process it attached to; a
program may run one around a stretch of its own code.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from typing import Any, Optional

from ._counts import by_type, growth
from ._leaks import why_alive
from ._sites import NotRecording, allocation_site, new_object_sites, track_allocations
from ._tables import write_growth


class growth_report:  # noqa: N801 - used like a function, as track_allocations
    """Record which types grow from ``start()`` to ``finish()`` (or over a ``with`` block):
    show_growth's table with the lines that made each type's new objects, then why the newest
    such object of the ``chains`` types that grew most is alive. The text is ``.text``.

    ``leave_out``: folders of code that is not the program's (the caller's own): their lines are
    not shown, and a type whose every new object they made is left out.

    >>> class Order: pass
    >>> orders = []
    >>> with growth_report(chains=0) as report:
    ...     orders.extend(Order() for _ in range(5))
    >>> [line.split() for line in report.text.splitlines() if line.startswith("Order ")]
    [['Order', '5', '+5']]
    """

    def __init__(self, chains: int = 3, leave_out: Iterable[str] = ()) -> None:
        # Every object of ours is made here, before the first count: none is the program's growth.
        self.chains = int(chains)
        self.leave_out = tuple(os.path.join(os.path.abspath(path), "") for path in leave_out)
        self.text: Optional[str] = None
        self._peak_stats: dict[str, int] = {}
        self._tracker = track_allocations()
        self._out = io.StringIO()
        self._quiet = NotRecording()

    def start(self) -> "growth_report":
        """Count every type, then record the sites of objects made from now on."""
        growth(limit=None, peak_stats=self._peak_stats)
        self._tracker.start()
        with self._quiet:
            new_object_sites(True)  # the epoch: sites from now on
        return self

    def finish(self) -> str:
        """The report, from the second count (sites keep being recorded until ``stop()``)."""
        rows = growth(limit=None, peak_stats=self._peak_stats)
        out = self._out
        with self._quiet:
            sites = new_object_sites(True)
            if self.leave_out:
                for name in list(sites):
                    sites[name] = [(where, n) for where, n in sites[name]
                                   if not self._left_out(where)]
                rows = [row for row in rows if sites.get(row[0]) != []]
            write_growth(out, rows, sites, 3)
            for name, _count, _delta in rows[: self.chains]:
                obj = _newest_with_site(name)
                if obj is None:
                    continue
                out.write(f"\nwhy is a {name} alive:\n")
                why_alive(obj, file=out)
                obj = None
        self.text = out.getvalue()
        return self.text

    def stop(self) -> None:
        """Stop recording sites and drop them."""
        self._tracker.stop(forget=True)

    def _left_out(self, where: str) -> bool:
        return os.path.join(os.path.abspath(where.rsplit(":", 1)[0]), "").startswith(
            self.leave_out)

    def __enter__(self) -> "growth_report":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        try:
            self.finish()
        finally:
            self.stop()


def _newest_with_site(name: str) -> Any:
    """An object of type ``name`` made while recording (the last such the collector lists)."""
    found = None
    for obj in by_type(name):
        if allocation_site(obj) is not None:
            found = obj
    return found

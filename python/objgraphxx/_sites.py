"""Where objects are allocated: the allocation-site recorder and the lines show_growth names.

>>> import objgraphxx
>>> class Order: pass
>>> with objgraphxx.track_allocations():
...     order = Order()
>>> objgraphxx.allocation_site(order) is not None
True
"""

from __future__ import annotations

import os
from typing import IO, Any, Optional

import _memxx

from _memxx_shared.names import short_path

from ._observers import PACKAGE_DIR
from ._tables import NO_SITES_HINT, write_growth

_tracking_users = [0]  # active track_allocations() starts, across all instances


class track_allocations:
    """Record where each object is allocated while on (a context manager, or start()/stop()).

    While on, the allocator hook notes the file and line of the innermost Python frame for
    every object allocated through CPython's object allocator. ``show_growth(sites=True)``,
    ``allocation_site()`` and ``snapshot()`` then name the lines that made the objects.
    ``stop()`` records no new sites but keeps those of objects still alive (the hook keeps
    removing the sites of freed objects); ``stop(forget=True)`` drops them all and removes the
    hook once no tracker is on.

    >>> import objgraphxx
    >>> class Order: pass
    >>> with objgraphxx.track_allocations():
    ...     order = Order()
    >>> objgraphxx.allocation_site(order)[1]  # the with block's second line
    2
    """

    def __init__(self) -> None:
        self._on = False

    def start(self) -> "track_allocations":
        """Start recording (no effect if this tracker is already on); returns the tracker.

        >>> t = track_allocations().start()
        >>> t.tracking
        True
        >>> t.stop()
        """
        if not self._on:
            self._on = True
            _tracking_users[0] += 1
            _memxx.sites_start()
        return self

    def stop(self, forget: bool = False) -> None:
        """Stop recording; ``forget=True`` also drops every recorded site.

        >>> t = track_allocations().start()
        >>> t.stop(forget=True)
        >>> allocation_site([]) is None
        True
        """
        if self._on:
            self._on = False
            _tracking_users[0] -= 1
        if _tracking_users[0] == 0:
            _memxx.sites_stop(bool(forget))

    @property
    def tracking(self) -> bool:
        """True while this tracker records.

        >>> track_allocations().tracking
        False
        """
        return self._on

    def __enter__(self) -> "track_allocations":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def allocation_site(obj: Any) -> Optional[tuple[str, int]]:
    """Return (filename, line) where ``obj`` was allocated, or None if no site was recorded.

    Sites are recorded for objects allocated while ``track_allocations()`` is on.

    >>> class Order: pass
    >>> with track_allocations():
    ...     order = Order()
    >>> allocation_site(order) is not None
    True
    """
    found = _memxx.gc_object_site(obj)
    if found is None:
        return None
    return found[0], found[1]


class NotRecording:
    """Within: the package's own objects (snapshots, rows, chains) get no allocation site.

    >>> with NotRecording():
    ...     rows = []
    >>> allocation_site(rows) is None
    True
    """

    def __enter__(self) -> None:
        self.resume = _memxx.sites_state() == "recording"
        if self.resume:
            _memxx.sites_stop(False)

    def __exit__(self, *exc: Any) -> None:
        if self.resume:
            _memxx.sites_start()


def site_text(filename: Optional[str], line: int) -> str:
    """Return 'file:line' for a site, the file relative to the current directory if below it.

    >>> site_text(None, 0)
    '<unknown>:0'
    """
    if filename is None:
        return "<unknown>:0"
    return "%s:%d" % (short_path(filename), line)


def is_own_site(filename: Optional[str]) -> bool:
    """Return True for a line of this package (its allocations are left out of reports).

    >>> is_own_site(__file__), is_own_site(None)
    (True, False)
    """
    return filename is not None and os.path.abspath(filename).startswith(PACKAGE_DIR)


_growth_epoch = [0]


def new_object_sites(shortnames: bool) -> dict[str, list[tuple[str, int]]]:
    """Return the sites of objects allocated since the previous call, per type name, most first.

    >>> isinstance(new_object_sites(True), dict)
    True
    """
    since = _growth_epoch[0]
    _growth_epoch[0] = _memxx.sites_new_epoch()
    per_type: dict[str, dict[str, int]] = {}
    for name, filename, line, n, _ in _memxx.gc_new_object_sites(since, bool(shortnames)):
        if is_own_site(filename):
            continue
        sites = per_type.setdefault(name, {})
        key = site_text(filename, line)
        sites[key] = sites.get(key, 0) + n
    return {
        name: sorted(sites.items(), key=lambda kv: (-kv[1], kv[0]))
        for name, sites in per_type.items()
    }


def print_growth_with_sites(
    result: list[tuple[str, int, int]], file: IO[str], top: int, shortnames: bool
) -> None:
    """Print show_growth's rows, each followed by up to ``top`` lines that allocated its objects.

    >>> import io
    >>> out = io.StringIO()
    >>> print_growth_with_sites([('Gizmo', 3, 2)], out, 3, True)
    >>> out.getvalue().splitlines()[0]
    'Gizmo        3        +2'
    """
    with NotRecording():
        sites = new_object_sites(shortnames)
    write_growth(file, result, sites, top)
    if _memxx.sites_state() == "off":
        file.write(NO_SITES_HINT)

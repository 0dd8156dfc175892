"""What the heap weighs: shallow and retained sizes per type, and snapshots to save and diff.

>>> import objgraphxx
>>> class Gizmo: pass
>>> g = [Gizmo() for _ in range(3)]
>>> objgraphxx.snapshot().types['Gizmo'].count
3
"""

from __future__ import annotations

import datetime
import gc
import json
import os
import sys
from typing import IO, Any, NamedTuple, Optional, Union

import _memxx

from ._output import write_output
from ._sites import NotRecording, is_own_site, site_text
from ._tables import write_sized_types, write_snapshot_diff

SNAPSHOT_FORMAT = "objgraphxx-snapshot"
SNAPSHOT_VERSION = 1


def retained_size(obj: Any) -> int:
    """Return the bytes that would be freed if ``obj`` went away (its retained size).

    The size of ``obj`` (as ``sys.getsizeof``) plus that of every object only reachable through
    it, from the dominator tree of the whole heap: roots are modules, live frames' variables,
    and objects nothing else refers to.

    >>> import sys
    >>> items = [object() for _ in range(10)]
    >>> retained_size(items) == sys.getsizeof(items) + 10 * sys.getsizeof(object())
    True
    """
    return int(_memxx.gc_retained_size(obj)[0])


def _types_by_name(summary: dict[str, Any]) -> dict[str, tuple[int, int, int]]:
    """(count, shallow, retained) per type name, types of the same name added up."""
    merged: dict[str, tuple[int, int, int]] = {}
    for name, n, shallow, retained in summary["types"]:
        count0, shallow0, retained0 = merged.get(name, (0, 0, 0))
        merged[name] = (count0 + n, shallow0 + shallow, retained0 + retained)
    return merged


def type_sizes(shortnames: bool = True) -> list[tuple[str, int, int, int]]:
    """Return [(type name, count, shallow bytes, retained bytes)] for every type, in heap order.

    Counts include untracked objects (str, int, ...) that a tracked object refers to. The
    retained bytes of a type count objects dominated by another of the same type once.

    >>> class Gizmo: pass
    >>> g = [Gizmo() for _ in range(4)]
    >>> [row[1] for row in type_sizes() if row[0] == 'Gizmo']
    [4]
    """
    gc.collect()
    with NotRecording():
        summary = _memxx.gc_heap_summary(bool(shortnames), False)
    return [(name, *row) for name, row in _types_by_name(summary).items()]


def print_sized_types(limit: Optional[int], shortnames: bool, file: IO[str]) -> None:
    """Print the most numerous types with their shallow and retained bytes, under a header.

    >>> import io
    >>> out = io.StringIO()
    >>> print_sized_types(3, True, out)
    >>> out.getvalue().split()[:4]
    ['type', 'count', 'shallow', 'B']
    """
    rows = sorted(type_sizes(shortnames), key=lambda r: r[1], reverse=True)
    if limit:
        rows = rows[:limit]
    write_sized_types(file, rows)


class TypeStats(NamedTuple):
    """One type of a snapshot: objects, shallow bytes, retained bytes."""

    count: int  # type: ignore[assignment]  # objgraphxx's name, shadowing tuple.count
    shallow: int
    retained: int


class SiteStats(NamedTuple):
    """Objects of one type made on one line: how many, and their shallow bytes."""

    type: str
    site: str
    count: int  # type: ignore[assignment]  # objgraphxx's name, shadowing tuple.count
    bytes: int


class Snapshot:
    """A heap summary: counts, shallow and retained bytes per type, objects per allocation site.

    Made by ``snapshot()``; ``save(path)`` writes JSON, ``Snapshot.load(path)`` reads it back,
    ``diff(old, new)`` compares two.

    >>> s = snapshot()
    >>> s.types['dict'].count > 0
    True
    """

    def __init__(
        self,
        types: dict[str, TypeStats],
        sites: list[SiteStats],
        created: str = "",
        python: str = "",
        objects: int = 0,
    ) -> None:
        self.types = types
        self.sites = sites
        self.created = created
        self.python = python
        self.objects = objects

    def to_dict(self) -> dict[str, Any]:
        """Return the snapshot as plain JSON-ready data.

        >>> Snapshot({'Foo': TypeStats(1, 48, 48)}, []).to_dict()['types']['Foo']
        {'count': 1, 'shallow': 48, 'retained': 48}
        """
        return {
            "format": SNAPSHOT_FORMAT,
            "version": SNAPSHOT_VERSION,
            "created": self.created,
            "python": self.python,
            "objects": self.objects,
            "types": {name: t._asdict() for name, t in self.types.items()},
            "sites": [s._asdict() for s in self.sites],
        }

    def save(self, path: Union[str, "os.PathLike[str]"]) -> None:
        """Write the snapshot to ``path`` as JSON.

        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), 'heap.json')
        >>> snapshot().save(path)
        >>> Snapshot.load(path).objects > 0
        True
        """
        write_output(os.fspath(path), json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def from_dict(cls, data: Any, source: str = "snapshot") -> "Snapshot":
        """Build a snapshot from ``to_dict()`` data; ValueError names what is wrong.

        >>> Snapshot.from_dict(Snapshot({}, []).to_dict()).types
        {}
        """

        def bad(why: str) -> ValueError:
            return ValueError("%s is not a valid objgraphxx snapshot: %s" % (source, why))

        if not isinstance(data, dict):
            raise bad("expected a JSON object, found %s" % type(data).__name__)
        if data.get("format") != SNAPSHOT_FORMAT:
            raise bad('no "format": "%s" field' % SNAPSHOT_FORMAT)
        if data.get("version") != SNAPSHOT_VERSION:
            raise bad(
                "unsupported version %r (this reader knows %d)"
                % (data.get("version"), SNAPSHOT_VERSION)
            )

        def number(value: Any, where: str) -> int:
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise bad("%s must be a non-negative integer, found %r" % (where, value))
            return value

        raw_types = data.get("types")
        if not isinstance(raw_types, dict):
            raise bad('"types" must be an object')
        parsed_types: dict[str, TypeStats] = {}
        for name, row in raw_types.items():
            if not isinstance(row, dict):
                raise bad("types[%r] must be an object" % name)
            parsed_types[name] = TypeStats(
                *(number(row.get(f), "types[%r].%s" % (name, f)) for f in TypeStats._fields)
            )
        raw_sites = data.get("sites")
        if not isinstance(raw_sites, list):
            raise bad('"sites" must be a list')
        parsed_sites = []
        for i, row in enumerate(raw_sites):
            if (
                not isinstance(row, dict)
                or not isinstance(row.get("type"), str)
                or not isinstance(row.get("site"), str)
            ):
                raise bad('sites[%d] must have string "type" and "site"' % i)
            parsed_sites.append(
                SiteStats(
                    row["type"],
                    row["site"],
                    number(row.get("count"), "sites[%d].count" % i),
                    number(row.get("bytes"), "sites[%d].bytes" % i),
                )
            )
        return cls(
            parsed_types,
            parsed_sites,
            str(data.get("created", "")),
            str(data.get("python", "")),
            number(data.get("objects", 0), "objects"),
        )

    @classmethod
    def load(cls, path: Union[str, "os.PathLike[str]"]) -> "Snapshot":
        """Read a snapshot written by ``save()``; ValueError if the file is not one.

        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), 'bad.json')
        >>> _ = open(path, 'w').write('[1, 2]')
        >>> Snapshot.load(path)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ValueError: ...bad.json is not a valid objgraphxx snapshot: expected a JSON object, found list
        """
        with open(path, "rb") as f:
            raw = f.read()
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise ValueError(
                "%s is not a valid objgraphxx snapshot: not UTF-8 text" % os.fspath(path)
            ) from None
        except json.JSONDecodeError as e:
            raise ValueError(
                "%s is not a valid objgraphxx snapshot: not JSON (%s)" % (os.fspath(path), e)
            ) from None
        return cls.from_dict(data, os.fspath(path))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Snapshot) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return "<Snapshot %s: %d objects, %d types, %d sites>" % (
            self.created,
            self.objects,
            len(self.types),
            len(self.sites),
        )


def snapshot(shortnames: bool = True) -> Snapshot:
    """Return a Snapshot of the heap: per type count, shallow and retained bytes; per site.

    Runs a full ``gc.collect()`` first. Objects are every gc-tracked object and every object
    one of them refers to (str, int, ... included). Sites are known for objects allocated while
    ``track_allocations()`` was on; this package's own allocations are left out.

    >>> class Gizmo: pass
    >>> g = [Gizmo() for _ in range(3)]
    >>> snapshot().types['Gizmo'].count
    3
    """
    with NotRecording():
        return _snapshot(shortnames)


def _snapshot(shortnames: bool) -> Snapshot:
    gc.collect()
    summary = _memxx.gc_heap_summary(bool(shortnames), True)
    merged = _types_by_name(summary)
    sites: dict[tuple[str, str], list[int]] = {}
    for name, filename, line, n, nbytes in summary["sites"]:
        if is_own_site(filename):
            continue
        row = sites.setdefault((name, site_text(filename, line)), [0, 0])
        row[0] += n
        row[1] += nbytes
    return Snapshot(
        {name: TypeStats(*row) for name, row in merged.items()},
        [SiteStats(t, s, n, b) for (t, s), (n, b) in sorted(sites.items())],
        datetime.datetime.now().isoformat(timespec="seconds"),
        sys.version.split()[0],
        summary["nodes"],
    )


class SnapshotDiff(NamedTuple):
    """What grew between two snapshots: [(type, +count, +shallow, +retained)] and
    [(site, type, +count, +bytes)], largest count growth first."""

    types: list[tuple[str, int, int, int]]
    sites: list[tuple[str, str, int, int]]


def diff(
    old: Snapshot, new: Snapshot, limit: Optional[int] = 10, file: Optional[IO[str]] = None
) -> SnapshotDiff:
    """Print and return what grew from ``old`` to ``new``, by type and by allocation site.

    A type or site is listed when its object count rose; rows show the change in objects and
    bytes. ``limit`` (None or 0: all) caps each table.

    >>> a = Snapshot({'Foo': TypeStats(1, 48, 48)}, [])
    >>> b = Snapshot({'Foo': TypeStats(3, 144, 144)}, [SiteStats('Foo', 'app.py:7', 2, 96)])
    >>> _ = diff(a, b)
    type    objects   shallow B  retained B
    Foo          +2         +96         +96
    site      type    objects       bytes
    app.py:7  Foo          +2         +96
    """
    for name, value in (("old", old), ("new", new)):
        if not isinstance(value, Snapshot):
            raise TypeError("diff(): %s must be a Snapshot, not %s" % (name, type(value).__name__))
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)):
        raise TypeError("diff(): limit must be an int or None, not %s" % type(limit).__name__)
    if file is None:
        file = sys.stdout
    zero = TypeStats(0, 0, 0)
    types_grown = []
    for name, t in new.types.items():
        before = old.types.get(name, zero)
        if t.count > before.count:
            types_grown.append(
                (
                    name,
                    t.count - before.count,
                    t.shallow - before.shallow,
                    t.retained - before.retained,
                )
            )
    types_grown.sort(key=lambda r: (-r[1], r[0]))
    old_sites = {(s.site, s.type): s for s in old.sites}
    sites_grown = []
    for s in new.sites:
        old_site = old_sites.get((s.site, s.type))
        count = s.count - (old_site.count if old_site else 0)
        if count > 0:
            sites_grown.append(
                (s.site, s.type, count, s.bytes - (old_site.bytes if old_site else 0))
            )
    sites_grown.sort(key=lambda r: (-r[2], r[0], r[1]))
    if limit:
        types_grown = types_grown[:limit]
        sites_grown = sites_grown[:limit]
    write_snapshot_diff(file, types_grown, sites_grown)
    return SnapshotDiff(types_grown, sites_grown)

"""The leak finder beyond objgraph: allocation sites, why-alive chains, retained sizes, snapshots.

Re-exported by ``objgraphxx``; see its docstring and the README's "Leak finder" section.
"""

from __future__ import annotations

import datetime
import gc
import json
import os
import sys
import threading
import types
from typing import IO, Any, Iterable, NamedTuple, Optional, Union

import _memxx

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep

SNAPSHOT_FORMAT = "objgraphxx-snapshot"
SNAPSHOT_VERSION = 1


# -- allocation sites ---------------------------------------------------------------------------

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


def _short_path(filename: str) -> str:
    """``filename`` relative to the current directory when it lies below it."""
    if os.path.isabs(filename):
        try:
            rel = os.path.relpath(filename)
        except ValueError:
            return filename
        if not rel.startswith(".."):
            return rel
    return filename


class _NotRecording:
    """Within: the package's own objects (snapshots, rows, chains) get no allocation site."""

    def __enter__(self) -> None:
        self.resume = _memxx.sites_state() == "recording"
        if self.resume:
            _memxx.sites_stop(False)

    def __exit__(self, *exc: Any) -> None:
        if self.resume:
            _memxx.sites_start()


def _site_text(filename: Optional[str], line: int) -> str:
    if filename is None:
        return "<unknown>:0"
    return "%s:%d" % (_short_path(filename), line)


def _is_own_site(filename: Optional[str]) -> bool:
    return filename is not None and os.path.abspath(filename).startswith(_PACKAGE_DIR)


_growth_epoch = [0]


def _new_object_sites(shortnames: bool) -> dict[str, list[tuple[str, int]]]:
    """Sites of objects allocated since the previous call, per type name, most first."""
    since = _growth_epoch[0]
    _growth_epoch[0] = _memxx.sites_new_epoch()
    per_type: dict[str, dict[str, int]] = {}
    for name, filename, line, n, _ in _memxx.gc_new_object_sites(since, bool(shortnames)):
        if _is_own_site(filename):
            continue
        sites = per_type.setdefault(name, {})
        key = _site_text(filename, line)
        sites[key] = sites.get(key, 0) + n
    return {
        name: sorted(sites.items(), key=lambda kv: (-kv[1], kv[0]))
        for name, sites in per_type.items()
    }


def _print_growth_with_sites(
    result: list[tuple[str, int, int]], file: IO[str], top: int, shortnames: bool
) -> None:
    with _NotRecording():
        sites = _new_object_sites(shortnames)
    width = max(len(name) for name, _, _ in result)
    for name, n, delta in result:
        file.write("%-*s%9d %+9d\n" % (width, name, n, delta))
        for where, count in sites.get(name, [])[:top]:
            file.write("    %-*s %+9d\n" % (max(width + 5, len(where)), where, count))
    if _memxx.sites_state() == "off":
        file.write("(no allocation sites: run the code under objgraphxx.track_allocations())\n")


# -- sizes ----------------------------------------------------------------------------------------


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
    with _NotRecording():
        summary = _memxx.gc_heap_summary(bool(shortnames), False)
    merged: dict[str, list[int]] = {}
    for name, n, shallow, retained in summary["types"]:
        row = merged.setdefault(name, [0, 0, 0])
        row[0] += n
        row[1] += shallow
        row[2] += retained
    return [(name, row[0], row[1], row[2]) for name, row in merged.items()]


def _print_sized_types(limit: Optional[int], shortnames: bool, file: IO[str]) -> None:
    rows = sorted(type_sizes(shortnames), key=lambda r: r[1], reverse=True)
    if limit:
        rows = rows[:limit]
    if not rows:
        return
    width = max(max(len(r[0]) for r in rows), len("type"))
    file.write("%-*s %9s %14s %14s\n" % (width, "type", "count", "shallow B", "retained B"))
    for name, n, shallow, retained in rows:
        file.write("%-*s %9d %14d %14d\n" % (width, name, n, shallow, retained))


# -- why alive ------------------------------------------------------------------------------------


class Hop(NamedTuple):
    """One step of a why_alive() chain: how it is reached (``edge``) and the object.

    Its repr is short (the object's kind and size, not the whole container):

    >>> Hop('.CACHE', {'k': list(range(10**6))})
    Hop(edge='.CACHE', obj=<dict (1 items)>)
    """

    edge: str
    obj: Any

    def __repr__(self) -> str:
        return "Hop(edge=%r, obj=<%s>)" % (self.edge, _describe(self.obj))


class AliveChain(list):
    """The list of Hops why_alive() returns; its repr names the hops, not the objects' contents.

    >>> AliveChain([Hop('module m', None), Hop('.CACHE', {})])
    <why_alive chain of 2 hops: module m -> .CACHE (dict (0 items))>
    """

    def __repr__(self) -> str:
        if not self:
            return "<why_alive chain: no root reaches the object>"
        edges = " -> ".join(hop.edge for hop in self)
        return "<why_alive chain of %d hops: %s (%s)>" % (len(self), edges, _describe(self[-1].obj))


def _module_paths(names: Iterable[str], directory: bool) -> list[str]:
    paths = []
    for name in names:
        path = getattr(sys.modules.get(name), "__file__", None)
        if path:
            path = os.path.abspath(path)
            paths.append(os.path.dirname(path) + os.sep if directory else path)
    return paths


def _observer_prefixes() -> list[str]:
    """Files whose frames are never roots: this package, the line profiler, the IPython shell."""
    return [_PACKAGE_DIR] + _module_paths(("memory_profilerxx", "IPython"), directory=True)


def _debugger_prefixes() -> list[str]:
    """Files of debuggers: with one at its prompt, the frames above the debugged one are the
    question being asked."""
    return _module_paths(("bdb", "pdb", "cmd", "IPython.core.debugger"), directory=False) + (
        _module_paths(("ipdb",), directory=True)
    )


def _history_namespaces() -> list[Any]:
    """The IPython user namespace, whose _, __, ___ and _<n> hold every displayed result."""
    module = sys.modules.get("IPython.core.interactiveshell")
    cls = getattr(module, "InteractiveShell", None) if module is not None else None
    if cls is None or not cls.initialized():
        return []
    namespace = getattr(cls.instance(), "user_ns", None)
    return [namespace] if isinstance(namespace, dict) else []


def _root_modules() -> list[Any]:
    return [
        m
        for name, m in list(sys.modules.items())
        if isinstance(m, types.ModuleType) and getattr(m, "__name__", None) == name
    ]


def _key_text(key: Any, as_attribute: bool) -> str:
    if as_attribute and isinstance(key, str) and key.isidentifier():
        return "." + key
    try:
        text = repr(key)
    except Exception:
        text = "(unrepresentable %s)" % type(key).__name__
    if len(text) > 60:
        text = text[:57] + "..."
    return "[%s]" % text


def _edge_name(kind: str, key: Any, namespace: bool) -> str:
    """How a hop is reached, from gc_edge's (kind, key): '.attr', "['key']", '[3]', ..."""
    if kind == "dict_value":
        return _key_text(key, namespace)
    if kind == "dict_key":
        return "(key %s)" % _key_text(key, False)
    if kind == "index":
        return "[%d]" % key
    if kind == "member":
        return "(member)"
    if kind == "attribute":
        return "." + key
    if kind == "local":
        return " local %r" % key
    return ""


def _describe(obj: Any) -> str:
    name = type(obj).__name__
    if isinstance(obj, (dict, list, tuple, set, frozenset)):
        return "%s (%d items)" % (name, len(obj))
    if isinstance(obj, (types.FunctionType, types.MethodType, type, types.ModuleType)):
        return "%s %s" % (name, getattr(obj, "__qualname__", getattr(obj, "__name__", "?")))
    return name


def _frame_text(thread_id: int, depth: int, code: Any, slot: str, asking: Any) -> str:
    """Describe a frame slot root; ``asking`` is the frame that was on top of this thread when
    the depth was counted."""
    thread = threading._active.get(thread_id)  # type: ignore[attr-defined]
    thread_name = thread.name if thread is not None else "thread %d" % thread_id
    where = _short_path(code.co_filename)
    if thread_id == threading.get_ident():
        frame = asking
    else:
        frame = sys._current_frames().get(thread_id)
    for _ in range(depth):
        if frame is None:
            break
        frame = frame.f_back
    if frame is not None and frame.f_code is code:
        where = "%s:%d" % (where, frame.f_lineno)
    del frame
    qualname = getattr(code, "co_qualname", code.co_name)
    kind = "cell" if slot in code.co_cellvars or slot in code.co_freevars else "local"
    return "%s %r of %s() at %s (%s)" % (kind, slot, qualname, where, thread_name)


def why_alive(
    obj: Any,
    filename: Optional[str] = None,
    file: Optional[IO[str]] = None,
    max_depth: int = 100,
    extra_ignore: Iterable[int] = (),
) -> "AliveChain":
    """Print and return the shortest chain of references from a root that keeps ``obj`` alive.

    Roots are modules in sys.modules (their globals), classes (their attributes) and the
    variables of live frames on every thread. Never roots: frames of this package, the line
    profiler and the IPython shell; at a pdb prompt, the prompt and what it runs; and the
    calling (or debugged) frame's own reference to ``obj``, so the answer is the same from
    inside pdb. One line per hop with the attribute, key or index that holds the next object;
    ``filename`` also draws the chain (.png/.svg/.pdf rendered in-process, .dot written).
    Returns [Hop(edge, obj)] from the root to ``obj``, or [] when no root reaches it (only C
    code holds it, or it is garbage).

    >>> import sys, types
    >>> mod = sys.modules.setdefault('why_alive_demo', types.ModuleType('why_alive_demo'))
    >>> mod.CACHE = {'key': [1, 2]}
    >>> hops = why_alive(mod.CACHE['key'])
    module why_alive_demo
        .CACHE -> dict (1 items)
        ['key'] -> list (2 items)
    >>> [h.edge for h in hops]
    ['module why_alive_demo', '.CACHE', "['key']"]
    """
    if not isinstance(max_depth, int):
        raise TypeError("max_depth must be an int, not %s" % type(max_depth).__name__)
    if filename is not None and not isinstance(filename, str):
        raise TypeError("filename must be a str, not %s" % type(filename).__name__)
    if file is None:
        file = sys.stdout
    with _NotRecording():
        return _why_alive(obj, filename, file, max_depth, extra_ignore)


def _why_alive(
    obj: Any, filename: Optional[str], file: IO[str], max_depth: int, extra_ignore: Iterable[int]
) -> "AliveChain":
    import objgraphxx as og

    extra = list(extra_ignore)
    excluded = extra + og._shell_history_ids() + [id(extra)]
    kind, chain, thread_id, depth, code, slot = _memxx.gc_why_alive(
        obj,
        _root_modules(),
        _observer_prefixes(),
        _debugger_prefixes(),
        excluded,
        og._observer_types(),
        max_depth,
        _history_namespaces(),
    )
    del excluded
    if kind == "none":
        file.write(
            "no root reaches this %s within %d steps: only C code holds it, or it is garbage\n"
            % (type(obj).__name__, max_depth)
        )
        return AliveChain()
    hops = AliveChain()
    if kind == "module":
        hops.append(Hop("module %s" % chain[0].__name__, chain[0]))
    elif kind == "class":
        hops.append(Hop("class %s.%s" % (chain[0].__module__, chain[0].__qualname__), chain[0]))
    else:
        hops.append(Hop(_frame_text(thread_id, depth, code, slot, sys._getframe()), chain[0]))
    namespace = False
    for src, dst in zip(chain, chain[1:]):
        kind, key = _memxx.gc_edge(src, dst) or ("", None)
        if kind == "namespace":
            namespace = True
            continue
        hops.append(Hop(_edge_name(kind, key, namespace) or "(referent)", dst))
        namespace = False
    if kind == "frame":
        file.write("%s -> %s\n" % (hops[0].edge, _describe(hops[0].obj)))
    else:
        file.write("%s\n" % hops[0].edge)
    for hop in hops[1:]:
        file.write("    %s -> %s\n" % (hop.edge, _describe(hop.obj)))
    if filename or og._in_kernel():  # in a notebook the chain is also drawn, inline
        og.show_chain(chain, filename=filename, highlight=lambda o, first=chain[0]: o is first)
    del chain
    return hops


# -- snapshots ----------------------------------------------------------------------------------


class TypeStats(NamedTuple):
    """One type of a snapshot: objects, shallow bytes, retained bytes."""

    count: int
    shallow: int
    retained: int


class SiteStats(NamedTuple):
    """Objects of one type made on one line: how many, and their shallow bytes."""

    type: str
    site: str
    count: int
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

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Write the snapshot to ``path`` as JSON.

        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), 'heap.json')
        >>> snapshot().save(path)
        >>> Snapshot.load(path).objects > 0
        True
        """
        import objgraphxx

        objgraphxx._refuse_symlink(os.fspath(path))
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=1)
            f.write("\n")

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
    def load(cls, path: Union[str, os.PathLike]) -> "Snapshot":
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
    with _NotRecording():
        return _snapshot(shortnames)


def _snapshot(shortnames: bool) -> Snapshot:
    gc.collect()
    summary = _memxx.gc_heap_summary(bool(shortnames), True)
    merged: dict[str, list[int]] = {}
    for name, n, shallow, retained in summary["types"]:
        row = merged.setdefault(name, [0, 0, 0])
        row[0] += n
        row[1] += shallow
        row[2] += retained
    sites: dict[tuple[str, str], list[int]] = {}
    for name, filename, line, n, nbytes in summary["sites"]:
        if _is_own_site(filename):
            continue
        row = sites.setdefault((name, _site_text(filename, line)), [0, 0])
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
        before = old_sites.get((s.site, s.type))
        count = s.count - (before.count if before else 0)
        if count > 0:
            sites_grown.append((s.site, s.type, count, s.bytes - (before.bytes if before else 0)))
    sites_grown.sort(key=lambda r: (-r[2], r[0], r[1]))
    if limit:
        types_grown = types_grown[:limit]
        sites_grown = sites_grown[:limit]
    if types_grown:
        width = max(len("type"), *(len(r[0]) for r in types_grown))
        file.write("%-*s %10s %11s %11s\n" % (width, "type", "objects", "shallow B", "retained B"))
        for name, n, shallow, retained in types_grown:
            file.write("%-*s %+10d %+11d %+11d\n" % (width, name, n, shallow, retained))
    if sites_grown:
        width = max(len("site"), *(len(r[0]) for r in sites_grown))
        twidth = max(len("type"), *(len(r[1]) for r in sites_grown))
        file.write("%-*s  %-*s %10s %11s\n" % (width, "site", twidth, "type", "objects", "bytes"))
        for site, name, n, nbytes in sites_grown:
            file.write("%-*s  %-*s %+10d %+11d\n" % (width, site, twidth, name, n, nbytes))
    return SnapshotDiff(types_grown, sites_grown)


__all__ = [
    "Hop",
    "SiteStats",
    "Snapshot",
    "SnapshotDiff",
    "TypeStats",
    "allocation_site",
    "diff",
    "retained_size",
    "snapshot",
    "track_allocations",
    "type_sizes",
    "why_alive",
]

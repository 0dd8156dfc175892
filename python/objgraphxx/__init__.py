"""objgraphxx: objgraph's API on a C++ heap walker, graphs rendered in-process.

``import objgraphxx as objgraph`` keeps objgraph code working: same functions, parameters,
defaults, printed text and DOT. Counting, growth, leak and referrer searches walk the
collector's lists in C++ (objects frozen by ``gc.freeze()`` included); PNG/SVG/PDF are rendered
by the linked Graphviz library, no ``dot`` program needed.

>>> import objgraphxx
>>> class Leaf: pass
>>> leaves = [Leaf() for _ in range(3)]
>>> objgraphxx.count('Leaf')
3
"""

from __future__ import annotations

import codecs
import collections
import gc
import inspect
import io
import itertools
import operator
import os
import re
import subprocess
import sys
import tempfile
import types
from typing import IO, Any, Callable, Iterable, Optional, Union

import _memxx

from . import _leaks
from ._leaks import (  # noqa: F401 - the leak finder's public API
    AliveChain,
    Hop,
    SiteStats,
    Snapshot,
    SnapshotDiff,
    TypeStats,
    allocation_site,
    diff,
    retained_size,
    snapshot,
    track_allocations,
    type_sizes,
    why_alive,
)

__version__ = "3.7.0"
__author__ = "memory-profilerxx developers"
__license__ = "BSD-3-Clause"

# objgraph's inline display: a graphviz.Source in a (non-terminal) IPython shell.
IS_INTERACTIVE = False
try:  # pragma: no cover - depends on the hosting shell
    import graphviz  # noqa: F401

    if "TerminalInteractiveShell" not in get_ipython().__class__.__name__:  # type: ignore[name-defined]  # noqa: F821
        IS_INTERACTIVE = True
except (NameError, ImportError):
    pass

# Render images with the linked Graphviz (True) or, as objgraph, by running `dot`.
RENDER_IN_PROCESS = True
# Only objgraph's edge labels (no list indexes, no instance attribute names): byte-identical DOT.
STRICT_DOT = False

_real_subprocess = subprocess

Predicate = Callable[[Any], Any]


def _isinstance(object: Any, classinfo: Any) -> bool:
    """Like isinstance() but by type(), so mocks with spec= do not lie."""
    return issubclass(type(object), classinfo)


def _check_typename(typename: Any) -> None:
    if not isinstance(typename, str):
        raise TypeError("typename must be a str, not %s" % type(typename).__name__)


def _check_limit(limit: Any) -> None:
    if limit is not None and not isinstance(limit, int):
        raise TypeError("limit must be an int or None, not %s" % type(limit).__name__)


def count(typename: str, objects: Optional[Iterable[Any]] = None) -> int:
    """Return the number of objects of a type (module-qualified if ``typename`` has a dot).

    >>> class Gizmo: pass
    >>> g = [Gizmo(), Gizmo()]
    >>> count('Gizmo')
    2
    """
    _check_typename(typename)
    shortnames = "." not in typename
    for name, n in _memxx.gc_type_counts(objects, shortnames, None):
        if name == typename:
            return n
    return 0


def typestats(
    objects: Optional[Iterable[Any]] = None,
    shortnames: bool = True,
    filter: Optional[Predicate] = None,
) -> dict[str, int]:
    """Return a dict of type name -> number of objects, in first-seen order.

    >>> class Gizmo: pass
    >>> g = Gizmo()
    >>> typestats()['Gizmo']
    1
    """
    return dict(_memxx.gc_type_counts(objects, bool(shortnames), filter))


def most_common_types(
    limit: Optional[int] = 10,
    objects: Optional[Iterable[Any]] = None,
    shortnames: bool = True,
    filter: Optional[Predicate] = None,
) -> list[tuple[str, int]]:
    """Return [(type name, count)] of the most numerous types, most first; limit 0/None = all.

    >>> most_common_types(limit=2, objects=[[], [], {}])
    [('list', 2), ('dict', 1)]
    """
    _check_limit(limit)
    stats = sorted(
        typestats(objects, shortnames=shortnames, filter=filter).items(),
        key=operator.itemgetter(1),
        reverse=True,
    )
    if limit:
        stats = stats[:limit]
    return stats


def show_most_common_types(
    limit: Optional[int] = 10,
    objects: Optional[Iterable[Any]] = None,
    shortnames: bool = True,
    file: Optional[IO[str]] = None,
    filter: Optional[Predicate] = None,
    sizes: bool = False,
) -> None:
    """Print the table of the most numerous types (name, one space, count).

    ``sizes=True`` walks the whole heap (untracked objects such as str and int included) and
    adds, under a header, each type's shallow bytes (``sys.getsizeof``) and retained bytes
    (what would be freed without its objects, from the dominator tree; an object held by
    another of its type is counted once).

    >>> show_most_common_types(objects=[[], [], {}])
    list 2
    dict 1
    """
    if file is None:
        file = sys.stdout
    if sizes:
        if objects is not None or filter is not None:
            raise ValueError("sizes=True walks the whole heap: objects= and filter= do not apply")
        _check_limit(limit)
        _leaks._print_sized_types(limit, shortnames, file)
        return
    stats = most_common_types(limit, objects, shortnames=shortnames, filter=filter)
    if not stats:
        return
    width = max(len(name) for name, _ in stats)
    for name, n in stats:
        file.write("%-*s %i\n" % (width, name, n))


def growth(
    limit: Optional[int] = 10,
    peak_stats: dict[str, int] = {},  # noqa: B006 - shared on purpose, as in objgraph
    shortnames: bool = True,
    filter: Optional[Predicate] = None,
    collect: bool = True,
) -> list[tuple[str, int, int]]:
    """Return [(type name, count, increase)] for types above their peak in ``peak_stats``.

    ``collect=False`` skips the full ``gc.collect()`` (cyclic garbage then counts too).

    >>> ps = {}
    >>> _ = growth(peak_stats=ps)
    >>> class Gizmo: pass
    >>> g = Gizmo()
    >>> [row for row in growth(limit=None, peak_stats=ps) if row[0] == 'Gizmo']
    [('Gizmo', 1, 1)]
    """
    _check_limit(limit)
    if not isinstance(peak_stats, dict):
        raise TypeError("peak_stats must be a dict, not %s" % type(peak_stats).__name__)
    if collect:
        gc.collect()
    stats = _memxx.gc_type_counts(None, bool(shortnames), filter)
    deltas = []
    for name, n in stats:
        old = peak_stats.get(name, 0)
        if n > old:
            deltas.append((name, n, n - old))
            peak_stats[name] = n
    deltas.sort(key=operator.itemgetter(2), reverse=True)
    if limit:
        deltas = deltas[:limit]
    return deltas


def show_growth(
    limit: Optional[int] = 10,
    peak_stats: Optional[dict[str, int]] = None,
    shortnames: bool = True,
    file: Optional[IO[str]] = None,
    filter: Optional[Predicate] = None,
    collect: bool = True,
    sites: Union[bool, int] = False,
) -> None:
    """Print the types whose count rose above their peak since the previous call.

    ``sites=True`` (or a number of lines, default 3) follows each type with the lines that
    allocated its objects made since the previous ``show_growth(sites=...)`` call, with counts;
    sites are recorded while ``track_allocations()`` is on.

    >>> ps = {}
    >>> show_growth(peak_stats=ps, file=io.StringIO())
    >>> class Gizmo: pass
    >>> g = Gizmo()
    >>> show_growth(peak_stats=ps, filter=lambda o: type(o) is Gizmo)
    Gizmo        1        +1
    """
    if peak_stats is None:
        result = growth(limit, shortnames=shortnames, filter=filter, collect=collect)
    else:
        result = growth(limit, peak_stats, shortnames, filter, collect)
    if file is None:
        file = sys.stdout
    if not isinstance(sites, int):
        raise TypeError("sites must be a bool or an int, not %s" % type(sites).__name__)
    if sites:
        top = 3 if sites is True else sites
        if result:
            _leaks._print_growth_with_sites(result, file, top, shortnames)
        else:
            _leaks._new_object_sites(shortnames)  # starts the next interval all the same
        return
    if result:
        width = max(len(name) for name, _, _ in result)
        for name, n, delta in result:
            file.write("%-*s%9d %+9d\n" % (width, name, n, delta))


_SORT_COLUMNS = {"old": 1, "current": 2, "new": 3, "deltas": 4}


def get_new_ids(
    skip_update: bool = False,
    limit: Optional[int] = 10,
    sortby: str = "deltas",
    shortnames: Optional[bool] = None,
    file: Optional[IO[str]] = None,
    _state: dict[str, Any] = {},  # noqa: B006 - state between calls, as in objgraph
) -> collections.defaultdict[str, set[int]]:
    """Print the change in object counts since the last call and return the new objects' ids.

    Returns a defaultdict: type name -> set of ``id()`` of objects that appeared. The state
    kept between calls is 12 bytes per tracked object.

    >>> _ = get_new_ids(limit=0)
    >>> a = [[] for n in range(10)]
    >>> new = get_new_ids(limit=0)
    >>> id(a[0]) in new['list']
    True
    """
    if sortby not in _SORT_COLUMNS:
        raise KeyError("sortby must be one of %s, not %r" % (", ".join(_SORT_COLUMNS), sortby))
    _check_limit(limit)
    if not _state:
        _state["tracker"] = _memxx.GcNewIds()
        _state["new"] = collections.defaultdict(set)
        _state["shortnames"] = True
    if skip_update:
        return _state["new"]
    if shortnames is None:
        shortnames = _state["shortnames"]
    else:
        _state["shortnames"] = shortnames
    gc.collect()
    new_ids: collections.defaultdict[str, set[int]] = collections.defaultdict(set)
    rows = []
    for name, old, current, new in _state["tracker"].update(bool(shortnames)):
        new_ids[name] = set(new)
        rows.append((name, old, current, len(new), current - old))
    _state["new"] = new_ids
    column = _SORT_COLUMNS[sortby]
    rows.sort(key=operator.itemgetter(column, 0), reverse=True)
    if limit is not None:
        rows = rows[:limit]
    if not rows:
        return new_ids
    if file is None:
        file = sys.stdout
    width = max(len(row[0]) for row in rows)
    rule = "=" * (width + 13 * 4)
    print(rule, file=file)
    print(
        "%-*s%13s%13s%13s%13s" % (width, "Type", "Old_ids", "Current_ids", "New_ids", "Count_Deltas"),
        file=file,
    )
    print(rule, file=file)
    for name, old, current, new, delta in rows:
        print("%-*s%13d%13d%+13d%+13d" % (width, name, old, current, new, delta), file=file)
    print(rule, file=file)
    return new_ids


def get_leaking_objects(objects: Optional[Iterable[Any]] = None) -> list[Any]:
    """Return the objects (of ``objects``, default all tracked) no tracked object refers to.

    >>> class Gizmo: pass
    >>> held = [Gizmo()]
    >>> get_leaking_objects(by_type('Gizmo'))
    []
    """
    gc.collect()
    return _memxx.gc_unreferenced(objects)


def by_type(typename: str, objects: Optional[Iterable[Any]] = None) -> list[Any]:
    """Return the objects of a type (module-qualified if ``typename`` has a dot).

    >>> class Gizmo: pass
    >>> g = Gizmo()
    >>> by_type('Gizmo') == [g]
    True
    """
    _check_typename(typename)
    return _memxx.gc_objects_named(typename, objects)


def at(addr: int) -> Any:
    """Return the tracked object whose ``id()`` is ``addr``, or None.

    >>> x = []
    >>> at(id(x)) is x
    True
    """
    if not isinstance(addr, int):
        raise TypeError("addr must be an int, not %s" % type(addr).__name__)
    if addr < 0:
        return None
    return _memxx.gc_object_at(addr)


def at_addrs(address_set: Iterable[int]) -> list[Any]:
    """Return the tracked objects whose ``id()`` is in ``address_set``, in heap order.

    >>> x = []
    >>> at_addrs({id(x)}) == [x]
    True
    """
    return _memxx.gc_objects_at(a for a in address_set if isinstance(a, int) and a >= 0)


def find_ref_chain(
    obj: Any, predicate: Predicate, max_depth: int = 20, extra_ignore: Iterable[int] = ()
) -> list[Any]:
    """Return the shortest chain of references from ``obj`` to an object matching ``predicate``.

    >>> class Gizmo: pass
    >>> box = {'g': Gizmo()}
    >>> [type(o).__name__ for o in find_ref_chain(box, lambda o: type(o) is Gizmo)]
    ['dict', 'Gizmo']
    """
    return _find_chain(
        obj, predicate, gc.get_referents, max_depth=max_depth, extra_ignore=extra_ignore
    )[::-1]


def find_backref_chain(
    obj: Any, predicate: Predicate, max_depth: int = 20, extra_ignore: Iterable[int] = ()
) -> list[Any]:
    """Return the shortest chain of referrers from an object matching ``predicate`` to ``obj``.

    One heap pass per chain length, however many objects each level holds; the debugger
    (pdb) and the IPython shell are never part of the chain.

    >>> import types
    >>> mod = sys.modules[__name__]
    >>> chain = find_backref_chain(_SORT_COLUMNS, is_proper_module)
    >>> chain[0] is mod and chain[-1] is _SORT_COLUMNS
    True
    """
    return _find_chain(
        obj, predicate, gc.get_referrers, max_depth=max_depth, extra_ignore=extra_ignore
    )


def show_backrefs(
    objs: Any,
    max_depth: int = 3,
    extra_ignore: Iterable[int] = (),
    filter: Optional[Predicate] = None,
    too_many: int = 10,
    highlight: Optional[Predicate] = None,
    filename: Optional[str] = None,
    extra_info: Optional[Callable[[Any], Any]] = None,
    refcounts: bool = False,
    shortnames: bool = True,
    output: Optional[IO[str]] = None,
    extra_node_attrs: Optional[Callable[[Any], dict[str, Any]]] = None,
) -> Any:
    """Draw the graph of objects referring to ``objs`` (modules in sys.modules end it).

    ``filename`` ending in .dot writes DOT; .png/.svg/.pdf/... renders in-process.

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), 'backrefs.dot')
    >>> x = []
    >>> show_backrefs([x], filename=path)  # doctest: +ELLIPSIS
    Graph written to .../backrefs.dot (... nodes)
    """
    return _show_graph(
        objs,
        max_depth=max_depth,
        extra_ignore=extra_ignore,
        filter=filter,
        too_many=too_many,
        highlight=highlight,
        edge_func=gc.get_referrers,
        swap_source_target=False,
        filename=filename,
        output=output,
        extra_info=extra_info,
        refcounts=refcounts,
        shortnames=shortnames,
        cull_func=is_proper_module,
        extra_node_attrs=extra_node_attrs,
    )


def show_refs(
    objs: Any,
    max_depth: int = 3,
    extra_ignore: Iterable[int] = (),
    filter: Optional[Predicate] = None,
    too_many: int = 10,
    highlight: Optional[Predicate] = None,
    filename: Optional[str] = None,
    extra_info: Optional[Callable[[Any], Any]] = None,
    refcounts: bool = False,
    shortnames: bool = True,
    output: Optional[IO[str]] = None,
    extra_node_attrs: Optional[Callable[[Any], dict[str, Any]]] = None,
) -> Any:
    """Draw the graph of objects referred to by ``objs``.

    >>> out = io.StringIO()
    >>> show_refs([[1]], output=out)
    >>> out.getvalue().splitlines()[0]
    'digraph ObjectGraph {'
    """
    return _show_graph(
        objs,
        max_depth=max_depth,
        extra_ignore=extra_ignore,
        filter=filter,
        too_many=too_many,
        highlight=highlight,
        edge_func=gc.get_referents,
        swap_source_target=True,
        filename=filename,
        extra_info=extra_info,
        refcounts=refcounts,
        shortnames=shortnames,
        output=output,
        extra_node_attrs=extra_node_attrs,
    )


def show_chain(*chains: list[Any], **kw: Any) -> Any:
    """Draw one or more chains from find_backref_chain / find_ref_chain (``backrefs=False``).

    Returns what show_backrefs / show_refs return: in a notebook, the graph shown inline.

    >>> out = io.StringIO()
    >>> leaf = []
    >>> box = [leaf]
    >>> show_chain([box, leaf], output=out)
    >>> out.getvalue().count('[label="list')
    2
    """
    backrefs = kw.pop("backrefs", True)
    chains = tuple(chain for chain in chains if chain)
    if not chains:
        raise ValueError("show_chain() needs at least one non-empty chain")
    ids = set(map(id, itertools.chain(*chains)))

    def in_chains(x: Any, ids: set[int] = ids) -> bool:
        return id(x) in ids

    max_depth = max(map(len, chains)) - 1
    if backrefs:
        return show_backrefs([c[-1] for c in chains], max_depth=max_depth, filter=in_chains, **kw)
    return show_refs([c[0] for c in chains], max_depth=max_depth, filter=in_chains, **kw)


def is_proper_module(obj: Any) -> bool:
    """Return True if ``obj`` is a module that is in sys.modules under its name.

    >>> import types
    >>> is_proper_module(types), is_proper_module(types.ModuleType('foo'))
    (True, False)
    """
    return inspect.ismodule(obj) and obj is sys.modules.get(getattr(obj, "__name__", None))


#
# Internal helpers (objgraph's tests call and patch these; keep their signatures)
#


def _observer_types() -> tuple[type, ...]:
    """Types whose instances are never steps of a chain: the debugger and the IPython shell."""
    found = []
    for module_name, attr in (
        ("bdb", "Bdb"),
        ("IPython.core.interactiveshell", "InteractiveShell"),
        ("IPython.core.displayhook", "DisplayHook"),
        ("IPython.core.history", "HistoryManager"),
    ):
        module = sys.modules.get(module_name)
        t = getattr(module, attr, None) if module is not None else None
        if isinstance(t, type):
            found.append(t)
    return tuple(found)


def _own_frame_ids() -> list[int]:
    """ids of this module's frames on the current stack (they hold the objects as locals)."""
    ids = []
    frame: Optional[types.FrameType] = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename == __file__:
            ids.append(id(frame))
        frame = frame.f_back
    return ids


def _shell_history_ids() -> list[int]:
    """ids of IPython's output caches (Out, _oh), which hold every displayed result."""
    shell = None
    module = sys.modules.get("IPython.core.interactiveshell")
    if module is not None:
        cls = getattr(module, "InteractiveShell", None)
        if cls is not None and cls.initialized():
            shell = cls.instance()
    if shell is None:
        return []
    ids = [id(shell.user_ns.get("Out")), id(shell.user_ns.get("_oh"))]
    return [i for i in ids if i != id(None)]


def _find_chain(
    obj: Any,
    predicate: Predicate,
    edge_func: Callable[[Any], Iterable[Any]],
    max_depth: int = 20,
    extra_ignore: Iterable[int] = (),
) -> list[Any]:
    if not callable(predicate):
        raise TypeError("predicate must be callable, not %s" % type(predicate).__name__)
    if not isinstance(max_depth, int):
        raise TypeError("max_depth must be an int, not %s" % type(max_depth).__name__)
    extra_ignore = list(extra_ignore)
    gc.collect()
    if edge_func is gc.get_referrers:
        steps: Any = "referrers"
    elif edge_func is gc.get_referents:
        steps = "referents"
    else:
        steps = edge_func
    excluded = extra_ignore + _own_frame_ids() + _shell_history_ids() + [id(extra_ignore)]
    return _memxx.gc_find_chain(obj, predicate, steps, max_depth, excluded, _observer_types())


class _BatchedReferrers:
    """gc.get_referrers for a BFS: referrers of a whole depth level in one heap pass."""

    def __init__(self, ignore: set[int]) -> None:
        self.ignore = ignore
        self.cache: dict[int, list[Any]] = {}
        self.observers = _observer_types()

    def prefetch(self, targets: list[Any]) -> None:
        self.cache.clear()
        results = _memxx.gc_referrers_of(targets, list(self.ignore), self.observers)
        self.ignore.add(id(results))
        for target, refs in zip(targets, results):
            self.ignore.add(id(refs))
            self.cache[id(target)] = refs
        del results

    def __call__(self, target: Any) -> list[Any]:
        refs = self.cache.pop(id(target), None)
        if refs is None:
            self.prefetch([target])
            refs = self.cache.pop(id(target))
        return refs


def _refuse_symlink(path: str) -> None:
    """ValueError for an output path that is a symbolic link: one planted in a shared directory
    would make us write wherever it points."""
    if os.path.islink(path):
        raise ValueError("refusing to write %r: it is a symbolic link" % path)


def _check_image_filename(filename: str) -> None:
    """One clear error, before any work, for an unknown extension or an unwritable path."""
    ext = os.path.splitext(filename)[1][1:]
    if not ext:
        raise ValueError("cannot tell the image format of %r: add an extension such as .png" % filename)
    if ext not in _memxx.gc_render_formats():
        raise ValueError(
            "unknown output format %r for %s (use .dot, .png, .svg, .pdf or another Graphviz format)"
            % (ext, filename)
        )
    with open(filename, "ab"):
        pass


def _renders_in_process() -> bool:
    # objgraph's tests replace subprocess/_program_in_path to watch the `dot` path: honour that.
    return (
        RENDER_IN_PROCESS
        and subprocess is _real_subprocess
        and _program_in_path is _original_program_in_path
    )


def _show_graph(
    objs: Any,
    edge_func: Callable[[Any], Iterable[Any]],
    swap_source_target: bool,
    max_depth: int = 3,
    extra_ignore: Iterable[int] = (),
    filter: Optional[Predicate] = None,
    too_many: int = 10,
    highlight: Optional[Predicate] = None,
    filename: Optional[str] = None,
    extra_info: Optional[Callable[[Any], Any]] = None,
    refcounts: bool = False,
    shortnames: bool = True,
    output: Optional[IO[str]] = None,
    cull_func: Optional[Predicate] = None,
    extra_node_attrs: Optional[Callable[[Any], dict[str, Any]]] = None,
) -> Any:
    if not _isinstance(objs, (list, tuple)):
        objs = [objs]
    if filename is not None and not isinstance(filename, str):
        raise TypeError("filename must be a str, not %s" % type(filename).__name__)
    if filename:
        _refuse_symlink(filename)
    if not isinstance(max_depth, int) or not isinstance(too_many, int):
        raise TypeError("max_depth and too_many must be ints")
    is_interactive = False
    inline = False
    dot_filename = None
    if filename and output:
        raise ValueError("Cannot specify both output and filename.")
    elif output:
        f = output
    elif not filename and _in_kernel() and _renders_in_process():
        inline = True  # shown as the cell's output: no temporary file, no viewer
        f = io.StringIO()
    elif filename and filename.endswith(".dot"):
        f = codecs.open(filename, "w", encoding="utf-8")
        dot_filename = filename
    elif IS_INTERACTIVE and not filename:
        is_interactive = True
        f = io.StringIO()
    else:
        if filename and _renders_in_process():
            _check_image_filename(filename)
        fd, dot_filename = tempfile.mkstemp(prefix="objgraph-", suffix=".dot", text=True)
        f = io.open(fd, "w", encoding="utf-8")
    f.write("digraph ObjectGraph {\n  node[shape=box, style=filled, fillcolor=white];\n")
    queue: collections.deque[Any] = collections.deque()
    depth: dict[int, int] = {}
    ignore = set(extra_ignore)
    ignore.update((id(objs), id(extra_ignore), id(queue), id(depth), id(ignore)))
    ignore.update(_own_frame_ids())
    ignore.update(_shell_history_ids())
    if edge_func is gc.get_referrers:
        edge_func = _BatchedReferrers(ignore)
        ignore.add(id(edge_func))
        ignore.add(id(edge_func.cache))
    batched = isinstance(edge_func, _BatchedReferrers)
    for obj in objs:
        f.write("  %s[fontcolor=red];\n" % _obj_node_id(obj))
        depth[id(obj)] = 0
        queue.append(obj)
        del obj
    gc.collect()
    nodes = 0
    prefetched_depth = -1
    while queue:
        nodes += 1
        # "source" and "target" are named for show_backrefs, where edges point at the target.
        target = queue.popleft()
        tdepth = depth[id(target)]
        node_id = _obj_node_id(target)
        f.write(
            "  %s[label=\"%s\"%s];\n"
            % (
                node_id,
                _obj_label(target, extra_info, refcounts, shortnames),
                _obj_attrs(target, extra_node_attrs),
            )
        )
        h, s, v = _gradient((0, 0, 1), (0, 0, 0.3), tdepth, max_depth)
        if inspect.ismodule(target):
            h = 0.3
            s = 1
        if highlight and highlight(target):
            h = 0.6
            s = 0.6
            v = 0.5 + v * 0.5
        f.write('  %s[fillcolor="%g,%g,%g"];\n' % (node_id, h, s, v))
        if v < 0.5:
            f.write("  %s[fontcolor=white];\n" % node_id)
        if hasattr(getattr(target, "__class__", None), "__del__"):
            f.write(
                "  %s->%s_has_a_del[color=red,style=dotted,len=0.25,weight=10];\n"
                % (node_id, node_id)
            )
            f.write(
                '  %s_has_a_del[label="__del__",shape=doublecircle,'
                'height=0.25,color=red,fillcolor="0,.5,1",fontsize=6];\n' % node_id
            )
        if tdepth >= max_depth:
            continue
        if cull_func is not None and cull_func(target):
            continue
        if batched and prefetched_depth != tdepth:
            # The queue now holds exactly this level (after `target`): one pass for all.
            level = [target] + [o for o in queue if depth[id(o)] == tdepth]
            edge_func.prefetch(level)  # type: ignore[union-attr]
            del level
            prefetched_depth = tdepth
        neighbours = edge_func(target)
        ignore.add(id(neighbours))
        n = 0
        skipped = 0
        for source in neighbours:
            if id(source) in ignore:
                continue
            if filter and not filter(source):
                continue
            if n >= too_many:
                skipped += 1
                continue
            if swap_source_target:
                srcnode, tgtnode = target, source
            else:
                srcnode, tgtnode = source, target
            elabel = _edge_label(srcnode, tgtnode, shortnames)
            f.write("  %s -> %s%s;\n" % (_obj_node_id(srcnode), _obj_node_id(tgtnode), elabel))
            if id(source) not in depth:
                depth[id(source)] = tdepth + 1
                queue.append(source)
            n += 1
            del source, srcnode, tgtnode
        del neighbours
        if skipped > 0:
            h, s, v = _gradient((0, 1, 1), (0, 1, 0.3), tdepth + 1, max_depth)
            if swap_source_target:
                label = "%d more references" % skipped
                edge = "%s->too_many_%s" % (node_id, node_id)
            else:
                label = "%d more backreferences" % skipped
                edge = "too_many_%s->%s" % (node_id, node_id)
            f.write("  %s[color=red,style=dotted,len=0.25,weight=10];\n" % edge)
            f.write(
                '  too_many_%s[label="%s",shape=box,height=0.25,'
                'color=red,fillcolor="%g,%g,%g",fontsize=6];\n' % (node_id, label, h, s, v)
            )
            f.write("  too_many_%s[fontcolor=white];\n" % node_id)
    f.write("}\n")
    if output:
        return None
    if inline:
        from objgraphxx._inline import show_inline

        return show_inline(f.getvalue(), nodes)
    if is_interactive:
        return graphviz.Source(f.getvalue())  # type: ignore[union-attr]
    f.close()
    print("Graph written to %s (%d nodes)" % (dot_filename, nodes))
    _present_graph(dot_filename, filename)
    return None


def _in_kernel() -> bool:
    from memory_profilerxx._display import in_kernel

    return in_kernel()


def _present_graph(dot_filename: str, filename: Optional[str] = None) -> None:
    """Render or display a written .dot file as objgraph does (in-process when possible)."""
    if filename == dot_filename:
        return
    if not filename and _program_in_path("xdot"):
        print("Spawning graph viewer (xdot)")
        subprocess.Popen(["xdot", dot_filename], close_fds=True)
        return
    if _renders_in_process():
        if not filename:
            print("Graph viewer (xdot) not found, generating a png instead")
            filename = dot_filename[:-4] + ".png"
        with open(dot_filename, encoding="utf-8") as dot_file:
            text = dot_file.read()
        _memxx.gc_render_dot(text, os.path.splitext(filename)[1][1:], filename)
        print("Image generated as %s" % filename)
    elif _program_in_path("dot"):
        if not filename:
            print("Graph viewer (xdot) not found, generating a png instead")
            filename = dot_filename[:-4] + ".png"
        ext = os.path.splitext(filename)[1]
        cmd = ["dot", "-T" + ext[1:], "-o" + filename, dot_filename]
        dot = subprocess.Popen(cmd, close_fds=False)
        dot.wait()
        if dot.returncode != 0:
            print('dot failed (exit code %d) while executing "%s"' % (dot.returncode, " ".join(cmd)))
        else:
            print("Image generated as %s" % filename)
    elif not filename:
        print("Graph viewer (xdot) and image renderer (dot) not found, not doing anything else")
    else:
        print("Image renderer (dot) not found, not doing anything else")


def _obj_node_id(obj: Any) -> str:
    return ("o%d" % id(obj)).replace("-", "_")


def _obj_attrs(obj: Any, extra_node_attrs: Optional[Callable[[Any], dict[str, Any]]]) -> str:
    if extra_node_attrs is None:
        return ""
    attrs = extra_node_attrs(obj)
    return ", " + ", ".join(
        '%s="%s"' % (name, _quote(value))
        for name, value in sorted(attrs.items())
        if value is not None
    )


def _obj_label(
    obj: Any,
    extra_info: Optional[Callable[[Any], Any]] = None,
    refcounts: bool = False,
    shortnames: bool = True,
) -> str:
    label = [_short_typename(obj) if shortnames else _long_typename(obj)]
    if refcounts:
        # -4: this frame, _show_graph's frame, getrefcount's argument, one the gc cannot see.
        label[0] += " [%d]" % (sys.getrefcount(obj) - 4)
    label.append(_safe_repr(obj))
    if extra_info:
        label.append(str(extra_info(obj)))
    return _quote("\n".join(label))


def _quote(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\0", "\\\\0")


def _get_obj_type(obj: Any) -> type:
    return type(obj)


def _short_typename(obj: Any) -> str:
    return _get_obj_type(obj).__name__


def _long_typename(obj: Any) -> str:
    objtype = _get_obj_type(obj)
    name = objtype.__name__
    module = getattr(objtype, "__module__", None)
    if module:
        return "%s.%s" % (module, name)
    return name


def _safe_repr(obj: Any) -> str:
    try:
        return _short_repr(obj)
    except Exception:
        return "(unrepresentable)"


def _name_or_repr(value: Any) -> str:
    try:
        result = value.__name__
    except AttributeError:
        result = repr(value)[:40]
    if _isinstance(result, str):
        return result
    return repr(value)[:40]


def _short_repr(obj: Any) -> str:
    if _isinstance(
        obj, (type, types.ModuleType, types.BuiltinMethodType, types.BuiltinFunctionType)
    ):
        return _name_or_repr(obj)
    if _isinstance(obj, types.MethodType):
        name = _name_or_repr(obj.__func__)
        return name + " (bound)" if obj.__self__ else name
    if _isinstance(obj, types.FunctionType) and obj.__name__ == "<lambda>":
        return "lambda: %s:%s" % (
            os.path.basename(obj.__code__.co_filename),
            obj.__code__.co_firstlineno,
        )
    if _isinstance(obj, types.FrameType):
        return "%s:%s" % (obj.f_code.co_filename, obj.f_lineno)
    if _isinstance(obj, (tuple, list, dict, set)):
        return "%d items" % len(obj)
    return repr(obj)[:40]


def _gradient(
    start_color: tuple[float, float, float],
    end_color: tuple[float, float, float],
    depth: int,
    max_depth: int,
) -> tuple[float, float, float]:
    if max_depth == 0:
        return start_color
    h1, s1, v1 = start_color
    h2, s2, v2 = end_color
    f = float(depth) / max_depth
    return h1 * (1 - f) + h2 * f, s1 * (1 - f) + s2 * f, v1 * (1 - f) + v2 * f


def _edge_label(source: Any, target: Any, shortnames: bool = True) -> str:
    edge = _memxx.gc_edge(source, target)
    if edge is None:
        return ""
    kind, key = edge
    if kind == "namespace":
        return "" if _isinstance(source, type) else ' [label="__dict__",weight=10]'
    if kind == "attribute" and _isinstance(
        source, (types.FrameType, types.MethodType, types.FunctionType)
    ):
        return ' [label="%s",weight=10]' % _quote(key)
    if kind == "dict_value":
        if _isinstance(key, str) and _is_identifier(key):
            return ' [label="%s",weight=2]' % _quote(key)
        tn = _short_typename(key) if shortnames else _long_typename(key)
        return ' [label="%s"]' % _quote(tn + "\n" + _safe_repr(key))
    if STRICT_DOT:
        return ""
    if kind == "index":
        return ' [label="[%d]"]' % key
    # Beyond objgraph: instance attributes only (not a cell's contents or a class's bases).
    if kind == "attribute" and not _isinstance(source, (types.CellType, type)):
        return ' [label="%s",weight=2]' % _quote(key)
    if kind == "attribute" and _isinstance(source, type) and key != "__mro__":
        return ' [label="%s",weight=2]' % _quote(key)
    return ""


_is_identifier = re.compile("[a-zA-Z_][a-zA-Z_0-9]*$").match


def _program_in_path(program: str) -> bool:
    path = os.environ.get("PATH", os.defpath).split(os.pathsep)
    return any(
        os.path.isfile(os.path.join(d, program)) or os.path.isfile(os.path.join(d, program + ".exe"))
        for d in path
    )


_original_program_in_path = _program_in_path

"""How many objects of each type, and which grew: counts, growth, new ids and lookups by type
or address.

>>> import objgraphxx
>>> class Leaf: pass
>>> leaves = [Leaf() for _ in range(3)]
>>> objgraphxx.count('Leaf')
3
"""

from __future__ import annotations

import collections
import gc
import operator
import sys
from typing import IO, Any, Callable, Iterable, Optional, Union

import _memxx

from ._sites import new_object_sites, print_growth_with_sites
from ._sizes import print_sized_types
from ._tables import write_growth, write_new_ids, write_type_counts

Predicate = Callable[[Any], Any]


def check_typename(typename: Any) -> None:
    """Return None, or raise TypeError naming the type if ``typename`` is not a str.

    >>> check_typename(3)
    Traceback (most recent call last):
    TypeError: typename must be a str, not int
    """
    if not isinstance(typename, str):
        raise TypeError("typename must be a str, not %s" % type(typename).__name__)


def check_limit(limit: Any) -> None:
    """Return None, or raise TypeError if ``limit`` is neither an int nor None.

    >>> check_limit('all')
    Traceback (most recent call last):
    TypeError: limit must be an int or None, not str
    """
    if limit is not None and not isinstance(limit, int):
        raise TypeError("limit must be an int or None, not %s" % type(limit).__name__)


def count(typename: str, objects: Optional[Iterable[Any]] = None) -> int:
    """Return the number of objects of a type (module-qualified if ``typename`` has a dot).

    >>> class Gizmo: pass
    >>> g = [Gizmo(), Gizmo()]
    >>> count('Gizmo')
    2
    """
    check_typename(typename)
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
    check_limit(limit)
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
        check_limit(limit)
        print_sized_types(limit, shortnames, file)
        return
    write_type_counts(file, most_common_types(limit, objects, shortnames=shortnames, filter=filter))


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
    check_limit(limit)
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

    >>> import io
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
            print_growth_with_sites(result, file, top, shortnames)
        else:
            new_object_sites(shortnames)  # starts the next interval all the same
        return
    write_growth(file, result)


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
    check_limit(limit)
    if not _state:
        _state["tracker"] = _memxx.GcNewIds()
        _state["new"] = collections.defaultdict(set)
        _state["shortnames"] = True
    if skip_update:
        previous: collections.defaultdict[str, set[int]] = _state["new"]
        return previous
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
    write_new_ids(sys.stdout if file is None else file, rows)
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
    check_typename(typename)
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

"""objgraphxx's printed formats, all here: objgraph's type, growth and new-ids tables (byte for
byte), and the sized-types, snapshot-diff and why_alive tables it adds. (The DOT of graphs is
written by _graphs.)

>>> import sys
>>> write_type_counts(sys.stdout, [('list', 2), ('dict', 1)])
list 2
dict 1
"""

from __future__ import annotations

from typing import IO, Any, Optional, Sequence

from ._naming import describe

NO_SITES_HINT = "(no allocation sites: run the code under objgraphxx.track_allocations())\n"


def write_type_counts(file: IO[str], rows: Sequence[tuple[str, int]]) -> None:
    """Print show_most_common_types' table: name, one space, count (nothing if no rows).

    >>> import sys
    >>> write_type_counts(sys.stdout, [('Gizmo', 12)])
    Gizmo 12
    """
    if not rows:
        return
    width = max(len(name) for name, _ in rows)
    for name, n in rows:
        file.write("%-*s %i\n" % (width, name, n))


def write_growth(
    file: IO[str],
    rows: Sequence[tuple[str, int, int]],
    sites: Optional[dict[str, list[tuple[str, int]]]] = None,
    top: int = 3,
) -> None:
    """Print show_growth's table; with ``sites``, each row followed by up to ``top`` lines that
    allocated its new objects.

    >>> import sys
    >>> write_growth(sys.stdout, [('Gizmo', 3, 2)], {'Gizmo': [('app.py:7', 2)]})
    Gizmo        3        +2
        app.py:7          +2
    """
    if not rows:
        return
    width = max(len(name) for name, _, _ in rows)
    for name, n, delta in rows:
        file.write("%-*s%9d %+9d\n" % (width, name, n, delta))
        for where, count in (sites or {}).get(name, [])[:top]:
            file.write("    %-*s %+9d\n" % (max(width + 5, len(where)), where, count))


def write_new_ids(file: IO[str], rows: Sequence[tuple[str, int, int, int, int]]) -> None:
    """Print get_new_ids' table: [(type, old ids, current ids, new ids, count delta)].

    >>> import io
    >>> out = io.StringIO()
    >>> write_new_ids(out, [('list', 1, 3, 2, 2)])
    >>> out.getvalue().splitlines()[3]
    'list            1            3           +2           +2'
    """
    if not rows:
        return
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


def write_sized_types(file: IO[str], rows: Sequence[tuple[str, int, int, int]]) -> None:
    """Print show_most_common_types(sizes=True)'s table: [(type, count, shallow, retained)].

    >>> import sys
    >>> write_sized_types(sys.stdout, [('Gizmo', 2, 96, 96)])
    type      count      shallow B     retained B
    Gizmo         2             96             96
    """
    if not rows:
        return
    width = max(max(len(r[0]) for r in rows), len("type"))
    file.write("%-*s %9s %14s %14s\n" % (width, "type", "count", "shallow B", "retained B"))
    for name, n, shallow, retained in rows:
        file.write("%-*s %9d %14d %14d\n" % (width, name, n, shallow, retained))


def write_snapshot_diff(
    file: IO[str],
    types_grown: Sequence[tuple[str, int, int, int]],
    sites_grown: Sequence[tuple[str, str, int, int]],
) -> None:
    """Print diff()'s tables: growth by type, then by allocation site.

    >>> import sys
    >>> write_snapshot_diff(sys.stdout, [('Foo', 2, 96, 96)], [])
    type    objects   shallow B  retained B
    Foo          +2         +96         +96
    """
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


def write_alive_chain(file: IO[str], hops: Sequence[Any], frame_root: bool) -> None:
    """Print why_alive's chain: the root, then one indented line per hop (edge -> kind).

    >>> import sys
    >>> from collections import namedtuple
    >>> Hop = namedtuple('Hop', 'edge obj')
    >>> write_alive_chain(sys.stdout, [Hop('module m', None), Hop('.CACHE', {})], False)
    module m
        .CACHE -> dict (0 items)
    """
    if frame_root:
        file.write("%s -> %s\n" % (hops[0].edge, describe(hops[0].obj)))
    else:
        file.write("%s\n" % hops[0].edge)
    for hop in hops[1:]:
        file.write("    %s -> %s\n" % (hop.edge, describe(hop.obj)))


def write_no_root(file: IO[str], obj: Any, max_depth: int) -> None:
    """Print why_alive's answer when no root reaches ``obj``.

    >>> import sys
    >>> write_no_root(sys.stdout, [], 100)
    no root reaches this list within 100 steps: only C code holds it, or it is garbage
    """
    file.write(
        "no root reaches this %s within %d steps: only C code holds it, or it is garbage\n"
        % (type(obj).__name__, max_depth)
    )

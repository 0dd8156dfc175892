"""Object graphs: the walk that writes objgraph's DOT, and where the graph goes (a .dot file,
an image rendered in-process, a notebook cell, a viewer).

>>> import io, objgraphxx
>>> out = io.StringIO()
>>> objgraphxx.show_refs([[1]], output=out)
>>> out.getvalue().splitlines()[0]
'digraph ObjectGraph {'
"""

from __future__ import annotations

import collections
import gc
import io
import itertools
import os
import sys
import tempfile
import types
from typing import IO, Any, Callable, Iterable, NamedTuple, Optional

import _memxx

from . import _settings
from ._chains import is_proper_module
from ._edges import dot_label, quote
from ._naming import is_instance, long_typename, safe_repr, short_typename
from ._observers import in_kernel, observer_types, own_frame_ids, shell_history_ids
from ._output import check_output_path, write_output

Predicate = Callable[[Any], Any]
NodeAttrs = Callable[[Any], dict[str, Any]]


def node_id(obj: Any) -> str:
    """Return the DOT node name of ``obj``.

    >>> node_id(None) == 'o%d' % id(None)
    True
    """
    return ("o%d" % id(obj)).replace("-", "_")


def node_attrs(obj: Any, extra_node_attrs: Optional[NodeAttrs]) -> str:
    """Return the extra DOT attributes of a node (``extra_node_attrs(obj)``), sorted by name.

    >>> node_attrs([], lambda o: {'shape': 'oval', 'color': None})
    ', shape="oval"'
    """
    if extra_node_attrs is None:
        return ""
    attrs = extra_node_attrs(obj)
    return ", " + ", ".join(
        '%s="%s"' % (name, quote(value))
        for name, value in sorted(attrs.items())
        if value is not None
    )


def node_label(
    obj: Any,
    extra_info: Optional[Callable[[Any], Any]] = None,
    refcounts: bool = False,
    shortnames: bool = True,
) -> str:
    r"""Return a node's label: type name (and reference count), short repr, extra info.

    >>> node_label([1, 2])
    'list\\n2 items'
    """
    label = [short_typename(obj) if shortnames else long_typename(obj)]
    if refcounts:
        # -4: this frame, the walk's frame, getrefcount's argument, one the gc cannot see.
        label[0] += " [%d]" % (sys.getrefcount(obj) - 4)
    label.append(safe_repr(obj))
    if extra_info:
        label.append(str(extra_info(obj)))
    return quote("\n".join(label))


def gradient(
    start_color: tuple[float, float, float],
    end_color: tuple[float, float, float],
    depth: int,
    max_depth: int,
) -> tuple[float, float, float]:
    """Return the HSV colour ``depth / max_depth`` of the way from start to end.

    >>> gradient((0, 0, 1), (0, 0, 0), 1, 2)
    (0.0, 0.0, 0.5)
    """
    if max_depth == 0:
        return start_color
    h1, s1, v1 = start_color
    h2, s2, v2 = end_color
    f = float(depth) / max_depth
    return h1 * (1 - f) + h2 * f, s1 * (1 - f) + s2 * f, v1 * (1 - f) + v2 * f


class BatchedReferrers:
    """gc.get_referrers for a BFS: referrers of a whole depth level in one heap pass.

    >>> x = []
    >>> holder = [x]
    >>> holder in BatchedReferrers(set())(x)
    True
    """

    def __init__(self, ignore: set[int]) -> None:
        self.ignore = ignore
        self.cache: dict[int, list[Any]] = {}
        self.observers = observer_types()

    def prefetch(self, targets: list[Any]) -> None:
        """Find the referrers of all ``targets`` in one heap pass, for the calls that follow."""
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


class GraphStyle(NamedTuple):
    """How the walk draws: what it expands, how nodes and edges are labelled."""

    max_depth: int = 3
    too_many: int = 10
    filter: Optional[Predicate] = None
    highlight: Optional[Predicate] = None
    extra_info: Optional[Callable[[Any], Any]] = None
    refcounts: bool = False
    shortnames: bool = True
    cull_func: Optional[Predicate] = None
    extra_node_attrs: Optional[NodeAttrs] = None


def _has_del(target: Any) -> bool:
    """True when the object's class (as objgraph asks: its ``__class__``) defines __del__;
    a dead weakref.proxy or a raising ``__class__`` property is asked by its real type."""
    try:
        cls = target.__class__
    except Exception:
        cls = type(target)
    try:
        return hasattr(cls, "__del__")
    except Exception:
        return False


def write_node_style(f: IO[str], target: Any, tdepth: int, style: GraphStyle) -> None:
    """Write a node's colour (by depth; modules green, highlighted blue) and its __del__ mark.

    >>> out = io.StringIO()
    >>> write_node_style(out, [], 0, GraphStyle())
    >>> out.getvalue().endswith('[fillcolor="0,0,1"];\\n')
    True
    """
    node = node_id(target)
    h, s, v = gradient((0, 0, 1), (0, 0, 0.3), tdepth, style.max_depth)
    if is_instance(target, types.ModuleType):
        h = 0.3
        s = 1
    if style.highlight and style.highlight(target):
        h = 0.6
        s = 0.6
        v = 0.5 + v * 0.5
    f.write('  %s[fillcolor="%g,%g,%g"];\n' % (node, h, s, v))
    if v < 0.5:
        f.write("  %s[fontcolor=white];\n" % node)
    if _has_del(target):
        f.write("  %s->%s_has_a_del[color=red,style=dotted,len=0.25,weight=10];\n" % (node, node))
        f.write(
            '  %s_has_a_del[label="__del__",shape=doublecircle,'
            'height=0.25,color=red,fillcolor="0,.5,1",fontsize=6];\n' % node
        )


def write_too_many(
    f: IO[str], node: str, skipped: int, tdepth: int, max_depth: int, forwards: bool
) -> None:
    """Write the "N more references" node standing for the edges past ``too_many``.

    >>> out = io.StringIO()
    >>> write_too_many(out, 'o1', 5, 0, 3, True)
    >>> out.getvalue().splitlines()[0]
    '  o1->too_many_o1[color=red,style=dotted,len=0.25,weight=10];'
    """
    h, s, v = gradient((0, 1, 1), (0, 1, 0.3), tdepth + 1, max_depth)
    if forwards:
        label = "%d more references" % skipped
        edge = "%s->too_many_%s" % (node, node)
    else:
        label = "%d more backreferences" % skipped
        edge = "too_many_%s->%s" % (node, node)
    f.write("  %s[color=red,style=dotted,len=0.25,weight=10];\n" % edge)
    f.write(
        '  too_many_%s[label="%s",shape=box,height=0.25,'
        'color=red,fillcolor="%g,%g,%g",fontsize=6];\n' % (node, label, h, s, v)
    )
    f.write("  too_many_%s[fontcolor=white];\n" % node)


def write_graph(
    f: IO[str],
    objs: list[Any],
    edge_func: Callable[[Any], Iterable[Any]],
    swap_source_target: bool,
    extra_ignore: Iterable[int],
    style: GraphStyle,
) -> int:
    """Write the DOT of the graph around ``objs`` breadth-first; return the number of nodes.

    >>> out = io.StringIO()
    >>> write_graph(out, [[[]]], gc.get_referents, True, (), GraphStyle(max_depth=1))
    2
    """
    f.write("digraph ObjectGraph {\n  node[shape=box, style=filled, fillcolor=white];\n")
    queue: collections.deque[Any] = collections.deque()
    depth: dict[int, int] = {}
    ignore = set(extra_ignore)
    ignore.update((id(objs), id(extra_ignore), id(queue), id(depth), id(ignore)))
    ignore.update(own_frame_ids())
    ignore.update(shell_history_ids())
    if edge_func is gc.get_referrers:
        edge_func = BatchedReferrers(ignore)
        ignore.add(id(edge_func))
        ignore.add(id(edge_func.cache))
    batched = isinstance(edge_func, BatchedReferrers)
    for obj in objs:
        f.write("  %s[fontcolor=red];\n" % node_id(obj))
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
        node = node_id(target)
        f.write(
            '  %s[label="%s"%s];\n'
            % (
                node,
                node_label(target, style.extra_info, style.refcounts, style.shortnames),
                node_attrs(target, style.extra_node_attrs),
            )
        )
        write_node_style(f, target, tdepth, style)
        if tdepth >= style.max_depth:
            continue
        if style.cull_func is not None and style.cull_func(target):
            continue
        if batched and prefetched_depth != tdepth:
            # The queue now holds exactly this level (after `target`): one pass for all.
            level = [target] + [o for o in queue if depth[id(o)] == tdepth]
            edge_func.prefetch(level)  # type: ignore[attr-defined]
            del level
            prefetched_depth = tdepth
        neighbours = edge_func(target)
        ignore.add(id(neighbours))
        n = 0
        skipped = 0
        for source in neighbours:
            if id(source) in ignore:
                continue
            if style.filter and not style.filter(source):
                continue
            if n >= style.too_many:
                skipped += 1
                continue
            if swap_source_target:
                srcnode, tgtnode = target, source
            else:
                srcnode, tgtnode = source, target
            elabel = dot_label(srcnode, tgtnode, style.shortnames)
            f.write("  %s -> %s%s;\n" % (node_id(srcnode), node_id(tgtnode), elabel))
            if id(source) not in depth:
                depth[id(source)] = tdepth + 1
                queue.append(source)
            n += 1
            del source, srcnode, tgtnode
        del neighbours
        if skipped > 0:
            write_too_many(f, node, skipped, tdepth, style.max_depth, swap_source_target)
    f.write("}\n")
    return nodes


def check_image_filename(filename: str) -> None:
    """Return None, or raise before any work: ValueError for an unknown extension,
    FileNotFoundError or OutputFileError (a ValueError) for a path that cannot be written.

    >>> check_image_filename('graph')
    Traceback (most recent call last):
    ValueError: cannot tell the image format of 'graph': add an extension such as .png
    """
    ext = os.path.splitext(filename)[1][1:]
    if not ext:
        raise ValueError("cannot tell the image format of %r: add an extension such as .png" % filename)
    if ext not in _memxx.gc_render_formats():
        raise ValueError(
            "unknown output format %r for %s (use .dot, .png, .svg, .pdf or another Graphviz format)"
            % (ext, filename)
        )
    check_output_path(filename)


class GraphSink(NamedTuple):
    """Where a graph's DOT goes: the stream, and what becomes of it once written."""

    f: IO[str]
    kind: str  # "output" (caller's stream), "inline", "interactive", "dot" or "file"
    dot_filename: Optional[str] = None


def open_sink(filename: Optional[str], output: Optional[IO[str]]) -> GraphSink:
    """Return where to write the DOT: the caller's stream, memory for a notebook or IPython's
    graphviz.Source, the .dot file asked for, or a temporary .dot to render or view.

    >>> open_sink(None, sys.stdout).kind
    'output'
    """
    if filename and output:
        raise ValueError("Cannot specify both output and filename.")
    if output:
        return GraphSink(output, "output")
    if not filename and in_kernel() and _settings.renders_in_process():
        return GraphSink(io.StringIO(), "inline")  # the cell's output: no file, no viewer
    if filename and filename.endswith(".dot"):
        check_output_path(filename)
        return GraphSink(io.StringIO(), "dot", filename)  # written whole, once complete
    if _settings.IS_INTERACTIVE and not filename:
        return GraphSink(io.StringIO(), "interactive")
    if filename and _settings.renders_in_process():
        check_image_filename(filename)
    fd, dot_filename = tempfile.mkstemp(prefix="objgraph-", suffix=".dot", text=True)
    return GraphSink(io.open(fd, "w", encoding="utf-8"), "file", dot_filename)


def show_graph(
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
    extra_node_attrs: Optional[NodeAttrs] = None,
) -> Any:
    """Draw the graph around ``objs`` (objgraph's _show_graph); returns what show_refs does.

    >>> out = io.StringIO()
    >>> show_graph([[]], gc.get_referents, True, output=out)
    >>> out.getvalue().count('[label=')
    1
    """
    if not is_instance(objs, (list, tuple)):
        objs = [objs]
    if filename is not None and not isinstance(filename, str):
        raise TypeError("filename must be a str, not %s" % type(filename).__name__)
    if not isinstance(max_depth, int) or not isinstance(too_many, int):
        raise TypeError("max_depth and too_many must be ints")
    sink = open_sink(filename, output)
    style = GraphStyle(
        max_depth, too_many, filter, highlight, extra_info, refcounts, shortnames, cull_func,
        extra_node_attrs,
    )
    nodes = write_graph(sink.f, objs, edge_func, swap_source_target, extra_ignore, style)
    if sink.kind == "output":
        return None
    if sink.kind == "inline":
        from ._inline import show_inline

        return show_inline(sink.f.getvalue(), nodes)  # type: ignore[attr-defined]
    if sink.kind == "interactive":
        return _settings.graphviz.Source(sink.f.getvalue())  # type: ignore[attr-defined]
    if sink.kind == "dot":
        write_output(sink.dot_filename, sink.f.getvalue())  # type: ignore[arg-type,attr-defined]
    sink.f.close()
    print("Graph written to %s (%d nodes)" % (sink.dot_filename, nodes))
    present_graph(sink.dot_filename, filename)  # type: ignore[arg-type]
    return None


def present_graph(dot_filename: str, filename: Optional[str] = None) -> None:
    """Render or display a written .dot file as objgraph does (in-process when possible).

    >>> present_graph('graph.dot', 'graph.dot')  # the .dot was the output asked for
    """
    if filename == dot_filename:
        return
    subprocess = _settings.subprocess
    program_in_path = _settings.program_in_path
    if not filename and program_in_path("xdot"):
        print("Spawning graph viewer (xdot)")
        subprocess.Popen(["xdot", dot_filename], close_fds=True)
        return
    if _settings.renders_in_process():
        if not filename:
            print("Graph viewer (xdot) not found, generating a png instead")
            filename = dot_filename[:-4] + ".png"
        with open(dot_filename, encoding="utf-8") as dot_file:
            text = dot_file.read()
        write_output(filename, _memxx.gc_render_dot_data(text, os.path.splitext(filename)[1][1:]))
        print("Image generated as %s" % filename)
    elif program_in_path("dot"):
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
    return show_graph(
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
    return show_graph(
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

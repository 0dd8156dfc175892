"""Why is an object alive: the shortest chain of references from a root (a module, a class,
a live frame's variable) to it, each hop named.

Re-exported by ``objgraphxx``; see its docstring and docs/objgraphxx.md, "Leak finder".

>>> import io, sys, types
>>> mod = sys.modules.setdefault('leaks_doc_demo', types.ModuleType('leaks_doc_demo'))
>>> mod.ITEMS = [1]
>>> [hop.edge for hop in why_alive(mod.ITEMS, file=io.StringIO())]
['module leaks_doc_demo', '.ITEMS']
"""

from __future__ import annotations

import inspect
import sys
import threading
from typing import IO, Any, Iterable, NamedTuple, Optional

import _memxx

from _memxx_shared.names import short_path

from ._edges import hop_text, is_namespace
from ._graphs import show_chain
from ._naming import describe
from ._observers import (
    debugger_prefixes,
    history_namespaces,
    in_kernel,
    observer_prefixes,
    observer_types,
    root_modules,
    shell_history_ids,
)
from ._sites import NotRecording
from ._tables import write_alive_chain, write_no_root


class Hop(NamedTuple):
    """One step of a why_alive() chain: how it is reached (``edge``) and the object.

    Its repr is short (the object's kind and size, not the whole container):

    >>> Hop('.CACHE', {'k': list(range(10**6))})
    Hop(edge='.CACHE', obj=<dict (1 items)>)
    """

    edge: str
    obj: Any

    def __repr__(self) -> str:
        return "Hop(edge=%r, obj=<%s>)" % (self.edge, describe(self.obj))


class AliveChain(list[Hop]):
    """The list of Hops why_alive() returns; its repr names the hops, not the objects' contents.

    >>> AliveChain([Hop('module m', None), Hop('.CACHE', {})])
    <why_alive chain of 2 hops: module m -> .CACHE (dict (0 items))>
    """

    def __repr__(self) -> str:
        if not self:
            return "<why_alive chain: no root reaches the object>"
        edges = " -> ".join(hop.edge for hop in self)
        return "<why_alive chain of %d hops: %s (%s)>" % (len(self), edges, describe(self[-1].obj))


def _frame_text(thread_id: int, depth: int, code: Any, slot: str, asking: Any) -> str:
    """Describe a frame slot root; ``asking`` is the frame that was on top of this thread when
    the depth was counted."""
    thread = threading._active.get(thread_id)  # type: ignore[attr-defined]
    thread_name = thread.name if thread is not None else "thread %d" % thread_id
    where = short_path(code.co_filename)
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
    if slot in code.co_cellvars or slot in code.co_freevars:
        kind = "cell"
    elif code.co_flags & inspect.CO_OPTIMIZED:
        kind = "local"
    else:  # the frame's namespace dict: a script's globals, a class body's names
        kind = "global" if code.co_name == "<module>" else "name"
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
    variables of live frames on every thread (a script's globals too, however it is run).
    Never roots: frames of this package, the line profiler, the IPython shell and debuggers
    (pdb, bdb, cmd, code, ipdb); at a pdb prompt, the prompt and what it runs. The calling (or
    debugged) frame's own variable holding ``obj`` is the answer only when no other root
    reaches it, so the answer is the same from inside pdb. One line per hop with the
    attribute, key or index that holds the next object;
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
    with NotRecording():
        return _why_alive(obj, filename, file, max_depth, extra_ignore)


def _why_alive(
    obj: Any, filename: Optional[str], file: IO[str], max_depth: int, extra_ignore: Iterable[int]
) -> "AliveChain":
    extra = list(extra_ignore)
    excluded = extra + shell_history_ids() + [id(extra)]
    kind, chain, thread_id, depth, code, slot = _memxx.gc_why_alive(
        obj,
        root_modules(),
        observer_prefixes(),
        debugger_prefixes(),
        excluded,
        observer_types(),
        max_depth,
        history_namespaces(),
    )
    del excluded
    if kind == "none":
        write_no_root(file, obj, max_depth)
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
        if is_namespace(src, dst):
            namespace = True
            continue
        hops.append(Hop(hop_text(src, dst, namespace) or "(referent)", dst))
        namespace = False
    write_alive_chain(file, hops, frame_root=kind == "frame")
    if filename or in_kernel():  # in a notebook the chain is also drawn, inline
        show_chain(chain, filename=filename, highlight=lambda o, first=chain[0]: o is first)
    del chain
    return hops


__all__ = ["AliveChain", "Hop", "why_alive"]

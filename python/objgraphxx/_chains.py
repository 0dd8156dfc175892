"""Shortest reference chains: to an object from what matches a predicate, and back.

>>> import objgraphxx
>>> class Gizmo: pass
>>> box = {'g': Gizmo()}
>>> [type(o).__name__ for o in objgraphxx.find_ref_chain(box, lambda o: type(o) is Gizmo)]
['dict', 'Gizmo']
"""

from __future__ import annotations

import gc
import sys
import types
from typing import Any, Callable, Iterable

import _memxx

from ._naming import is_instance
from ._observers import observer_types, own_frame_ids, shell_history_ids

Predicate = Callable[[Any], Any]


def find_ref_chain(
    obj: Any, predicate: Predicate, max_depth: int = 20, extra_ignore: Iterable[int] = ()
) -> list[Any]:
    """Return the shortest chain of references from ``obj`` to an object matching ``predicate``.

    >>> class Gizmo: pass
    >>> box = {'g': Gizmo()}
    >>> [type(o).__name__ for o in find_ref_chain(box, lambda o: type(o) is Gizmo)]
    ['dict', 'Gizmo']
    """
    return find_chain(
        obj, predicate, gc.get_referents, max_depth=max_depth, extra_ignore=extra_ignore
    )[::-1]


def find_backref_chain(
    obj: Any, predicate: Predicate, max_depth: int = 20, extra_ignore: Iterable[int] = ()
) -> list[Any]:
    """Return the shortest chain of referrers from an object matching ``predicate`` to ``obj``.

    One heap pass per chain length, however many objects each level holds; the debugger
    (pdb) and the IPython shell are never part of the chain.

    >>> chain = find_backref_chain(sys.path, is_proper_module)
    >>> chain[0] is sys and chain[-1] is sys.path
    True
    """
    return find_chain(
        obj, predicate, gc.get_referrers, max_depth=max_depth, extra_ignore=extra_ignore
    )


def is_proper_module(obj: Any) -> bool:
    """Return True if ``obj`` is a module that is in sys.modules under its name.

    >>> import types
    >>> is_proper_module(types), is_proper_module(types.ModuleType('foo'))
    (True, False)
    """
    # The real type first: a dead weakref.proxy or a raising __class__ answers no attribute.
    if not is_instance(obj, types.ModuleType):
        return False
    name = getattr(obj, "__name__", None)
    return isinstance(name, str) and obj is sys.modules.get(name)


def find_chain(
    obj: Any,
    predicate: Predicate,
    edge_func: Callable[[Any], Iterable[Any]],
    max_depth: int = 20,
    extra_ignore: Iterable[int] = (),
) -> list[Any]:
    """Return [match, ..., obj]: the shortest chain breadth-first along ``edge_func``, or [obj].

    ``edge_func`` is gc.get_referrers, gc.get_referents or any function giving a node's next
    nodes; the C++ referrer search walks all three.

    >>> find_chain(1, lambda n: n == 3, lambda n: [n + 1])
    [3, 2, 1]
    """
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
    excluded = extra_ignore + own_frame_ids() + shell_history_ids() + [id(extra_ignore)]
    return _memxx.gc_find_chain(obj, predicate, steps, max_depth, excluded, observer_types())

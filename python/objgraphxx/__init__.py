"""objgraphxx: objgraph's API on a C++ heap walker, graphs rendered in-process.

``import objgraphxx as objgraph`` keeps objgraph code working: same functions, parameters,
defaults, printed text and DOT. Counting, growth, leak and referrer searches walk the
collector's lists in C++ (objects frozen by ``gc.freeze()`` included); PNG/SVG/PDF are rendered
by the linked Graphviz library, no ``dot`` program needed.

The package is split by job: ``_counts`` (counts, growth, new ids, lookups), ``_chains``
(reference chains), ``_graphs`` (DOT and images), ``_sizes`` (sizes and snapshots), ``_sites``
(allocation sites), ``_leaks`` (why_alive); ``_settings`` holds the settings below, which this
module shows as its own attributes.

>>> import objgraphxx
>>> class Leaf: pass
>>> leaves = [Leaf() for _ in range(3)]
>>> objgraphxx.count('Leaf')
3
"""

from __future__ import annotations

# objgraph's module namespace also holds these stdlib modules; its tests patch `subprocess`.
import codecs  # noqa: F401
import collections  # noqa: F401
import gc  # noqa: F401
import inspect  # noqa: F401
import itertools  # noqa: F401
import operator  # noqa: F401
import os  # noqa: F401
import re  # noqa: F401
import sys
import tempfile  # noqa: F401
import types
from typing import Any

import _memxx  # noqa: F401 - objgraphxx._memxx, used by the tests

from . import _settings
from ._chains import find_backref_chain, find_ref_chain, is_proper_module
from ._chains import find_chain as _find_chain  # noqa: F401 - objgraph's private helpers
from ._counts import (
    at,
    at_addrs,
    by_type,
    count,
    get_leaking_objects,
    get_new_ids,
    growth,
    most_common_types,
    show_growth,
    show_most_common_types,
    typestats,
)
from ._edges import dot_label as _edge_label  # noqa: F401
from ._edges import is_identifier as _is_identifier  # noqa: F401
from ._edges import quote as _quote  # noqa: F401
from ._graphs import gradient as _gradient  # noqa: F401
from ._graphs import node_attrs as _obj_attrs  # noqa: F401
from ._graphs import node_id as _obj_node_id  # noqa: F401
from ._graphs import node_label as _obj_label  # noqa: F401
from ._graphs import present_graph as _present_graph  # noqa: F401
from ._graphs import show_backrefs, show_chain, show_refs
from ._growth_report import growth_report
from ._graphs import show_graph as _show_graph  # noqa: F401
from ._leaks import AliveChain, Hop, why_alive
from ._naming import is_instance as _isinstance  # noqa: F401
from ._naming import long_typename as _long_typename  # noqa: F401
from ._naming import name_or_repr as _name_or_repr  # noqa: F401
from ._naming import obj_type as _get_obj_type  # noqa: F401
from ._naming import safe_repr as _safe_repr  # noqa: F401
from ._naming import short_repr as _short_repr  # noqa: F401
from ._naming import short_typename as _short_typename  # noqa: F401
from ._sites import allocation_site, track_allocations
from ._sizes import (
    SiteStats,
    Snapshot,
    SnapshotDiff,
    TypeStats,
    diff,
    retained_size,
    snapshot,
    type_sizes,
)

__version__ = "3.7.0"
__author__ = "memory-profilerxx developers"
__license__ = "BSD-3-Clause"


def _settings_view(name: str) -> property:
    """A package attribute that reads, assigns and deletes ``_settings.<name>``."""

    def get(module: Any) -> Any:
        try:
            return getattr(_settings, name)
        except AttributeError:
            raise AttributeError("module 'objgraphxx' has no attribute %r" % name) from None

    def set_(module: Any, value: Any) -> None:
        setattr(_settings, name, value)

    def delete(module: Any) -> None:
        delattr(_settings, name)

    return property(get, set_, delete)


class _Package(types.ModuleType):
    """objgraphxx itself: its settings are views of _settings, so that assigning or patching
    ``objgraphxx.STRICT_DOT`` (or objgraph's hooks) reaches every module."""

    locals().update(
        {view: _settings_view(name) for view, name in _settings.PACKAGE_VIEWS.items()}
    )

    def __dir__(self) -> list[str]:
        return sorted(set(self.__dict__) | set(_settings.PACKAGE_VIEWS))


sys.modules[__name__].__class__ = _Package

__all__ = [
    "AliveChain",
    "Hop",
    "SiteStats",
    "Snapshot",
    "SnapshotDiff",
    "TypeStats",
    "allocation_site",
    "at",
    "at_addrs",
    "by_type",
    "count",
    "diff",
    "find_backref_chain",
    "find_ref_chain",
    "get_leaking_objects",
    "get_new_ids",
    "growth",
    "growth_report",
    "is_proper_module",
    "most_common_types",
    "retained_size",
    "show_backrefs",
    "show_chain",
    "show_growth",
    "show_most_common_types",
    "show_refs",
    "snapshot",
    "track_allocations",
    "type_sizes",
    "typestats",
    "why_alive",
]

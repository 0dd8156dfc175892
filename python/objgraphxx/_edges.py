"""Edge text from the one edge namer (``_memxx.gc_edge``): DOT labels and why_alive hops.

>>> from objgraphxx import _edges
>>> box = {'leaf': []}
>>> _edges.dot_label(box, box['leaf'])
' [label="leaf",weight=2]'
>>> _edges.hop_text(box, box['leaf'], in_namespace=False)
"['leaf']"
"""

from __future__ import annotations

import re
import types
from typing import Any

import _memxx


from _memxx_shared.names import xml_chars

from . import _settings
from ._naming import is_instance, long_typename, safe_repr, short_typename

is_identifier = re.compile("[a-zA-Z_][a-zA-Z_0-9]*$").match

# Sources whose attribute edges objgraph itself labels (weight 10).
_OBJGRAPH_ATTRIBUTE_SOURCES = (types.FrameType, types.MethodType, types.FunctionType)


def quote(s: str) -> str:
    """Return ``s`` escaped for a quoted DOT string.

    Characters XML 1.0 forbids (controls, lone surrogates from undecodable bytes) are written
    as visible ``\\xNN`` first: Graphviz copies label text into its SVG as it is.

    >>> quote('a"b'), quote('esc\\x1b')
    ('a\\\\"b', 'esc\\\\\\\\x1b')
    """
    s = xml_chars(s)
    return s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _edge(source: Any, target: Any) -> tuple[str, Any]:
    """(kind, key) from the one edge namer; ('', None) when ``source`` does not name ``target``."""
    return _memxx.gc_edge(source, target) or ("", None)


def _is_extra_attribute(source: Any, key: Any) -> bool:
    """True for an instance attribute (labelled beyond objgraph), not a cell's contents or a
    class's bases."""
    if is_instance(source, types.CellType):
        return False
    return not (is_instance(source, type) and key == "__mro__")


def dot_label(source: Any, target: Any, shortnames: bool = True) -> str:
    """Return the DOT attributes of the edge source -> target: objgraph's labels, and with
    STRICT_DOT off also list indexes and instance attributes.

    >>> dot_label([0, 'x'], 'x')
    ' [label="[1]"]'
    """
    kind, key = _edge(source, target)
    if kind == "namespace":
        return "" if is_instance(source, type) else ' [label="__dict__",weight=10]'
    if kind == "attribute" and is_instance(source, _OBJGRAPH_ATTRIBUTE_SOURCES):
        return ' [label="%s",weight=10]' % quote(key)
    if kind == "dict_value":
        if is_instance(key, str) and is_identifier(key):
            return ' [label="%s",weight=2]' % quote(key)
        tn = short_typename(key) if shortnames else long_typename(key)
        return ' [label="%s"]' % quote(tn + "\n" + safe_repr(key))
    if _settings.STRICT_DOT:
        return ""
    if kind == "index":
        return ' [label="[%d]"]' % key
    if kind == "attribute" and _is_extra_attribute(source, key):
        return ' [label="%s",weight=2]' % quote(key)
    return ""


def _key_text(key: Any, as_attribute: bool) -> str:
    if as_attribute and isinstance(key, str) and key.isidentifier():
        return "." + str(key)
    try:
        text = repr(key)
    except Exception:
        text = "(unrepresentable %s)" % type(key).__name__
    if len(text) > 60:
        text = text[:57] + "..."
    return "[%s]" % text


def is_namespace(source: Any, target: Any) -> bool:
    """Return True if ``target`` is the dict holding ``source``'s attributes.

    >>> import os
    >>> is_namespace(os, vars(os)), is_namespace({}, {})
    (True, False)
    """
    return _edge(source, target)[0] == "namespace"


def hop_text(source: Any, target: Any, in_namespace: bool) -> str:
    """Return how a why_alive hop is reached: '.attr', "['key']", '[3]', ... ('' if unknown).

    ``in_namespace``: ``source`` is a module's, class's or instance's attribute dict, whose
    keys read as attributes.

    >>> hop_text({'k': 1}, 1, in_namespace=True)
    '.k'
    """
    kind, key = _edge(source, target)
    if kind == "dict_value":
        return _key_text(key, in_namespace)
    if kind == "dict_key":
        return "(key %s)" % _key_text(key, False)
    if kind == "index":
        return "[%d]" % key
    if kind == "member":
        return "(member)"
    if kind == "attribute":
        return "." + str(key)
    if kind == "local":
        return " local %r" % key
    return ""

"""What objects are called in tables, graph nodes and chains: type names and short reprs.

Everything here is short by design: a result shown at a prompt names the kind and the size of
a container, never its contents.

>>> from objgraphxx import _naming
>>> _naming.describe({'k': list(range(1000))})
'dict (1 items)'
"""

from __future__ import annotations

import os
import types
from typing import Any


def is_instance(obj: Any, classinfo: Any) -> bool:
    """Return isinstance() decided by type(), so mocks with spec= do not lie.

    >>> from unittest import mock
    >>> is_instance(mock.Mock(spec=list), list)
    False
    """
    return issubclass(type(obj), classinfo)


def obj_type(obj: Any) -> type:
    """Return the type of ``obj``.

    >>> obj_type([]) is list
    True
    """
    return type(obj)


def short_typename(obj: Any) -> str:
    """Return the type's name.

    >>> short_typename({})
    'dict'
    """
    return obj_type(obj).__name__


def long_typename(obj: Any) -> str:
    """Return the type's module-qualified name.

    >>> long_typename(os.sep)
    'builtins.str'
    """
    objtype = obj_type(obj)
    name = objtype.__name__
    module = getattr(objtype, "__module__", None)
    if module:
        return "%s.%s" % (module, name)
    return name


def name_or_repr(value: Any) -> str:
    """Return ``value.__name__`` if it is a str, else the start of its repr.

    >>> name_or_repr(len), name_or_repr(3)
    ('len', '3')
    """
    try:
        result: object = value.__name__
    except AttributeError:
        result = repr(value)[:40]
    if is_instance(result, str):
        return str(result)
    return repr(value)[:40]


def short_repr(obj: Any) -> str:
    """Return objgraph's node text for ``obj``: a name, a size or the start of the repr.

    >>> short_repr([1, 2, 3]), short_repr(os)
    ('3 items', 'os')
    """
    if is_instance(
        obj, (type, types.ModuleType, types.BuiltinMethodType, types.BuiltinFunctionType)
    ):
        return name_or_repr(obj)
    if is_instance(obj, types.MethodType):
        name = name_or_repr(obj.__func__)
        return name + " (bound)" if obj.__self__ else name
    if is_instance(obj, types.FunctionType) and obj.__name__ == "<lambda>":
        return "lambda: %s:%s" % (
            os.path.basename(obj.__code__.co_filename),
            obj.__code__.co_firstlineno,
        )
    if is_instance(obj, types.FrameType):
        return "%s:%s" % (obj.f_code.co_filename, obj.f_lineno)
    if is_instance(obj, (tuple, list, dict, set)):
        return "%d items" % len(obj)
    return repr(obj)[:40]


def safe_repr(obj: Any) -> str:
    """Return short_repr(obj), or '(unrepresentable)' if its repr raises.

    >>> class Bad:
    ...     def __repr__(self): raise RuntimeError
    >>> safe_repr(Bad())
    '(unrepresentable)'
    """
    try:
        return short_repr(obj)
    except Exception:
        return "(unrepresentable)"


def describe(obj: Any) -> str:
    """Return the kind of ``obj`` and, for a container, its length; for a function its name.

    Decided by the real type, never by the object's own ``__class__`` or ``__len__`` (a dead
    ``weakref.proxy`` raises on both): what cannot be asked is described by type and address.

    >>> describe([1, 2]), describe(describe)
    ('list (2 items)', 'function describe')
    """
    name = type(obj).__name__
    try:
        if is_instance(obj, (dict, list, tuple, set, frozenset)):
            return "%s (%d items)" % (name, len(obj))
        if is_instance(obj, (types.FunctionType, types.MethodType, type, types.ModuleType)):
            title = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", "?")
            return "%s %s" % (name, title if is_instance(title, str) else "?")
    except Exception:  # a list subclass whose __len__ raises, a module's __getattr__
        return "%s at 0x%x" % (name, id(obj))
    return name
